"""The pages' one way to show domain errors: each ``InputError`` next to its form field."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms

from osmos.errors import InputError


def form_field_of(error: InputError, fields: Iterable[str]) -> str | None:
    """The form field an error belongs to: its path, or the path's last part
    (``destination.url`` → ``url``) when the form names it so; None for the whole form."""
    if error.field is None:
        return None
    names = set(fields)
    for candidate in (error.field, error.field.rpartition(".")[2]):
        if candidate in names:
            return candidate
    return None


def attach_input_errors(form: forms.Form, errors: Iterable[InputError]) -> None:
    """Add ``errors`` to a Django form: on their field when it has one, else to the form."""
    for error in errors:
        form.add_error(form_field_of(error, form.fields), error.message)

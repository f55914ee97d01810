"""The header rules shared by save (connectors validation) and send (the client)."""

from __future__ import annotations

import pytest

from connectors.validation import destination_input_errors
from osmos.outbound.headers import is_valid_header_name, is_valid_header_value


def save_errors(name: str, value: str) -> list:
    destination = {"url": "https://93.184.216.34/", "headers": [{"name": name, "value": value}]}
    errors = destination_input_errors(
        direction="destination", destination=destination, required=True
    )
    return [e for e in errors if e.field == "destination.headers"]


@pytest.mark.parametrize(
    "value", [" Bearer x", "\tBearer x", "a\nb", "a\rb", "a\x00b", "a\x7fb", "é€"]
)
def test_a_value_refused_at_send_is_refused_at_save(value):
    assert not is_valid_header_value(value)
    assert save_errors("X-Token", value)


@pytest.mark.parametrize(
    "value", ["Bearer x", "a\tb c", "trailing ", "caf\xe9", "\xa0leading nbsp"]
)
def test_a_value_accepted_at_save_is_accepted_at_send(value):
    assert is_valid_header_value(value)
    assert save_errors("X-Token", value) == []


@pytest.mark.parametrize("name", ["", "X Token", "X:Token", "Ä", "X-Token\n"])
def test_invalid_names_are_refused_at_save_and_send(name):
    assert not is_valid_header_name(name)
    assert save_errors(name, "v")

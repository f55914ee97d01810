"""``{{ value|as_json }}``: a destination's body template as indented JSON text (escaped by
the template engine like any text)."""

from __future__ import annotations

from typing import Any

from django import template

from connectors.forms import body_template_text

register = template.Library()


@register.filter
def as_json(value: Any) -> str:
    return body_template_text(value)

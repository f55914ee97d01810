"""``when``: every time the pages show carries its zone (``2025-03-01 10:00:04 UTC``).

The zone is Django's current time zone (``TIME_ZONE``, UTC unless configured: no organization
or person chooses another today), so a reader never has to guess which clock a run time, a
failure or a notification is on. Loaded for every template (``TEMPLATES`` ``builtins``).
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import dateformat
from django.utils.html import format_html
from django.utils.timezone import template_localtime

register = template.Library()

FORMATS = {
    "seconds": "Y-m-d H:i:s T",  # the default: run times, attempts, records
    "minutes": "Y-m-d H:i T",  # lists
    "time": "H:i:s T",  # within a page that already shows the day
    "day": "D Y-m-d H:i T",  # the next runs of a schedule
}


@register.filter(is_safe=True)
def when(value: datetime | None, style: str = "seconds") -> str:
    """``value`` in the current zone, as ``<time datetime="ISO 8601">… ZONE</time>``; ""
    for None (so ``|default:"—"`` applies)."""
    if not isinstance(value, datetime):
        return ""
    local = template_localtime(value)
    text = dateformat.format(local, FORMATS[style])
    return format_html('<time datetime="{}">{}</time>', local.isoformat(), text)

"""What the apps' admins share: support staff look at rows the product writes, never edit."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ViewOnly:
    """Mix into a ``ModelAdmin`` or an inline: no add, change or delete, only the view."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

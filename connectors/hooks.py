"""Hooks: what the apps above connectors plug into it, without connectors importing them.

Dependencies point down: osmos ← connectors ← ingest ← pipelines. Yet deleting a connector
deletes the records ingest stored for it, and the connector pages show a source's samples
(ingest) and test a destination (pipelines). For each such need connectors declares a hook
here; the upper app provides it in its ``AppConfig.ready()``. Calling a hook that no app
provided raises ``ImproperlyConfigured``: a missing app fails loudly, never silently.

(The pipelines that use a connector need no hook: they protect it with ``on_delete=PROTECT``
foreign keys, which ``connectors.selectors.connector_users`` reads from Django's registry.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class Hook:
    """One function an upper app provides; called with keyword arguments only."""

    def __init__(self, name: str, contract: str):
        self.name = name
        self.__doc__ = contract
        self._function: Callable[..., Any] | None = None

    def provide(self, function: Callable[..., Any]) -> None:
        if self._function is not None and self._function is not function:
            raise ImproperlyConfigured(f"the {self.name} hook is already provided")
        self._function = function

    def __call__(self, **kwargs: Any) -> Any:
        if self._function is None:
            raise ImproperlyConfigured(f"no installed app provides the {self.name} hook")
        return self._function(**kwargs)


records_delete = Hook(
    "records_delete",
    "(connector) -> None: delete the records stored for a connector, in SQL, in the caller's "
    "transaction, before the connector row itself.",
)
records_count = Hook(
    "records_count", "(connector_ids) -> int: how many records those connectors hold."
)
source_page = Hook(
    "source_page",
    "(organization, connector) -> dict: the sample gate of a source page (status, samples, "
    "their table rows), as template context.",
)
source_save = Hook(
    "source_save",
    "(connector) -> Connector: save a source (ready → active); raises an osmos.errors "
    "DomainError when it cannot be saved yet.",
)
destination_test = Hook(
    "destination_test",
    "(connector) -> result: send sample records to a destination once and report the answer.",
)
destination_preview = Hook(
    "destination_preview",
    "(connector, changes) -> (request, problem): the first request the destination test would "
    "send with ``changes`` (unsaved url, method, write_mode, body_template), or None and why not.",
)

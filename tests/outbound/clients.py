"""Both outbound clients, for tests that hold each of them to the same contract."""

from __future__ import annotations

import sys

import pytest

from osmos.outbound.client import OutboundSession
from osmos.outbound.curl import CurlSession

CLIENTS = {"urllib3": OutboundSession, "curl": CurlSession}


def client_fixture(module_name: str):
    """An autouse fixture that runs every test of the module once per client, with the
    module's ``Client`` name bound to it."""

    @pytest.fixture(autouse=True, params=sorted(CLIENTS))
    def client(request, monkeypatch):
        monkeypatch.setattr(sys.modules[module_name], "Client", CLIENTS[request.param])
        return CLIENTS[request.param]

    return client

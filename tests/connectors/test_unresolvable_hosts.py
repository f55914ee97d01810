"""A destination host that does not resolve today is saved with a warning (SPEC §3.2); one that
resolves to a refused address is still refused.

DNS: the save-time check resolves with the system resolver; so that these tests send no query
off the machine, ``nowhere.example`` is answered "no such name" by a stand-in resolver with
getaddrinfo's signature, and every other name goes to the real resolver (``localhost`` and
IP literals are answered locally).
"""

from __future__ import annotations

import functools
import socket

import pytest

from connectors import validation
from osmos.outbound import urlguard
from tests.support.factories import page_client
from tests.support.schemas import CRM

pytestmark = pytest.mark.django_db

LIST = "/api/v1/connectors/"
UNRESOLVABLE = "https://api.nowhere.example/v2/hook"


def _resolver(host, port, *args, **kwargs):
    if host.endswith("nowhere.example"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return socket.getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_dns_off_the_machine(monkeypatch, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # production rules: loopback refused
    guarded = functools.partial(urlguard.validate_destination_url, resolver=_resolver)
    monkeypatch.setattr(validation, "validate_destination_url", guarded)


def _create(api, url, name="CRM"):
    body = {"name": name, "direction": "destination", "schema": CRM, "destination": {"url": url}}
    return api.post(LIST, body, format="json")


def test_an_unresolvable_host_is_saved_with_a_warning(api_a):
    response = _create(api_a, UNRESOLVABLE)
    assert response.status_code == 201, response.json()
    [warning] = response.json()["warnings"]
    assert warning.startswith("api.nowhere.example does not resolve today.")
    assert response.json()["destination"]["url"] == UNRESOLVABLE


def test_changing_the_url_to_an_unresolvable_host_warns_and_duplicating_warns_again(api_a):
    created = _create(api_a, "https://93.184.215.14/hook").json()
    assert created["warnings"] == []
    changed = api_a.patch(
        f"{LIST}{created['id']}/", {"destination": {"url": UNRESOLVABLE}}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert "does not resolve today" in changed.json()["warnings"][0]
    copy = api_a.post(f"{LIST}{created['id']}/duplicate/", {"name": "CRM v2"}, format="json")
    assert copy.status_code == 201
    assert "does not resolve today" in copy.json()["warnings"][0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:8080/hook", "loopback"),
        ("http://127.0.0.1/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.1.2.3/hook", "private"),
    ],
)
def test_a_name_or_address_in_a_refused_network_is_still_refused(api_a, url, reason):
    response = _create(api_a, url)
    assert response.status_code == 400
    assert reason in response.json()["destination"]["url"][0]
    assert "warnings" not in response.json()
    assert api_a.get(LIST).json()["count"] == 0


def test_the_new_connector_page_shows_the_warning(owner):
    page = page_client(owner)
    response = page.post(
        "/connectors/new/",
        {
            "system": "http_api",
            "direction": "destination",
            "name": "Future CRM",
            "field_key": ["a"],
            "field_name": ["id"],
            "field_type": ["integer"],
            "url": UNRESOLVABLE,
            "method": "POST",
            "write_mode": "batch",
            "batch_size": "100",
            "timeout_seconds": "30",
            "max_concurrency": "8",
            "response_format": "none",
        },
        follow=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert '<li class="warning" role="status">api.nowhere.example does not resolve today.' in html

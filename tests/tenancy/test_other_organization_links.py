"""A link to an object of another organization the person belongs to offers a switch;
for everyone else it stays the usual 404."""

from __future__ import annotations

import re

import pytest

from connectors.services import connector_create
from osmos.tenancy.models import Membership, Role
from tests.support.factories import page_client as logged_in

pytestmark = pytest.mark.django_db
SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


@pytest.fixture
def b_connector(org_b):
    return connector_create(
        organization=org_b, name="B orders", direction="source", fields=SCHEMA
    ).connector


def test_a_member_of_both_is_offered_the_switch_and_lands_on_the_object(owner, org_b, b_connector):
    Membership.objects.create(user=owner, organization=org_b, role=Role.MEMBER)
    client = logged_in(owner)
    url = f"/connectors/{b_connector.pk}/"
    response = client.get(url)
    assert response.status_code == 404
    body = response.content.decode()
    assert "Switch to Org B" in body
    assert "B orders" not in body
    switched = client.post("/organizations/switch/", {"organization": str(org_b.pk), "next": url})
    assert switched["Location"] == url
    assert "B orders" in client.get(url).content.decode()


def test_everyone_else_gets_the_404_of_a_missing_object(owner, b_connector):
    client = logged_in(owner)
    theirs = client.get(f"/connectors/{b_connector.pk}/")
    missing = client.get("/connectors/6d1f7a2e-0000-4000-8000-000000000000/")
    assert theirs.status_code == missing.status_code == 404
    main = re.compile(r"<main.*</main>", re.S)
    assert main.search(theirs.content.decode()).group() == (
        main.search(missing.content.decode()).group()
    )
    assert b"Org B" not in theirs.content


def test_the_switch_never_redirects_off_site(owner, org_b):
    Membership.objects.create(user=owner, organization=org_b, role=Role.MEMBER)
    response = logged_in(owner).post(
        "/organizations/switch/", {"organization": str(org_b.pk), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"

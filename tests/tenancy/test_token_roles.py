"""API tokens carry a role (never above their creator's), an optional expiry, and lose the
rights their creator lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from osmos.tenancy.models import ApiToken, Membership, Role
from osmos.tenancy.services import api_token_create
from tests.support.factories import page_client as logged_in

pytestmark = pytest.mark.django_db
CONNECTOR = {
    "name": "Orders",
    "direction": "source",
    "schema": [{"name": "id", "type": "integer", "nullable": False}],
}


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_a_member_token_reads_but_cannot_write_connectors(org_a, owner):
    issued = api_token_create(organization=org_a, name="ro", created_by=owner, role="member")
    client = bearer(issued.secret)
    assert client.get("/api/v1/connectors/").status_code == 200
    assert client.post("/api/v1/connectors/", CONNECTOR, format="json").status_code == 403
    assert client.get("/api/v1/organization/").json()["role"] == "member"


def test_a_demoted_creators_admin_token_is_capped_at_the_new_role(org_a, owner, admin):
    issued = api_token_create(organization=org_a, name="ci", created_by=admin, role="admin")
    client = bearer(issued.secret)
    assert client.post("/api/v1/connectors/", CONNECTOR, format="json").status_code == 201
    admin_membership = Membership.objects.get(user=admin, organization=org_a)
    session(owner).patch(
        f"/api/v1/members/{admin_membership.pk}/", {"role": "member"}, format="json"
    )
    second = {**CONNECTOR, "name": "Orders 2"}
    assert client.post("/api/v1/connectors/", second, format="json").status_code == 403
    listed = session(owner).get(f"/api/v1/tokens/{issued.token.pk}/").json()
    assert (listed["role"], listed["effective_role"]) == ("admin", "member")
    assert "acts as member" in logged_in(owner).get("/tokens/").content.decode()


def test_a_removed_creators_tokens_answer_401(org_a, owner, admin):
    issued = api_token_create(organization=org_a, name="ci", created_by=admin, role="admin")
    membership = Membership.objects.get(user=admin, organization=org_a)
    assert session(owner).delete(f"/api/v1/members/{membership.pk}/").status_code == 204
    assert bearer(issued.secret).get("/api/v1/connectors/").status_code == 401


def test_an_expired_token_answers_401(org_a, owner):
    issued = api_token_create(
        organization=org_a,
        name="short",
        created_by=owner,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert bearer(issued.secret).get("/api/v1/organization/").status_code == 200
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())
    response = bearer(issued.secret).get("/api/v1/organization/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_api_creates_a_token_shown_once_and_revokes_it(owner):
    client = session(owner)
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    created = client.post(
        "/api/v1/tokens/", {"name": "ci", "role": "member", "expires_at": expires}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("osm_")
    assert body["role"] == "member"
    assert body["expires_at"] is not None
    shown = client.get(f"/api/v1/tokens/{body['id']}/").json()
    assert "token" not in shown
    assert shown["last_used_at"] is None
    assert bearer(body["token"]).get("/api/v1/organization/").status_code == 200
    assert client.get(f"/api/v1/tokens/{body['id']}/").json()["last_used_at"] is not None
    assert client.delete(f"/api/v1/tokens/{body['id']}/").status_code == 204
    assert bearer(body["token"]).get("/api/v1/organization/").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "owner"},
        {"name": "", "role": "member"},
        {"name": "x" * 101, "role": "member"},
        {"name": "x", "role": "member", "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "role": "member", "expires_at": "9999-01-01T00:00:00Z"},
        {"name": "x", "role": "member", "expires_at": "soon"},
    ],
)
def test_bad_token_requests_are_400_with_a_detail(owner, body):
    response = session(owner).post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_a_token_role_is_never_above_the_creators_and_members_issue_none(org_a, admin, member):
    issued = api_token_create(organization=org_a, name="m", created_by=admin, role="member")
    escalate = bearer(issued.secret).post(
        "/api/v1/tokens/", {"name": "up", "role": "admin"}, format="json"
    )
    assert escalate.status_code == 403
    refused = session(member).post(
        "/api/v1/tokens/", {"name": "m", "role": "member"}, format="json"
    )
    assert refused.status_code == 403
    assert ApiToken.objects.count() == 1


def test_another_organizations_token_is_404(owner, org_b):
    theirs = api_token_create(organization=org_b, name="theirs").token
    client = session(owner)
    assert client.get(f"/api/v1/tokens/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/v1/tokens/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_tokens_page_shows_role_expiry_and_last_use(owner, org_a):
    client = logged_in(owner)
    day = (timezone.now() + timedelta(days=30)).date().isoformat()
    response = client.post("/tokens/", {"name": "nightly", "role": "member", "expires_on": day})
    body = response.content.decode()
    assert f"{day} 00:00" in body
    assert "never" in body
    token = ApiToken.objects.get(name="nightly")
    assert (token.role, token.created_by) == (Role.MEMBER, owner)

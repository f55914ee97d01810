"""API tokens, the tenant scope of the API base, and roles."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from osmos.api import TenantScopedViewSet
from osmos.tenancy.models import ApiToken
from osmos.tenancy.services import api_token_authenticate, api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def test_token_is_stored_hashed_and_shown_once(org_a):
    issued = api_token_create(organization=org_a, name="ci")
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.secret.startswith("osm_")
    assert issued.secret not in (stored.token_hash, stored.lookup)
    assert len(stored.token_hash) == 64
    assert api_token_authenticate(secret=issued.secret) == stored


def test_token_authentication_records_last_used_at(org_a):
    issued = api_token_create(organization=org_a, name="ci")
    assert issued.token.last_used_at is None
    api_token_authenticate(secret=issued.secret)
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None
    assert (timezone.now() - issued.token.last_used_at).total_seconds() < 60


def test_revoked_token_no_longer_authenticates(org_a):
    issued = api_token_create(organization=org_a, name="ci")
    api_token_revoke(token=issued.token)
    assert api_token_authenticate(secret=issued.secret) is None


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "osm_",
        "osm_short",
        "not-a-token-at-all-but-quite-long-enough-0000000000",
        "osm_" + "x" * 43,
    ],
)
def test_malformed_or_unknown_tokens_do_not_authenticate(org_a, secret):
    api_token_create(organization=org_a, name="ci")
    assert api_token_authenticate(secret=secret) is None


def test_token_with_right_lookup_but_wrong_secret_is_refused(org_a):
    issued = api_token_create(organization=org_a, name="ci")
    forged = issued.secret[:-4] + ("AAAA" if not issued.secret.endswith("AAAA") else "BBBB")
    assert api_token_authenticate(secret=forged) is None


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer osm_" + "y" * 43, "Bearer \u00e9t\u00e9"],
)
def test_api_answers_401_with_json_detail_for_bad_tokens(header):
    client = APIClient()
    response = client.get(
        "/api/v1/organization/", HTTP_AUTHORIZATION=header.encode().decode("latin-1")
    )
    assert response.status_code == 401
    assert "detail" in response.json()


def test_api_without_credentials_is_refused():
    response = APIClient().get("/api/v1/organization/")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_token_acts_for_its_own_organization_as_admin(api_a, api_b, org_a, org_b):
    assert api_a.get("/api/v1/organization/").json()["slug"] == org_a.slug
    assert api_b.get("/api/v1/organization/").json() == {
        "id": str(org_b.pk),
        "name": "Org B",
        "slug": "org-b",
        "role": "admin",
    }


def test_session_user_acts_for_their_organization_with_their_role(member_client):
    assert member_client.get("/api/v1/organization/").json()["role"] == "member"


def test_api_schema_and_docs_are_public():
    schema = APIClient().get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "osmos API"
    assert APIClient().get("/api/v1/docs/").status_code == 200


def test_scoped_viewset_cannot_override_get_queryset():
    with pytest.raises(TypeError, match="safely_get_queryset"):

        class Careless(TenantScopedViewSet):
            def get_queryset(self):
                return ApiToken.objects.all()


def test_for_organization_refuses_a_missing_organization():
    with pytest.raises(ValueError, match="organization"):
        ApiToken.objects.for_organization(None)


def test_for_organization_returns_only_that_organizations_rows(org_a, org_b):
    mine = api_token_create(organization=org_a, name="a").token
    api_token_create(organization=org_b, name="b")
    assert list(ApiToken.objects.for_organization(org_a)) == [mine]

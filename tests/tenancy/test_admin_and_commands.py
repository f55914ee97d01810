"""Django admin for support staff and the management commands scripts rely on."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from osmos.tenancy.models import ApiToken, Membership, Organization, Role
from osmos.tenancy.services import api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(
        "staff@osmos.example", "staff@osmos.example", "x"
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["organization", "membership", "apitoken"])
def test_admin_changelists_load_for_support_staff(staff_client, owner, token_a, model):
    response = staff_client.get(f"/admin/tenancy/{model}/")
    assert response.status_code == 200


def test_admin_token_page_never_shows_the_hash(staff_client, org_a):
    issued = api_token_create(organization=org_a, name="ci")
    response = staff_client.get(f"/admin/tenancy/apitoken/{issued.token.pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    assert issued.token.token_hash not in body
    assert issued.secret not in body


def test_admin_revoke_action_revokes_tokens(staff_client, org_a):
    issued = api_token_create(organization=org_a, name="ci")
    staff_client.post(
        "/admin/tenancy/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [str(issued.token.pk)]},
    )
    assert api_token_authenticate(secret=issued.secret) is None


def test_create_org_prints_the_slug_and_makes_the_owner():
    out = io.StringIO()
    call_command("create_org", name="Globex Corp", owner_email="Boss@Globex.example", stdout=out)
    assert out.getvalue().strip() == "globex-corp"
    org = Organization.objects.get(slug="globex-corp")
    assert Membership.objects.get(organization=org).role == Role.OWNER


def test_create_org_twice_gives_distinct_slugs():
    out = io.StringIO()
    call_command("create_org", name="Same", owner_email="a@x.example", stdout=out)
    call_command("create_org", name="Same", owner_email="a@x.example", stdout=out)
    assert out.getvalue().split() == ["same", "same-2"]


def test_create_api_token_prints_a_working_token_on_its_last_line(org_a):
    out = io.StringIO()
    call_command("create_api_token", org="org-a", name="cli", stdout=out, stderr=io.StringIO())
    secret = out.getvalue().strip().splitlines()[-1]
    assert api_token_authenticate(secret=secret).organization == org_a
    assert ApiToken.objects.filter(organization=org_a, name="cli").count() == 1


def test_create_api_token_takes_a_role(org_a):
    out = io.StringIO()
    call_command(
        "create_api_token", org="org-a", name="ro", role="member", stdout=out, stderr=io.StringIO()
    )
    secret = out.getvalue().strip().splitlines()[-1]
    assert api_token_authenticate(secret=secret).effective_role == "member"


def test_create_api_token_for_unknown_org_fails_clearly():
    with pytest.raises(CommandError, match="No organization"):
        call_command("create_api_token", org="nope", name="cli")


def test_seed_demo_is_idempotent():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)
    assert Organization.objects.filter(name="Demo").count() == 1
    assert "demo@example.com" in out.getvalue()

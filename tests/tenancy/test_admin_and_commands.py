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


# --- the admin keeps an owner in every organization (SPEC §2) -----------------------------------

LAST_OWNER = "An organization keeps at least one owner"


def _membership_form(membership: Membership, **changes) -> dict:
    data = {
        "user": membership.user_id,
        "organization": membership.organization_id,
        "role": membership.role,
    }
    return {**data, **changes}


def _organization_form(organization: Organization, roles: dict[int, str], deleted=()) -> dict:
    """The organization's change form with its members' inline rows, roles as given."""
    memberships = list(Membership.objects.filter(organization=organization).order_by("pk"))
    data = {
        "name": organization.name,
        "slug": organization.slug,
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for n, membership in enumerate(memberships):
        data[f"memberships-{n}-id"] = str(membership.pk)
        data[f"memberships-{n}-organization"] = str(organization.pk)
        data[f"memberships-{n}-user"] = str(membership.user_id)
        data[f"memberships-{n}-role"] = roles.get(membership.pk, membership.role)
        if membership.pk in deleted:
            data[f"memberships-{n}-DELETE"] = "on"
    return data


def _owner_membership(owner, org) -> Membership:
    return Membership.objects.get(user=owner, organization=org)


def test_admin_refuses_to_demote_the_last_owner(staff_client, owner, org_a):
    ownership = _owner_membership(owner, org_a)
    url = f"/admin/tenancy/membership/{ownership.pk}/change/"
    response = staff_client.post(url, _membership_form(ownership, role=Role.ADMIN))
    assert response.status_code == 200  # the form again, with the error
    assert LAST_OWNER in response.content.decode()
    ownership.refresh_from_db()
    assert ownership.role == Role.OWNER


def test_admin_refuses_to_move_the_last_owner_to_another_organization(
    staff_client, owner, org_a, org_b
):
    ownership = _owner_membership(owner, org_a)
    url = f"/admin/tenancy/membership/{ownership.pk}/change/"
    response = staff_client.post(url, _membership_form(ownership, organization=org_b.pk))
    assert LAST_OWNER in response.content.decode()
    ownership.refresh_from_db()
    assert ownership.organization_id == org_a.pk


def test_admin_demotes_an_owner_when_another_owner_remains(staff_client, owner, member, org_a):
    Membership.objects.filter(user=member, organization=org_a).update(role=Role.OWNER)
    ownership = _owner_membership(owner, org_a)
    url = f"/admin/tenancy/membership/{ownership.pk}/change/"
    response = staff_client.post(url, _membership_form(ownership, role=Role.MEMBER))
    assert response.status_code == 302
    ownership.refresh_from_db()
    assert ownership.role == Role.MEMBER


def test_admin_refuses_to_delete_the_last_owner_and_says_why(staff_client, owner, org_a):
    ownership = _owner_membership(owner, org_a)
    url = f"/admin/tenancy/membership/{ownership.pk}/delete/"
    response = staff_client.post(url, {"post": "yes"}, follow=True)
    assert LAST_OWNER in response.content.decode()
    assert Membership.objects.filter(pk=ownership.pk).exists()


def test_admin_deletes_a_member_as_before(staff_client, owner, member, org_a):
    membership = Membership.objects.get(user=member, organization=org_a)
    url = f"/admin/tenancy/membership/{membership.pk}/delete/"
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_admin_bulk_delete_of_the_last_owner_is_refused_and_deletes_nothing(
    staff_client, owner, member, org_a
):
    selected = [str(m.pk) for m in Membership.objects.filter(organization=org_a)]
    response = staff_client.post(
        "/admin/tenancy/membership/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
        follow=True,
    )
    assert LAST_OWNER in response.content.decode()
    assert Membership.objects.filter(organization=org_a).count() == 2


def test_admin_bulk_delete_of_members_goes_through_the_confirmation(
    staff_client, owner, member, org_a
):
    selected = [str(Membership.objects.get(user=member, organization=org_a).pk)]
    form = {"action": "delete_selected", "_selected_action": selected}
    confirmation = staff_client.post("/admin/tenancy/membership/", form)
    assert "<title>Delete multiple objects" in confirmation.content.decode()
    staff_client.post("/admin/tenancy/membership/", {**form, "post": "yes"})
    assert list(Membership.objects.filter(organization=org_a)) == [_owner_membership(owner, org_a)]


def test_admin_organization_page_refuses_to_demote_or_delete_the_last_owner(
    staff_client, owner, member, org_a
):
    ownership = _owner_membership(owner, org_a)
    url = f"/admin/tenancy/organization/{org_a.pk}/change/"
    demoted = staff_client.post(url, _organization_form(org_a, {ownership.pk: Role.ADMIN}))
    deleted = staff_client.post(url, _organization_form(org_a, {}, deleted=[ownership.pk]))
    assert LAST_OWNER in demoted.content.decode()
    assert LAST_OWNER in deleted.content.decode()
    ownership.refresh_from_db()
    assert ownership.role == Role.OWNER


def test_admin_organization_page_hands_ownership_over_in_one_save(
    staff_client, owner, member, org_a
):
    ownership = _owner_membership(owner, org_a)
    heir = Membership.objects.get(user=member, organization=org_a)
    url = f"/admin/tenancy/organization/{org_a.pk}/change/"
    roles = {ownership.pk: Role.MEMBER, heir.pk: Role.OWNER}
    assert staff_client.post(url, _organization_form(org_a, roles)).status_code == 302
    heir.refresh_from_db()
    ownership.refresh_from_db()
    assert (heir.role, ownership.role) == (Role.OWNER, Role.MEMBER)

"""Invitations: by e-mail, one-time link valid 7 days, accept as a new or existing person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from osmos.tenancy.models import Invitation, Membership, Organization, Role
from osmos.tenancy.services import api_token_create
from tests.support.factories import page_client as logged_in

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-pass-phrase-9"


def link_in(mail) -> str:
    return re.search(r"http://testserver(/join/\S+/)", mail.body).group(1)


def invite(client, email="new@x.example", role="member"):
    return client.post("/members/", {"email": email, "role": role})


def test_invitee_without_account_signs_up_from_the_link_into_that_organization(
    owner, org_a, mailoutbox
):
    assert invite(logged_in(owner)).status_code == 302
    assert mailoutbox[0].to == ["new@x.example"]
    assert "Org A" in mailoutbox[0].subject
    link = link_in(mailoutbox[0])
    client = Client()
    page = client.get(link)
    assert "Join Org A" in page.content.decode()
    response = client.post(link, {"password": PASSWORD})
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new@x.example")
    assert [(m.organization, m.role) for m in Membership.objects.filter(user=user)] == [
        (org_a, Role.MEMBER)
    ]
    assert Organization.objects.count() == 1  # no extra organization
    assert "Org A" in client.get("/").content.decode()
    # One-time: the link no longer works.
    assert Client().get(link).status_code == 404


def test_existing_account_accepts_by_signing_in(owner, outsider, org_a, mailoutbox):
    invite(logged_in(owner), email=outsider.email, role="admin")
    link = link_in(mailoutbox[0])
    client = Client()
    page = client.get(link)
    assert "Log in to accept" in page.content.decode()
    client.post("/login/", {"username": outsider.email, "password": "pw-" + outsider.email})
    assert client.post(link).status_code == 302
    assert Membership.objects.get(user=outsider, organization=org_a).role == Role.ADMIN


def test_an_expired_invitation_cannot_be_accepted_and_can_be_resent(owner, member, mailoutbox):
    client = logged_in(owner)
    invite(client)
    invitation = Invitation.objects.get()
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    old = link_in(mailoutbox[0])
    assert Client().post(old, {"password": PASSWORD}).status_code == 404
    assert not get_user_model().objects.filter(email="new@x.example").exists()
    assert logged_in(member).post(f"/invitations/{invitation.pk}/resend/").status_code == 403
    assert client.post(f"/invitations/{invitation.pk}/resend/").status_code == 302
    new = link_in(mailoutbox[1])
    assert new != old
    assert Client().post(new, {"password": PASSWORD}).status_code == 302


def test_a_revoked_invitation_cannot_be_accepted(owner, mailoutbox):
    invite(logged_in(owner))
    invitation = Invitation.objects.get()
    assert logged_in(owner).post(f"/invitations/{invitation.pk}/revoke/").status_code == 302
    assert Client().post(link_in(mailoutbox[0]), {"password": PASSWORD}).status_code == 404
    assert not get_user_model().objects.filter(email="new@x.example").exists()


def test_the_invite_form_never_reveals_whether_an_address_has_an_account(
    owner, outsider, mailoutbox
):
    client = logged_in(owner)
    known = client.post("/members/", {"email": outsider.email, "role": "member"}, follow=True)
    unknown = client.post("/members/", {"email": "nobody@x.example", "role": "member"}, follow=True)
    assert "Invitation sent to" in known.content.decode()
    assert "Invitation sent to" in unknown.content.decode()
    assert len(mailoutbox) == 2


def test_inviting_no_longer_adds_an_existing_account_directly(owner, outsider, org_a):
    invite(logged_in(owner), email=outsider.email)
    assert not Membership.objects.filter(user=outsider, organization=org_a).exists()


def test_api_lists_creates_resends_and_revokes_invitations(owner, org_a, mailoutbox):
    client = APIClient()
    client.force_login(owner)
    created = client.post(
        "/api/v1/invitations/", {"email": "Api@X.example", "role": "admin"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["email"], body["role"], body["status"]) == ("api@x.example", "admin", "pending")
    assert "token" not in body
    assert "/join/" not in str(body)
    listed = client.get("/api/v1/invitations/").json()
    assert [i["id"] for i in listed["results"]] == [body["id"]]
    assert client.post(f"/api/v1/invitations/{body['id']}/resend/").status_code == 200
    assert len(mailoutbox) == 2
    assert client.delete(f"/api/v1/invitations/{body['id']}/").status_code == 204
    assert client.get(f"/api/v1/invitations/{body['id']}/").status_code == 404
    again = client.post("/api/v1/invitations/", {"email": "bad", "role": "member"}, format="json")
    assert again.status_code == 400
    assert "detail" in again.json()


def test_an_api_token_never_grants_owner(org_a, owner):
    issued = api_token_create(organization=org_a, name="t", created_by=owner, role="admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    response = client.post(
        "/api/v1/invitations/", {"email": "o@x.example", "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_invitations_of_another_organization_are_404(owner, outsider, org_b, mailoutbox):
    invite(logged_in(outsider), email="theirs@x.example")
    theirs = Invitation.objects.get(organization=org_b)
    client = APIClient()
    client.force_login(owner)
    assert client.get(f"/api/v1/invitations/{theirs.pk}/").status_code == 404
    assert client.delete(f"/api/v1/invitations/{theirs.pk}/").status_code == 404
    assert client.post(f"/api/v1/invitations/{theirs.pk}/resend/").status_code == 404
    assert logged_in(owner).post(f"/invitations/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_pending


def test_an_invitation_loses_the_rights_its_inviter_lost(owner, admin, org_a, mailoutbox):
    invite(logged_in(admin), role="admin")
    Membership.objects.filter(user=admin).update(role=Role.MEMBER)
    Client().post(link_in(mailoutbox[0]), {"password": PASSWORD})
    assert Membership.objects.get(user__email="new@x.example").role == Role.MEMBER


def test_only_an_owner_invites_an_owner_or_handles_that_invitation(owner, admin, mailoutbox):
    owner_api, admin_api = APIClient(), APIClient()
    owner_api.force_login(owner)
    admin_api.force_login(admin)
    created = owner_api.post(
        "/api/v1/invitations/", {"email": "co@x.example", "role": "owner"}, format="json"
    )
    assert created.status_code == 201
    invitation_id = created.json()["id"]
    assert admin_api.delete(f"/api/v1/invitations/{invitation_id}/").status_code == 403
    assert admin_api.post(f"/api/v1/invitations/{invitation_id}/resend/").status_code == 403
    assert len(mailoutbox) == 1
    Client().post(link_in(mailoutbox[0]), {"password": PASSWORD})
    assert Membership.objects.get(user__email="co@x.example").role == Role.OWNER

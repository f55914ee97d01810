"""People's pages: sign-up, login, the organization switcher, members and tokens."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from osmos.tenancy.models import ApiToken, Membership, Role
from osmos.tenancy.services import api_token_create

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_signup_mails_a_link_that_creates_user_and_owned_organization(mailoutbox):
    client = Client()
    response = client.post("/signup/", {"email": "New@Example.com"})
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    assert not get_user_model().objects.filter(email="new@example.com").exists()
    link = re.search(r"http://testserver(/signup/\S+/)", mailoutbox[0].body).group(1)
    response = client.post(
        link, {"password": "a-long-pass-phrase-9", "organization_name": "Acme Inc"}
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.slug == "acme-inc"
    home = client.get("/")
    assert home.status_code == 200
    assert "Acme Inc" in home.content.decode()


def test_signup_with_taken_email_answers_exactly_as_with_a_free_one(owner, mailoutbox):
    taken = Client().post("/signup/", {"email": owner.email})
    free = Client().post("/signup/", {"email": "nobody@a.example"})
    assert taken.status_code == free.status_code == 200
    main = re.compile(r"<main.*</main>", re.S)
    assert main.search(taken.content.decode()).group().replace(owner.email, "X") == (
        main.search(free.content.decode()).group().replace("nobody@a.example", "X")
    )
    # Only the owner of the address learns that it has an account.
    assert "already has an account" in mailoutbox[0].body
    assert "/signup/" in mailoutbox[1].body


def test_a_forged_signup_link_is_refused():
    response = Client().get("/signup/not-a-signed-token/")
    assert response.status_code == 404


def test_signup_with_weak_password_is_refused(mailoutbox):
    client = Client()
    client.post("/signup/", {"email": "a@b.example"})
    link = re.search(r"http://testserver(/signup/\S+/)", mailoutbox[0].body).group(1)
    response = client.post(link, {"password": "123", "organization_name": "X"})
    assert response.status_code == 200
    assert not get_user_model().objects.filter(email="a@b.example").exists()


def test_login_and_logout(owner):
    client = Client()
    response = client.post("/login/", {"username": owner.email, "password": "pw-" + owner.email})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_anonymous_person_is_sent_to_login():
    response = Client().get("/members/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_switcher_changes_the_current_organization(owner, org_a, org_b):
    Membership.objects.create(user=owner, organization=org_b, role=Role.MEMBER)
    client = logged_in(owner)
    client.post("/organizations/switch/", {"organization": str(org_b.pk)})
    assert "Org B" in client.get("/").content.decode().split("<h1>")[1]
    client.post("/organizations/switch/", {"organization": str(org_a.pk)})
    assert "Org A" in client.get("/").content.decode().split("<h1>")[1]


def test_switcher_refuses_an_organization_the_person_is_not_in(owner, org_b):
    response = logged_in(owner).post("/organizations/switch/", {"organization": str(org_b.pk)})
    assert response.status_code == 404


def test_switcher_with_garbage_id_is_404_not_500(owner):
    response = logged_in(owner).post("/organizations/switch/", {"organization": "nope"})
    assert response.status_code == 404


def test_owner_changes_a_members_role(owner, member, org_a):
    client = logged_in(owner)
    membership = Membership.objects.get(user=member, organization=org_a)
    client.post(f"/members/{membership.pk}/role/", {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_member_cannot_invite(member, outsider, org_a, mailoutbox):
    response = logged_in(member).post("/members/", {"email": outsider.email, "role": "member"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user=outsider, organization=org_a).exists()
    assert mailoutbox == []


def test_last_owner_cannot_be_demoted(owner, org_a):
    membership = Membership.objects.get(user=owner, organization=org_a)
    logged_in(owner).post(f"/members/{membership.pk}/role/", {"role": "member"})
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_admin_cannot_grant_ownership(owner, member, org_a):
    admin_ = Membership.objects.get(user=member, organization=org_a)
    admin_.role = Role.ADMIN
    admin_.save()
    response = logged_in(member).post(f"/members/{admin_.pk}/role/", {"role": "owner"})
    assert response.status_code == 403
    admin_.refresh_from_db()
    assert admin_.role == Role.ADMIN


def test_changing_role_of_another_organizations_member_is_404(owner, outsider, org_b):
    theirs = Membership.objects.get(user=outsider, organization=org_b)
    response = logged_in(owner).post(f"/members/{theirs.pk}/role/", {"role": "member"})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == Role.OWNER


def test_token_page_shows_the_secret_once(owner, org_a):
    client = logged_in(owner)
    response = client.post("/tokens/", {"name": "deploy bot", "role": "admin"})
    body = response.content.decode()
    token = ApiToken.objects.get(organization=org_a, name="deploy bot")
    secret = body.split('<pre id="new-token">')[1].split("</pre>")[0]
    assert secret.startswith("osm_")
    assert secret not in client.get("/tokens/").content.decode()
    assert token.token_hash not in body


def test_revoking_another_organizations_token_is_404(owner, org_b):
    theirs = api_token_create(organization=org_b, name="theirs").token
    response = logged_in(owner).post(f"/tokens/{theirs.pk}/revoke/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_member_cannot_create_or_revoke_tokens(member, org_a):
    token = api_token_create(organization=org_a, name="x").token
    client = logged_in(member)
    assert client.post("/tokens/", {"name": "mine", "role": "member"}).status_code == 403
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_person_without_organization_is_asked_to_create_one():
    user = get_user_model().objects.create_user(username="lone@x.example", email="lone@x.example")
    client = logged_in(user)
    response = client.get("/")
    assert response["Location"] == "/organizations/new/"
    client.post("/organizations/new/", {"name": "Lone Co"})
    assert Membership.objects.get(user=user).role == Role.OWNER


def test_the_signup_form_cannot_flood_an_inbox(settings, mailoutbox):
    settings.SIGNUP_MAILS_PER_ADDRESS_PER_HOUR = 2
    answers = [Client().post("/signup/", {"email": "victim@x.example"}) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    assert all("Check your inbox" in a.content.decode() for a in answers)
    assert len(mailoutbox) == 2

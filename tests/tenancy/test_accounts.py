"""Password change and reset with Django's views; other sessions end on a change."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.support.factories import page_client as logged_in

pytestmark = pytest.mark.django_db
NEW = "another-long-pass-phrase-7"


def test_password_change_keeps_this_session_and_ends_the_others(owner):
    this, other = logged_in(owner), logged_in(owner)
    assert this.get("/password_change/").status_code == 200
    response = this.post(
        "/password_change/",
        {"old_password": "pw-" + owner.email, "new_password1": NEW, "new_password2": NEW},
    )
    assert response["Location"] == "/password_change/done/"
    assert this.get("/").status_code == 200
    assert other.get("/").status_code == 302  # signed out
    assert Client().login(username=owner.email, password=NEW)


def test_password_change_needs_the_old_password(owner):
    response = logged_in(owner).post(
        "/password_change/", {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW}
    )
    assert response.status_code == 200
    assert "incorrectly" in response.content.decode()


def test_password_reset_by_email_sets_a_new_password_once(owner, mailoutbox):
    client = Client()
    response = client.post("/password_reset/", {"email": owner.email})
    assert response["Location"] == "/password_reset/done/"
    link = re.search(r"http://testserver(/reset/\S+/)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done["Location"] == "/reset/done/"
    assert Client().login(username=owner.email, password=NEW)
    again = Client().get(link, follow=True)
    assert "not valid any more" in again.content.decode()


def test_password_reset_answers_the_same_for_an_unknown_address(mailoutbox):
    response = Client().post("/password_reset/", {"email": "nobody@x.example"})
    assert response["Location"] == "/password_reset/done/"
    assert mailoutbox == []


def test_password_reset_mails_one_address_at_most_the_hourly_limit(
    owner, member, mailoutbox, settings
):
    settings.PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR = 2
    spellings = [owner.email, owner.email.upper(), owner.email, f" {owner.email} "]
    answers = [Client().post("/password_reset/", {"email": email}) for email in spellings]
    assert [a["Location"] for a in answers] == ["/password_reset/done/"] * 4
    assert [m.to for m in mailoutbox] == [[owner.email]] * 2
    # Another address has its own count.
    Client().post("/password_reset/", {"email": member.email})
    assert mailoutbox[-1].to == [member.email]


def _stable_part(page: bytes) -> bytes:
    """The page without what differs on every response (CSP nonce, CSRF token)."""
    page = re.sub(rb'nonce="[^"]*"', b"", page)
    return re.sub(rb'"X-CSRFToken": "[^"]*"', b"", page)


def test_password_reset_over_the_limit_answers_as_for_an_unknown_address(
    owner, mailoutbox, settings
):
    settings.PASSWORD_RESET_MAILS_PER_ADDRESS_PER_HOUR = 1
    Client().post("/password_reset/", {"email": owner.email})
    limited = Client().post("/password_reset/", {"email": owner.email}, follow=True)
    unknown = Client().post("/password_reset/", {"email": "nobody@x.example"}, follow=True)
    assert limited.redirect_chain == unknown.redirect_chain
    assert _stable_part(limited.content) == _stable_part(unknown.content)
    assert len(mailoutbox) == 1

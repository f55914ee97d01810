"""Sign-in protection through real requests: /login/ and the admin's sign-in, keyed per
account and per real client address (behind a proxy), with backoff."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from osmos.tenancy.signin import backoff_seconds

pytestmark = pytest.mark.django_db
PROXY = "127.0.0.1"  # REMOTE_ADDR of every request: the reverse proxy


@pytest.fixture
def behind_proxy(settings):
    settings.BEHIND_TLS_PROXY = True
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    settings.TRUSTED_PROXY_COUNT = 1


def attempt(username, password, *, client_ip, path="/login/", spoofed=""):
    chain = f"{spoofed}, {client_ip}" if spoofed else client_ip
    return Client(REMOTE_ADDR=PROXY).post(
        path, {"username": username, "password": password}, HTTP_X_FORWARDED_FOR=chain
    )


def test_fifty_failures_with_random_names_from_one_address_lock_nobody_else_out(
    behind_proxy, owner
):
    for n in range(50):
        attempt(f"random{n}@x.example", "nope", client_ip="203.0.113.5")
    # The attacker's address is now slowed down ...
    assert attempt("random99@x.example", "nope", client_ip="203.0.113.5").status_code == 429
    # ... but the real person, at their own address, signs in at once.
    response = attempt(owner.email, "pw-" + owner.email, client_ip="198.51.100.7")
    assert response.status_code == 302


def test_failures_for_an_account_from_one_address_do_not_lock_it_at_another(behind_proxy, owner):
    for _ in range(10):
        attempt(owner.email, "wrong", client_ip="203.0.113.5")
    blocked = attempt(owner.email, "pw-" + owner.email, client_ip="203.0.113.5")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in blocked.content.decode()
    assert attempt(owner.email, "pw-" + owner.email, client_ip="198.51.100.7").status_code == 302


def test_a_spoofed_leftmost_address_does_not_escape_the_throttle(behind_proxy, owner):
    for n in range(6):
        attempt(owner.email, "wrong", client_ip="203.0.113.5", spoofed=f"10.0.0.{n}")
    assert (
        attempt(owner.email, "wrong", client_ip="203.0.113.5", spoofed="10.9.9.9").status_code
        == 429
    )


def test_the_admin_sign_in_shares_the_throttle(behind_proxy, owner):
    owner.is_staff = True
    owner.save()
    for _ in range(5):
        attempt(owner.email, "wrong", client_ip="203.0.113.5", path="/admin/login/")
    blocked = attempt(owner.email, "pw-" + owner.email, client_ip="203.0.113.5", path="/login/")
    assert blocked.status_code == 429
    admin = attempt(owner.email, "pw-" + owner.email, client_ip="203.0.113.5", path="/admin/login/")
    assert admin.status_code == 429


def test_without_a_proxy_the_header_is_ignored(settings, owner):
    settings.BEHIND_TLS_PROXY = False
    for n in range(5):
        attempt(owner.email, "wrong", client_ip=f"198.51.100.{n}")
    # All from REMOTE_ADDR: the forged header did not spread them over five addresses.
    assert attempt(owner.email, "wrong", client_ip="198.51.100.99").status_code == 429


def test_a_success_resets_the_accounts_count(behind_proxy, owner):
    for _ in range(4):
        attempt(owner.email, "wrong", client_ip="203.0.113.5")
    assert attempt(owner.email, "pw-" + owner.email, client_ip="203.0.113.5").status_code == 302
    for _ in range(4):
        assert attempt(owner.email, "wrong", client_ip="203.0.113.5").status_code == 200


def test_the_login_field_says_email():
    body = Client().get("/login/").content.decode()
    assert '<label for="id_username">Email</label>' in body
    assert 'type="email"' in body


def test_backoff_doubles_after_the_free_failures_up_to_the_cap(settings):
    settings.LOGIN_BACKOFF_MAX_SECONDS = 60
    assert [backoff_seconds(n, 5) for n in (4, 5, 6, 7, 20)] == [0.0, 16.0, 32.0, 60.0, 60.0]


def test_counts_live_in_the_shared_cache_redis_in_production(settings, owner):
    """With CACHE_URL=redis://… every web process reads the same counts: here a second
    cache connection (as another process would open) sees the first one's failures."""
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/7"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"signin-test-{uuid.uuid4().hex}"  # keys expire on their own; nothing to clean
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    for _ in range(5):
        attempt(owner.email, "wrong", client_ip="127.0.0.1")
    from django.core.cache.backends.redis import RedisCache

    other_process = RedisCache(url, {"KEY_PREFIX": prefix})
    counted = [k for k in other_process._cache.get_client().keys(f"{prefix}:*signin:account:*")]
    assert counted
    assert attempt(owner.email, "pw-" + owner.email, client_ip="127.0.0.1").status_code == 429

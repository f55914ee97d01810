"""Sign-in throttling for every password sign-in (``/login/`` and the admin's login).

Failures are counted in Django's cache (``CACHE_URL``: Redis in production, so every web
process shares the counts) under two keys:
- the account *and* the client address: ``LOGIN_FAILURES_PER_USER`` free failures;
- the client address alone: ``LOGIN_FAILURES_PER_ADDRESS`` free failures (password spraying).
After the free failures each further failure doubles the wait before the next attempt
(16 s, 32 s, 64 s … up to ``LOGIN_BACKOFF_MAX_SECONDS``). No key is the account alone: an
attacker's failures from one address never slow the real person down at another address.

The client address is ``REMOTE_ADDR``, or, with ``BEHIND_TLS_PROXY``, the address our own
proxies saw: the ``TRUSTED_PROXY_COUNT``-th entry from the right of ``TRUSTED_PROXY_HEADER``
(entries further left are written by the client and cannot be trusted).

We use this module rather than django-axes: axes applies one failure limit to all of its
lockout keys (we need 5 per account and address, 50 per address) and locks out for a fixed
cool-off instead of backing off.

The rule is enforced by the authentication backend (every ``authenticate()`` with a request,
whatever the view) and shown as a 429 page by ``guard`` on the login views.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.shortcuts import render

_PREFIX = "signin"


def client_address(request) -> str:
    """The real client's address (see the module docstring)."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.BEHIND_TLS_PROXY:
        return remote
    meta_key = "HTTP_" + settings.TRUSTED_PROXY_HEADER.upper().replace("-", "_")
    hops = [hop.strip() for hop in request.META.get(meta_key, "").split(",") if hop.strip()]
    if len(hops) < settings.TRUSTED_PROXY_COUNT:
        return remote
    candidate = hops[-settings.TRUSTED_PROXY_COUNT]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def _keys(request, username: str) -> list[tuple[str, int]]:
    """(cache key stem, free failures) for each throttled subject of this attempt."""
    address = client_address(request)
    account = hashlib.sha256(f"{username.strip().lower()}|{address}".encode()).hexdigest()
    by_address = hashlib.sha256(address.encode()).hexdigest()
    return [
        (f"{_PREFIX}:account:{account}", settings.LOGIN_FAILURES_PER_USER),
        (f"{_PREFIX}:address:{by_address}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def backoff_seconds(failures: int, free: int) -> float:
    """The wait after ``failures`` failures of which ``free`` cost nothing."""
    over = failures - free
    if over < 0:
        return 0.0
    # Starting at 16 s: a password guesser gets ~5 guesses a minute at first, ~1 an hour later.
    return float(min(2 ** (over + 4), settings.LOGIN_BACKOFF_MAX_SECONDS))


def retry_after(request, username: str) -> int:
    """Seconds until this account may try again from this address; 0 = now."""
    now = time.time()
    waits = [cache.get(f"{stem}:until", 0) - now for stem, _ in _keys(request, username)]
    return max(0, math.ceil(max(waits)))


def record_failure(request, username: str) -> None:
    memory = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for stem, free in _keys(request, username):
        count_key = f"{stem}:count"
        if cache.add(count_key, 1, timeout=memory):
            failures = 1
        else:
            try:
                failures = cache.incr(count_key)
            except ValueError:  # expired between add and incr
                cache.add(count_key, 1, timeout=memory)
                failures = 1
            cache.touch(count_key, memory)
        wait = backoff_seconds(failures, free)
        if wait:
            cache.set(f"{stem}:until", time.time() + wait, timeout=math.ceil(wait) + 1)


def record_success(request, username: str) -> None:
    """Forget the account's failures from this address (never the address's own count:
    signing in to one's own account must not reset a password spraying count)."""
    stem = _keys(request, username)[0][0]
    cache.delete_many([f"{stem}:count", f"{stem}:until"])


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing (without checking the password) while a wait is running."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and retry_after(request, username or "") > 0:
            request.signin_throttled = True
            raise PermissionDenied("Too many failed sign-ins; try again later.")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="osmos.tenancy.signin.failed")
def _on_failure(sender, credentials, request=None, **kwargs) -> None:
    if request is None or getattr(request, "signin_throttled", False):
        return  # attempts refused by the throttle do not extend it
    record_failure(request, str(credentials.get("username", "")))


@receiver(user_logged_in, dispatch_uid="osmos.tenancy.signin.succeeded")
def _on_success(sender, request, user, **kwargs) -> None:
    if request is not None and request.method == "POST":
        record_success(request, request.POST.get("username", user.get_username()))


def guard(view):
    """Answer a throttled sign-in POST with 429 and ``Retry-After`` instead of the form."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST":
            wait = retry_after(request, request.POST.get("username", ""))
            if wait > 0:
                response = render(
                    request,
                    "error.html",
                    {
                        "status": 429,
                        "detail": "Too many failed sign-ins from here for this account. "
                        f"Try again in {wait} seconds.",
                    },
                    status=429,
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapped

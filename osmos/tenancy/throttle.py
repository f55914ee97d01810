"""Login rate limiting: failed attempts are counted per (address, username) and per address.

Counts live in Django's cache (``CACHE_URL``; use Redis in production so every web process
shares them). A locked-out login answers 429 without checking the password.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.shortcuts import render


def _keys(request) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR", "")
    username = request.POST.get("username", "").strip().lower()
    pair = hashlib.sha256(f"{address}|{username}".encode()).hexdigest()
    return f"login-fail:{pair}", f"login-fail-ip:{address}"


def _incr(key: str) -> None:
    if not cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def is_locked_out(request) -> bool:
    pair_key, ip_key = _keys(request)
    return (cache.get(pair_key, 0) >= settings.LOGIN_FAILURES_PER_USER) or (
        cache.get(ip_key, 0) >= settings.LOGIN_FAILURES_PER_ADDRESS
    )


class ThrottledLoginView(auth_views.LoginView):
    template_name = "tenancy/login.html"

    def post(self, request, *args, **kwargs):
        if is_locked_out(request):
            minutes = settings.LOGIN_LOCKOUT_SECONDS // 60
            return render(
                request,
                "error.html",
                {
                    "status": 429,
                    "detail": f"Too many failed logins. Try again in {minutes} minutes.",
                },
                status=429,
            )
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in _keys(self.request):
            _incr(key)
        return super().form_invalid(form)

    def form_valid(self, form):
        cache.delete(_keys(self.request)[0])
        return super().form_valid(form)

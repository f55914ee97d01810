"""How many unasked-for mails one address may receive an hour (sign-up links, password resets),
so a public form cannot be used to flood someone's inbox. Counted in the shared cache, keyed by
a hash of the address (the cache never holds it)."""

from __future__ import annotations

import hashlib

from django.core.cache import cache

_HOUR = 3600


def mail_allowed(*, kind: str, email: str, per_hour: int) -> bool:
    """True while fewer than ``per_hour`` mails of ``kind`` went to ``email`` this hour (the
    hour starts at the first one); counts this one."""
    key = f"mail:{kind}:{hashlib.sha256(email.strip().lower().encode()).hexdigest()}"
    if cache.add(key, 1, timeout=_HOUR):
        return True
    try:
        return cache.incr(key) <= per_hour
    except ValueError:  # expired between add and incr
        return cache.add(key, 1, timeout=_HOUR)

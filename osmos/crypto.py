"""Encryption of secrets at rest (destination header values) with MultiFernet.

``settings.ENCRYPTION_KEYS``: the first key encrypts, every key decrypts, so a key is
rotated by prepending a new one (and re-encrypting with ``MultiFernet.rotate`` at leisure).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

MASK = "••••"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plain: str) -> str:
    return _fernet(tuple(settings.ENCRYPTION_KEYS)).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The plain value; raises ``InvalidToken`` when no configured key can read it."""
    return _fernet(tuple(settings.ENCRYPTION_KEYS)).decrypt(token.encode()).decode()


def mask(plain: str) -> str:
    """``••••1234``: the last 4 characters only, and none of a value shorter than 8."""
    return MASK + (plain[-4:] if len(plain) >= 8 else "")


__all__ = ["MASK", "InvalidToken", "decrypt", "encrypt", "mask"]

"""Signatures of webhook requests, both ways (SPEC §4 sender verification, §5.4 signed requests).

Outbound, a destination with signing enabled signs every request as Standard Webhooks v1:
``webhook-id`` (the request's ``Idempotency-Key``, stable across retries), ``webhook-timestamp``
(Unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
under each live secret, space-separated (two during a rotation's grace period). A receiver
using the ``standardwebhooks`` or ``svix`` library verifies them unchanged.

Inbound, a source may require its senders to sign: ``standard_webhooks`` (the same scheme,
timestamps within ``TOLERANCE_SECONDS``) or ``hmac_sha256`` (GitHub/Shopify style: hex or base64
HMAC-SHA256 of the raw body as received, optionally prefixed ``sha256=``).

Pure functions, no database: the services store the secrets (encrypted) and call these.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import BinaryIO

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
TOLERANCE_SECONDS = 5 * 60
MAX_SIGNATURE_HEADER_LENGTH = 4096  # a header can hold a few signatures, not a body
_READ_STEP = 1024 * 1024


class SignatureInvalid(Exception):
    """An inbound request's signature is missing, malformed, wrong or too old (401)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the bytes its base64 part encodes)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def _hmac_of(key: bytes, prefix: bytes, body: bytes | BinaryIO) -> bytes:
    """HMAC-SHA256 of ``prefix + body``; a file body is read in steps from where it stands
    and put back there, so a spooled batch of hundreds of MB is never held twice."""
    mac = hmac.new(key, prefix, hashlib.sha256)
    if isinstance(body, bytes | bytearray | memoryview):
        mac.update(body)
        return mac.digest()
    start = body.tell()
    while chunk := body.read(_READ_STEP):
        mac.update(chunk)
    body.seek(start)
    return mac.digest()


def signature_headers(
    *, msg_id: str, timestamp: int, body: bytes | BinaryIO, secrets: Iterable[str]
) -> dict[str, str]:
    """The Standard Webhooks headers of one request.

    ``msg_id``: the request's ``Idempotency-Key``; ``timestamp``: Unix seconds of this attempt;
    ``body``: the exact bytes sent (bytes, or a binary file positioned at the body's start);
    ``secrets``: the live ``whsec_`` secrets, newest first (one signature each).
    Raises ``ValueError`` without a secret.
    """
    keys = [secret_key(secret) for secret in secrets]
    if not keys:
        raise ValueError("signing needs at least one secret")
    prefix = f"{msg_id}.{int(timestamp)}.".encode()
    signatures = ["v1," + base64.b64encode(_hmac_of(key, prefix, body)).decode() for key in keys]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(signatures),
    }


# --- inbound ------------------------------------------------------------------------------------


def verify_standard_webhooks(
    *, headers: dict[str, str], body: bytes, secret: str, now: float | None = None
) -> None:
    """Check a Standard Webhooks signature; raises ``SignatureInvalid`` saying what is wrong.

    ``headers`` are looked up case-insensitively; ``body`` is the raw body as received.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp")
    signature = lower.get("webhook-signature")
    if not (msg_id and timestamp and signature):
        raise SignatureInvalid(
            "Missing signature: this source requires the webhook-id, webhook-timestamp and "
            "webhook-signature headers (Standard Webhooks)."
        )
    if len(signature) > MAX_SIGNATURE_HEADER_LENGTH:
        raise SignatureInvalid("The webhook-signature header is too long.")
    try:
        seconds = int(timestamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp must be whole Unix seconds.") from None
    now = time.time() if now is None else now
    if abs(now - seconds) > TOLERANCE_SECONDS:
        raise SignatureInvalid(
            f"webhook-timestamp is more than {TOLERANCE_SECONDS // 60} minutes away from "
            "the current time: sign each request (and each retry) when it is sent."
        )
    expected = _hmac_of(secret_key(secret), f"{msg_id}.{seconds}.".encode(), body)
    for item in signature.split(" "):
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    raise SignatureInvalid("Wrong signature: no v1 signature matches this source's secret.")


def verify_hmac_sha256(*, header_value: str | None, header: str, body: bytes, secret: str) -> None:
    """Check an HMAC-SHA256 of the raw body (hex or base64, optional ``sha256=`` prefix).

    The key is the secret's text as shown (``whsec_…``), exactly as GitHub and Shopify use
    the secret a user pastes. Raises ``SignatureInvalid``.
    """
    if not header_value:
        raise SignatureInvalid(
            f"Missing signature: this source requires the {header} header "
            "(HMAC-SHA256 of the body, hex or base64)."
        )
    if len(header_value) > MAX_SIGNATURE_HEADER_LENGTH:
        raise SignatureInvalid(f"The {header} header is too long.")
    value = header_value.strip()
    if value.lower().startswith("sha256="):
        value = value[len("sha256=") :]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    for candidate in _decoded_digests(value):
        if hmac.compare_digest(expected, candidate):
            return
    raise SignatureInvalid(f"Wrong signature in {header}: it does not match this source's secret.")


def _decoded_digests(value: str) -> list[bytes]:
    """The byte strings ``value`` may stand for: hex, then base64 (standard or URL-safe)."""
    found = []
    if len(value) == 64:
        with contextlib.suppress(ValueError):
            found.append(bytes.fromhex(value))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            found.append(decode(value + "=" * (-len(value) % 4)))
    return found

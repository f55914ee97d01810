"""Writes of a connector's secrets: ingest URL rotation with a grace period, a source's sender
verification, a destination's signing secret, and the rule that secrets never follow a URL to
another host (SPEC §3.2, §4, §5.4).

Every secret is stored encrypted (``osmos.crypto``) and returned in plain text only by the
service that creates it, for the caller to show once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from connectors.models import (
    DEFAULT_VERIFICATION_HEADER,
    Connector,
    DestinationSettings,
    SourceSettings,
    VerificationScheme,
)
from connectors.validation import is_masked
from osmos import crypto
from osmos.errors import InputError, InvalidInput, raise_if_any
from osmos.outbound import signing
from osmos.outbound.headers import is_valid_header_name
from osmos.tenancy.models import new_secret_token

MAX_GRACE_HOURS = 168
SIGNING_ROTATION_GRACE = timedelta(hours=24)
MIN_OWN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 512
VERIFICATION_KEYS = ("scheme", "header", "secret")


@dataclass(frozen=True, slots=True)
class IssuedSecrets:
    """Plain secrets issued by one write, to be shown once and forgotten."""

    ingest_token: str | None = None
    verification_secret: str | None = None
    signing_secret: str | None = None


def _error(field: str, message: str) -> InvalidInput:
    return InvalidInput([InputError(field=field, message=message)])


# --- ingest URL rotation --------------------------------------------------------------------------


def grace_hours_errors(value: object) -> list[InputError]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRACE_HOURS:
        message = f"Must be a whole number of hours from 0 to {MAX_GRACE_HOURS}."
        return [InputError(field="grace_hours", message=message)]
    return []


def source_rotate_token(*, connector: Connector, grace_hours: int | None = None) -> str:
    """Give a source a new ingest token and return it (shown once).

    With ``grace_hours`` (0-168), the current token keeps working that long; without, it
    stops at once. A token still in an earlier grace period is dropped: two URLs at most.
    Raises ``InvalidInput`` for a destination or an invalid ``grace_hours``.
    """
    if not connector.is_source:
        raise _error("direction", "Only a source connector has an ingest URL to rotate.")
    raise_if_any(grace_hours_errors(grace_hours))
    token, lookup, token_hash = new_secret_token()
    now = timezone.now()
    with transaction.atomic():
        source = SourceSettings.objects.select_for_update().get(connector=connector)
        if grace_hours:
            source.previous_token_lookup = source.token_lookup
            source.previous_token_hash = source.token_hash
            source.previous_token_expires_at = now + timedelta(hours=grace_hours)
        else:
            source.previous_token_lookup = ""
            source.previous_token_hash = ""
            source.previous_token_expires_at = None
        source.token_lookup = lookup
        source.token_hash = token_hash
        source.token_rotated_at = now
        source.save()
        connector.source = source
        connector.save(update_fields=["updated_at"])
    return token


# --- sender verification --------------------------------------------------------------------------


def verification_errors(value: object) -> list[InputError]:
    """Problems with a ``verification`` input ``{"scheme", "header"?, "secret"?}``."""

    def error(message: str, key: str | None = None) -> list[InputError]:
        field = "source.verification" + (f".{key}" if key else "")
        return [InputError(field=field, message=message)]

    if not isinstance(value, Mapping):
        return error("verification is an object: {scheme, header}.")
    unknown = set(value) - set(VERIFICATION_KEYS)
    if unknown:
        return error(f"Unknown keys {sorted(unknown)}; accepted: {', '.join(VERIFICATION_KEYS)}.")
    if value.get("scheme") not in VerificationScheme.values:
        return error(f"Must be one of {', '.join(VerificationScheme.values)}.", "scheme")
    header = value.get("header")
    valid_header = isinstance(header, str) and is_valid_header_name(header)
    if header is not None and (not valid_header or len(header) > 256):
        return error("A header name is letters, digits and !#$%&'*+-.^_`|~ only.", "header")
    secret = value.get("secret")
    if secret is not None:
        if value.get("scheme") != VerificationScheme.HMAC_SHA256:
            return error("Only hmac_sha256 takes your own secret; others are generated.", "secret")
        if (
            not isinstance(secret, str)
            or not MIN_OWN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH
            or not secret.isprintable()
            or is_masked(secret)
        ):
            message = (
                f"A secret is {MIN_OWN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable characters."
            )
            return error(message, "secret")
    return []


def apply_verification(source: SourceSettings, value: Mapping[str, Any]) -> str | None:
    """Set a source's verification from a valid input (``verification_errors`` is empty).

    A new secret is generated when the scheme changes to one that needs a secret (or when the
    user gives their own, for ``hmac_sha256``); the plain generated secret is returned, to show
    once. Changing only the header keeps the secret. Does not save.
    """
    scheme = value["scheme"]
    changed = scheme != source.verification_scheme
    source.verification_scheme = scheme
    if scheme == VerificationScheme.NONE:
        source.verification_header = ""
        source.verification_secret_encrypted = ""
        return None
    if scheme == VerificationScheme.HMAC_SHA256:
        source.verification_header = value.get("header") or (
            source.verification_header or DEFAULT_VERIFICATION_HEADER
        )
    else:
        source.verification_header = ""
    if value.get("secret"):
        source.verification_secret_encrypted = crypto.encrypt(value["secret"])
        return None
    if changed or not source.verification_secret_encrypted:
        secret = signing.new_secret()
        source.verification_secret_encrypted = crypto.encrypt(secret)
        return secret
    return None


def source_set_verification(*, connector: Connector, verification: object) -> str | None:
    """Change a source's sender verification; returns a newly generated secret (show once).

    Raises ``InvalidInput`` for a destination or an invalid input.
    """
    if not connector.is_source:
        raise _error("source", "Only a source connector verifies its senders.")
    errors = verification_errors(verification)
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        source = SourceSettings.objects.select_for_update().get(connector=connector)
        secret = apply_verification(source, verification)
        source.save()
        connector.source = source
        connector.save(update_fields=["updated_at"])
    return secret


def verification_view(source: SourceSettings) -> dict[str, Any]:
    """The ``verification`` of the connector JSON: never the secret."""
    view: dict[str, Any] = {"scheme": source.verification_scheme}
    if source.verification_scheme == VerificationScheme.HMAC_SHA256:
        view["header"] = source.verification_header
    return view


# --- outbound signing -----------------------------------------------------------------------------


def apply_signing(settings: DestinationSettings, enabled: bool) -> str | None:
    """Turn signing on or off (does not save). Enabling issues a new secret, returned to show
    once; turning it off forgets every secret, so enabling again never revives an old one."""
    if enabled == settings.signing_enabled:
        return None
    settings.signing_enabled = enabled
    settings.signing_previous_secret_encrypted = ""
    settings.signing_previous_expires_at = None
    if not enabled:
        settings.signing_secret_encrypted = ""
        return None
    secret = signing.new_secret()
    settings.signing_secret_encrypted = crypto.encrypt(secret)
    return secret


def destination_rotate_signing_secret(*, connector: Connector) -> str:
    """A new signing secret (returned once); the current one signs too for 24 hours.

    Raises ``InvalidInput`` for a source or a destination without signing enabled.
    """
    if connector.is_source:
        raise _error("direction", "Only a destination signs its requests.")
    with transaction.atomic():
        settings = DestinationSettings.objects.select_for_update().get(connector=connector)
        if not settings.signing_enabled:
            message = 'Signing is off: enable it first (destination.signing {"enabled": true}).'
            raise _error("destination.signing", message)
        secret = signing.new_secret()
        settings.signing_previous_secret_encrypted = settings.signing_secret_encrypted
        settings.signing_previous_expires_at = timezone.now() + SIGNING_ROTATION_GRACE
        settings.signing_secret_encrypted = crypto.encrypt(secret)
        settings.save()
        connector.destination = settings
        connector.save(update_fields=["updated_at"])
    return secret


def reset_signing_secret(settings: DestinationSettings) -> str | None:
    """A new secret with no grace for the old one (the URL moved to another host)."""
    if not settings.signing_enabled:
        return None
    secret = signing.new_secret()
    settings.signing_secret_encrypted = crypto.encrypt(secret)
    settings.signing_previous_secret_encrypted = ""
    settings.signing_previous_expires_at = None
    return secret


# --- secrets never follow a URL -----------------------------------------------------------------


def url_host(url: str) -> tuple[str, int | None]:
    """The host and port a URL reaches (lower-case host; default ports made explicit)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return (url, None)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return ((parts.hostname or "").lower(), port or default)


def moved_host_errors(
    *, stored: DestinationSettings, destination: Mapping[str, Any]
) -> list[InputError]:
    """Refuse a URL change to another host that keeps stored secret header values.

    The headers must be given again with full values (not masked, not left out): a stored
    ``Authorization`` must never be sent to a host its owner did not enter it for. Each kept
    (masked) header gets its own error at its index; headers left out get one error naming them.
    """
    url = destination.get("url")
    if not isinstance(url, str) or url_host(url) == url_host(stored.url):
        return []
    why = "the URL moves to another host, and secret header values never follow a URL"
    if "headers" not in destination:
        names = [h["name"] for h in stored.headers_encrypted]
        if not names:
            return []
        message = f"Enter the values of {', '.join(names)} again: {why}."
        return [InputError(field="destination.headers", message=message)]
    given = destination["headers"] if isinstance(destination["headers"], list) else []
    return [
        InputError(
            field="destination.headers.value",
            message=f"Enter the value of {item.get('name', '')} again: {why}.",
            index=index,
        )
        for index, item in enumerate(given)
        if isinstance(item, Mapping) and is_masked(str(item.get("value", "")))
    ]


def host_changed(*, stored_url: str, new_url: object) -> bool:
    return isinstance(new_url, str) and url_host(new_url) != url_host(stored_url)

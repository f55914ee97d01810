"""Validation of connector input: the rules shared by the services, the API, the admin and pages.

Every check returns ``osmos.errors.InputError`` values (never ad hoc strings); ``raise_if_any``
turns them into one ``InvalidInput``. Error ``field`` paths are the API's JSON keys: ``name``,
``direction``, ``schema`` (the list as a whole) and ``schema.<attribute>`` (``index`` = position
of the schema field), ``destination`` (the settings as a whole), ``destination.<setting>``,
``destination.headers`` and ``destination.headers.<name|value>`` (``index`` = position of the
header).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings as django_settings

from connectors.models import (
    DEFAULT_MAX_CONCURRENCY,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_RATE_LIMIT_PER_SECOND,
    MIN_RATE_LIMIT_PER_SECOND,
    Connector,
    DestinationSettings,
    Direction,
    HttpMethod,
    ResponseFormat,
    WriteMode,
)
from connectors.schema import schema_definition_errors
from osmos import crypto
from osmos.errors import InputError, raise_if_any
from osmos.outbound.headers import (
    NAME_MESSAGE,
    RESERVED_HEADERS,
    VALUE_MESSAGE,
    is_valid_header_name,
    is_valid_header_value,
)
from osmos.outbound.shaping import template_problems, url_host_problems, url_problems
from osmos.outbound.urlguard import (
    UnresolvableHost,
    UnsafeURL,
    parse_destination_url,
    validate_destination_url,
)
from osmos.tenancy.models import Organization

MAX_NAME_LENGTH = Connector._meta.get_field("name").max_length
MAX_TIMEOUT_SECONDS = 300
MAX_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
SCHEMA_IMMUTABLE_MESSAGE = (
    "The schema cannot be changed once the connector is saved; "
    "duplicate the connector to get one with a different schema."
)
DIRECTION_IMMUTABLE_MESSAGE = "The direction cannot be changed; create a new connector instead."
DESTINATION_KEYS = (
    "url",
    "method",
    "headers",
    "write_mode",
    "batch_size",
    "split_failed_batches",
    "timeout_seconds",
    "signing",
    "rate_limit_per_second",
    "max_concurrency",
    "response_format",
    "body_template",
)
DESTINATION_DEFAULTS: dict[str, Any] = {
    "method": HttpMethod.POST.value,
    "headers": [],
    "write_mode": WriteMode.BATCH.value,
    "batch_size": MAX_BATCH_SIZE,
    "split_failed_batches": False,
    "timeout_seconds": 30,
    "rate_limit_per_second": None,
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
    "response_format": ResponseFormat.NONE.value,
    "body_template": None,
}


def destination_shown(settings_: DestinationSettings) -> dict[str, Any]:
    """The saved settings by ``DESTINATION_KEYS`` as the pages and the API show them: header
    values masked; ``signing`` is left to the caller (the API and the form show it apart)."""
    return {
        key: settings_.masked_headers() if key == "headers" else getattr(settings_, key)
        for key in DESTINATION_KEYS
        if key != "signing"
    }


def is_masked(value: str) -> bool:
    return value.startswith(crypto.MASK)


# --- validation ---------------------------------------------------------------------------------


def name_errors(
    *, organization: Organization, name: object, exclude: Connector | None
) -> list[InputError]:
    """Problems with a connector name: text, 1-200 characters once stripped, no control
    characters, unused in the organization (case-insensitively; ``exclude`` = the connector
    being renamed)."""
    if name is not None and not isinstance(name, str):
        return [InputError(field="name", message="The name must be text.")]
    if not name or not name.strip():
        return [InputError(field="name", message="A connector needs a name.")]
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        message = f"The name must be at most {MAX_NAME_LENGTH} characters long."
        return [InputError(field="name", message=message)]
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return [InputError(field="name", message="The name must not contain control characters.")]
    taken = Connector.objects.for_organization(organization).filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        message = f"A connector named “{name}” already exists in this organization."
        return [InputError(field="name", message=message)]
    return []


def schema_errors(fields: object) -> list[InputError]:
    """``connectors.schema.schema_definition_errors`` as input errors on ``schema``, after the
    width limit ``SCHEMA_MAX_FIELDS`` (checked first: a huge schema costs no more than that)."""
    limit = django_settings.SCHEMA_MAX_FIELDS
    if isinstance(fields, Sequence) and not isinstance(fields, str | bytes) and len(fields) > limit:
        message = (
            f"A schema has at most {limit} fields; this one has {len(fields)}. Split the "
            "records into several connectors, or keep nested data in a json field."
        )
        return [InputError(field="schema", message=message)]
    return [
        InputError(field=_under("schema", error.field), message=error.message, index=error.index)
        for error in schema_definition_errors(fields=fields)
    ]


def _under(path: str, key: str | None) -> str:
    return path if key is None else f"{path}.{key}"


def _int_setting_error(key: str, value: object, low: int, high: int) -> InputError | None:
    # bool is an int in Python, but `true` is not a batch size.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return InputError(
            field=f"destination.{key}", message=f"Must be a whole number from {low} to {high:,}."
        )
    return None


def _rate_limit_error(value: object) -> InputError | None:
    # null = no limit; JSON has one number type, so 5 and 0.5 are both fine.
    if value is None:
        return None
    low, high = MIN_RATE_LIMIT_PER_SECOND, MAX_RATE_LIMIT_PER_SECOND
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        message = (
            f"Must be null (no limit) or a number of requests per second from {low} to {high:,}."
        )
        return InputError(field="destination.rate_limit_per_second", message=message)
    return None


def _choice_error(key: str, value: object, choices: Sequence[str]) -> InputError | None:
    if value not in choices:
        message = f"Must be one of {', '.join(choices)}."
        return InputError(field=f"destination.{key}", message=message)
    return None


def unresolvable_host_warning(url: str) -> str:
    host = parse_destination_url(url).host
    return (
        f"{host} does not resolve today. The destination is saved: DNS may not be live yet. "
        "Runs that send to it wait and retry while the name does not resolve, and its "
        "address is checked before every request."
    )


def _url_errors(url: object, warnings: list[str] | None = None) -> list[InputError]:
    """Problems with a destination URL. A host that does not resolve *today* is no error
    (SPEC §3.2): a warning goes to ``warnings``, and the send-time check protects the
    network. A name that resolves to a refused address is an error."""
    if not isinstance(url, str) or not url.strip():
        return [InputError(field="destination.url", message="A destination needs a URL.")]
    try:
        validate_destination_url(url.strip())
    except UnresolvableHost:
        if warnings is not None:
            warnings.append(unresolvable_host_warning(url.strip()))
    except UnsafeURL as exc:
        return [InputError(field="destination.url", message=str(exc))]
    return []


def url_warnings(url: str) -> list[str]:
    """The warnings a stored URL would get if saved now (a copied destination's)."""
    warnings: list[str] = []
    try:
        validate_destination_url(url)
    except UnresolvableHost:
        warnings.append(unresolvable_host_warning(url))
    except UnsafeURL:
        pass  # refused again before every request; a copy keeps what the original had
    return warnings


def _header_item_errors(index: int, item: object, seen: set[str]) -> list[InputError]:
    def error(key: str | None, message: str) -> InputError:
        return InputError(field=_under("destination.headers", key), message=message, index=index)

    if not isinstance(item, Mapping) or set(item) != {"name", "value"}:
        return [error(None, "Each header is an object with exactly the keys name and value.")]
    name, value = item["name"], item["value"]
    errors = []
    if not is_valid_header_name(name):
        errors.append(error("name", NAME_MESSAGE))
    elif len(name) > MAX_HEADER_NAME_LENGTH:
        errors.append(error("name", f"A header name is at most {MAX_HEADER_NAME_LENGTH} long."))
    elif name.lower() in RESERVED_HEADERS:
        errors.append(error("name", f"{name} is set by osmos itself and cannot be configured."))
    elif name.lower() in seen:
        errors.append(error("name", f"The header {name} is given twice."))
    else:
        seen.add(name.lower())
    if not isinstance(value, str) or not value:
        errors.append(error("value", "A header needs a value."))
    elif len(value) > MAX_HEADER_VALUE_LENGTH:
        errors.append(error("value", f"A header value is at most {MAX_HEADER_VALUE_LENGTH} long."))
    elif is_masked(value):
        pass  # "keep the stored value": checked against the stored headers, not as text
    elif not is_valid_header_value(value):
        errors.append(error("value", VALUE_MESSAGE))
    return errors


def _headers_errors(headers: object) -> list[InputError]:
    if isinstance(headers, str | bytes) or not isinstance(headers, Sequence):
        message = "Headers are a list of {name, value} objects."
        return [InputError(field="destination.headers", message=message)]
    if len(headers) > MAX_HEADERS:
        message = f"At most {MAX_HEADERS} headers."
        return [InputError(field="destination.headers", message=message)]
    seen: set[str] = set()
    return [
        error
        for index, item in enumerate(headers)
        for error in _header_item_errors(index, item, seen)
    ]


def _signing_errors(value: object) -> list[InputError]:
    if (
        not isinstance(value, Mapping)
        or set(value) != {"enabled"}
        or not isinstance(value["enabled"], bool)
    ):
        return [InputError(field="destination.signing", message='Must be {"enabled": true|false}.')]
    return []


def _destination_errors(
    settings: Mapping[str, Any], warnings: list[str] | None = None
) -> list[InputError]:
    """Problems in (partial) destination settings; checks only the keys present."""
    checks = {
        "url": lambda v: _url_errors(v, warnings),
        "headers": _headers_errors,
        "method": lambda v: [_choice_error("method", v, HttpMethod.values)],
        "write_mode": lambda v: [_choice_error("write_mode", v, WriteMode.values)],
        "batch_size": lambda v: [_int_setting_error("batch_size", v, 1, MAX_BATCH_SIZE)],
        "timeout_seconds": lambda v: [
            _int_setting_error("timeout_seconds", v, 1, MAX_TIMEOUT_SECONDS)
        ],
        "signing": _signing_errors,
        "rate_limit_per_second": lambda v: [_rate_limit_error(v)],
        "max_concurrency": lambda v: [_int_setting_error("max_concurrency", v, 1, MAX_CONCURRENCY)],
        "response_format": lambda v: [_choice_error("response_format", v, ResponseFormat.values)],
        # Checked with the write mode and the schema: destination_shape_errors.
        "body_template": lambda v: [],
        "split_failed_batches": lambda v: [
            None
            if isinstance(v, bool)
            else InputError(field="destination.split_failed_batches", message="Must be a boolean.")
        ],
    }
    errors: list[InputError] = []
    if isinstance(settings.get("url"), str) and url_host_problems(settings["url"]):
        # Before the host is resolved: a templated host is refused, whatever it resolves to.
        message = url_host_problems(settings["url"])[0]
        return [InputError(field="destination.url", message=message)]
    for key, value in settings.items():
        check = checks.get(key)
        if check is None:
            message = f"Unknown setting; destination settings are {', '.join(DESTINATION_KEYS)}."
            errors.append(InputError(field=f"destination.{key}", message=message))
            continue
        errors.extend(error for error in check(value) if error is not None)
    return errors


def destination_input_errors(
    *, direction: str, destination: object, required: bool, warnings: list[str] | None = None
) -> list[InputError]:
    """Problems with the destination settings given for a connector of ``direction``.

    ``required``: a new connector (the settings, with a URL, must be there); otherwise a
    partial update in which only the given keys are checked. A source takes no settings.
    ``warnings`` (optional) receives what is saved but worth saying (an unresolvable host).
    """
    if direction != Direction.DESTINATION:
        if destination is None:
            return []
        message = "A source connector has no destination settings."
        return [InputError(field="destination", message=message)]
    if destination is None:
        if not required:
            return []
        return [InputError(field="destination", message="A destination needs its settings.")]
    if not isinstance(destination, Mapping):
        return [InputError(field="destination", message="Destination settings are an object.")]
    if required and "url" not in destination:
        return [InputError(field="destination.url", message="A destination needs a URL.")]
    return _destination_errors(destination, warnings)


def validate_connector_changes(
    *,
    connector: Connector,
    name: object = None,
    destination: object = None,
    warnings: list[str] | None = None,
) -> None:
    """Raise ``InvalidInput`` if ``connector_update`` would refuse these changes.

    Writes nothing; for forms that must show errors before saving (the admin, the pages).
    ``warnings`` (optional) receives the warnings of the changes (an unresolvable host).
    """
    errors = (
        []
        if name is None
        else name_errors(organization=connector.organization, name=name, exclude=connector)
    )
    errors += destination_input_errors(
        direction=connector.direction, destination=destination, required=False, warnings=warnings
    )
    if not errors and isinstance(destination, Mapping) and "headers" in destination:
        errors += _masked_value_errors(connector=connector, headers=destination["headers"])
    if not errors and isinstance(destination, Mapping) and not connector.is_source:
        errors += destination_shape_errors(
            destination=_with_stored(connector, destination), fields=connector.field_specs()
        )
    raise_if_any(errors)


# --- request shaping (SPEC §3.2: body_template, URL placeholders) -------------------------------

_SHAPE_KEYS = ("url", "write_mode", "body_template")


def destination_shape_errors(
    *, destination: Mapping[str, Any], fields: Sequence[Any]
) -> list[InputError]:
    """The body template and the URL placeholders against the write mode and the schema
    (``fields``: ``(name, type, nullable)`` or ``{"name", "type", "nullable"}``), by the rules
    of ``osmos.outbound.shaping`` (the ones applied at send time). ``destination``: complete
    settings (a partial update merged with the stored ones)."""
    values = {**DESTINATION_DEFAULTS, **destination}
    mode, url = values["write_mode"], values.get("url")
    if mode not in WriteMode.values or not isinstance(url, str):
        return []  # reported by destination_input_errors
    specs = [
        (f["name"], f["type"], f["nullable"]) if isinstance(f, Mapping) else tuple(f)
        for f in fields
    ]
    errors = [
        InputError(field="destination.body_template", message=message)
        for message in template_problems(values["body_template"], mode=mode)
    ]
    errors += [
        InputError(field="destination.url", message=message)
        for message in url_problems(url.strip(), mode=mode, fields=specs)
    ]
    return errors


def _with_stored(connector: Connector, destination: Mapping[str, Any]) -> dict[str, Any]:
    stored = connector.destination
    return {**{key: getattr(stored, key) for key in _SHAPE_KEYS}, **destination}


# --- headers ------------------------------------------------------------------------------------


def stored_headers(connector: Connector) -> dict[str, tuple[str, str]]:
    """lower-case name -> (plain value, ciphertext) of the destination's stored headers."""
    stored = connector.destination.headers_encrypted
    return {h["name"].lower(): (crypto.decrypt(h["value"]), h["value"]) for h in stored}


def _masked_value_errors(
    *, connector: Connector, headers: Sequence[Mapping[str, str]]
) -> list[InputError]:
    """A masked value is only accepted as "keep what is stored" for a header that has one."""
    stored = stored_headers(connector)
    errors = []
    for index, item in enumerate(headers):
        if not is_masked(item["value"]):
            continue
        kept = stored.get(item["name"].lower())
        if kept is None or crypto.mask(kept[0]) != item["value"]:
            message = (
                "This looks like a masked value but no stored value of this header matches it; "
                "enter the full value."
            )
            errors.append(
                InputError(field="destination.headers.value", message=message, index=index)
            )
    return errors


def encrypted_headers(
    headers: Sequence[Mapping[str, str]], stored: Mapping[str, tuple[str, str]]
) -> list[dict[str, str]]:
    """Headers as stored: a masked value equal to the stored one's mask keeps the stored secret."""
    result = []
    for item in headers:
        kept = stored.get(item["name"].lower())
        if kept is not None and item["value"] == crypto.mask(kept[0]):
            ciphertext = kept[1]
        else:
            ciphertext = crypto.encrypt(item["value"])
        result.append({"name": item["name"], "value": ciphertext})
    return result

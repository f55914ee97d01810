"""The rules for a destination's custom headers: one module for save and send.

`connectors.validation` checks headers when a destination is saved and the client checks them
again before each request (stored data may predate a rule). Both call these functions, so a
header accepted at save is never refused at send.

A value is Latin-1 text (what HTTP/1.1 puts on the wire unchanged) without control characters
other than tab, that does not start with a space or a tab: a receiver strips leading
whitespace (RFC 9110 §5.5), so such a value would not arrive as it was saved.
"""

from __future__ import annotations

import re

# RFC 9110 "token": the characters a header name may contain.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible Latin-1 text, space and tab, not starting with a space or tab.
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e\x80-\xff][\t\x20-\x7e\x80-\xff]*)?")

# Set by `OutboundSession.send` itself: a customer header with one of these names is ignored
# at send time and refused at save time.
SET_BY_SEND = frozenset(
    (
        "content-type",
        "user-agent",
        "idempotency-key",
        "host",
        # Standard Webhooks signing (osmos/outbound/signing.py): a static value would be a forgery.
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
)
# Set by osmos on every request (SPEC §5) or by HTTP framing itself: a customer value would
# either be ignored or corrupt the request.
RESERVED_HEADERS = frozenset((*SET_BY_SEND, "content-length", "transfer-encoding", "connection"))

NAME_MESSAGE = "A header name is letters, digits and !#$%&'*+-.^_`|~ only."
VALUE_MESSAGE = (
    "A header value is printable Latin-1 text without line breaks "
    "that does not start with a space or tab."
)


def is_valid_header_name(name: object) -> bool:
    return isinstance(name, str) and HEADER_NAME.fullmatch(name) is not None


def is_valid_header_value(value: object) -> bool:
    return isinstance(value, str) and HEADER_VALUE.fullmatch(value) is not None


def is_reserved(name: str) -> bool:
    return name.lower() in RESERVED_HEADERS

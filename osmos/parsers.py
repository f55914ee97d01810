"""The API's JSON parser: DRF's, with a nesting limit.

Python's JSON decoder recurses once per nesting level, so a 400 KB body of 200,000 ``[`` raised
``RecursionError`` (a 500). Bodies are checked for depth before decoding, in one linear scan
that ignores brackets inside strings; deeper than ``MAX_DEPTH`` is a 400 with a clear message.
"""

from __future__ import annotations

import io
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64
# Strings (with their escapes) and the structural brackets; everything else is skipped.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (0 for a scalar)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        if json_depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        try:
            return super().parse(io.BytesIO(data), media_type, parser_context)
        except RecursionError:  # pragma: no cover - the depth check comes first
            raise ParseError("JSON parse error - nested too deeply.") from None

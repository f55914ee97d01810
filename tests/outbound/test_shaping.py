"""osmos.outbound.shaping: body envelopes and per-record URLs (SPEC §3.2), pure functions."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import pytest

from osmos.outbound.shaping import (
    MAX_TEMPLATE_BYTES,
    MAX_URL_LENGTH,
    ShapingError,
    envelope,
    render_url,
    template_problems,
    url_problems,
)
from pipelines.records import BatchBody

FIELDS = [("id", "string", False), ("n", "integer", False)]


# --- envelopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "placeholder"), [("batch", "{{records}}"), ("single", "{{record}}")]
)
def test_the_envelope_wraps_the_records_as_json_in_both_modes(mode, placeholder):
    template = {"data": placeholder, "source": "osmos", "meta": {"n": [1, None, True]}}
    prefix, suffix = envelope(template, mode)
    records = b'[{"id":1},{"id":2}]' if mode == "batch" else b'{"id":1}'
    assert json.loads(prefix + records + suffix) == {**template, "data": json.loads(records)}


def test_no_template_is_no_envelope_and_the_bare_placeholder_is_the_bare_body():
    assert envelope(None, "batch") == (b"", b"")
    assert envelope("{{records}}", "batch") == (b"", b"")


def test_a_placeholder_like_text_elsewhere_in_the_template_is_left_as_literal_json():
    # The records go where the value is, not where a similar text is: no interpolation.
    template = {"events": "{{records}}", "note": "osmos-records-0", "k": {"{{x}}": "}}"}}
    prefix, suffix = envelope(template, "batch")
    assert json.loads(prefix + b"[]" + suffix) == {**template, "events": []}


@pytest.mark.parametrize(
    ("template", "mode", "fragment"),
    [
        ({"a": "{{records}}", "b": "{{records}}"}, "batch", "exactly once, not 2 times"),
        ({"a": "{{record}}"}, "batch", 'not "{{record}}"'),
        ({"a": "{{records}}"}, "single", 'not "{{records}}"'),
        ({"a": 1}, "batch", 'hold the string value "{{records}}" once'),
        ({"{{records}}": 1}, "batch", "not an object key"),
        ({"a": "all {{records}}"}, "batch", "not part of a longer string"),
        ({"a": "{{records}}", "pad": "x" * MAX_TEMPLATE_BYTES}, "batch", "the limit is 16,384"),
    ],
)
def test_refused_templates_say_why(template, mode, fragment):
    problems = template_problems(template, mode=mode)
    assert any(fragment in problem for problem in problems), problems
    with pytest.raises(ShapingError):
        envelope(template, mode)  # the same rule at send time


def test_a_batch_body_in_an_envelope_bisects_inside_the_envelope():
    body = BatchBody(prefix=b'{"events":', suffix=b',"source":"osmos"}')
    for i in range(5):
        body.add(i, json.dumps({"id": i}).encode())
    try:
        whole, half, one = body.part(0, 5), body.part(2, 5), body.part(3, 4)
        assert json.loads(whole.read()) == {
            "events": [{"id": i} for i in range(5)],
            "source": "osmos",
        }
        assert json.loads(half.read()) == {
            "events": [{"id": 2}, {"id": 3}, {"id": 4}],
            "source": "osmos",
        }
        # Read in small steps (as a socket writer may), from a seek anywhere.
        one.seek(3)
        pieces = [one.read(4) for _ in range(20)]
        one.seek(0)
        assert one.read(3) + b"".join(pieces) == b'{"events":[{"id": 3}],"source":"osmos"}'
        assert one.seek(0, 2) == len(b'{"events":[{"id": 3}],"source":"osmos"}')
    finally:
        body.close()


# --- URLs ---------------------------------------------------------------------------------------

HOSTILE = ["../admin", "/", "..", "?x=1", "#top", "%2F", "100%", "a b&c=d", "ünïcødé/€", "a" * 500]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_inside_its_path_segment_and_its_query_value(value):
    template = "https://api.example.com:8443/v1/users/{{id}}/orders?key={{id}}&page=1"
    if value == "..":  # the one value refused: a path segment ".." names another resource
        with pytest.raises(ShapingError, match=r"'\.\.'"):
            render_url(template, {"id": value})
        return
    url = render_url(template, {"id": value})
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.fragment) == ("https", "api.example.com:8443", "")
    segments = parts.path.split("/")
    assert segments[:4] == ["", "v1", "users", segments[3]]
    assert segments[4:] == ["orders"]
    assert unquote(segments[3]) == value
    pairs = [pair.split("=") for pair in parts.query.split("&")]
    assert [(k, unquote(v)) for k, v in pairs] == [("key", value), ("page", "1")]


def test_integers_fill_a_url_and_a_url_without_placeholders_is_unchanged():
    assert render_url("https://x.example/u/{{n}}", {"n": 42}) == "https://x.example/u/42"
    assert render_url("https://x.example/u?a={b}", {}) == "https://x.example/u?a={b}"


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_a_value_that_would_empty_or_dot_its_segment_fails_that_record(value):
    with pytest.raises(ShapingError, match="path segment"):
        render_url("https://x.example/users/{{id}}", {"id": value})
    # In a query value the same text is harmless.
    assert render_url("https://x.example/users?id={{id}}", {"id": value}).endswith(f"id={value}")


def test_a_url_past_the_length_limit_fails_that_record_with_the_reason():
    with pytest.raises(ShapingError) as caught:
        render_url("https://x.example/users/{{id}}", {"id": "é" * 1000})
    assert f"the limit is {MAX_URL_LENGTH:,}" in str(caught.value)
    assert "{{id}}" in str(caught.value)


@pytest.mark.parametrize("value", [None, True, 1.5, {"a": 1}])
def test_a_missing_or_non_text_value_fails_that_record(value):
    with pytest.raises(ShapingError, match="string or integer"):
        render_url("https://x.example/users/{{id}}", {"id": value})


@pytest.mark.parametrize(
    ("url", "fields", "mode", "fragment"),
    [
        ("https://{{id}}.example.com/x", FIELDS, "single", "host and port"),
        ("https://api.example.com:{{n}}/x", FIELDS, "single", "host and port"),
        ("https://u:{{id}}@api.example.com/x", FIELDS, "single", "host and port"),
        ("https://api.example.com/x?{{id}}=1", FIELDS, "single", "not a key"),
        ("https://api.example.com/x#{{id}}", FIELDS, "single", "fragment"),
        ("https://api.example.com/x/{{id}}", FIELDS, "batch", "write mode single"),
        ("https://api.example.com/x/{{missing}}", FIELDS, "single", "not a field"),
        ("https://api.example.com/x/{{v}}", [("v", "number", False)], "single", "number field"),
        ("https://api.example.com/x/{{v}}", [("v", "string", True)], "single", "nullable"),
        ("https://api.example.com/x/{{id}", FIELDS, "single", "Braces"),
    ],
)
def test_refused_url_templates_say_why(url, fields, mode, fragment):
    problems = url_problems(url, mode=mode, fields=fields)
    assert any(fragment in problem for problem in problems), problems


def test_accepted_url_templates_render_at_send():
    # "Accepted at save => accepted at send", for the shapes the docs show.
    for url in (
        "https://api.example.com/users/{{id}}",
        "https://api.example.com/v1/{{id}}/items/{{n}}.json?key={{id}}&x=1",
        "http://api.example.com:8824/track?user={{ id }}",
    ):
        assert url_problems(url, mode="single", fields=FIELDS) == []
        assert "api.example.com" in urlsplit(render_url(url, {"id": "a/b", "n": 7})).netloc

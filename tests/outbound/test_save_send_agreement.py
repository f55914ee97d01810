"""One rule, one place: whatever the connector validation accepts at save, the client
accepts at send (headers and URLs). Property tests over arbitrary text."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.validation import destination_input_errors
from osmos.outbound.client import DeliveryError, _request_headers, _target
from osmos.outbound.urlguard import UnsafeURL, validate_destination_url

# Every code point Latin-1 has and a few beyond, so both sides of each rule are drawn.
header_text = st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=40)
header_names = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True), header_text)


def accepted_at_save(headers: list[dict[str, str]]) -> bool:
    destination = {"url": "https://93.184.216.34/", "headers": headers}
    errors = destination_input_errors(
        direction="destination", destination=destination, required=True
    )
    return not errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=header_names, value=header_text)
def test_a_header_accepted_at_save_is_accepted_at_send(name, value):
    if not accepted_at_save([{"name": name, "value": value}]):
        return
    sent = _request_headers([(name, value)], "key")  # raises DeliveryError if refused
    assert sent[name] == value


def public_resolver(host, port, *args, **kwargs):
    """Every name resolves to one public address: the property is about the URL's shape."""
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", port))]


url_text = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
        st.one_of(st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True), header_text),
        st.one_of(st.just(""), st.integers(-1, 70000).map(lambda p: f":{p}"), header_text),
        st.one_of(st.just("/"), header_text.map(lambda t: "/" + t)),
    ),
    header_text,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=url_text)
def test_a_url_accepted_at_save_is_accepted_by_the_client(url):
    try:
        validate_destination_url(url.strip(), resolver=public_resolver)
    except UnsafeURL:
        return
    try:
        _target(url.strip())
    except UnsafeURL as exc:
        raise AssertionError(f"{url!r} accepted at save, refused at send: {exc}") from None


def test_the_properties_can_fail():
    """The send-side checks do refuse things: a value starting with a space, a bad URL."""
    with pytest.raises(DeliveryError):
        _request_headers([("X-Key", " padded")], "key")
    with pytest.raises(UnsafeURL):
        _target("ftp://93.184.216.34/")

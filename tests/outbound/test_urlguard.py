"""The outbound address guard: URL rules, refused address ranges, DNS answers, allow-list."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from osmos.outbound.urlguard import (
    MAX_URL_LENGTH,
    UnresolvableHost,
    UnsafeURL,
    check_address,
    embedded_ipv4,
    parse_destination_url,
    resolve_and_check,
    validate_destination_url,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def fake_resolver(*addresses: str):
    """A resolver with getaddrinfo's signature that answers `addresses` for any host."""

    def resolve(host, port, *args, **kwargs):
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in addresses
        ]

    return resolve


def failing_resolver(host, port, *args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture(autouse=True)
def no_allowed_networks(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


# --- refused and allowed addresses -------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "non-public"),
        ("255.255.255.255", "broadcast"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.10", "documentation"),
        ("203.0.113.10", "documentation"),
        ("198.18.0.1", "non-public"),
        ("192.0.0.8", "non-public"),
    ],
)
def test_ipv4_address_in_a_refused_range_is_refused(address, reason):
    with pytest.raises(UnsafeURL, match=reason):
        check_address(address)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456:789a::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("100::1", "non-public"),
        ("::7f00:1", "non-public"),
    ],
)
def test_ipv6_address_in_a_refused_range_is_refused(address, reason):
    with pytest.raises(UnsafeURL, match=reason):
        check_address(address)


@pytest.mark.parametrize(
    "address",
    [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_address_is_allowed(address):
    check_address(address)
    check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.0.23",
        "fd00:ec2::254",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
        "fe80::a9fe:a9fe",
    ],
)
def test_cloud_metadata_address_is_refused_even_when_everything_is_allow_listed(address, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]

    with pytest.raises(UnsafeURL, match="metadata"):
        check_address(address)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:c0a8:101::", "private"),
        ("2002:a9fe:a9fe::", "metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::10.1.2.3", "private"),
        ("64:ff9b::169.254.169.254", "metadata"),
    ],
)
def test_ipv6_forms_of_an_ipv4_address_are_judged_by_the_ipv4_address(address, reason):
    with pytest.raises(UnsafeURL, match=reason):
        check_address(address)


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:8.8.8.8", "8.8.8.8"),
        ("2002:808:808::1", "8.8.8.8"),
        ("64:ff9b::808:808", "8.8.8.8"),
        (PUBLIC_V6, None),
        (PUBLIC_V4, None),
    ],
)
def test_embedded_ipv4_is_extracted_from_mapped_6to4_and_nat64_addresses(address, embedded):
    result = embedded_ipv4(ipaddress.ip_address(address))

    assert result == (ipaddress.ip_address(embedded) if embedded else None)


def test_metadata_address_inside_a_mapped_ipv6_address_is_refused_even_when_allow_listed(
    settings,
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]

    with pytest.raises(UnsafeURL, match="metadata"):
        check_address("::ffff:169.254.169.254")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:8000/hook",
    ],
)
def test_numeric_and_named_spellings_of_loopback_are_refused_after_resolution(url):
    with pytest.raises(UnsafeURL, match=r"resolves to \S+, a loopback address"):
        validate_destination_url(url)


# --- DNS answers -------------------------------------------------------------------------


def test_name_resolving_to_a_private_address_is_refused_with_the_name_and_address():
    with pytest.raises(UnsafeURL) as caught:
        resolve_and_check("internal.example.com", 443, resolver=fake_resolver("10.0.0.7"))

    assert (
        str(caught.value) == "internal.example.com resolves to 10.0.0.7, a private network address."
    )


@pytest.mark.parametrize(
    "answers",
    [(PUBLIC_V4, "10.0.0.1"), ("10.0.0.1", PUBLIC_V4), (PUBLIC_V4, PUBLIC_V6, "::1")],
)
def test_name_with_one_refused_answer_among_public_ones_is_refused(answers):
    with pytest.raises(UnsafeURL, match="resolves to"):
        resolve_and_check("mixed.example.com", 443, resolver=fake_resolver(*answers))


def test_resolved_addresses_are_returned_in_order_without_duplicates():
    resolver = fake_resolver(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)

    addresses = resolve_and_check("api.example.com", 443, resolver=resolver)

    assert addresses == [ipaddress.ip_address(PUBLIC_V4), ipaddress.ip_address(PUBLIC_V6)]


def test_host_that_does_not_resolve_is_refused_as_unresolvable():
    with pytest.raises(UnresolvableHost, match=r"Could not resolve host nowhere\.example\.com"):
        validate_destination_url("https://nowhere.example.com/", resolver=failing_resolver)


def test_resolver_with_no_answer_counts_as_unresolvable():
    with pytest.raises(UnresolvableHost):
        resolve_and_check("empty.example.com", 443, resolver=fake_resolver())


def test_unresolvable_host_is_a_kind_of_unsafe_url():
    assert issubclass(UnresolvableHost, UnsafeURL)
    assert issubclass(UnsafeURL, ValueError)


def test_resolver_is_asked_for_the_host_and_port_of_the_url():
    calls = []

    def resolver(host, port, *args, **kwargs):
        calls.append((host, port))
        return fake_resolver(PUBLIC_V4)(host, port)

    validate_destination_url("https://api.example.com:8824/v2/notify", resolver=resolver)

    assert calls == [("api.example.com", 8824)]


# --- URL rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.com:8824/v2/notify", ("https", "api.example.com", 8824)),
        ("https://api.example.com/v2/notify", ("https", "api.example.com", 443)),
        ("HTTP://API.Example.com/x?a=1#frag", ("http", "api.example.com", 80)),
        ("http://[2606:4700::1111]:8080/", ("http", "2606:4700::1111", 8080)),
        ("https://api.example.com:65535/", ("https", "api.example.com", 65535)),
    ],
)
def test_absolute_http_urls_with_optional_port_are_accepted(url, expected):
    assert tuple(parse_destination_url(url)) == expected
    validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com:70/",
        "javascript:alert(1)",
        "//example.com/relative",
        "example.com/no-scheme",
        "",
    ],
)
def test_url_that_is_not_absolute_http_or_https_is_refused(url):
    with pytest.raises(UnsafeURL, match="http:// or https://"):
        validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com:0/",
        "https://api.example.com:65536/",
        "https://api.example.com:99999/",
        "https://api.example.com:http/",
        "https://api.example.com:-1/",
    ],
)
def test_port_outside_1_to_65535_is_refused(url):
    with pytest.raises(UnsafeURL, match="port must be a number between 1 and 65535"):
        validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@api.example.com/",
        "https://user@api.example.com/",
        "https://:secret@api.example.com/",
    ],
)
def test_user_name_or_password_in_the_url_is_refused_with_advice_to_use_a_header(url):
    with pytest.raises(UnsafeURL, match="header such as Authorization"):
        validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


@pytest.mark.parametrize("url", ["http:///path", "https://:443/", "https://?q=1"])
def test_url_without_a_host_is_refused(url):
    with pytest.raises(UnsafeURL, match="no host"):
        validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


def test_url_of_the_maximum_length_is_accepted_and_one_longer_is_refused():
    prefix = "https://api.example.com/"
    longest = prefix + "a" * (MAX_URL_LENGTH - len(prefix))

    validate_destination_url(longest, resolver=fake_resolver(PUBLIC_V4))
    with pytest.raises(UnsafeURL, match="longer than 2048"):
        validate_destination_url(longest + "a", resolver=fake_resolver(PUBLIC_V4))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/a b",
        "https://api.example.com/\r\nX-Injected: 1",
        "https://api.example.com/\t",
        "https://api.exa\x00mple.com/",
    ],
)
def test_url_with_whitespace_or_control_characters_is_refused(url):
    with pytest.raises(UnsafeURL, match="spaces or control characters"):
        validate_destination_url(url, resolver=fake_resolver(PUBLIC_V4))


def test_malformed_ipv6_host_is_refused():
    with pytest.raises(UnsafeURL, match="not valid"):
        validate_destination_url("http://[::1/")


# --- allow-list --------------------------------------------------------------------------


def test_allow_listed_network_lets_loopback_through(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]

    check_address("127.0.0.1")
    check_address("::1")
    check_address("::ffff:127.0.0.1")
    validate_destination_url("http://localhost:8000/hook")


def test_allow_list_only_opens_the_listed_networks(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    with pytest.raises(UnsafeURL, match="private"):
        check_address("10.0.0.1")
    with pytest.raises(UnsafeURL, match="loopback"):
        check_address("::1")


def test_allow_list_is_read_at_call_time(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    check_address("10.20.1.2")

    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(UnsafeURL, match="private"):
        check_address("10.20.1.2")


def test_missing_allow_list_setting_allows_nothing_extra(settings):
    del settings.OUTBOUND_ALLOWED_NETWORKS

    with pytest.raises(UnsafeURL, match="loopback"):
        check_address("127.0.0.1")

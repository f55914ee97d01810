"""The outbound address guard: which URLs and addresses osmos may send records to.

Destinations are customer input, so a URL could point at the product's own network
(loopback, private ranges, cloud metadata services). The guard runs when a destination is
saved (`validate_destination_url`) and again when each connection is opened
(`resolve_and_check`, called by `osmos.outbound.client`), where the connection is then made to the
checked address so that a DNS answer cannot change between the check and the connect.

`settings.OUTBOUND_ALLOWED_NETWORKS` (CIDR strings) lets development and tests reach
addresses that are otherwise refused; cloud metadata addresses are refused regardless.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

# Never reachable, even when allow-listed: instance metadata and platform services that hand
# out credentials. All of link-local is included because most clouds put theirs there
# (AWS, GCP, Azure, OpenStack: 169.254.169.254; ECS: 169.254.170.2; Tencent: 169.254.0.23).
_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::/32",  # AWS Nitro IPv6: IMDS fd00:ec2::254, DNS, NTP
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud
        "168.63.129.16/32",  # Azure WireServer (a public address)
    )
)
_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
_SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")  # RFC 1918, 4193
)
# Python 3.11's is_global misses most of the IETF protocol block (fixed in 3.13).
_OTHER_NON_PUBLIC_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"),)


class UnsafeURL(ValueError):
    """A destination URL that osmos refuses to send to; the message is shown to customers."""


class UnresolvableHost(UnsafeURL):
    """The host name has no address (today). At send time this is a transient failure."""


class Destination(NamedTuple):
    scheme: str
    host: str
    port: int


def parse_destination_url(url: str) -> Destination:
    """Check the shape of a destination URL without resolving it.

    Returns the scheme (lower case), host and port (the scheme's default when absent).
    Raises UnsafeURL for anything but an absolute http(s) URL with a host, a port in
    1-65535, no user name or password, no whitespace or control characters, and at most
    MAX_URL_LENGTH characters.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsafeURL("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeURL("The URL is not valid.") from None
    try:
        port = parts.port
    except ValueError:
        port = 0  # not a number, or out of range: refused below with the port rule
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeURL("The URL must start with http:// or https://.")
    if "@" in parts.netloc:
        raise UnsafeURL(
            "The URL must not contain a user name or password; "
            "send credentials in a header such as Authorization."
        )
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if port is not None and not 1 <= port <= 65535:  # urlsplit accepts port 0
        raise UnsafeURL("The port must be a number between 1 and 65535.")
    return Destination(scheme, parts.hostname, port or DEFAULT_PORTS[scheme])


def validate_destination_url(url: str, *, resolver: Resolver = socket.getaddrinfo) -> None:
    """Refuse a URL that is malformed or whose host resolves to any refused address.

    Raises UnsafeURL (UnresolvableHost when the host does not resolve).
    """
    destination = parse_destination_url(url)
    resolve_and_check(destination.host, destination.port, resolver=resolver)


def resolve_and_check(
    host: str, port: int, *, resolver: Resolver = socket.getaddrinfo
) -> list[IPAddress]:
    """Resolve `host` and return its addresses, in the resolver's order, without duplicates.

    Raises UnresolvableHost when there is no answer, and UnsafeURL when ANY answer is
    refused: an attacker must not be able to mix a public and a private address.
    `resolver` has the signature of socket.getaddrinfo (tests pass a fake).
    """
    try:
        answers = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnresolvableHost(f"Could not resolve host {host}.") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(f"Could not resolve host {host}.")
    for address in addresses:
        reason = refusal_reason(address)
        if reason and host == str(address):
            raise UnsafeURL(f"{address} is {reason}.")
        if reason:
            raise UnsafeURL(f"{host} resolves to {address}, {reason}.")
    return addresses


def check_address(ip: IPAddress | str) -> None:
    """Raise UnsafeURL if osmos must not connect to this address."""
    address = ipaddress.ip_address(ip)
    reason = refusal_reason(address)
    if reason:
        raise UnsafeURL(f"{address} is not allowed: {reason}.")


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is refused (a short phrase), or None when it is allowed."""
    effective = embedded_ipv4(address) or address
    if any(a in network for a in (address, effective) for network in _METADATA_NETWORKS):
        return "a cloud metadata or link-local address"
    if _is_allow_listed(effective):
        return None
    if effective.is_unspecified:
        return "an unspecified address"
    if effective.is_loopback:
        return "a loopback address"
    if effective.is_multicast:
        return "a multicast address"
    if effective == _BROADCAST:
        return "a broadcast address"
    if any(effective in network for network in _PRIVATE_NETWORKS):
        return "a private network address"
    if effective in _SHARED_NETWORK:
        return "a shared (carrier-grade NAT) address"
    if (
        not effective.is_global
        or effective.is_reserved
        or any(effective in network for network in _OTHER_NON_PUBLIC_NETWORKS)
    ):
        return "a reserved, documentation or otherwise non-public address"
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried by an IPv4-mapped, 6to4 or NAT64 IPv6 address, if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_allow_listed(address: IPAddress) -> bool:
    networks = getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", None) or ()
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in networks)

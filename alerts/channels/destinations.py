"""Which network destinations a channel may reach (the SSRF guard).

Channel URLs are typed by operators, but a worker inside the network must not become a
way to reach the cloud metadata service, the database or an admin port on loopback.
Addresses that are not public are refused unless an operator lists their network in
`TRADEWATCH_DELIVERY_ALLOWED_NETWORKS`. The same test runs twice: on save
(`destination_check`, for a clear message in the form) and again at connect time in the
HTTP transport, after DNS, on the very address the socket connects to.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never let through, whatever the allow-list says: credentials for the worker's own
# cloud role live there.
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_is_refused(ip: str | IPAddress) -> str | None:
    """Why a channel may not connect to `ip`, or None when it may."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    candidates = [address]
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries, first,
        # so the reason names what is really reached.
        candidates.insert(0, embedded)
    if any(candidate in _METADATA for candidate in candidates):
        return "the cloud metadata service"
    if any(_is_allowed(candidate) for candidate in candidates):
        return None
    for candidate in candidates:
        reason = _refusal(candidate)
        if reason is not None:
            return reason
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (one, for an IP literal), in resolver order.

    Raises `socket.gaierror` when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        # Strip an IPv6 zone ("fe80::1%eth0"): the address decides, not the interface.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def destination_check(url: str) -> None:
    """Refuse, with a message for the form, a URL a channel may not deliver to.

    Only http and https; a host is required; the host must resolve, and every address
    it resolves to must be allowed (`http://2130706433/`, `localhost` and names that
    resolve to loopback are refused like `127.0.0.1`).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"Not a valid URL: {exc}.", code="invalid") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Only http:// and https:// URLs are accepted.", code="scheme")
    host = parts.hostname
    if not host:
        raise ValidationError("The URL has no host.", code="host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    refusal = host_refusal(host, port)
    if refusal is not None:
        raise ValidationError(refusal, code="refused")


def host_refusal(host: str, port: int) -> str | None:
    """Why a channel may not connect to `host`, as a sentence for the operator, or None.

    Any spelling the C library reads as an IP literal (`0x7f000001`, `2130706433`,
    `0177.0.0.1`, `127.1`, `[::ffff:127.0.0.1]`) is judged as the address it is; a name
    must resolve, and every address it resolves to must be allowed.
    """
    host = _unbracketed(host.strip())
    if not host:
        return "The host is missing."
    try:
        addresses = resolve(host, port)
    except (socket.gaierror, UnicodeError, ValueError):
        return f"The host {host} does not resolve."
    for address in addresses:
        reason = address_is_refused(address)
        if reason is not None:
            return refused_message(host, address, reason)
    return None


def refused_message(host: str, address: IPAddress, reason: str) -> str:
    """The sentence naming a refused destination and the setting that can allow it."""
    what = (
        f"{host} is {reason}"
        if host == str(address)
        else (f"{host} resolves to {address}, which is {reason}")
    )
    allow = (
        ""
        if reason == "the cloud metadata service"
        else " (an operator can allow a network with TRADEWATCH_DELIVERY_ALLOWED_NETWORKS)"
    )
    return f"{what}; channels may not deliver there{allow}."


def numeric_address(host: str) -> IPAddress | None:
    """`host` read as an IP literal, in any spelling the C library accepts, or None.

    No DNS: `AI_NUMERICHOST` asks the resolver only to parse, so "0x7f000001" and
    "127.1" come back as 127.0.0.1 while a name comes back as None.
    """
    try:
        infos = socket.getaddrinfo(
            _unbracketed(host), None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def _unbracketed(host: str) -> str:
    # "[::1]" in a URL is "::1" to the resolver.
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _refusal(address: IPAddress) -> str | None:
    # Most specific first, so the message says what the address is.
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        # Shared (100.64.0.0/10), documentation and similar ranges: nothing public.
        return "not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_allowed(address: IPAddress) -> bool:
    return any(
        address.version == network.version and address in network
        for network in _allowed_networks(tuple(settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS))
    )


@lru_cache(maxsize=8)
def _allowed_networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # Keyed on the setting's value, so tests that change it see the change.
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr)

"""Where a webhook may go: only to public internet addresses, unless the operator allows
private ones (a gateway inside their own network). Checked on the configured URL at start
(a literal private IP, or ``localhost``, is a configuration error) and again on the
addresses the name resolves to at every send, and the request then goes to the address that
was checked, so DNS rebinding cannot point a send at an internal service."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; injectable for tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeTarget(ValueError):
    """The target is not a public http(s) address (and private ones are not allowed)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # without brackets for IPv6
    port: int


def parse(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("the webhook URL must be http:// or https://")
    if not parts.hostname:
        raise UnsafeTarget("the webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeTarget("the webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget("the webhook URL has an invalid port") from exc
    return Target(url=url, scheme=parts.scheme, host=parts.hostname.lower(), port=port)


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address: not private, loopback, link-local, shared
    (CGNAT), reserved, multicast, unspecified, documentation, …"""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_configured(url: str, *, allow_private: bool) -> Target:
    """At start: a well-formed http(s) URL, and not a literal private address or a
    ``localhost`` name unless private targets are allowed."""
    target = parse(url)
    if allow_private:
        return target
    address = literal_address(target.host)
    if address is not None and not is_public(address):
        raise UnsafeTarget(f"{target.host} is not a public address")
    if target.host == "localhost" or target.host.endswith(".localhost"):
        raise UnsafeTarget(f"{target.host} is a loopback name")
    return target


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def public_addresses(target: Target, resolver: Resolver | None = None) -> list[str]:
    """At send time: every address the host resolves to must be public (an attacker who
    controls DNS may answer with a mix); raises UnsafeTarget otherwise."""
    literal = literal_address(target.host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await (resolver or resolve)(target.host, target.port)
        except OSError as exc:
            raise UnsafeTarget(f"cannot resolve {target.host}: {exc}") from exc
    if not addresses:
        raise UnsafeTarget(f"{target.host} resolves to no address")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public(address):
            raise UnsafeTarget(f"{target.host} resolves to {address}, not a public address")
    return addresses

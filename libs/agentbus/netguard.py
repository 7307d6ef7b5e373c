"""Where a request to a URL the model chose may connect: the guard against server-side request forgery
(the reasoner's ``http_fetch`` tool; egress fetching an image the model attached, for a platform that wants
the bytes).

The model chooses the URL, and the model reads whatever a chat message or a fetched page told it, so a URL
is untrusted input aimed at the reasoner's own network: the cloud metadata address, the broker, the
database, an admin port on loopback. Every address a host name resolves to is checked (one bad address
refuses the host: a resolver may hand out any of them), and the connection is then made to a checked
address only (see ``http_fetch``), so a name that resolves differently a moment later (DNS rebinding)
cannot redirect it. ``ipaddress``'s ``is_global`` alone is not enough on Python 3.11: it calls multicast
and 6to4 (``2002::/16``) addresses global, and an IPv6 address can carry an IPv4 one inside it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from ipaddress import IPv4Address, IPv6Address

from yarl import URL

IPAddress = IPv4Address | IPv6Address
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]  # host, port -> the addresses it resolves to

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): not global, not "private"
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Refused(Exception):
    """A URL or address the tool will not contact; the message is what the model reads after 'refused: '."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded(addr: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 one stands for, if any (a connection may well end up there)."""
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr.teredo is not None:
        return "Teredo", addr.teredo[1]
    if any(addr in net for net in _NAT64):
        return "NAT64", IPv4Address(int(addr) & 0xFFFFFFFF)
    if int(addr) >> 32 == 0 and int(addr) > 1:  # ::a.b.c.d, the deprecated IPv4-compatible form
        return "IPv4-compatible", IPv4Address(int(addr))
    return None


def refusal(addr: IPAddress) -> str | None:
    """Why the tool will not connect to ``addr`` ("a loopback address"), or None for a public address."""
    if isinstance(addr, IPv6Address):
        if addr.scope_id:
            addr = IPv6Address(str(addr).split("%")[0])
        inner = _embedded(addr)
        if inner is not None:
            why = refusal(inner[1])
            if why is not None:
                return f"{why} ({inner[0]} {inner[1]})"
            if inner[0] != "IPv4-compatible":  # a public IPv4 address by another route (DNS64, dual stack)
                return None
    if addr.is_unspecified:
        return "an unspecified address"
    if addr.is_loopback:
        return "a loopback address"
    if addr in _METADATA:
        return "the cloud metadata address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if isinstance(addr, IPv4Address) and addr in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if addr.is_private:
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    if not addr.is_global:
        return "not a public address"
    return None


def _loopback(addr: IPAddress) -> bool:
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _ascii_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return URL.build(scheme="http", host=host).raw_host or host
    except ValueError:
        return host


def host_allowed(host: str, patterns: Collection[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: exact names, or ``*.example.com`` for any name below
    example.com (not example.com itself). No patterns: any host (its addresses are still checked)."""
    if not patterns:
        return True
    host = _ascii_host(host)
    for pattern in patterns:
        if pattern.startswith("*."):
            suffix = "." + _ascii_host(pattern[2:])
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == _ascii_host(pattern):
            return True
    return False


def parse_url(raw: str) -> URL:
    """An absolute http(s) URL with a host and no credentials, or ``Refused`` saying what is wrong."""
    try:
        url = URL(raw.strip())
    except (ValueError, TypeError) as err:
        raise Refused(f"not a valid URL: {err}") from None
    if url.scheme not in ("http", "https"):
        raise Refused(f"only http and https URLs are fetched, not {url.scheme or 'a relative URL'}:")
    if not url.raw_host:
        raise Refused(f"{raw!r} has no host")
    if url.user is not None or url.password is not None:
        raise Refused("URLs with credentials in them are not fetched")
    return url


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def checked_addresses(host: str, port: int, resolve: Resolve, allow_loopback: bool = False) -> list[str]:
    """The addresses of ``host`` the tool may connect to: all of them, each one checked, or ``Refused``.

    ``allow_loopback`` lets loopback addresses through (and nothing else): tests serve pages on 127.0.0.1."""
    literal = _literal(host)
    if literal is not None:
        found: Sequence[str] = [str(literal)]
    else:
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError) as err:
            raise Refused(f"cannot resolve {host}: {err}") from None
        if not found:
            raise Refused(f"{host} resolves to no address")
    out: list[str] = []
    for text in found:
        try:
            addr = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            raise Refused(f"{host} resolves to {text!r}, which is not an IP address") from None
        why = refusal(addr)
        if why is not None and not (allow_loopback and _loopback(addr)):
            raise Refused(f"{addr} is {why}" if literal is not None else f"{host} resolves to {addr}, {why}")
        if str(addr) not in out:
            out.append(str(addr))
    return out

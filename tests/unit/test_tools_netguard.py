"""The SSRF guard's rules: which addresses, hosts and URLs ``http_fetch`` refuses, and why (the reason is
what the model reads)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from agentbus.netguard import (
    Refused,
    checked_addresses,
    host_allowed,
    parse_url,
    refusal,
)
from tests.support.pages import Resolver


@pytest.mark.parametrize(("addr", "why"), [
    ("127.0.0.1", "a loopback address"),
    ("127.45.6.7", "a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "the cloud metadata address"),
    ("fd00:ec2::254", "the cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%2", "a link-local address"),
    ("224.0.0.1", "a multicast address"),  # is_global says True for this one on Python 3.11
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("100.127.255.254", "a shared (carrier-grade NAT) address"),
    ("240.0.0.1", "a private address"),
    ("255.255.255.255", "a private address"),
    ("198.18.0.1", "a private address"),
    ("192.0.2.1", "a private address"),
    ("2001:db8::1", "a private address"),
    ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped 127.0.0.1)"),
    ("::ffff:169.254.169.254", "the cloud metadata address (IPv4-mapped 169.254.169.254)"),
    ("::ffff:10.0.0.1", "a private address (IPv4-mapped 10.0.0.1)"),
    ("2002:7f00:1::", "a loopback address (6to4 127.0.0.1)"),  # is_global says True
    ("2002:a9fe:a9fe::1", "the cloud metadata address (6to4 169.254.169.254)"),
    ("64:ff9b::a00:1", "a private address (NAT64 10.0.0.1)"),
    ("::127.0.0.1", "a loopback address (IPv4-compatible 127.0.0.1)"),
    ("::8.8.8.8", "a reserved address"),
])
def test_internal_addresses_are_refused_with_the_reason(addr: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(addr)) == why


@pytest.mark.parametrize("addr", ["8.8.8.8", "93.184.215.14", "1.1.1.1", "100.63.255.255", "100.128.0.0",
                                  "172.32.0.1", "2606:4700::1111", "2a00:1450:4001::200e",
                                  "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_pass(addr: str) -> None:
    assert refusal(ipaddress.ip_address(addr)) is None


async def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    dns = Resolver({"mixed.test": ["93.184.215.14", "2606:4700::1111", "10.0.0.7"]})
    with pytest.raises(Refused, match=r"^mixed.test resolves to 10.0.0.7, a private address$"):
        await checked_addresses("mixed.test", 80, dns)


async def test_all_public_addresses_are_returned_once_each() -> None:
    dns = Resolver({"pub.test": ["93.184.215.14", "2606:4700::1111", "93.184.215.14"]})
    assert await checked_addresses("pub.test", 443, dns) == ["93.184.215.14", "2606:4700::1111"]
    assert dns.asked == ["pub.test"]


async def test_an_ip_literal_is_checked_without_asking_dns() -> None:
    dns = Resolver({})
    with pytest.raises(Refused, match=r"^127.0.0.1 is a loopback address$"):
        await checked_addresses("127.0.0.1", 80, dns)
    with pytest.raises(Refused, match=r"^::ffff:a9fe:a9fe is the cloud metadata address"):
        await checked_addresses("[::ffff:169.254.169.254]", 80, dns)
    assert dns.asked == []


async def test_a_name_that_does_not_resolve_or_resolves_to_nothing_is_refused() -> None:
    dns = Resolver({"empty.test": []})
    with pytest.raises(Refused, match=r"^cannot resolve nowhere.test"):
        await checked_addresses("nowhere.test", 80, dns)
    with pytest.raises(Refused, match=r"^empty.test resolves to no address$"):
        await checked_addresses("empty.test", 80, dns)


async def test_the_test_allowance_lets_loopback_through_and_nothing_else() -> None:
    dns = Resolver({"local.test": ["127.0.0.1", "::1"], "lan.test": ["127.0.0.1", "192.168.0.2"]})
    assert await checked_addresses("local.test", 80, dns, allow_loopback=True) == ["127.0.0.1", "::1"]
    with pytest.raises(Refused, match="192.168.0.2, a private address"):
        await checked_addresses("lan.test", 80, dns, allow_loopback=True)
    with pytest.raises(Refused, match="127.0.0.1, a loopback address"):
        await checked_addresses("local.test", 80, dns)


@pytest.mark.parametrize(("host", "patterns", "ok"), [
    ("example.com", (), True),
    ("example.com", ("example.com",), True),
    ("Example.COM.", ("example.com",), True),
    ("www.example.com", ("example.com",), False),
    ("www.example.com", ("*.example.com",), True),
    ("a.b.example.com", ("*.example.com",), True),
    ("example.com", ("*.example.com",), False),
    ("evilexample.com", ("*.example.com",), False),
    ("example.com.evil.net", ("example.com", "*.example.com"), False),
    ("xn--bcher-kva.example", ("bücher.example",), True),
    ("docs.python.org", ("example.com", "*.python.org"), True),
])
def test_allowed_hosts_are_exact_names_or_subdomain_patterns(host: str, patterns: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, patterns) is ok


@pytest.mark.parametrize(("url", "why"), [
    ("file:///etc/passwd", "only http and https URLs are fetched, not file:"),
    ("gopher://example.com/", "only http and https URLs are fetched, not gopher:"),
    ("ftp://example.com/x", "only http and https URLs are fetched"),
    ("/relative/path", "only http and https URLs are fetched, not a relative URL"),
    ("http://user:pw@example.com/", "URLs with credentials in them are not fetched"),
    ("http:///nohost", "has no host"),
])
def test_urls_other_than_plain_http_are_refused(url: str, why: str) -> None:
    with pytest.raises(Refused, match=re.escape(why)):
        parse_url(url)


def test_a_plain_url_is_parsed_with_its_host_in_ascii() -> None:
    url = parse_url("  https://Bücher.example:8443/a b?q=1 ")
    assert (url.scheme, url.raw_host, url.port) == ("https", "xn--bcher-kva.example", 8443)

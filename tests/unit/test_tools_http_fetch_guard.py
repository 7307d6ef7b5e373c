"""``http_fetch`` refuses internal addresses before connecting: names resolving to them, literals, redirects
to them, hosts outside the agent's allowlist, and names that resolve differently on a second look.

A fake DNS answers the names; the one real server is on loopback, allowed only under the names the test
grants. Every connection is watched: one to anything but loopback fails the test (``jail_sockets``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentbus.config import HttpFetchSettings
from agentbus.netguard import system_resolve
from agentbus.services.reasoner.tools.http_fetch import HttpFetch
from tests.support.pages import PageServer, Resolver, jail_sockets
from tests.support.toolctx import tool_context

BAD = {
    "internal.test": ["10.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "loop.test": ["127.0.0.1"],
    "cgnat.test": ["100.64.3.4"],
    "mixed.test": ["93.184.215.14", "fe80::1"],
}


@pytest.fixture(scope="module")
async def pages() -> AsyncIterator[PageServer]:
    server = await PageServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def connected(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    return jail_sockets(asyncio.get_running_loop(), monkeypatch)


def tool(dns: Resolver, allowed: tuple[str, ...] = (), **settings: Any) -> HttpFetch:
    return HttpFetch(HttpFetchSettings(**settings), resolve=dns, allow_loopback_for_tests=frozenset(allowed))


async def fetch(t: HttpFetch, url: Any) -> tuple[str, bool]:
    result = await t.call({"url": url}, tool_context())
    return result.content, result.is_error


@pytest.mark.parametrize(("host", "why"), [
    ("internal.test", "internal.test resolves to 10.0.0.1, a private address"),
    ("meta.test", "meta.test resolves to 169.254.169.254, the cloud metadata address"),
    ("mapped.test", "mapped.test resolves to ::ffff:7f00:1, a loopback address (IPv4-mapped 127.0.0.1)"),
    ("loop.test", "loop.test resolves to 127.0.0.1, a loopback address"),
    ("cgnat.test", "cgnat.test resolves to 100.64.3.4, a shared (carrier-grade NAT) address"),
    ("mixed.test", "mixed.test resolves to fe80::1, a link-local address"),
])
async def test_a_name_resolving_to_an_internal_address_is_refused_unconnected(
        host: str, why: str, connected: list[Any]) -> None:
    assert await fetch(tool(Resolver(BAD)), f"http://{host}/latest/meta-data/") == (f"refused: {why}", True)
    assert connected == []


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
    ("http://[::1]:8080/", "::1 is a loopback address"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1 is a private address (IPv4-mapped 10.0.0.1)"),
    ("http://0.0.0.0:9092/", "0.0.0.0 is an unspecified address"),
    ("http://192.168.1.1/admin", "192.168.1.1 is a private address"),
])
async def test_an_internal_ip_literal_is_refused_unconnected(url: str, why: str, connected: list[Any]) -> None:
    dns = Resolver({})
    assert await fetch(tool(dns), url) == (f"refused: {why}", True)
    assert connected == [] and dns.asked == []


@pytest.mark.parametrize(("host", "why"), [
    ("localhost", "localhost resolves to"),
    ("2130706433", "2130706433 resolves to 127.0.0.1, a loopback address"),  # the decimal form of 127.0.0.1
    ("0x7f.1", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
])
async def test_the_system_resolver_s_answers_are_checked_too(
        host: str, why: str, pages: PageServer, connected: list[Any]) -> None:
    content, error = await fetch(HttpFetch(resolve=system_resolve), pages.url("/json", host))
    assert error and content.startswith(f"refused: {why}") and "loopback" in content
    assert connected == [] and pages.hosts == []


async def test_the_test_server_is_refused_without_the_test_allowance(pages: PageServer, connected: list[Any]) -> None:
    content, error = await fetch(tool(Resolver({})), pages.url("/json"))
    assert (content, error) == ("refused: 127.0.0.1 is a loopback address", True)
    content, error = await fetch(tool(Resolver({}), allowed=("127.0.0.1",)), pages.url("/json"))
    assert not error and '"city":"Berlin"' in content
    assert [a[0] for a in connected] == ["127.0.0.1"]


@pytest.mark.parametrize(("target", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
    ("http://meta.test/", "meta.test resolves to 169.254.169.254, the cloud metadata address"),
    ("http://internal.test:5432/", "internal.test resolves to 10.0.0.1, a private address"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address (IPv4-mapped 127.0.0.1)"),
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),  # site.test's address, but by another name
    ("file:///etc/passwd", "only http and https URLs are fetched, not file:"),
])
async def test_a_redirect_to_an_internal_address_is_refused(
        target: str, why: str, pages: PageServer, connected: list[Any]) -> None:
    dns = Resolver({**BAD, "site.test": ["127.0.0.1"]})
    seen = len(pages.hosts)
    url = pages.url("/redirect", "site.test") + "?to=" + target
    assert await fetch(tool(dns, allowed=("site.test",)), url) == (f"refused: {why}", True)
    assert pages.hosts[seen:] == [f"site.test:{pages.port}"]  # the first hop was made, the second not
    assert {a[0] for a in connected} == {"127.0.0.1"}


async def test_hosts_outside_the_agent_s_allowlist_are_refused_unresolved(
        pages: PageServer, connected: list[Any]) -> None:
    dns = Resolver({"site.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    t = tool(dns, allowed=("site.test", "other.test"), allow_hosts=("site.test",))
    content, error = await fetch(t, pages.url("/json", "other.test"))
    assert (content, error) == ("refused: other.test is not among this agent's allowed hosts", True)
    assert dns.asked == []
    redirect = pages.url("/redirect", "site.test") + "?to=" + pages.url("/json", "other.test")
    content, error = await fetch(t, redirect)
    assert (content, error) == ("refused: other.test is not among this agent's allowed hosts", True)
    assert dns.asked == ["site.test"]
    content, error = await fetch(t, pages.url("/json", "site.test"))
    assert not error and "Berlin" in content


async def test_the_connection_goes_to_the_checked_address_under_the_original_name(
        pages: PageServer, connected: list[Any]) -> None:
    """DNS rebinding: the name resolves to a checked address, then to an internal one. The request goes to
    the address that was checked (the name is resolved once per hop, by the guard), and a later hop is
    checked afresh."""
    answers = [["127.0.0.1"], ["10.0.0.9"], ["10.0.0.9"]]

    async def rebinding(host: str, port: int) -> list[str]:
        assert host == "rebind.test"
        return answers.pop(0)

    t = HttpFetch(resolve=rebinding, allow_loopback_for_tests=frozenset({"rebind.test"}))
    content, error = await fetch(t, pages.url("/host", "rebind.test"))
    assert not error and content.endswith(f"host=rebind.test:{pages.port}")  # .test has no DNS: pinned
    assert len(answers) == 2
    content, error = await fetch(t, pages.url("/chain/1", "rebind.test"))
    assert (content, error) == ("refused: rebind.test resolves to 10.0.0.9, a private address", True)
    assert {a[0] for a in connected} == {"127.0.0.1"}


@pytest.mark.parametrize("arguments", [{}, {"url": 5}, {"url": ""}, {"url": "http://x.test", "method": "POST"}])
async def test_bad_arguments_are_an_error_result(arguments: dict[str, Any], connected: list[Any]) -> None:
    result = await tool(Resolver({})).call(arguments, tool_context())
    assert result.is_error and result.content.startswith("invalid arguments: ")
    assert connected == []


def test_the_model_is_told_the_tool_changes_nothing_and_takes_a_url() -> None:
    t = HttpFetch()
    assert (t.name, t.side_effects) == ("http_fetch", False)
    assert t.parameters["required"] == ["url"] and t.parameters["additionalProperties"] is False

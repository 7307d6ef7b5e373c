"""``http_fetch``: the model reads a web page or a JSON document (GET only, so it changes nothing).

The SSRF guard (``netguard``) decides which addresses are public; this module makes sure the request goes
only there. aiohttp is given a resolver that never resolves: it answers with the addresses checked for this
hop, so the connection is made to a checked address while the URL's host still names the request (Host
header, TLS SNI and certificate check). A socket factory refuses any other address as a second line.
Redirects are followed here, not by aiohttp, each hop checked like the first. The limits (bytes read, one
deadline for the whole fetch, readable content types, the agent's ``allow_hosts``) come from the agent's
``tool_settings.http_fetch``. Every refusal or failure is an error result the model reads.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from agentbus.config import Agent, HttpFetchSettings
from agentbus.logs import get_logger
from agentbus.netguard import (
    Refused,
    Resolve,
    checked_addresses,
    host_allowed,
    parse_url,
    system_resolve,
)
from agentbus.services.reasoner.tools.base import ToolContext, ToolError, ToolResult, TypedTool
from agentbus.services.reasoner.tools.readable import is_readable, readable_text

log = get_logger(__name__)

MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
_HEADERS = {
    "User-Agent": "agentbus-http-fetch/0.1",
    "Accept": "text/html, application/xhtml+xml, application/json, text/plain;q=0.9, */*;q=0.1",
}


class FetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=4096, description="absolute http:// or https:// URL to GET")


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    status: int
    reason: str
    media_type: str
    text: str
    truncated: bool


class _PinnedResolver(AbstractResolver):
    """Answers aiohttp with the checked addresses of each host of this fetch, and nothing else."""

    def __init__(self) -> None:
        self.checked: dict[str, list[str]] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = self.checked.get(host)
        if not addresses:
            raise OSError(f"{host} was not checked before connecting")
        return [ResolveResult(hostname=host, host=a, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET) for a in addresses]

    async def close(self) -> None:
        return None

    def socket_for(self, info: AddrInfoType) -> socket.socket:
        """The connector's socket factory: refuses to connect anywhere that was not checked."""
        family, kind, proto, _, address = info
        if not any(str(address[0]) in addrs for addrs in self.checked.values()):
            raise OSError(f"refused: {address[0]} was not checked before connecting")
        return socket.socket(family=family, type=kind, proto=proto)


class HttpFetch(TypedTool[FetchArgs]):
    name: ClassVar[str] = "http_fetch"
    description: ClassVar[str] = (
        "Fetch a public web page or document by URL (HTTP GET) and return its text: HTML reduced to readable "
        "text, plain text and JSON as they are. Long documents are cut off. Private and internal network "
        "addresses are refused.")
    side_effects: ClassVar[bool] = False
    args: ClassVar[type[BaseModel]] = FetchArgs

    def __init__(self, settings: HttpFetchSettings | None = None, *, resolve: Resolve = system_resolve,
                 allow_loopback_for_tests: Collection[str] = frozenset(),
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """``allow_loopback_for_tests`` names hosts whose loopback addresses may be contacted (the tests' own
        servers); configuration cannot set it. ``ssl_context`` replaces the system's trust store (tests)."""
        self.settings = settings or HttpFetchSettings()
        self._resolve = resolve
        self._loopback_ok = frozenset(h.lower() for h in allow_loopback_for_tests)
        self._ssl = ssl_context

    def bind(self, agent: Agent) -> HttpFetch:
        """The tool with this agent's limits and allowed hosts."""
        return HttpFetch(agent.tool_settings.http_fetch, resolve=self._resolve,
                         allow_loopback_for_tests=self._loopback_ok, ssl_context=self._ssl)

    async def run(self, args: FetchArgs, ctx: ToolContext) -> ToolResult:
        timeout = self.settings.timeout_s
        try:
            async with asyncio.timeout(timeout):
                page = await self.fetch(args.url)
        except Refused as err:
            log.info("http_fetch_refused", agent=ctx.agent, reason=str(err))
            raise ToolError(f"refused: {err}") from None
        except TimeoutError:
            raise ToolError(f"timed out after {timeout:g} s fetching {args.url}") from None
        except aiohttp.ClientError as err:
            raise ToolError(f"could not fetch {args.url}: {type(err).__name__}: {err}") from None
        log.info("http_fetch_done", agent=ctx.agent, status=page.status, media_type=page.media_type,
                 chars=len(page.text), truncated=page.truncated)
        return ToolResult(self.render(page), is_error=page.status >= 400)

    def render(self, page: Page) -> str:
        head = f"{page.url}\nHTTP {page.status} {page.reason}, {page.media_type}\n\n"
        tail = (f"\n\n[truncated: only the first {self.settings.max_bytes} bytes of the document were read]"
                if page.truncated else "")
        return head + page.text + tail

    async def fetch(self, raw_url: str) -> Page:
        """GET ``raw_url``, following at most ``MAX_REDIRECTS`` redirects, each hop checked; ``Refused``
        when a hop may not be contacted or the answer is not readable."""
        url = parse_url(raw_url)
        pinned = _PinnedResolver()
        connector = aiohttp.TCPConnector(resolver=pinned, use_dns_cache=False, force_close=True,
                                         ssl=self._ssl if self._ssl is not None else True,
                                         socket_factory=pinned.socket_for)
        async with aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                         timeout=aiohttp.ClientTimeout(total=None)) as session:
            for _hop in range(MAX_REDIRECTS + 1):
                await self._check(url, pinned)
                async with session.get(url, headers=_HEADERS, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        url = self._next(url, resp)
                        continue
                    return await self._read(url, resp)
        raise Refused(f"more than {MAX_REDIRECTS} redirects, the last to {url}")

    async def _check(self, url: URL, pinned: _PinnedResolver) -> None:
        host = url.raw_host or ""
        if not host_allowed(host, self.settings.allow_hosts):
            raise Refused(f"{host} is not among this agent's allowed hosts")
        port = url.explicit_port or (443 if url.scheme == "https" else 80)
        pinned.checked[host] = await checked_addresses(host, port, self._resolve,
                                                       allow_loopback=host.lower() in self._loopback_ok)

    @staticmethod
    def _next(url: URL, resp: aiohttp.ClientResponse) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise Refused(f"{url} answered {resp.status} without a Location to go to")
        try:
            target = url.join(URL(location))
        except ValueError as err:
            raise Refused(f"{url} redirects to an invalid URL: {err}") from None
        return parse_url(str(target))

    async def _read(self, url: URL, resp: aiohttp.ClientResponse) -> Page:
        if "Content-Type" not in resp.headers:
            raise Refused(f"{url} answered without a content type")
        media_type = resp.content_type.lower()
        if not is_readable(media_type):
            raise Refused(f"{url} is {media_type}: only text, HTML, XML and JSON are read")
        body, truncated = await _read_capped(resp, self.settings.max_bytes)
        return Page(url=str(url), status=resp.status, reason=resp.reason or "", media_type=media_type,
                    text=readable_text(body, media_type, resp.charset), truncated=truncated)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decompressed) body; reading stops one byte past the limit."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = await resp.content.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    body = b"".join(chunks)
    return body[:limit], total > limit


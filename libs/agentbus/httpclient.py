"""The services' outbound HTTP client: httpx's API over aiohttp's connection pool.

Measured on this code's loopback benchmark (32 concurrent POSTs, server in the same process), httpx's
default transport (httpcore on anyio) cost 2.15 ms of CPU per request; the same httpx client over
aiohttp cost 0.35 ms. The channel adapters, the LLM client and the embeddings client keep httpx's
request/response API and exceptions; only the transport changes.

One correction to the transport's exception mapping: httpx-aiohttp reports every failed or lost connection
as ``httpx.ConnectTimeout``, including a connection the server dropped after the request was sent. Egress
treats connect errors as "the request never left" (safe to retry without a duplicate), so a refused
connection is reported as ``httpx.ConnectError`` and a drop after connecting as ``httpx.ReadError``: the
outcome is unknown.

The plain requests the services make (a body, headers, query parameters, a timeout) skip httpx's request and
response machinery and go to aiohttp's pool directly: measured on a loopback POST of 1 KB (server in another
process), 0.29 ms of CPU per request through ``httpx.AsyncClient`` over aiohttp, 0.10 ms straight to
aiohttp. Such a request answers with an ``Answer``, which reads like an ``httpx.Response`` (``status_code``,
``headers``, ``content``, ``text``, ``json()``), and fails with httpx's exceptions, mapped as above. Anything
else (files, form data, auth, redirects, a mounted transport or proxy) takes httpx's own path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import orjson
from httpx._client import USE_CLIENT_DEFAULT
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from multidict import CIMultiDictProxy


@contextlib.contextmanager
def _mapped(request: httpx.Request | None = None) -> Iterator[None]:
    """aiohttp's exceptions as httpx's, with the correction above: a refused connection is a ``ConnectError``,
    a connection lost after the request was sent a ``ReadError``."""
    try:
        with map_aiohttp_exceptions():
            yield
    except httpx.ConnectTimeout as exc:
        cause = exc.__cause__
        if cause is None or isinstance(cause, aiohttp.ConnectionTimeoutError):
            raise
        message = str(exc) or type(cause).__name__
        if isinstance(cause, aiohttp.ClientConnectorError):  # never connected: nothing was sent
            raise httpx.ConnectError(message, request=request) from cause
        raise httpx.ReadError(message, request=request) from cause


class _Transport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            return await super().handle_async_request(request)

    def get_client(self) -> aiohttp.ClientSession:
        """The transport's own session, with a cookie jar that keeps nothing (see ``_Client``): aiohttp's
        default jar stores a response's cookies and sends them with later requests to that host. It honours
        ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (read per request), as enterprise networks need: httpx
        reads them only for its own transports, so the session underneath has to."""
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 100, keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=True)

    def session(self) -> aiohttp.ClientSession:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client


class Answer:
    """A response read in full, with the part of ``httpx.Response``'s interface the services use."""

    __slots__ = ("status_code", "headers", "content", "url")

    def __init__(self, status_code: int, headers: CIMultiDictProxy[str], content: bytes, url: str) -> None:
        self.status_code = status_code
        self.headers = headers  # case-insensitive, like httpx.Headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # an unknown charset
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)  # a ValueError when it is not JSON, as with httpx

    def __repr__(self) -> str:
        return f"<Answer [{self.status_code}]>"


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: ``Set-Cookie`` in a response is not stored, so it is never sent again."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.AsyncClient):
    """The platforms' APIs authenticate every request with a token or a signature, never a session cookie.
    One client serves every tenant of a platform, so a stored cookie would be sent with other tenants'
    requests; and httpx parses each response for cookies through urllib's request objects, which cost egress
    6% of its CPU. No cookie is stored, by httpx's jar or by aiohttp's underneath it."""

    _jar: _NoCookies | None = None

    @property
    def cookies(self) -> httpx.Cookies:
        if self._jar is None:
            self._jar = _NoCookies()
        return self._jar

    @cookies.setter
    def cookies(self, _: Any) -> None:
        return None

    async def request(  # type: ignore[override]  # answers with a lighter response on the direct path
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: bytes | None = None,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
        **other: Any,
    ) -> httpx.Response | Answer:
        plain = (
            not any(v is not None and v is not USE_CLIENT_DEFAULT and v is not False for v in other.values())
            and (content is None or isinstance(content, bytes))
            and isinstance(url, str)
            and (headers is None or isinstance(headers, dict))
            and self._plain()
        )
        if not plain:
            return await super().request(method, url, content=content, json=json, params=params, headers=headers,
                                         timeout=timeout, **other)
        sent = dict(self._base_headers())
        if headers:
            sent.update({k.lower(): v for k, v in headers.items()})
        if json is not None and content is None:  # as httpx: a given body wins over json
            content = orjson.dumps(json)
            sent.setdefault("content-type", "application/json")
        assert isinstance(url, str)  # ``plain`` above
        target = self._target(url)
        with _mapped():
            async with self._transport.session().request(  # type: ignore[attr-defined]  # httpx-aiohttp's own
                method, target, data=content, params=params, headers=sent, timeout=self._aiohttp_timeout(timeout),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
        return Answer(resp.status, resp.headers, body, target)

    def _plain(self) -> bool:
        """No mounted transport or proxy, no auth, no redirects, no event hooks: the direct path is then
        equivalent to httpx's."""
        return (
            isinstance(self._transport, _Transport)
            and not self._mounts
            and self.auth is None
            and not self.follow_redirects
            and not self.event_hooks["request"]
            and not self.event_hooks["response"]
        )

    def _base_headers(self) -> dict[str, str]:
        cached = self.__dict__.get("_sent_headers")
        if cached is None or cached[0] is not self.headers:
            fixed = {k.lower(): v for k, v in self.headers.items()}
            # aiohttp decodes what it asked for; httpx's default list may name codings aiohttp cannot decode
            fixed["accept-encoding"] = "gzip, deflate"
            cached = self.__dict__["_sent_headers"] = (self.headers, fixed)
        return cached[1]

    def _target(self, url: str) -> str:
        targets: dict[str, str] = self.__dict__.setdefault("_targets", {})
        target = targets.get(url)
        if target is None:
            target = str(self._merge_url(url))
            if len(targets) < 1024:
                targets[url] = target
        return target

    def _aiohttp_timeout(self, timeout: Any) -> aiohttp.ClientTimeout:
        if timeout is USE_CLIENT_DEFAULT:
            key: Any = ("client", id(self.timeout))
        elif timeout is None or isinstance(timeout, (int, float)):
            key = timeout
        else:
            key = ("timeout", *httpx.Timeout(timeout).as_dict().values())
        cache: dict[Any, aiohttp.ClientTimeout] = self.__dict__.setdefault("_timeouts", {})
        mapped = cache.get(key)
        if mapped is None:  # as the transport maps an httpx timeout
            chosen = self.timeout if timeout is USE_CLIENT_DEFAULT else httpx.Timeout(timeout)
            mapped = cache[key] = aiohttp.ClientTimeout(
                sock_connect=chosen.connect, sock_read=chosen.read, connect=chosen.pool
            )
        return mapped


def async_client(*, timeout: float, max_connections: int, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (``base_url``, ``headers``... pass through) on the aiohttp transport, with at
    most ``max_connections`` open connections, idle ones kept alive, and no cookie jar."""
    return _Client(transport=_Transport(limits=httpx.Limits(max_connections=max_connections)),
                   timeout=timeout, **kwargs)


class TooLarge(Exception):
    """A response body over the caller's limit: ``declared`` is the Content-Length that said so before
    anything was read (None: the limit was passed while reading)."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit
        self.declared = declared


async def read_capped(resp: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, read at most ``limit`` bytes far: an announced larger size is refused
    before reading, and a body that passes the limit stops being read there (a header is not trusted)."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit, int(declared))
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(limit)
    return bytes(buf)

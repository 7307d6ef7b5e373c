"""Outbound HTTP honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY: a small proxy on loopback records what reaches it.

The services' shared client (``agentbus.httpclient``: channel pushes, LLM and embeddings calls, the identity
providers) is checked on both of its paths (aiohttp directly, and httpx over aiohttp).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentbus.http import LoopbackServer
from agentbus.httpclient import async_client


@asynccontextmanager
async def recording_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP proxy that answers absolute-form requests itself and refuses CONNECT; records request lines."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        seen.append(line)
        if line.startswith("CONNECT "):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
                         b"Connection: close\r\n\r\nproxied")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_plain_http_goes_through_http_proxy_on_both_paths_of_the_client(no_proxy_env: pytest.MonkeyPatch) -> None:
    async with recording_proxy() as (proxy, seen):
        no_proxy_env.setenv("HTTP_PROXY", proxy)
        client = async_client(timeout=5.0, max_connections=4)
        try:
            direct = await client.post("http://llm.corp.invalid/v1/chat", json={"x": 1})
            via_httpx = await client.get("http://push.corp.invalid/hook", follow_redirects=True)
        finally:
            await client.aclose()
    assert direct.status_code == 200 and direct.text == "proxied" and via_httpx.text == "proxied"
    assert seen == ["POST http://llm.corp.invalid/v1/chat HTTP/1.1", "GET http://push.corp.invalid/hook HTTP/1.1"]


async def test_https_is_tunnelled_with_connect_through_https_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    async with recording_proxy() as (proxy, seen):
        no_proxy_env.setenv("HTTPS_PROXY", proxy)
        client = async_client(timeout=5.0, max_connections=4)
        try:
            with pytest.raises(httpx.HTTPError):  # the recording proxy refuses the tunnel
                await client.post("https://open.feishu.cn/open-apis/authen/v2/oauth/token", json={})
        finally:
            await client.aclose()
    assert [line.split(" ")[:2] for line in seen] == [["CONNECT", "open.feishu.cn:443"]]


async def test_no_proxy_hosts_are_reached_directly(no_proxy_env: pytest.MonkeyPatch) -> None:
    async def hello(_: Request) -> PlainTextResponse:
        return PlainTextResponse("direct")

    target = LoopbackServer([Route("/hello", hello)])
    await target.start()
    try:
        async with recording_proxy() as (proxy, seen):
            no_proxy_env.setenv("HTTP_PROXY", proxy)
            no_proxy_env.setenv("NO_PROXY", "127.0.0.1,localhost")
            client = async_client(timeout=5.0, max_connections=4)
            try:
                resp = await client.get(target.url + "/hello")
            finally:
                await client.aclose()
    finally:
        await target.stop()
    assert resp.text == "direct" and seen == []

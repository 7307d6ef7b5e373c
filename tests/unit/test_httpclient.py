"""The services' HTTP client over real sockets: answers, and how failures are reported, since egress decides
from the exception whether a push may have reached the platform."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from agentbus.httpclient import async_client
from agentbus.services.egress.channels.base import transport_failure


async def serve(reply: bytes | None) -> tuple[asyncio.Server, str, list[bytes]]:
    """A raw HTTP/1.1 peer: reads one request, then answers ``reply`` or drops the connection."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                       if h.lower().startswith(b"content-length")), 0)
        seen.append(head + await reader.readexactly(length))
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen


async def test_a_post_is_sent_and_answered() -> None:
    server, url, seen = await serve(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                                    b"Retry-After: 3\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
    async with server, async_client(timeout=5, max_connections=4, headers={"X-Test": "1"}) as client:
        resp = await client.post(url + "/hook", json={"text": "hi"})
    assert resp.status_code == 201 and resp.json() == {"ok": True} and resp.headers["retry-after"] == "3"
    assert seen[0].startswith(b"POST /hook HTTP/1.1") and b"x-test: 1" in seen[0].lower()
    assert seen[0].endswith(b'{"text":"hi"}')


async def test_a_refused_connection_is_known_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    async with async_client(timeout=5, max_connections=4) as client:
        with pytest.raises(httpx.ConnectError) as err:
            await client.post(f"http://127.0.0.1:{port}/hook", content=b"x")
    assert not transport_failure(err.value).ambiguous


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome() -> None:
    server, url, seen = await serve(None)
    async with server, async_client(timeout=5, max_connections=4) as client:
        with pytest.raises(httpx.TransportError) as err:
            await client.post(url + "/hook", content=b"payload")
    assert seen and seen[0].endswith(b"payload"), "the platform did receive it"
    assert not isinstance(err.value, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    assert transport_failure(err.value).ambiguous


async def test_a_cookie_set_by_one_response_is_never_sent_again() -> None:
    """One client serves every tenant of a platform: a session cookie from one answer must not ride along
    on the next request (which may be another tenant's)."""
    server, url, seen = await serve(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=tenant-a; Path=/\r\n"
                                    b"Connection: close\r\nContent-Length: 2\r\n\r\n{}")
    # by host name: aiohttp's default jar would keep this cookie (it ignores those of a bare IP address)
    url = url.replace("127.0.0.1", "localhost")
    async with server, async_client(timeout=5, max_connections=4) as client:
        first = await client.post(url + "/a", json={})
        second = await client.post(url + "/b", json={})
        third = await client.post(url + "/c", data={"form": "1"})  # httpx's own path, the same pool
    assert first.headers["set-cookie"].startswith("session=tenant-a") and second.status_code == third.status_code == 200
    assert len(seen) == 3 and all(b"cookie:" not in request.lower() for request in seen)
    assert len(client.cookies) == 0


async def test_a_relative_path_with_query_parameters_joins_the_base_url() -> None:
    server, url, seen = await serve(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=gbk\r\n"
                                    b"Content-Length: 4\r\n\r\n" + "\u4f60\u597d".encode("gbk"))
    async with server, async_client(timeout=5, max_connections=4, base_url=url + "/api/") as client:
        resp = await client.get("/v1/token", params={"corpid": "c 1", "n": "2"},
                                headers={"Authorization": "Bearer t"})
    assert seen[0].startswith(b"GET /api/v1/token?corpid=c+1&n=2 HTTP/1.1"), "as httpx itself sends it"
    assert b"authorization: bearer t" in seen[0].lower()
    assert resp.status_code == 200 and resp.text == "\u4f60\u597d"
    with pytest.raises(ValueError):
        resp.json()


async def test_a_given_body_wins_over_json_as_in_httpx() -> None:
    server, url, seen = await serve(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    async with server, async_client(timeout=5, max_connections=4) as client:
        resp = await client.post(url + "/hook", content=b"raw body", json={"ignored": True})
    assert resp.status_code == 204 and seen[0].endswith(b"\r\n\r\nraw body")
    assert b"application/json" not in seen[0].lower()


async def test_an_answer_that_never_comes_is_a_read_timeout_and_an_unknown_outcome() -> None:
    received = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await reader.read()  # never answers; returns once the client gives up and closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, async_client(timeout=5, max_connections=4) as client:
        with pytest.raises(httpx.ReadTimeout) as err:
            await client.post(f"http://127.0.0.1:{port}/hook", content=b"x", timeout=0.3)
    assert received.is_set() and transport_failure(err.value).ambiguous


async def test_a_request_beyond_the_plain_path_goes_through_httpx_with_the_same_failures() -> None:
    """Form data is not on the direct path: httpx builds it, over the same connection pool."""
    server, url, seen = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    async with server, async_client(timeout=5, max_connections=4) as client:
        resp = await client.post(url + "/form", data={"a": "1"})
        assert isinstance(resp, httpx.Response) and resp.text == "ok"
        assert b"application/x-www-form-urlencoded" in seen[0] and seen[0].endswith(b"a=1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/form", data={"a": "1"})

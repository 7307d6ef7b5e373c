"""``http_fetch`` over real HTTP against a server on loopback (allowed by the tool's test-only allowance):
what the model reads of HTML, JSON and text, and the limits: size, deadline, content type, redirects, TLS
with the original host name while the connection goes to the checked address."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentbus.config import HttpFetchSettings
from agentbus.services.reasoner.tools.http_fetch import MAX_REDIRECTS, HttpFetch
from tests.support.pages import PageServer, Resolver, jail_sockets
from tests.support.toolctx import tool_context

pytestmark = pytest.mark.integration
HOST = "pages.test"


@pytest.fixture(scope="module")
async def pages() -> AsyncIterator[PageServer]:
    server = await PageServer().start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
async def connected(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    return jail_sockets(asyncio.get_running_loop(), monkeypatch)


def tool(**settings: Any) -> HttpFetch:
    return HttpFetch(HttpFetchSettings(**settings), resolve=Resolver({HOST: ["127.0.0.1"]}),
                     allow_loopback_for_tests=frozenset({HOST}))


async def fetch(pages: PageServer, path: str, **settings: Any) -> tuple[str, bool]:
    result = await tool(**settings).call({"url": pages.url(path, HOST)}, tool_context())
    return result.content, result.is_error


async def test_html_is_read_as_its_text(pages: PageServer) -> None:
    content, error = await fetch(pages, "/html")
    assert not error
    assert content == (f"{pages.url('/html', HOST)}\nHTTP 200 OK, text/html\n\n"
                       "Quarterly report\n\nHome\nResults\nRevenue grew 12% in the third quarter.\nEurope\nAsia")


async def test_a_declared_charset_is_honoured(pages: PageServer) -> None:
    content, error = await fetch(pages, "/latin1")
    assert not error and content.endswith("\n\nCafé crème")


async def test_json_and_text_are_returned_as_they_are(pages: PageServer) -> None:
    content, error = await fetch(pages, "/json")
    assert not error and content.endswith('HTTP 200 OK, application/json\n\n{"city":"Berlin","temp_c":21}')
    content, error = await fetch(pages, "/text?size=300")
    assert not error and content.endswith("text/plain\n\n" + "a" * 300)


async def test_a_document_over_the_limit_is_cut_with_a_note(pages: PageServer) -> None:
    content, error = await fetch(pages, "/text?size=5000", max_bytes=1000)
    body = content.split("\n\n", 1)[1]
    assert not error
    assert body == "a" * 1000 + "\n\n[truncated: only the first 1000 bytes of the document were read]"
    content, error = await fetch(pages, "/text?size=1000", max_bytes=1000)
    assert not error and content.endswith("\n\n" + "a" * 1000)  # exactly the limit: whole, no note


async def test_reading_stops_at_the_limit_of_an_endless_document(pages: PageServer) -> None:
    content, error = await fetch(pages, "/endless", max_bytes=200_000)
    assert not error and content.endswith("x" * 1000 + "\n\n[truncated: only the first 200000 bytes of the "
                                          "document were read]")


async def test_a_server_that_does_not_answer_in_time_is_an_error(pages: PageServer) -> None:
    content, error = await fetch(pages, "/slow", timeout_s=0.3)
    assert error and content == f"timed out after 0.3 s fetching {pages.url('/slow', HOST)}"


@pytest.mark.parametrize(("path", "why"), [
    ("/binary", "is image/png: only text, HTML, XML and JSON are read"),
    ("/untyped", "answered without a content type"),
])
async def test_documents_that_are_not_text_are_refused(pages: PageServer, path: str, why: str) -> None:
    content, error = await fetch(pages, path)
    assert error and content == f"refused: {pages.url(path, HOST)} {why}"


async def test_an_error_status_is_an_error_result_with_the_body(pages: PageServer) -> None:
    content, error = await fetch(pages, "/missing")
    assert error and content.endswith('HTTP 404 Not Found, application/json\n\n{"error":"no such city"}')


async def test_redirects_are_followed_up_to_the_limit(pages: PageServer) -> None:
    seen = len(pages.hosts)
    content, error = await fetch(pages, f"/chain/{MAX_REDIRECTS - 1}")  # 4 hops, then /json: 5 redirects
    assert not error and content.startswith(f"{pages.url('/json', HOST)}\nHTTP 200 OK") and "Berlin" in content
    assert len(pages.hosts) - seen == MAX_REDIRECTS + 1
    assert set(pages.hosts[seen:]) == {f"{HOST}:{pages.port}"}
    content, error = await fetch(pages, f"/chain/{MAX_REDIRECTS}")
    assert error and content == f"refused: more than {MAX_REDIRECTS} redirects, the last to {pages.url('/json', HOST)}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_relative_redirect_is_resolved_against_the_page(pages: PageServer, status: int) -> None:
    content, error = await fetch(pages, f"/redirect?s={status}&to=../json")
    assert not error and content.startswith(f"{pages.url('/json', HOST)}\nHTTP 200 OK")


async def test_each_agent_gets_its_own_limits(pages: PageServer) -> None:
    from agentbus.config import parse_config

    cfg = parse_config({"tenants": [{"id": "acme"}], "agents": [
        {"id": "small", "tools": ["http_fetch"], "tool_settings": {"http_fetch": {"max_bytes": 10}}},
        {"id": "other", "tools": ["http_fetch"], "tool_settings": {"http_fetch": {"allow_hosts": ["x.test"]}}},
    ]})
    small, other = (tool().bind(agent) for agent in cfg.agents)
    result = await small.call({"url": pages.url("/text?size=50", HOST)}, tool_context())
    assert result.content.endswith("aaaaaaaaaa\n\n[truncated: only the first 10 bytes of the document were read]")
    result = await other.call({"url": pages.url("/json", HOST)}, tool_context())
    assert result.content == f"refused: {HOST} is not among this agent's allowed hosts"


def _certificates(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a certificate it signs for ``name``: the server's context and a client trusting the CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_names_the_host_in_sni_and_checks_its_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = _certificates(tmp_path, "secure.test")
    sni: list[str | None] = []

    def record(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)  # and returning None lets the handshake go on

    server_ctx.sni_callback = record

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        host = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"host:"))
        body = b"over TLS, " + host
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    names = {"secure.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]}
    fetcher = HttpFetch(resolve=Resolver(names), allow_loopback_for_tests=frozenset(names), ssl_context=client_ctx)
    async with srv:
        result = await fetcher.call({"url": f"https://secure.test:{port}/"}, tool_context())
        assert not result.is_error and result.content.endswith(f"over TLS, Host: secure.test:{port}")
        assert sni == ["secure.test"]
        result = await fetcher.call({"url": f"https://impostor.test:{port}/"}, tool_context())
        assert result.is_error and result.content.startswith(f"could not fetch https://impostor.test:{port}/: "
                                                             "ClientConnectorCertificateError")
        assert "impostor.test" in result.content

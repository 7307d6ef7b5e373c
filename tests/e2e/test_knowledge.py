"""The tenant knowledge base through the whole platform: a handbook uploaded for acme over the operator API is
chunked, carried by ``knowledge.requested`` to memory, embedded by the real embeddings server and recalled into
any acme user's chat, attributed to its document and section in the model's request; a globex user never sees
it; once removed with ``agentbus knowledge remove`` it is recalled no more."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


def handbook(tag: str) -> str:
    return f"""# Acme Office Guide

Everything a new colleague of Acme needs in the first week.

## Office

### Wifi

The office wifi network is called acme-staff and its password is heron-{tag}. Guests use acme-guest.

## Lunch

Lunch is served in the canteen on the second floor from noon to two.
"""


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    s = await WebhookSink({c: secret_for(c) for c in ("acme", "globex")}).start()
    yield s
    await s.stop()


@pytest.fixture(scope="module", params=["pgvector", "in_process"])
async def platform(request: pytest.FixtureRequest, infra: Infra, llm: FakeLLM,
                   sink: WebhookSink) -> AsyncIterator[Platform]:
    """The platform with the knowledge base searched by pgvector, then in memory's process."""
    assert sink.server is not None
    async with run_platform(infra, base_config(sink.server.url, llm.base_url),
                            env={"AGENTBUS_VECTOR_INDEX": request.param}) as p:
        yield p


async def cli(infra: Infra, p: Platform, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **infra.env, "AGENTBUS_TOPIC_PREFIX": p.prefix,
           "AGENTBUS_DB_SCHEMA_SUFFIX": p.schema_suffix, "AGENTBUS_CONFIG_FILE": str(p.stack.config_file),
           "AGENTBUS_DEV_MODE": "true", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentbus.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ask(p: Platform, sink: WebhookSink, channel: str, sender: str, text: str) -> None:
    chat = f"dm-{sender}"
    body, headers = signed_request(secret_for(channel), {"conversation": chat, "text": text,
                                                         "sender": {"id": sender, "name": sender.title()}})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)
    assert r.status_code == 202, r.text
    await sink.wait_for(lambda m: m["conversation"] == chat and m["_channel"] == channel and text in m["text"])


def system_text(llm: FakeLLM, marker: str) -> str:
    [call] = llm.calls_with(marker)
    return "\n".join(m["content"] for m in call["messages"] if m["role"] == "system")


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise TimeoutError("memory did not get there")
        await asyncio.sleep(0.3)
    return value


async def test_a_document_loaded_for_acme_is_recalled_attributed_for_its_users_only_until_removed(
    infra: Infra, platform: Platform, llm: FakeLLM, sink: WebhookSink
) -> None:
    tag = uuid.uuid4().hex[:8]
    code, token, err = await cli(infra, platform, "tokens", "create", "--name", "kb", "--tenant", "acme",
                                 "--role", "operator", "--expires-days", "1")
    assert code == 0, err
    api, auth = platform.ingress_url + "/api/v1", {"authorization": f"Bearer {token.strip()}"}
    async with httpx.AsyncClient(timeout=30) as http:
        refused = await http.post(f"{api}/tenants/acme/knowledge?name=logo.png", headers={
            **auth, "content-type": "image/png"}, content=b"\x89PNG\r\n\x1a\n")
        assert refused.status_code == 415, refused.text
        resp = await http.post(f"{api}/tenants/acme/knowledge?name=office-guide.md", headers={
            **auth, "content-type": "text/markdown"}, content=handbook(tag).encode())
        assert resp.status_code == 202, resp.text
        document = resp.json()["document_id"]
        assert resp.json()["title"] == "Acme Office Guide"

        async def loaded() -> list[dict[str, Any]] | None:
            r = await http.get(f"{api}/tenants/acme/knowledge", headers=auth)
            docs = [d for d in r.json() if d["id"] == document and d["parts_loaded"] == d["parts"]]
            return docs or None

        [doc] = await until(loaded)
        assert (doc["title"], doc["source"], doc["chunks"]) == ("Acme Office Guide", "office-guide.md", 3)
        assert (await http.get(f"{api}/tenants/globex/knowledge", headers=auth)).status_code == 404

    code, out, err = await cli(infra, platform, "knowledge", "list", "--tenant", "acme", "--json",
                               "--memory-url", platform.url_of("memory"))
    assert code == 0, err
    assert [d["id"] for d in json.loads(out)] == [document]

    today = datetime.now(UTC).date().isoformat()
    await ask(platform, sink, "acme", f"dana-{tag}", f"What is the office wifi password? ({tag} acme)")
    prompt = system_text(llm, f"({tag} acme)")
    assert f"[knowledge: Acme Office Guide › Office › Wifi, loaded {today}]" in prompt, prompt
    assert f"heron-{tag}" in prompt

    await ask(platform, sink, "globex", f"erin-{tag}", f"What is the office wifi password? ({tag} globex)")
    assert f"heron-{tag}" not in system_text(llm, f"({tag} globex)"), "another tenant's knowledge never reaches it"

    code, out, err = await cli(infra, platform, "knowledge", "remove", "--tenant", "acme", "--id", document)
    assert code == 0, err

    async def removed() -> bool:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{platform.url_of('memory')}/v1/knowledge", params={"tenant": "acme", "removed": "true"})
        return any(d["id"] == document and d["removed_at"] for d in r.json()["items"])

    await until(removed)
    await ask(platform, sink, "acme", f"frank-{tag}", f"What is the office wifi password? ({tag} after)")
    after = system_text(llm, f"({tag} after)")
    assert f"heron-{tag}" not in after and "knowledge:" not in after, after

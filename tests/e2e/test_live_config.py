"""Configuration changed while the platform runs, applied by every service without a restart: an agent's
model switched through the operator API answers the next message; a channel added through the API takes
webhooks and pushes at once; ``agentbus config apply`` shows its changes, ``--dry-run`` publishes nothing;
an invalid change is refused naming the key; a restarted service runs the live version, not its file."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from agentbus.cli.tools import signed_request
from agentbus.eventlog import read
from agentbus.events import ConfigChanged
from agentbus.settings import SERVICES, Settings
from agentbus.topics import config_topic
from tests.e2e.test_operator_api import cli, until
from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, update
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def second_llm() -> AsyncIterator[FakeLLM]:
    llm = await FakeLLM(reply_prefix="second: ").start()
    yield llm
    await llm.stop()


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    """The base config's channels, and the one the test adds while the platform runs."""
    s = await WebhookSink({t: secret_for(t) for t in ("acme", "globex", "acme-live")}).start()
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, second_llm: FakeLLM, sink: WebhookSink) -> AsyncIterator[Platform]:
    assert sink.server is not None
    config = base_config(sink.server.url, llm.base_url)
    config["models"].append({"name": "second", "base_url": second_llm.base_url, "model": "fake-model",
                             "timeout_s": 10})
    async with run_platform(infra, config) as p:
        yield p


async def send(p: Platform, channel: str, conversation: str, text: str) -> httpx.Response:
    body, headers = signed_request(secret_for(channel), {"conversation": conversation, "sender": {"id": "al"},
                                                         "text": text})
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)


async def answered(p: Platform, sink: WebhookSink, channel: str, text: str) -> str:
    conv = f"live-{uuid.uuid4().hex[:6]}"
    r = await send(p, channel, conv, text)
    assert r.status_code == 202, r.text
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    return str(push["text"])


async def versions(p: Platform) -> dict[str, int]:
    out = {}
    async with httpx.AsyncClient(timeout=5) as c:
        for service in SERVICES:
            ready = (await c.get(f"{p.url_of(service)}/readyz")).json()
            out[service] = ready.get("config", {}).get("version", 0)
    return out


async def token(infra: Infra, p: Platform, *args: str) -> dict[str, str]:
    code, out, err = await cli(infra, p, "tokens", "create", "--name", "ops", *args)
    assert code == 0, err
    return {"authorization": f"Bearer {out.strip()}"}


async def test_model_switched_channel_added_and_file_applied_while_running(
        infra: Infra, platform: Platform, llm: FakeLLM, second_llm: FakeLLM, sink: WebhookSink) -> None:
    p = platform
    pids = {name: proc.process.pid for name, proc in p.procs.items() if proc.process is not None}
    owner = await token(infra, p, "--owner")
    admin = await token(infra, p, "--tenant", "acme", "--role", "admin")
    api = f"{p.ingress_url}/api/v1"
    assert await answered(p, sink, "acme", "first question") == "answer: first question"
    assert await versions(p) == dict.fromkeys(SERVICES, 1)

    async with httpx.AsyncClient(timeout=30) as http:
        current = (await http.get(f"{api}/config", headers=owner)).json()
        assert current["version"] == 1 and current["actor"].endswith(":file")
        assert (await http.get(f"{api}/config", headers=admin)).status_code == 403

        # the hot model switch: the next message is answered by the other model, no service restarted
        agent = {"id": "assistant", "system_prompt": "You are a test assistant.", "model": "second",
                 "memory": {"history_turns": 10, "recall_top_k": 3}}
        resp = await http.put(f"{api}/agents/assistant", headers=owner, json=agent)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"version": 2, "base_version": 1, "published": True,
                               "changes": ["~ agents.assistant.model: 'fake' → 'second'"]}
        await until(lambda: versions(p), lambda v: v == dict.fromkeys(SERVICES, 2))
        assert await answered(p, sink, "acme", "second question") == "second: second question"
        assert second_llm.calls_with("second question") and not llm.calls_with("second question")

        # invalid: refused naming the key, nothing published, nothing changed
        resp = await http.put(f"{api}/agents/assistant", headers=owner, json={**agent, "model": "nope"})
        assert resp.status_code == 422
        assert resp.json()["error"] == "agents[0].model: unknown model 'nope' (declare it under models)"
        resp = await http.put(f"{api}/agents/assistant", headers=owner, json=agent, params={"expected_version": 1})
        assert resp.status_code == 409
        assert (await http.put(f"{api}/agents/assistant", headers=admin, json=agent)).status_code == 403

        # a tenant admin adds a webhook channel: ingress takes it and egress pushes for it at once
        channel = {"type": "webhook", "agent": "assistant", "push_url": f"{sink.server.url}/push/acme-live",
                   "secret": {"env": "TEST_SECRET_ACME_LIVE", "default": secret_for("acme-live")}}
        assert (await send(p, "acme-live", "before", "hello")).status_code == 404
        resp = await http.put(f"{api}/tenants/acme/channels/acme-live", headers=admin, json=channel)
        assert resp.status_code == 200, resp.text
        assert resp.json()["changes"] == ["+ channels.acme-live"]
        await until(lambda: versions(p), lambda v: v == dict.fromkeys(SERVICES, 3))
        assert await answered(p, sink, "acme-live", "via the new channel") == "second: via the new channel"
        resp = await http.put(f"{api}/tenants/acme/channels/globex", headers=admin, json=channel)
        assert resp.status_code == 409  # another tenant's id: not changed, not described
        resp = await http.put(f"{api}/tenants/acme/channels/bad", headers=admin, json={"type": "webhook"})
        assert resp.status_code == 422 and resp.json()["problems"]

    # export, edit, dry run, apply: the file's way
    code, exported, err = await cli(infra, p, "config", "export")
    assert code == 0, err
    assert exported.startswith("# agentbus configuration, version 3\n")
    doc: dict[str, Any] = yaml.safe_load(exported)
    assert any(c["id"] == "acme-live" for c in doc["channels"])
    doc["agents"][0]["model"] = "fake"
    path = p.stack.home / "edited.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, err = await cli(infra, p, "config", "apply", str(path), "--dry-run")
    assert code == 0, err
    assert "~ agents.assistant.model: 'second' → 'fake'" in out and "nothing published" in out
    assert await versions(p) == dict.fromkeys(SERVICES, 3)
    bad = p.stack.home / "bad.yaml"
    bad.write_text(yaml.safe_dump({**doc, "channels": [{**doc["channels"][0], "tenant": "nobody"}]}), "utf-8")
    code, _, err = await cli(infra, p, "config", "apply", str(bad))
    assert code == 2 and "channels[0].tenant: unknown tenant 'nobody'" in err
    code, out, err = await cli(infra, p, "config", "apply", str(path))
    assert code == 0, err
    assert "applied: version 4 (was 3)" in out
    await until(lambda: versions(p), lambda v: v == dict.fromkeys(SERVICES, 4))
    assert await answered(p, sink, "acme", "third question") == "answer: third question"
    assert {name: proc.process.pid for name, proc in p.procs.items() if proc.process is not None} == pids

    # a restarted service runs the live version (its file still says otherwise)
    await p.restart("ingress")
    assert (await versions(p))["ingress"] == 4
    assert await answered(p, sink, "acme-live", "after the restart") == "answer: after the restart"

    # the log: one event per version, the audit names each write
    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=p.prefix)
    logged = [x.event for x in await read(s, [config_topic(p.prefix)])]
    assert [e.data.version for e in logged if isinstance(e, ConfigChanged)] == [1, 2, 3, 4]
    code, out, err = await cli(infra, p, "audit", "--json")
    assert code == 0, err
    for action in ("agents.put", "channels.put", "config.apply"):
        assert action in out


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


async def connections(p: Platform) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as c:
        return dict((await c.get(f"{p.ingress_url}/readyz")).json().get("connections", {}))


async def test_a_long_connection_channel_added_connects_and_removed_disconnects(
        infra: Infra, platform: Platform, tg: FakeTelegram) -> None:
    p = platform
    admin = await token(infra, p, "--tenant", "acme", "--role", "admin")
    api = f"{p.ingress_url}/api/v1"
    channel = {"type": "telegram", "mode": "stream", "agent": "assistant", "api_base": tg.url,
               "bot_token": {"env": "E2E_LIVE_TG_TOKEN", "default": BOT_TOKEN}, "bot_username": BOT_USERNAME,
               "poll_timeout_s": 2}
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.put(f"{api}/tenants/acme/channels/tglive", headers=admin, json=channel)
        assert resp.status_code == 200, resp.text
        version = resp.json()["version"]
        await until(lambda: connections(p), lambda c: c.get("tglive", {}).get("status") == "connected")
        word = uuid.uuid4().hex[:6]
        tg.updates.push(update(f"polled {word}"))
        [sent] = await tg.wait_for(lambda m: word in m["text"])
        assert sent["text"] == f"answer: polled {word}"

        resp = await http.delete(f"{api}/tenants/acme/channels/tglive", headers=admin)
        assert resp.status_code == 200 and resp.json()["version"] == version + 1, resp.text
        await until(lambda: connections(p), lambda c: "tglive" not in c)
        polls = len(tg.updates.polls)
        gone = f"after removal {word}"
        tg.updates.push(update(gone))
        await asyncio.sleep(3)  # two poll timeouts: a poller left running would have taken it
        assert not [m for m in tg.sent if gone in m["text"]]
        assert len(tg.updates.polls) == polls  # nobody polls for the removed channel
        resp = await http.delete(f"{api}/tenants/acme/channels/tglive", headers=admin)
        assert resp.status_code == 404

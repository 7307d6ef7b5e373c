"""WeCom end to end: encrypted callbacks into ingress, ``message/send`` observed at a local fake of WeCom."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.wecom import FakeWeCom, callback_request, text_message_xml, verify_url_query
from tests.support.modes import asked, image_part
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

CORP, AGENT, SECRET = "wwcorpe2e", 1000005, "wecom-secret-e2e"
TOKEN, AES = "e2etoken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="答复：").start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def wecom() -> AsyncIterator[FakeWeCom]:
    f = await FakeWeCom(corp_id=CORP, secret=SECRET, agent_id=AGENT).start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, wecom: FakeWeCom) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "fake", "memory": {"history_turns": 5, "recall_top_k": 0}}],
        "models": [{"name": "fake", "base_url": llm.base_url, "model": "fake-model", "timeout_s": 10,
                    "vision": True}],
        "channels": [
            {
                "id": "wecom",
                "type": "wecom",
                "tenant": "acme",
                "agent": "assistant",
                "corp_id": CORP,
                "agent_id": AGENT,
                "secret": {"env": "E2E_WECOM_SECRET", "default": SECRET},
                "token": {"env": "E2E_WECOM_TOKEN", "default": TOKEN},
                "encoding_aes_key": {"env": "E2E_WECOM_AES", "default": AES},
                "api_base_url": wecom.url,
            }
        ],
        "jobs": [],
    }
    async with run_platform(infra, config) as p:
        yield p


def url(p: Platform) -> str:
    return f"{p.ingress_url}/v1/webhooks/wecom"


async def test_url_verification_through_ingress(platform: Platform) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.get(url(platform), params=verify_url_query(TOKEN, AES, CORP, "5927782489442352469"))
        assert r.status_code == 200 and r.content == b"5927782489442352469"
        bad = {**verify_url_query(TOKEN, AES, CORP, "1"), "msg_signature": "0" * 40}
        assert (await c.get(url(platform), params=bad)).status_code == 401


async def test_message_is_answered_with_message_send(platform: Platform, wecom: FakeWeCom) -> None:
    words = f"你好，帮我记一下编号「{uuid.uuid4().hex[:6]}」"
    query, body = callback_request(
        TOKEN, AES, CORP, text_message_xml(words, corp_id=CORP, agent_id=AGENT), agent_id=AGENT
    )
    async with httpx.AsyncClient() as c:
        first = await c.post(url(platform), params=query, content=body, headers={"content-type": "text/xml"})
        assert first.status_code == 200 and first.content == b""
        assert first.headers["x-agentbus-outcome"] == "published"
        again = await c.post(url(platform), params=query, content=body, headers={"content-type": "text/xml"})
        assert again.headers["x-agentbus-outcome"] == "duplicate"
        tampered = await c.post(url(platform), params={**query, "nonce": "other"}, content=body)
        assert tampered.status_code == 401
    [sent] = await wecom.wait_for(lambda m: words in m["text"])
    assert (sent["via"], sent["users"], sent["text"]) == ("app", ["zhangsan"], f"答复：{words}")
    assert f"答复：{words}".encode() in sent["raw"]
    assert wecom.token_fetches == 1


async def test_an_image_is_fetched_by_its_media_id_and_reaches_the_model(
        platform: Platform, wecom: FakeWeCom, llm: FakeLLM) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes * 64
    media_id = wecom.add_media(jpeg, "image/jpeg")
    xml = text_message_xml("https://wework.qpic.cn/wwpic/1", corp_id=CORP, agent_id=AGENT, msg_type="image",
                           media_id=media_id, sender="lisi")
    query, body = callback_request(TOKEN, AES, CORP, xml, agent_id=AGENT)
    async with httpx.AsyncClient() as c:
        first = await c.post(url(platform), params=query, content=body, headers={"content-type": "text/xml"})
        assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
        again = await c.post(url(platform), params=query, content=body, headers={"content-type": "text/xml"})
        assert again.headers["x-agentbus-outcome"] == "duplicate"
    [sent] = await wecom.wait_for(lambda m: m["users"] == ["lisi"])
    assert sent["via"] == "app"
    [call] = [c for c in llm.calls if isinstance(asked(c), list) and image_part(jpeg, "image/jpeg") in asked(c)]
    assert wecom.media_fetches == 1  # the retry was a duplicate: nothing downloaded again

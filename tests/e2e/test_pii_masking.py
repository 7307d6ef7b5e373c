"""PII masking as processes: a tenant that masks has its people's phone numbers, addresses, ID-card and
bank-card numbers replaced by placeholders in what the model endpoint and the embeddings server receive over
HTTP, and gets them back in the pushed reply; a tenant that does not mask is sent its text as written."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.cli.tools import signed_request
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, RecordingEmbeddings, WebhookSink

pytestmark = pytest.mark.e2e

PHONE, EMAIL, ID_CARD, CARD = "+86 138 0013 8000", "alice.w@example.com", "11010519491231002X", "4111 1111 1111 1111"
VALUES = (PHONE, "13800138000", EMAIL, ID_CARD, CARD, "4111111111111111")


@pytest.fixture(scope="module")
async def embeddings(infra: Infra) -> AsyncIterator[RecordingEmbeddings]:
    r = await RecordingEmbeddings(infra.embeddings_url).start()
    yield r
    await r.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink,
                   embeddings: RecordingEmbeddings) -> AsyncIterator[Platform]:
    assert sink.server is not None
    config = base_config(sink.server.url, llm.base_url)
    config["tenants"] = [{"id": "acme", "pii_masking": True}, {"id": "globex"}]
    async with run_platform(infra, config, env={"AGENTBUS_EMBEDDINGS_URL": embeddings.base_url}) as p:
        yield p


async def send(p: Platform, channel: str, conversation: str, text: str) -> None:
    body, headers = signed_request(secret_for(channel), {"conversation": conversation, "sender": {"id": "alice"},
                                                         "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)
    assert r.status_code == 202, r.text


def call_with(llm: FakeLLM, marker: str) -> dict[str, Any]:
    [call] = [c for c in llm.calls if marker in c["messages"][-1]["content"]]
    return call


async def test_the_model_and_the_embeddings_server_see_placeholders_and_the_user_gets_the_values(
    platform: Platform, llm: FakeLLM, sink: WebhookSink, embeddings: RecordingEmbeddings
) -> None:
    conv, marker = f"c-{uuid.uuid4().hex[:6]}", f"ticket-{uuid.uuid4().hex[:6]}"
    said = f"{marker}: call me on {PHONE} or mail {EMAIL}; ID {ID_CARD}, card {CARD}"
    await send(platform, "acme", conv, said)
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    assert push["text"] == f"answer: {said}"  # the model echoed placeholders; the user reads the values

    sent = json.dumps(call_with(llm, marker)["messages"], ensure_ascii=False)
    assert not [v for v in VALUES if v in sent], sent
    assert (f"{marker}: call me on [PHONE_1] or mail [EMAIL_1]; ID [ID_CARD_1], card [BANK_CARD_1]"
            == call_with(llm, marker)["messages"][-1]["content"])

    # the next turn: the history (the user's turn and the reply, both kept as said) reaches the model masked
    marker2 = f"again-{uuid.uuid4().hex[:6]}"
    await send(platform, "acme", conv, f"{marker2}: what is my number? Not 139 0000 1111.")
    [push2] = await sink.wait_for(lambda m: m["conversation"] == conv and marker2 in m["text"])
    assert push2["text"] == f"answer: {marker2}: what is my number? Not 139 0000 1111."
    second = call_with(llm, marker2)["messages"]
    history = [m["content"] for m in second if m["role"] in ("user", "assistant")][:-1]
    assert any(marker in h and "[PHONE_1]" in h for h in history), history
    assert second[-1]["content"] == f"{marker2}: what is my number? Not [PHONE_2]."
    assert not [v for v in (*VALUES, "139 0000 1111") if v in json.dumps(second, ensure_ascii=False)]

    texts = [t for t in embeddings.inputs if marker in t]
    assert texts and all(not any(v in t for v in VALUES) for t in texts), texts
    assert f"{marker}: call me on [PHONE_1] or mail [EMAIL_1]; ID [ID_CARD_1], card [BANK_CARD_1]" in texts

    async with httpx.AsyncClient() as c:
        metrics = (await c.get(platform.url_of("reasoner") + "/metrics")).text
    assert 'agentbus_pii_masked_total{kind="phone",target="model"}' in metrics
    assert 'agentbus_pii_masked_total{kind="bank_card",target="model"}' in metrics


async def test_a_tenant_without_masking_is_sent_its_text_as_written(
    platform: Platform, llm: FakeLLM, sink: WebhookSink, embeddings: RecordingEmbeddings
) -> None:
    conv, marker = f"c-{uuid.uuid4().hex[:6]}", f"plain-{uuid.uuid4().hex[:6]}"
    said = f"{marker}: call me on {PHONE} or mail {EMAIL}"
    await send(platform, "globex", conv, said)
    [push] = await sink.wait_for(lambda m: m["conversation"] == conv)
    assert push["text"] == f"answer: {said}"
    assert call_with(llm, marker)["messages"][-1]["content"] == said
    assert said in embeddings.inputs

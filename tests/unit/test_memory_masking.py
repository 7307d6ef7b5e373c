"""Memory with ``pii_masking``: every text sent to the embeddings server (a turn, a reply, a fact, a deferred
turn, a search) is masked for a tenant that masks, while what memory keeps is the text as it was said."""

from __future__ import annotations

from typing import Any

import httpx

from agentbus.config import PlatformConfig, parse_config
from agentbus.events import (
    Chat,
    MemoryCommand,
    MemoryRequested,
    MessageReceived,
    MessageReceivedData,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
    utcnow,
)
from agentbus.services.memory.commands import MemoryCommands
from agentbus.services.memory.handlers import Memory
from agentbus.services.memory.outage import index_deferred
from agentbus.services.memory.ports import Deferred, Origin
from agentbus.services.memory.recallgate import EmbeddingsGate
from agentbus.services.memory.routes import recall_routes
from tests.support.admin_http import serving
from tests.support.platform import base_config
from tests.unit.fakes_memory import FakeCommandLog, FakeDeferredIndex, FakeEmbedder, FakeTurnStore, FakeVectors

SAID = "my phone is 138 0013 8000 and my mail alice@example.com"
MASKED = "my phone is [PHONE_1] and my mail [EMAIL_1]"


def config(masking: Any = True) -> PlatformConfig:
    raw = base_config()
    raw["tenants"][0]["pii_masking"] = masking  # acme masks, globex does not
    return parse_config(raw)


def message(tenant: str, text: str) -> MessageReceived:
    return MessageReceived.new(
        MessageReceivedData(channel=tenant, channel_type="webhook", agent="assistant", platform_message_id=text,
                            sender=Sender(id="u1"), chat=Chat(id="c1"), text=text, received_at=utcnow()),
        source="ingress", tenant=tenant, conversation=f"{tenant}/{tenant}/c1")


def embedded(embedder: FakeEmbedder) -> list[str]:
    return [t for texts, _ in embedder.calls for t in texts]


async def test_a_turn_and_a_reply_are_embedded_masked_and_kept_as_said() -> None:
    embedder, store, vectors = FakeEmbedder(), FakeTurnStore(), FakeVectors()
    m = Memory(config(), store, embedder, vectors)
    e = message("acme", SAID)
    await m.assemble_context(e)
    reply = ReplyGenerated.new(ReplyGeneratedData(agent="assistant", channel="acme", channel_type="webhook",
                                                  chat=Chat(id="c1"), text="I'll call 138 0013 8000", model="m"),
                               source="reasoner", tenant="acme", conversation="acme/acme/c1")
    await m.remember_reply(reply)
    assert embedded(embedder) == [MASKED, "I'll call [PHONE_1]"]
    assert vectors.points[e.id].text == SAID and vectors.points[reply.id].text == "I'll call 138 0013 8000"
    assert [t.text for _, t in store.turns["acme/acme/c1"]] == [SAID, "I'll call 138 0013 8000"]


async def test_a_tenant_that_does_not_mask_is_embedded_as_said() -> None:
    embedder = FakeEmbedder()
    m = Memory(config(), FakeTurnStore(), embedder, FakeVectors())
    await m.assemble_context(message("globex", SAID))
    assert embedded(embedder) == [SAID]


async def test_a_fact_a_deferred_turn_and_a_search_are_embedded_masked() -> None:
    embedder, vectors = FakeEmbedder(), FakeVectors()
    cfg = config()
    fact = MemoryRequested.new(MemoryCommand(action="remember", text="Alice's card is 4111 1111 1111 1111",
                                             subject="u1"),
                               source="reasoner", tenant="acme", conversation="acme/acme/c1")
    await MemoryCommands(embedder, vectors, FakeCommandLog(), cfg).apply(fact)
    assert vectors.points[fact.id].text == "Alice's card is 4111 1111 1111 1111"

    deferred = FakeDeferredIndex()
    turn = message("acme", SAID)
    await deferred.defer(Deferred(turn.id, "acme", turn.conversation, "user", SAID, utcnow(), Origin(owner="u1")))
    assert await index_deferred(embedder, vectors, deferred, EmbeddingsGate(), config=cfg) == 1
    assert vectors.points[turn.id].text == SAID

    async with serving("memory", recall_routes(cfg, embedder, vectors)) as url, httpx.AsyncClient() as c:
        r = await c.post(f"{url}/v1/recall", json={"tenant": "acme", "text": "who has alice@example.com?"})
        assert r.status_code == 200, r.text
        r = await c.post(f"{url}/v1/recall", json={"tenant": "globex", "text": "who has alice@example.com?"})
        assert r.status_code == 200, r.text
    assert embedded(embedder) == ["Alice's card is [BANK_CARD_1]", MASKED, "who has [EMAIL_1]?",
                                  "who has alice@example.com?"]

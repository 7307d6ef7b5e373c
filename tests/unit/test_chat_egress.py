"""Egress and the chat API's channel: a reply of an ``api`` channel is recorded as delivered without any
push (the waiting HTTP request is its way back), so nothing is retried or dead-lettered; its progress is not
shown anywhere."""

from __future__ import annotations

import httpx

from agentbus.config import parse_config
from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData, ReplyProgress, ReplyProgressData
from agentbus.services.egress.bootstrap import build_adapters
from agentbus.services.egress.channels.api import ApiOutbound
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.progress import ProgressDisplay
from tests.unit.fakes_egress import FakeDeliveryLedger, FakeProgressStore, FakeRateLimiter


def refuse_every_request(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"egress made an HTTP call for an api channel: {request.url}")


async def test_an_api_reply_is_delivered_once_without_an_http_call() -> None:
    cfg = parse_config({"tenants": [{"id": "acme"}], "agents": [{"id": "assistant"}],
                        "channels": [{"id": "chat", "type": "api", "tenant": "acme", "agent": "assistant"}]})
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse_every_request)) as http:
        adapters = build_adapters(cfg, http, TokenCache())
        assert isinstance(adapters["chat"], ApiOutbound)
        ledger, store = FakeDeliveryLedger(), FakeProgressStore()
        progress = ProgressDisplay(adapters, store)
        egress = Egress(adapters, ledger, FakeRateLimiter(), progress=progress)
        chat = Chat(id="alice")
        shown = await progress.show(ReplyProgress.new(ReplyProgressData(
            agent="assistant", channel="chat", channel_type="api", chat=chat, in_reply_to="chatcmpl-1",
            stage="partial", seq=0, text="Hel"), source="reasoner", tenant="acme", conversation="acme/chat/alice"))
        assert shown == []
        reply = ReplyGenerated.new(ReplyGeneratedData(
            agent="assistant", channel="chat", channel_type="api", chat=chat, text="Hello", model="echo",
            in_reply_to="chatcmpl-1", streamed=True), source="reasoner", tenant="acme",
            conversation="acme/chat/alice")
        [done] = await egress.push_reply(reply)
        assert (done.data.status, done.data.attempts, done.data.platform_message_id) == (
            "delivered", 1, "chatcmpl-1")
        assert await egress.push_reply(reply) == [done]  # a redelivery changes nothing

"""The chat API served on a real loopback port over fakes: the bus round trip is an ``Agent`` that answers
each published question through the replica's ``Waiters`` (as the reply follower does), with partials first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agentbus.config import PlatformConfig, parse_config
from agentbus.events import (
    Event,
    MessageReceived,
    Replay,
    ReplyGenerated,
    ReplyGeneratedData,
    ReplyProgress,
    ReplyProgressData,
)
from agentbus.http import LoopbackServer
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.api.access import mint, token_hash
from agentbus.services.ingress.api.ports import Role
from agentbus.services.ingress.chat.replies import Waiters
from agentbus.services.ingress.chat.routes import ChatApi
from agentbus.services.ingress.ports import Verdict
from tests.unit.fakes_api import FakeTokens
from tests.unit.fakes_ingress import FakeDedupe


def chat_config(reply_timeout_s: float = 30.0) -> PlatformConfig:
    return parse_config({
        "tenants": [{"id": "acme"}, {"id": "globex"}],
        "agents": [{"id": "assistant"}, {"id": "helper"}],
        "channels": [
            {"id": "acme-chat", "type": "api", "tenant": "acme", "agent": "assistant",
             "reply_timeout_s": reply_timeout_s},
            {"id": "globex-chat", "type": "api", "tenant": "globex", "agent": "helper"},
        ],
    })


def answer_to(question: MessageReceived, text: str, replay: bool = False) -> ReplyGenerated:
    q = question.data
    return question.follow(ReplyGenerated, ReplyGeneratedData(
        agent=q.agent, channel=q.channel, channel_type=q.channel_type, chat=q.chat, text=text, model="fake",
        in_reply_to=q.platform_message_id), source="reasoner", step="reply").model_copy(
        update={"replay": Replay(run="r1") if replay else None})


def partial_of(question: MessageReceived, text: str, seq: int) -> ReplyProgress:
    q = question.data
    return question.follow(ReplyProgress, ReplyProgressData(
        agent=q.agent, channel=q.channel, channel_type=q.channel_type, chat=q.chat, stage="partial", seq=seq,
        text=text, in_reply_to=q.platform_message_id), source="reasoner", step=f"progress-{seq}")


@dataclass
class Agent:
    """The publisher: records what ingress publishes and answers each question ``answer(text)`` after the
    partials of ``partials(text)`` (the answer so far, growing), unless ``silent``."""

    waiters: Waiters
    published: list[Event] = field(default_factory=list)
    silent: bool = False
    stall_after_partials: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @staticmethod
    def answer(text: str) -> str:
        return f"You asked: {text}. Here is a longer answer, sent in pieces."

    async def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)
        for e in events:
            if isinstance(e, MessageReceived) and not self.silent:
                self.tasks.append(asyncio.create_task(self._respond(e)))

    async def _respond(self, question: MessageReceived) -> None:
        final = self.answer(question.data.text)
        words = final.split(" ")
        # a replayed reply for the same request, and another channel's, are never taken for this one
        self.waiters.offer(answer_to(question, "shadow answer", replay=True))
        for n in range(1, len(words), 3):
            await asyncio.sleep(0)
            self.waiters.offer(partial_of(question, " ".join(words[:n]), n))
        self.waiters.offer(partial_of(question, " ".join(words[:1]), 0))  # late and out of order: dropped
        if self.stall_after_partials:
            return
        self.waiters.offer(answer_to(question, final))

    def questions(self) -> list[MessageReceived]:
        return [e for e in self.published if isinstance(e, MessageReceived)]


@dataclass
class FakeQuota:
    refuse: bool = False
    asked: list[str] = field(default_factory=list)

    async def admit(self, tenant: str) -> Verdict:
        self.asked.append(tenant)
        return Verdict(False, 12.3) if self.refuse else Verdict(True)


@dataclass
class Served:
    url: str
    tokens: FakeTokens
    agent: Agent
    quota: FakeQuota
    dedupe: FakeDedupe
    ready: list[bool]

    async def token(self, tenant: str | None, role: Role, name: str = "app") -> str:
        record, token = mint(name, tenant, role)
        await self.tokens.create(record, token_hash(token))
        return token

    def record_id(self, token: str) -> str:
        return token.split("_")[1]


@asynccontextmanager
async def served_chat(cfg: PlatformConfig | None = None, **agent: Any) -> AsyncIterator[Served]:
    cfg = cfg or chat_config()
    waiters, tokens, quota, dedupe = Waiters(), FakeTokens(), FakeQuota(), FakeDedupe()
    bot = Agent(waiters, **agent)
    ready = [True]
    channels = {(c.tenant, c.agent): c for c in cfg.channels}
    api = ChatApi(channels, tokens, Acceptor(dedupe, bot, 5.0, None, quota), waiters, lambda: ready[0], 64 * 1024)
    server = LoopbackServer(api.routes())
    await server.start()
    try:
        yield Served(server.url + "/v1", tokens, bot, quota, dedupe, ready)
    finally:
        await server.stop()
        for t in bot.tasks:
            t.cancel()

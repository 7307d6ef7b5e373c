"""Memory's handlers: remember every turn, and assemble the context an agent answers from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import structlog

from agentbus.bus import PermanentError
from agentbus.config import Agent, PlatformConfig
from agentbus.events import (
    ContextAssembled,
    ContextAssembledData,
    Event,
    Recall,
    Turn,
)
from agentbus.services.memory.ports import Embedder, VectorStore
from agentbus.services.memory.store import PgTurnStore

log = structlog.get_logger("agentbus.memory")
SOURCE = "memory"
KIND = "query"  # E5 prefix for symmetric similarity: turns are matched against turns


@dataclass
class Memory:
    config: PlatformConfig
    store: PgTurnStore
    embedder: Embedder | None
    vectors: VectorStore | None

    def _agent(self, agent_id: str) -> Agent:
        agent = self.config.agent(agent_id)
        if agent is None:
            raise PermanentError(f"unknown agent {agent_id!r}")
        return agent

    async def _recall(self, event: Event, agent: Agent, turn: Turn) -> tuple[list[Recall], Awaitable[None] | None]:
        """Recall this tenant's memories like the turn; returns them and the write that indexes the turn
        itself (None in a replay, or without semantic memory), for the caller to run beside its own write.

        Turns are compared with turns (a symmetric task), so one embedding per turn serves both the
        search and the index, as E5's guidance has it for similarity (both sides with the query prefix)."""
        if not self._semantic(agent):
            return [], None
        assert self.embedder is not None and self.vectors is not None
        [vector] = await self.embedder.embed([turn.text], KIND)
        recalls: list[Recall] = []
        k = agent.memory.recall_top_k
        if k > 0:
            recalls = [
                r
                for r in await self.vectors.search(vector, event.tenant, k, exclude=event.id)
                if r.score >= agent.memory.recall_min_score
            ]
        if event.replay is not None:
            return recalls, None
        return recalls, self._index(event, turn, vector)

    def _semantic(self, agent: Agent | None) -> bool:
        """Whether the agent's turns are embedded, recalled and indexed."""
        return (agent is not None and agent.memory.semantic and self.embedder is not None
                and self.vectors is not None)

    def _index(self, event: Event, turn: Turn, vector: list[float]) -> Awaitable[None]:
        """The write that makes the turn searchable."""
        assert self.vectors is not None
        return self.vectors.upsert(event.id, vector, event.tenant, event.conversation, turn.role, turn.text, turn.at)

    async def assemble_context(self, event: Event) -> Sequence[Event]:
        """message.received / job.triggered → context.assembled."""
        d = event.data  # a redelivery recomputes, then finds its processed record and returns those outputs
        if event.TYPE == "job.triggered":
            agent_id = d.agent
            turn = Turn(role="user", text=d.prompt, at=d.due_at, event_id=event.id, sender=f"job:{d.job_id}")
            trigger, channel_id, chat, route, in_reply_to, refusal = (
                "job", d.channel, d.chat, d.reply_route, None, None,
            )
        else:
            agent_id = d.agent
            turn = Turn(role="user", text=d.text, at=d.received_at, event_id=event.id, sender=d.sender.id)
            trigger, channel_id, chat, route, in_reply_to, refusal = (
                "message", d.channel, d.chat, d.reply_route, d.platform_message_id, d.refusal,
            )
        channel = self.config.channel(channel_id)
        if channel is None:
            raise PermanentError(f"unknown channel {channel_id!r}")
        agent = self._agent(agent_id)
        memories: list[Recall] = []
        index: Awaitable[None] | None = None
        if refusal is None:
            memories, index = await self._recall(event, agent, turn)

        def build(history: list[Turn]) -> list[Event]:
            data = ContextAssembledData(
                agent=agent.id,
                channel=channel_id,
                channel_type=channel.type,
                chat=chat,
                trigger=trigger,
                input=turn,
                history=tuple(history) if refusal is None else (),
                memories=tuple(memories),
                reply_route=route,
                in_reply_to=in_reply_to,
                refusal=refusal,
            )
            return [event.follow(ContextAssembled, data, source=SOURCE, step="context")]

        store_turn = refusal is None and event.replay is None
        outputs = await _together(self.store.remember(
            event, turn if store_turn else None, agent.memory.history_turns if refusal is None else 0, build,
            before=turn.at,
        ), index)
        log.info("context_assembled", history=len(outputs[0].data.history) if outputs else 0, memories=len(memories))
        return outputs

    async def remember_reply(self, event: Event) -> Sequence[Event]:
        """reply.generated → an assistant turn (no output)."""
        d = event.data
        if event.replay:  # a shadow run must not change what live conversations remember
            return []
        turn = Turn(role="assistant", text=d.text, at=event.occurred_at, event_id=event.id, sender=d.agent)
        agent = self.config.agent(d.agent)
        index: Awaitable[None] | None = None
        if self._semantic(agent):
            assert self.embedder is not None
            [vector] = await self.embedder.embed([turn.text], KIND)
            index = self._index(event, turn, vector)
        await _together(self.store.remember(event, turn, 0, lambda _h: []), index)
        return []


async def _together(record: Awaitable[list[Event]], index: Awaitable[None] | None) -> list[Event]:
    """The turn's record and its vector, written at the same time (they are independent, and each is
    idempotent): the handler waits for the slower of the two instead of their sum. Both always finish; if
    either failed, the first error is raised and the event is retried, which redoes both."""
    if index is None:
        return await record
    outputs, indexed = await asyncio.gather(record, index, return_exceptions=True)
    for result in (outputs, indexed):
        if isinstance(result, BaseException):
            raise result
    assert not isinstance(outputs, BaseException)
    return outputs

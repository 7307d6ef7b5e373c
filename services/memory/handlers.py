"""Memory's handlers: remember every turn, and assemble the context an agent answers from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from agentbus.bus import PermanentError
from agentbus.config import Agent, PlatformConfig
from agentbus.events import (
    Chat,
    ContextAssembled,
    ContextAssembledData,
    Event,
    JobTriggered,
    MessageReceived,
    Recall,
    ReplyGenerated,
    ReplyGeneratedData,
    Sender,
    Turn,
)
from agentbus.ids import Step
from agentbus.replaying import effects_of
from agentbus.services.memory.ports import Embedder, Scope, TurnStore, VectorStore

log = structlog.get_logger("agentbus.memory")
SOURCE = "memory"
KIND = "query"  # E5 prefix for symmetric similarity: turns are matched against turns


@dataclass(frozen=True)
class Entry:
    """What starts a turn, the same for a person's message and a job's firing: the context is made of this."""

    agent: str
    channel: str
    chat: Chat
    trigger: Literal["message", "job"]
    turn: Turn
    reply_route: dict[str, Any]
    in_reply_to: str | None = None  # the platform message answered
    refusal: str | None = None  # the sender may not talk to the agent: answered with this, nothing remembered
    asker: Sender | None = None  # who sent the message (a group reply addresses them); none for a job


def entry_of(event: MessageReceived | JobTriggered) -> Entry:
    if isinstance(event, JobTriggered):
        j = event.data
        return Entry(
            agent=j.agent, channel=j.channel, chat=j.chat, trigger="job", reply_route=j.reply_route,
            turn=Turn(role="user", text=j.prompt, at=j.due_at, event_id=event.id, sender=f"job:{j.job_id}"),
        )
    m = event.data
    return Entry(
        agent=m.agent, channel=m.channel, chat=m.chat, trigger="message", reply_route=m.reply_route,
        turn=Turn(role="user", text=m.text, at=m.received_at, event_id=event.id, sender=m.sender.id,
                  attachments=m.attachments),
        in_reply_to=m.platform_message_id, refusal=m.refusal, asker=m.sender,
    )


def context_of(event: MessageReceived | JobTriggered, entry: Entry, channel_type: str, history: Sequence[Turn],
               memories: Sequence[Recall]) -> ContextAssembled:
    data = ContextAssembledData(
        agent=entry.agent,
        channel=entry.channel,
        channel_type=channel_type,
        chat=entry.chat,
        trigger=entry.trigger,
        input=entry.turn,
        history=tuple(history),
        memories=tuple(memories),
        reply_route=entry.reply_route,
        in_reply_to=entry.in_reply_to,
        refusal=entry.refusal,
        asker=entry.asker,
    )
    return event.follow(ContextAssembled, data, source=SOURCE, step=Step.CONTEXT)


@dataclass
class Memory:
    config: PlatformConfig
    store: TurnStore
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
        if not self._semantic(agent) or not turn.text.strip():  # an image alone has no words to recall by
            return [], None
        assert self.embedder is not None and self.vectors is not None
        [vector] = await self.embedder.embed([turn.text], KIND)
        recalls: list[Recall] = []
        k = agent.memory.recall_top_k
        if k > 0:
            recalls = [
                r
                for r in await self.vectors.search(vector, Scope.of(event), k, exclude=event.id)
                if r.score >= agent.memory.recall_min_score
            ]
        if not effects_of(event).remember:
            return recalls, None
        return recalls, self._index(event, turn, vector)

    def _semantic(self, agent: Agent | None) -> bool:
        """Whether the agent's turns are embedded, recalled and indexed."""
        return (agent is not None and agent.memory.semantic and self.embedder is not None
                and self.vectors is not None)

    def _index(self, event: Event, turn: Turn, vector: list[float]) -> Awaitable[None]:
        """The write that makes the turn searchable."""
        assert self.vectors is not None
        return self.vectors.upsert(event.id, vector, Scope.of(event), event.conversation, turn.role, turn.text,
                                   turn.at)

    async def assemble_context(self, event: MessageReceived | JobTriggered) -> Sequence[Event]:
        """message.received / job.triggered → context.assembled."""
        entry = entry_of(event)
        channel = self.config.channel(entry.channel)
        if channel is None:
            raise PermanentError(f"unknown channel {entry.channel!r}")
        agent = self._agent(entry.agent)
        memories: list[Recall] = []
        index: Awaitable[None] | None = None
        if entry.refusal is None:
            memories, index = await self._recall(event, agent, entry.turn)
        outputs = await _together(self._record(event, entry, agent, channel.type, memories), index)
        log.info("context_assembled", history=len(outputs[0].data.history) if outputs else 0, memories=len(memories))
        return outputs

    async def _record(self, event: MessageReceived | JobTriggered, entry: Entry, agent: Agent, channel_type: str,
                      memories: Sequence[Recall]) -> list[Event]:
        """Read the history before the turn, make the context from it, and keep the turn with the context as
        the event's recorded output. A redelivery makes its context again and gets the one recorded first;
        a replay sees the history as it was before its turn and keeps nothing; a refusal sees no history
        and is not remembered."""
        history: list[Turn] = []
        if entry.refusal is None:
            history = await self.store.history(event.conversation, agent.memory.history_turns,
                                               before=entry.turn.at, exclude=event.id)
        context = context_of(event, entry, channel_type, history, memories)
        keep = entry.refusal is None and effects_of(event).remember
        return await self.store.remember(event, entry.turn if keep else None, [context])

    async def remember_reply(self, event: ReplyGenerated) -> Sequence[Event]:
        """reply.generated → an assistant turn (no output)."""
        if not effects_of(event).remember:  # a shadow run must not change what live conversations remember
            return []
        d = event.data
        turn = Turn(role="assistant", text=_with_parts(d), at=event.occurred_at, event_id=event.id, sender=d.agent)
        agent = self.config.agent(d.agent)
        index: Awaitable[None] | None = None
        if self._semantic(agent):
            assert self.embedder is not None
            [vector] = await self.embedder.embed([turn.text], KIND)
            index = self._index(event, turn, vector)
        await _together(self.store.remember(event, turn, []), index)
        return []


def _with_parts(d: ReplyGeneratedData) -> str:
    """The assistant turn as the next model call should read it: a card's buttons and the files sent are part
    of what the agent said (a press comes back as the button's value, which means something only beside them)."""
    notes = []
    if d.card is not None and d.card.buttons:
        offered = "; ".join(f"{b.label} = {b.value}" for b in d.card.buttons)
        said = " ".join(x for x in (d.card.title, d.card.text if d.card.text != d.text else None) if x)
        notes.append(f"[card{': ' + said if said else ''} with buttons {offered}]")
    notes.extend(f"[sent {a.kind} {a.name or a.url}]" for a in d.attachments)
    return "\n".join([d.text, *notes]) if notes else d.text


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

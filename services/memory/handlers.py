"""Memory's handlers: remember every turn, and assemble the context an agent answers from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
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
from agentbus.metrics import VECTORS_DEFERRED, child
from agentbus.pii import embeddable
from agentbus.replaying import effects_of
from agentbus.services.memory.ports import (
    Deferred,
    DeferredIndex,
    Embedder,
    KnowledgeBase,
    Origin,
    Scope,
    TurnStore,
    VectorStore,
)
from agentbus.services.memory.recallgate import Embedding, EmbeddingsGate, embed_or_skip

log = structlog.get_logger("agentbus.memory")
SOURCE = "memory"


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
                  attachments=m.attachments, owner=m.sender.id),
        in_reply_to=m.platform_message_id, refusal=m.refusal, asker=m.sender,
    )


def context_of(event: MessageReceived | JobTriggered, entry: Entry, channel_type: str, history: Sequence[Turn],
               memories: Sequence[Recall], earlier: Sequence[Turn] = ()) -> ContextAssembled:
    data = ContextAssembledData(
        agent=entry.agent,
        channel=entry.channel,
        channel_type=channel_type,
        chat=entry.chat,
        trigger=entry.trigger,
        input=entry.turn,
        history=tuple(history),
        earlier=tuple(earlier),
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
    deferred: DeferredIndex | None = None  # where turns wait for their vector while embeddings are away
    gate: EmbeddingsGate = field(default_factory=EmbeddingsGate)
    knowledge: KnowledgeBase | None = None  # the tenant's documents, recalled for every user

    def _agent(self, agent_id: str) -> Agent:
        agent = self.config.agent(agent_id)
        if agent is None:
            raise PermanentError(f"unknown agent {agent_id!r}")
        return agent

    def _semantic(self, agent: Agent | None) -> bool:
        """Whether the agent's turns are embedded, recalled and indexed."""
        return (agent is not None and agent.memory.semantic and self.embedder is not None
                and self.vectors is not None)

    async def _embedding(self, tenant: str, agent: Agent | None, text: str) -> Embedding | None:
        """The turn's vector (one serves both its search and its index, as E5's guidance has it for symmetric
        similarity), a counted skip while embeddings are away, or None when nothing is to be embedded. The
        server reads the text masked when the tenant masks personal data; the turn is kept as it was said."""
        if not self._semantic(agent) or not text.strip():  # an image alone has no words to recall by
            return None
        assert self.embedder is not None
        return await embed_or_skip(self.embedder, self.gate, embeddable(self.config, tenant, text))

    async def _recall(self, event: Event, entry: Entry, agent: Agent, vector: list[float],
                      history: Sequence[Turn]) -> list[Recall]:
        """The agent's memories like the turn, within its recall scope, leaving out the turn itself and every
        turn of the history sent beside it (the model must not read a turn twice), merged by score with the
        tenant's knowledge base (whatever the scope: it is for every user), the best ``recall_top_k`` of both."""
        k = agent.memory.recall_top_k
        if k <= 0:
            return []
        assert self.vectors is not None
        owner = entry.asker.id if entry.asker is not None else None
        scope = Scope.recall(event, agent.memory.recall_scope, owner, entry.chat.type == "group")
        exclude = {event.id, *(t.event_id for t in history if t.event_id is not None)}
        if self.knowledge is not None and agent.memory.knowledge:
            personal, known = await asyncio.gather(self.vectors.search(vector, scope, k, exclude),
                                                   self.knowledge.search(event.tenant, vector, k))
            found = sorted([*personal, *known], key=lambda r: -r.score)[:k]
        else:
            found = await self.vectors.search(vector, scope, k, exclude)
        return [r for r in found if r.score >= agent.memory.recall_min_score]

    def _keep_vector(self, event: Event, turn: Turn, made: Embedding | None, origin: Origin) -> Awaitable[None] | None:
        """The write that makes the turn searchable: its vector, or its place in the deferred turns."""
        if made is None or not effects_of(event).remember:
            return None
        assert self.vectors is not None
        if made.vector is not None:
            return self.vectors.upsert(event.id, made.vector, Scope.of(event), event.conversation, turn.role,
                                       turn.text, turn.at, origin=origin)
        if made.deferred and self.deferred is not None:
            child(VECTORS_DEFERRED, "deferred").inc()
            return self.deferred.defer(Deferred(event.id, event.tenant, event.conversation, turn.role, turn.text,
                                                turn.at, origin))
        return None  # refused by the embeddings server: kept in the history only

    async def assemble_context(self, event: MessageReceived | JobTriggered) -> Sequence[Event]:
        """message.received / job.triggered → context.assembled."""
        entry = entry_of(event)
        channel = self.config.channel(entry.channel)
        if channel is None:
            raise PermanentError(f"unknown channel {entry.channel!r}")
        agent = self._agent(entry.agent)
        history: list[Turn] = []
        memories: list[Recall] = []
        made: Embedding | None = None
        earlier: list[Turn] = []
        if entry.refusal is None:  # a refusal sees no history and is not remembered
            m = agent.memory
            ttl = timedelta(days=m.history_ttl_days) if m.history_ttl_days else None
            read, made = await asyncio.gather(
                # with a running summary, the turns just before the window too: those not folded in yet
                self.store.history(event.conversation, m.history_turns + 2 * m.summary_after,
                                   before=entry.turn.at, exclude=event.id,
                                   since=entry.turn.at - ttl if ttl is not None else None),
                self._embedding(event.tenant, agent, entry.turn.text))
            cut = max(0, len(read) - m.history_turns)
            earlier, history = read[:cut], read[cut:]
            if made is not None and made.vector is not None:
                memories = await self._recall(event, entry, agent, made.vector, read)
        context = context_of(event, entry, channel.type, history, memories, earlier)
        keep = entry.refusal is None and effects_of(event).remember
        index = self._keep_vector(event, entry.turn, made, origin_of(entry)) if keep else None
        # a redelivery makes its context again and gets the one recorded first; a replay keeps nothing
        outputs = await _together(self.store.remember(event, entry.turn if keep else None, [context]), index)
        log.info("context_assembled", history=len(history), memories=len(memories),
                 recall=made.skipped if made is not None and made.skipped else "done" if made else "off")
        return outputs

    async def remember_reply(self, event: ReplyGenerated) -> Sequence[Event]:
        """reply.generated → an assistant turn (no output)."""
        if not effects_of(event).remember:  # a shadow run must not change what live conversations remember
            return []
        d = event.data
        turn = Turn(role="assistant", text=_with_parts(d), at=event.occurred_at, event_id=event.id, sender=d.agent,
                    owner=d.asker.id if d.asker is not None else None)
        made = await self._embedding(event.tenant, self.config.agent(d.agent), turn.text)
        origin = Origin(owner=d.asker.id if d.asker is not None else None, sender=d.agent, channel=d.channel,
                        chat=d.chat.id, chat_name=d.chat.name, chat_type=d.chat.type)
        await _together(self.store.remember(event, turn, []), self._keep_vector(event, turn, made, origin))
        return []


def origin_of(entry: Entry) -> Origin:
    """Who said the entry's turn and where; its owner is the person who sent it (none for a job's firing)."""
    asker = entry.asker
    return Origin(owner=asker.id if asker is not None else None,
                  sender=asker.id if asker is not None else entry.turn.sender,
                  sender_name=asker.name if asker is not None else None, channel=entry.channel,
                  chat=entry.chat.id, chat_name=entry.chat.name, chat_type=entry.chat.type)


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

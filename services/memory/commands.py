"""Memory's handler of ``memory.requested``: remember a fact, forget the memories like a query, or forget one
memory by its id (an operator's command through the API).

A fact is a memory like a turn (embedded and indexed, so recall finds it beside what was said), kept under
the command's id, so a command applied twice writes it once. A forget deletes every memory of the scope at
least ``min_score`` alike to its query, everywhere recall searches, and says what it deleted.

The command log is read first and written last, with the processed record in the same statement: a
redelivery after it changes nothing; one before it (effect done, record not yet written) does the effect
again, which is harmless: the fact's id is the command's, and a forget repeated finds only what matches now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agentbus.bus import PermanentError
from agentbus.config import PlatformConfig
from agentbus.events import Event, MemoryRequested
from agentbus.pii import embeddable
from agentbus.replaying import effects_of
from agentbus.services.memory.ports import CommandLog, Embedder, Origin, Scope, VectorStore
from agentbus.services.memory.recallgate import KIND

log = structlog.get_logger("agentbus.memory")


@dataclass
class MemoryCommands:
    embedder: Embedder | None
    vectors: VectorStore | None
    commands: CommandLog
    config: PlatformConfig | None = None  # whose tenants mask personal data before it is embedded

    async def apply(self, event: MemoryRequested) -> Sequence[Event]:
        """memory.requested → a fact remembered, or memories forgotten (no output)."""
        cmd = event.data
        if not effects_of(event).remember:  # a shadow run must not change what live conversations remember
            log.info("memory_command_not_applied", action=cmd.action, reason="replayed")
            return []
        if await self.commands.applied(event):
            log.info("memory_command_not_applied", action=cmd.action, reason="applied before")
            return []
        if self.embedder is None or self.vectors is None:  # dead-lettered: redrive it once memory is on
            raise PermanentError("semantic memory is off (no embeddings endpoint configured)")
        scope = Scope.of(event)
        if cmd.action == "forget" and cmd.memory_id is not None:  # one memory, by id: nothing to embed
            deleted = await self.vectors.delete(scope.tenant, [cmd.memory_id])
            log.info("memory_forgotten", memory_id=str(cmd.memory_id), deleted=len(deleted),
                     requested_by=cmd.requested_by)
            await self.commands.record(event, deleted)
            return []
        [vector] = await self.embedder.embed([embeddable(self.config, event.tenant, cmd.text)], KIND)
        deleted = []
        if cmd.action == "remember":
            # a fact is its subject's memory: a person's recall finds the facts about them
            await self.vectors.upsert(event.id, vector, scope, event.conversation, "user", cmd.text,
                                      event.occurred_at, kind="fact", subject=cmd.subject,
                                      origin=Origin(owner=cmd.subject, sender=cmd.subject))
            log.info("fact_remembered", fact_id=str(event.id), subject=cmd.subject, requested_by=cmd.requested_by)
        else:
            deleted = await self.vectors.forget(vector, scope, cmd.min_score)
            log.info("memories_forgotten", count=len(deleted), ids=[str(i) for i in deleted],
                     min_score=cmd.min_score, requested_by=cmd.requested_by)
        await self.commands.record(event, deleted)
        return []

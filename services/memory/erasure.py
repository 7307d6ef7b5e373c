"""Memory's part of forgetting a person: their turns (and the replies to them), their memories in the vector
store, and the turns still waiting for a vector, deleted; then ``user.erased`` says how many of each.

The vector store goes first (Qdrant is outside the database's transaction; deleting is idempotent), then the
rows and the processed record together, so a redelivered command is answered from the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.erasure import Forgetter, erase_rows
from agentbus.events import Event, UserErasureRequested
from agentbus.services.memory.ports import VectorStore

log = structlog.get_logger("agentbus.memory")

# a person's turns: those they own; before owners were kept, those they sent and the replies to them (the
# replies of a chain their message started share its correlation id, which is that message's event id)
STATEMENTS = (
    ("turns", "DELETE FROM turns WHERE tenant = %(tenant)s AND (owner = %(user)s OR (owner IS NULL AND ("
              "(role = 'user' AND sender = %(user)s) OR correlation_id IN (SELECT event_id FROM turns "
              "WHERE tenant = %(tenant)s AND role = 'user' AND sender = %(user)s))))"),
    ("deferred_vectors", "DELETE FROM deferred_vectors WHERE tenant = %(tenant)s AND (owner = %(user)s OR "
                         "(owner IS NULL AND sender = %(user)s))"),
)


@dataclass
class MemoryErasure:
    pool: AsyncConnectionPool
    keys: Forgetter
    vectors: VectorStore | None

    async def erase(self, event: UserErasureRequested) -> Sequence[Event]:
        """user.erasure_requested → the person's memory deleted → user.erased."""
        if event.replay is not None:  # a shadow run erases nothing
            return []

        async def vectors() -> dict[str, int]:
            return {"vectors": await self.vectors.erase(event.tenant, event.data.user)} if self.vectors else {}

        outputs = await erase_rows(self.pool, event, "memory", STATEMENTS, before=vectors, keys=self.keys)
        log.info("user_erased", requested_by=event.data.requested_by,
                 deleted=[o.data.deleted for o in outputs if o.TYPE == "user.erased"])
        return outputs

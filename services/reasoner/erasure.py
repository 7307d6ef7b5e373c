"""The reasoner's part of forgetting a person: every recorded inference and tool-loop step whose prompt or
answer carries their words (theirs, or a group chat's where their turns were in the context), deleted; then
``user.erased`` says how many.

The ledger exists so that a redelivered input is not paid for twice; an input of a forgotten person that is
redelivered later finds its processed record (its outputs sealed with the deleted key) and is not answered
again, so nothing is lost by deleting its inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.erasure import Forgetter, erase_rows
from agentbus.events import Event, UserErasureRequested

log = structlog.get_logger("agentbus.reasoner")

STATEMENTS = (
    ("steps", "DELETE FROM steps WHERE tenant = %(tenant)s AND owners @> ARRAY[%(user)s]::text[]"),
    ("inferences", "DELETE FROM inferences WHERE tenant = %(tenant)s AND owners @> ARRAY[%(user)s]::text[]"),
    ("summaries", "DELETE FROM summaries WHERE tenant = %(tenant)s AND owners @> ARRAY[%(user)s]::text[]"),
)


@dataclass
class ReasonerErasure:
    pool: AsyncConnectionPool
    keys: Forgetter

    async def erase(self, event: UserErasureRequested) -> Sequence[Event]:
        """user.erasure_requested → the person's inferences and steps deleted → user.erased."""
        if event.replay is not None:
            return []
        outputs = await erase_rows(self.pool, event, "reasoner", STATEMENTS, keys=self.keys)
        log.info("user_erased", requested_by=event.data.requested_by,
                 deleted=[o.data.deleted for o in outputs if o.TYPE == "user.erased"])
        return outputs

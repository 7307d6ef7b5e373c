"""Ingress's part of forgetting a person: it keeps none of their text (the de-duplication table holds ids), so
it deletes their data key, which shreds their text everywhere in the event log, and says so with
``user.erased``. It also keeps each service's ``user.erased`` in the audit log, so ``agentbus audit`` and the
operator API show who asked for an erasure and what every service deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agentbus.erasure import Forgetter, erased
from agentbus.events import AuditRecorded, AuditRecordedData, Event, UserErased, UserErasureRequested
from agentbus.services.ingress.api.ports import AuditLog

log = structlog.get_logger("agentbus.ingress")


def audit_of(event: UserErased) -> AuditRecorded:
    """The audit entry of one service's erasure (its id derived from the event's: kept once)."""
    d = event.data
    counts = " ".join(f"{store}={n}" for store, n in sorted(d.deleted.items()))
    detail = f"request {d.request_id}; {counts + '; ' if counts else ''}keys={d.keys_deleted}"
    data = AuditRecordedData(actor=f"service:{d.service}", tenant=event.tenant, action="users.erased", target=d.user,
                             outcome="ok", detail=detail, at=d.at)
    return event.follow(AuditRecorded, data, source="ingress", step="audit")


@dataclass
class IngressErasure:
    keys: Forgetter
    audit: AuditLog

    async def erase(self, event: UserErasureRequested) -> Sequence[Event]:
        """user.erasure_requested → the person's data key deleted → user.erased."""
        if event.replay is not None:
            return []
        shredded = await self.keys.forget(event.tenant, event.data.user)
        log.info("user_key_deleted", keys=len(shredded), requested_by=event.data.requested_by)
        return [erased(event, "ingress", {}, len(shredded))]

    async def keep_erased(self, event: UserErased) -> Sequence[Event]:
        """user.erased (of any service) → an entry of the audit log."""
        await self.audit.record([audit_of(event)])
        return []

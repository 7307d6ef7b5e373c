"""Audit events: every operator write (allowed or denied) and every token created or revoked is an
``audit.recorded`` event; ingress consumes them into its audit table, so every replica lists the same log.

An audit event is keyed by its tenant (or ``_platform``), so one tenant's entries stay in order.
"""

from __future__ import annotations

from agentbus.events import AuditRecorded, AuditRecordedData, Event, utcnow
from agentbus.services.ingress.api.ports import AuditLog

PLATFORM = "_platform"


def audit_event(*, actor: str, actor_name: str | None, tenant: str | None, action: str, target: str,
                outcome: str, detail: str = "", source: str = "ingress") -> AuditRecorded:
    data = AuditRecordedData.model_validate({
        "actor": actor, "actor_name": actor_name, "tenant": tenant, "action": action, "target": target[:300],
        "outcome": outcome, "detail": detail[:1000], "at": utcnow(),
    })
    key = tenant or PLATFORM
    return AuditRecorded.new(data, source=source, tenant=key, conversation=f"{key}/audit/{actor}")


class AuditRecorder:
    """The consumer of ``audit.recorded``: keeps each event once in the audit table."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def keep_audit(self, event: AuditRecorded) -> list[Event]:
        await self._log.record([event])
        return []

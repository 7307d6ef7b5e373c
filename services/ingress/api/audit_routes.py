"""The audit log: who did what, newest first, for the tenants the caller administers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from agentbus.services.ingress.api.access import TENANT_ID
from agentbus.services.ingress.api.app import Access, allow

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    event_id: str
    at: datetime
    actor: str
    actor_name: str | None
    tenant: str | None
    action: str
    target: str
    outcome: str
    detail: str


@router.get("/audit", name="audit.list", response_model=list[AuditOut])
async def audit(access: Access = Depends(allow("admin")),
                tenant: str | None = Query(default=None, pattern=TENANT_ID,
                                           description="default: the token's tenant (owners: every tenant)"),
                limit: int = Query(default=100, ge=1, le=1000),
                before: datetime | None = Query(default=None, description="only entries older than this")
                ) -> list[AuditOut]:
    who = access.who
    if tenant is not None and not who.sees(tenant):
        raise HTTPException(404, f"no tenant {tenant!r}")
    entries = await access.deps.audit.list(tenant if tenant is not None else who.tenant, limit, before)
    return [AuditOut(**vars(e)) for e in entries]

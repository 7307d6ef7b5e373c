"""The audit log: who did what, newest first, for the tenants the caller administers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, BeforeValidator

from agentbus.services.ingress.api.access import TENANT_ID
from agentbus.services.ingress.api.app import Access, allow

router = APIRouter(tags=["audit"])
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    """The document says date-time: pydantic alone would also take a number of seconds ("0.5") as one."""
    if isinstance(value, str) and not ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2030-01-01T00:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]


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
                before: IsoDatetime | None = Query(default=None, description="only entries older than this")
                ) -> list[AuditOut]:
    who = access.who
    if tenant is not None and not who.sees(tenant):
        raise HTTPException(404, f"no tenant {tenant!r}")
    entries = await access.deps.audit.list(tenant if tenant is not None else who.tenant, limit, before)
    return [AuditOut(**vars(e)) for e in entries]

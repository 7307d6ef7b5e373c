"""Forgetting a person of a tenant: ``POST /tenants/{tenant}/erasures`` publishes a ``user.erasure_requested``
with its audit event and is answered 202 with the command's id; every service that keeps the person's text
deletes it and answers on the bus (``user.erased``, kept in the audit log), and their data key is deleted, so
their text in the event log reads ``[forgotten]``. Admins of the tenant (and owners) only: it cannot be undone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from agentbus.erasure import ERASERS, MAX_USER, erasure_requested
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath

router = APIRouter(tags=["erasures"])
UserId = Annotated[str, Field(min_length=1, max_length=MAX_USER, pattern=r"^[^\x00-\x1f]+$",
                              description="the person's sender id, as the platform gives it")]


class EraseIn(BaseModel):
    model_config = {"extra": "forbid"}

    user: UserId


class ErasureAccepted(BaseModel):
    command_id: str
    user: str
    services: list[str] = Field(description="the services that answer with what they deleted (user.erased)")


@router.post("/tenants/{tenant}/erasures", name="users.forget", status_code=202, response_model=ErasureAccepted)
async def forget_user(tenant: TenantPath, body: EraseIn, access: Access = Depends(allow("admin"))) -> ErasureAccepted:
    event = erasure_requested(tenant, body.user, access.who.actor, source="ingress")
    await access.publish([event], target=body.user)
    return ErasureAccepted(command_id=str(event.id), user=body.user, services=list(ERASERS))

"""Forgetting one memory of a tenant: the operator's write of memory, a ``memory.requested`` command through
the bus (memory applies it; the API keeps nothing), published with its audit event.

The memory must exist in the tenant (memory's own read says so: another tenant's id is a 404 like one that
does not exist). The command's id is derived from the tenant and the memory, so asking twice is one command
to memory, which applies a command once; once it is applied, the memory is gone and asking again is a 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from agentbus.events import MemoryCommand, MemoryRequested, derive_id
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.history_routes import _answer, _reads

router = APIRouter(tags=["memories"])
MemoryPath = Annotated[uuid.UUID, Path(description="a memory's id, as GET .../conversations/{key}/memories lists it")]


class Forgetting(BaseModel):
    memory_id: str
    command_id: str = Field(description="the memory.requested command (the same however often it is asked)")
    conversation: str | None = Field(description="where the memory was made")


@router.post("/tenants/{tenant}/memories/{memory_id}/forget", name="memories.forget", status_code=202,
             response_model=Forgetting,
             description="Forget one memory: memory deletes it everywhere recall searches, a moment after the "
                         "202 (a memory.requested command). Audited as memories.forget.")
async def forget_memory(tenant: TenantPath, memory_id: MemoryPath,
                        access: Access = Depends(allow("operator"))) -> Forgetting:
    found = await _answer(_reads(access).history.memory(tenant, str(memory_id)))
    if found is None:
        raise HTTPException(404, f"no memory {str(memory_id)!r} (never kept, or forgotten already)")
    conversation = str(found.get("conversation") or f"{tenant}/memory/{memory_id}")
    command = MemoryCommand(action="forget", text=f"memory {memory_id}", memory_id=memory_id, min_score=1.0,
                            requested_by=access.who.actor)
    event = MemoryRequested.new(command, source="ingress", tenant=tenant, conversation=conversation,
                                id=derive_id(memory_id, f"forget:{tenant}"))
    await access.publish([event], target=str(memory_id), detail=f"{found.get('kind', 'turn')} of {conversation}"[:300])
    return Forgetting(memory_id=str(memory_id), command_id=str(event.id), conversation=found.get("conversation"))

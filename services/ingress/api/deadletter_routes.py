"""A tenant's dead letters: listed from the dead-letter topic (the latest records of each partition), and
redriven to their original topic exactly as ``agentbus dlq redrive`` does.

A dead letter belongs to the tenant named in its envelope; another tenant's is a 404 like one that does not
exist. Redrive republishes the original record unchanged (its event id included), so a second redrive of the
same letter has no second effect; the redrive is audited as ``dead_letter.redrive``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from agentbus.deadletters import Letter
from agentbus.services.ingress.api.app import Access, PublishFailed, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.eventlog import DEAD_LETTER_SCAN, DeadLetterStore, LogUnavailable

router = APIRouter(tags=["dead letters"])
LetterPath = Annotated[uuid.UUID, Path(description="a dead letter id")]
PRINTABLE = r"^[^\x00-\x1f]+$"


class DeadLetterOut(BaseModel):
    id: str
    time: str
    service: str
    conversation: str
    original_type: str | None
    original_id: str | None
    original_topic: str
    original_partition: int
    original_offset: int
    attempts: int
    error_type: str
    error: str
    redriven_from: str | None


class DeadLetterDetail(DeadLetterOut):
    original_key: str | None
    original_headers: dict[str, str]
    correlation_id: str


class Redriven(BaseModel):
    id: str
    original_topic: str
    original_id: str | None


def _out(x: Letter) -> DeadLetterOut:
    s = x.summary()
    return DeadLetterOut(**{k: s[k] for k in DeadLetterOut.model_fields if k in s},
                         conversation=x.event.conversation)


def _store(access: Access) -> DeadLetterStore:
    if access.deps.dead_letters is None:
        raise LogUnavailable("dead letters are not served by this ingress")
    return access.deps.dead_letters


async def _tenant_letters(access: Access, tenant: str) -> list[Letter]:
    """The tenant's letters, one per id (the latest copy: a redriven event that fails again is dead-lettered
    again under the same id), oldest first."""
    latest: dict[str, Letter] = {}
    for x in await _store(access).letters():
        if x.tenant == tenant:
            latest[x.id] = x
    return list(latest.values())


async def _letter(access: Access, tenant: str, letter_id: uuid.UUID) -> Letter:
    found = next((x for x in reversed(await _tenant_letters(access, tenant)) if x.id == str(letter_id)), None)
    if found is None:
        raise HTTPException(404, f"no dead letter {str(letter_id)!r}")
    return found


@router.get("/tenants/{tenant}/dead-letters", name="dead_letter.list", response_model=list[DeadLetterOut],
            description=f"Newest first, from the latest {DEAD_LETTER_SCAN} records of each partition of the "
                        "dead-letter topic.")
async def list_dead_letters(tenant: TenantPath, access: Access = Depends(allow("viewer")),
                            topic: str | None = Query(default=None, max_length=256, pattern=PRINTABLE,
                                                      description="the original topic"),
                            type_: str | None = Query(default=None, alias="type", max_length=256,
                                                      pattern=PRINTABLE, description="the original event type"),
                            service: str | None = Query(default=None, max_length=64, pattern=PRINTABLE,
                                                        description="the service that gave up"),
                            limit: int = Query(default=100, ge=1, le=1000)) -> list[DeadLetterOut]:
    out = []
    for x in reversed(await _tenant_letters(access, tenant)):
        d = x.event.data
        if topic not in (None, d.original_topic) or type_ not in (None, d.original_type) \
                or service not in (None, d.service):
            continue
        out.append(_out(x))
        if len(out) == limit:
            break
    return out


@router.get("/tenants/{tenant}/dead-letters/{letter_id}", name="dead_letter.get", response_model=DeadLetterDetail)
async def get_dead_letter(tenant: TenantPath, letter_id: LetterPath,
                          access: Access = Depends(allow("viewer"))) -> DeadLetterDetail:
    x = await _letter(access, tenant, letter_id)
    d = x.event.data
    return DeadLetterDetail(**_out(x).model_dump(), original_key=d.original_key,
                            original_headers=dict(d.original_headers), correlation_id=str(x.event.correlation_id))


@router.post("/tenants/{tenant}/dead-letters/{letter_id}/redrive", name="dead_letter.redrive", status_code=202,
             response_model=Redriven)
async def redrive_dead_letter(tenant: TenantPath, letter_id: LetterPath,
                              access: Access = Depends(allow("operator"))) -> Redriven:
    """Publish the original record again (acks=all), then its audit event. A retry after a failure redrives
    the same record again, which changes nothing a first redrive did not."""
    x = await _letter(access, tenant, letter_id)
    d = x.event.data
    try:
        await _store(access).redrive(x)
    except Exception as exc:  # nothing was acknowledged: answered 503, the caller may retry
        raise PublishFailed(f"redrive: {type(exc).__name__}: {exc}"[:300]) from exc
    await access.publish([], target=x.id, detail=f"{d.original_type or 'unparseable'} to {d.original_topic}")
    return Redriven(id=x.id, original_topic=d.original_topic, original_id=d.original_id)

"""A tenant's API tokens, managed by its admins: list, create (the token is in the answer, once), revoke.

Tokens live in ingress's PostgreSQL schema (shared by every replica), like those ``agentbus tokens``
creates; each creation and revocation is audited. An owner token is made only on the command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from agentbus.services.ingress.api.access import mint, token_hash
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath
from agentbus.services.ingress.api.ports import TenantRole, TokenRecord

router = APIRouter(tags=["tokens"])
TokenPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="a token's public id")]


class TokenOut(BaseModel):
    id: str
    name: str
    tenant: str | None
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreateTokenIn(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    role: TenantRole
    expires_days: float | None = Field(default=None, gt=0, le=3650)


class CreatedToken(TokenOut):
    token: str = Field(description="the token itself: shown only in this answer")


def token_out(r: TokenRecord) -> TokenOut:
    return TokenOut(id=r.id, name=r.name, tenant=r.tenant, role=r.role, created_at=r.created_at,
                    expires_at=r.expires_at, revoked_at=r.revoked_at, last_used_at=r.last_used_at)


@router.get("/tenants/{tenant}/tokens", name="tokens.list", response_model=list[TokenOut])
async def list_tokens(tenant: TenantPath, access: Access = Depends(allow("admin"))) -> list[TokenOut]:
    return [token_out(r) for r in await access.deps.tokens.list(tenant)]


@router.post("/tenants/{tenant}/tokens", name="tokens.create", status_code=201, response_model=CreatedToken)
async def create_token(tenant: TenantPath, body: CreateTokenIn,
                       access: Access = Depends(allow("admin"))) -> CreatedToken:
    record, token = mint(body.name, tenant, body.role, body.expires_days)
    await access.deps.tokens.create(record, token_hash(token))
    try:
        await access.publish([], target=record.id, detail=f"{body.role} {body.name}")
    except Exception:
        await access.deps.tokens.delete(record.id)  # not audited: not handed out
        raise
    return CreatedToken(**token_out(record).model_dump(), token=token)


@router.delete("/tenants/{tenant}/tokens/{token_id}", name="tokens.revoke", response_model=TokenOut)
async def revoke_token(tenant: TenantPath, token_id: TokenPath, access: Access = Depends(allow("admin"))) -> TokenOut:
    record = await access.deps.tokens.get(token_id)
    if record is None or record.tenant != tenant:
        raise HTTPException(404, f"no token {token_id!r}")
    await access.deps.tokens.revoke(token_id)
    await access.publish([], target=token_id, detail=record.name)
    revoked = await access.deps.tokens.get(token_id)
    return token_out(revoked or record)

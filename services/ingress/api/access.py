"""API tokens and roles: how a bearer token becomes an identity, and what that identity may do.

A token is ``agb_<public id>_<secret>``. Only the sha256 of the whole token is stored, so a leaked table
hands out no working token; the public id names the token in lists, revocations and the audit. Roles:
``owner`` is platform-wide; per tenant ``admin`` > ``operator`` > ``viewer`` (viewers read, operators also
change jobs, admins also manage the tenant's tokens).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentbus.events import utcnow
from agentbus.services.ingress.api.ports import Role, TokenRecord, TokenStore

PREFIX = "agb_"
_TOKEN = re.compile(r"^agb_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}
ROLES: tuple[Role, ...] = ("owner", "admin", "operator", "viewer")
TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def new_token() -> tuple[str, str]:
    """A fresh (public id, whole token)."""
    public = secrets.token_hex(6)
    return public, f"{PREFIX}{public}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def mint(name: str, tenant: str | None, role: Role, expires_days: float | None = None,
         now: datetime | None = None) -> tuple[TokenRecord, str]:
    """A new token's record and the token itself (shown once, never stored)."""
    if (tenant is None) != (role == "owner"):
        raise ValueError("an owner token has no tenant; every other role belongs to one tenant")
    now = now or utcnow()
    public, token = new_token()
    expires = now + timedelta(days=expires_days) if expires_days is not None else None
    return TokenRecord(id=public, name=name, tenant=tenant, role=role, created_at=now, expires_at=expires), token


@dataclass(frozen=True)
class Identity:
    """Who a request speaks for: the token's id, name, tenant (None for an owner) and role."""

    token_id: str
    name: str
    tenant: str | None
    role: Role
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"

    def sees(self, tenant: str) -> bool:
        return self.role == "owner" or self.tenant == tenant

    def may(self, tenant: str, need: Role) -> bool:
        if self.role == "owner":
            return True
        return self.tenant == tenant and need != "owner" and RANK[self.role] >= RANK[need]


class Unauthenticated(Exception):
    """No identity: the reason is said in the 401 answer."""


async def authenticate(store: TokenStore, token: str | None, now: datetime | None = None) -> Identity:
    if not token:
        raise Unauthenticated("missing bearer token (Authorization: Bearer agb_...)")
    if _TOKEN.match(token) is None:
        raise Unauthenticated("malformed token (expected agb_<id>_<secret>)")
    record = await store.find(token_hash(token))
    if record is None:
        raise Unauthenticated("unknown token")
    if record.revoked_at is not None:
        raise Unauthenticated("token revoked")
    if record.expires_at is not None and record.expires_at <= (now or utcnow()):
        raise Unauthenticated("token expired")
    await store.touch(record.id)
    return Identity(record.id, record.name, record.tenant, record.role, record.expires_at)

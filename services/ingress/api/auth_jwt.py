"""Short-lived JWTs signed by the platform: an API token (or a login through Feishu or DingTalk) is exchanged
for one, so what travels with every request expires within minutes.

HS256 with a key kept in ingress's PostgreSQL (``auth_keys``); the key's id is the JWT's ``kid``. Every
replica caches the keys and reads them again every ``REFRESH_S`` or when it meets a ``kid`` it does not know,
so a rotation made on one replica (or by ``agentbus tokens rotate-signing-key``) reaches all. A retired key
still verifies the JWTs it signed before its retirement (plus the refresh interval, while other replicas
still signed with it) until they expire. Claims: sub, tenant, role, exp, iat, jti, iss, and ``aud``, which
keeps the login flow's state cookie (also signed here) from passing for an API JWT.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from agentbus.events import utcnow
from agentbus.services.ingress.api.access import ROLES, Identity, Unauthenticated
from agentbus.services.ingress.api.auth_keys import SigningKey, SigningKeyStore

ISSUER = "agentbus"
API_AUDIENCE = "agentbus-api"
LOGIN_AUDIENCE = "agentbus-login"
REFRESH_S = 30.0
UNKNOWN_KID_REFRESH_S = 2.0
DEFAULT_TTL_S = 900


@dataclass(frozen=True)
class JwtIdentity(Identity):
    """An identity from a JWT: its actor is the JWT's subject (``token:<id>`` or ``feishu:<user>``)."""

    subject: str = ""

    @property
    def actor(self) -> str:
        return self.subject


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("agb_")


class Signer:
    def __init__(self, store: SigningKeyStore, issuer: str = ISSUER,
                 unknown_kid_refresh_s: float = UNKNOWN_KID_REFRESH_S) -> None:
        self._store = store
        self._unknown_kid_refresh_s = unknown_kid_refresh_s  # at most one read of the keys per this, whatever
        # kids strangers send
        self._issuer = issuer
        self._keys: list[SigningKey] = []
        self._lock = asyncio.Lock()
        self._loaded = float("-inf")

    async def _load(self, older_than_s: float) -> list[SigningKey]:
        if time.monotonic() - self._loaded >= older_than_s:
            async with self._lock:  # one read for every request that found the cache old at once
                if time.monotonic() - self._loaded >= older_than_s:
                    self._keys = await self._store.keys()
                    self._loaded = time.monotonic()
        return self._keys

    async def sign(self, claims: dict[str, Any], audience: str, ttl_s: float,
                   not_after: datetime | None = None) -> tuple[str, datetime]:
        keys = await self._load(REFRESH_S)
        if not keys or keys[0].retired_at is not None:
            raise LookupError("no active signing key (ingress's migration 004 makes one)")
        now = utcnow().replace(microsecond=0)
        exp = now + timedelta(seconds=ttl_s)
        if not_after is not None:
            exp = min(exp, not_after)
        body = {**claims, "iss": self._issuer, "aud": audience, "iat": now, "exp": exp,
                "jti": secrets.token_hex(8)}
        return jwt.encode(body, keys[0].secret, algorithm="HS256", headers={"kid": keys[0].kid}), exp

    async def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a JWT this platform signed for ``audience``; ``Unauthenticated`` says why not."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        if not isinstance(kid, str):
            raise Unauthenticated("malformed token (no key id)")
        key = _find(await self._load(REFRESH_S), kid) or _find(await self._load(self._unknown_kid_refresh_s), kid)
        if key is None:
            raise Unauthenticated("token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.secret, algorithms=["HS256"], audience=audience, issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token ({type(exc).__name__})") from None
        if key.retired_at is not None:
            latest = key.retired_at.timestamp() + REFRESH_S
            if not isinstance(claims["iat"], (int, float)) or claims["iat"] > latest:
                raise Unauthenticated("token signed with a retired key")
        return claims

    async def issue(self, who: Identity, ttl_s: float = DEFAULT_TTL_S) -> tuple[str, datetime]:
        """An API JWT for ``who`` (never outliving the API token it was exchanged for)."""
        claims = {"sub": who.actor, "tenant": who.tenant, "role": who.role, "name": who.name}
        return await self.sign(claims, API_AUDIENCE, ttl_s, not_after=who.expires_at)

    async def identity(self, token: str) -> JwtIdentity:
        claims = await self.verify(token, API_AUDIENCE)
        role, tenant, sub = claims.get("role"), claims.get("tenant"), claims["sub"]
        if role not in ROLES or (tenant is None) != (role == "owner") or not isinstance(sub, str):
            raise Unauthenticated("invalid token (role and tenant)")
        if tenant is not None and not isinstance(tenant, str):
            raise Unauthenticated("invalid token (tenant)")
        given = claims.get("name")
        name = given if isinstance(given, str) else sub
        exp = datetime.fromtimestamp(claims["exp"], tz=UTC)
        return JwtIdentity(token_id=str(claims["jti"]), name=name, tenant=tenant, role=role, expires_at=exp,
                           subject=sub)


def _find(keys: list[SigningKey], kid: str) -> SigningKey | None:
    return next((k for k in keys if k.kid == kid), None)

"""The JWT signing keys in ingress's PostgreSQL schema (``signing_keys``, made by migration 004), shared by
every replica: a replica needs no secret in its environment, and a rotation on one is seen by all."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from agentbus.services.ingress.api.store import _Pg

# a key retired this long ago verifies nothing any more (the longest JWT lifetime is 12 hours): removed
KEEP_RETIRED = timedelta(days=1)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes
    created_at: datetime
    retired_at: datetime | None = None


class SigningKeyStore(Protocol):
    async def keys(self) -> list[SigningKey]:
        """Every key kept, the active one (not retired) first."""
        ...

    async def rotate(self) -> SigningKey:
        """Retire the active key, make a new one active, and drop keys that verify nothing any more."""
        ...


class PgSigningKeys(_Pg):
    async def keys(self) -> list[SigningKey]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT kid, secret, created_at, retired_at FROM signing_keys "
                "ORDER BY retired_at IS NOT NULL, created_at DESC")
            return [SigningKey(kid, bytes(secret), created, retired)
                    for kid, secret, created, retired in await cur.fetchall()]

    async def rotate(self) -> SigningKey:
        key = SigningKey(secrets.token_hex(6), secrets.token_bytes(32), datetime.now().astimezone())
        async with self._durable() as conn:
            await conn.execute("LOCK TABLE signing_keys IN EXCLUSIVE MODE")  # two rotations run one after another
            await conn.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
            await conn.execute("DELETE FROM signing_keys WHERE retired_at < now() - %s", (KEEP_RETIRED,))
            cur = await conn.execute("INSERT INTO signing_keys (kid, secret) VALUES (%s, %s) RETURNING created_at",
                                     (key.kid, key.secret))
            row = await cur.fetchone()
        assert row is not None
        return SigningKey(key.kid, key.secret, row[0])

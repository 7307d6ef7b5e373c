"""The pending "forget everything about me" questions in ingress's schema (``erasure_confirmations``), shared
by every replica: the confirmation may reach another replica than the question did."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


class PgConfirmations:
    """The ``Confirmations`` port of ``forgetme``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def ask(self, tenant: str, user: str, channel: str, chat: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO erasure_confirmations (tenant, user_id, channel, chat) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (tenant, user_id) DO UPDATE SET channel = EXCLUDED.channel, chat = EXCLUDED.chat, "
                "asked_at = now()", (tenant, user.encode(), channel, chat))

    async def take(self, tenant: str, user: str, channel: str, chat: str, within_s: float) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM erasure_confirmations WHERE tenant = %s AND user_id = %s "
                "RETURNING channel = %s AND chat = %s AND asked_at > now() - make_interval(secs => %s)",
                (tenant, user.encode(), channel, chat, within_s))
            row = await cur.fetchone()
        return bool(row and row[0])

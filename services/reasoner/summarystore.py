"""The running summaries in the reasoner's schema (table ``summaries``): the ``SummaryStore`` of ``summaries``."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from agentbus.services.reasoner.summaries import Summary


class PgSummaries:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def get(self, conversation: str) -> Summary | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT text, covers_until, turns, owners FROM summaries WHERE conversation = %s",
                (conversation,))).fetchone()
        return None if row is None else Summary(row[0], row[1], row[2], tuple(row[3]))

    async def save(self, tenant: str, conversation: str, agent: str, summary: Summary) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO summaries (conversation, tenant, agent, text, covers_until, turns, owners) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (conversation) DO UPDATE SET text = EXCLUDED.text, "
                "covers_until = EXCLUDED.covers_until, turns = EXCLUDED.turns, owners = EXCLUDED.owners, "
                "agent = EXCLUDED.agent, updated_at = now() WHERE summaries.covers_until < EXCLUDED.covers_until",
                (conversation, tenant, agent, summary.text, summary.covers_until, summary.turns,
                 list(summary.owners)))
            return cur.rowcount == 1

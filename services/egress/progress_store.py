"""Where egress keeps the progress of replies being written (schema ``egress``, table progress_messages).

Each call is one statement, so two replicas handling the progress and the final reply of one answer at
the same moment see one consistent row: a progress is applied only when its sequence number is higher than
the row's and the reply has not finished, and finishing hands back the message a stream was edited in.
Rows of finished replies older than a day are deleted as new replies finish.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from agentbus.services.egress.progress import Applied, Finished

FINISHED_SEQ = 2_147_483_647  # a finished reply takes no more progress


class PgProgressStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def advance(self, channel: str, in_reply_to: str, seq: int) -> Applied | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO progress_messages (channel, in_reply_to, seq) VALUES (%s, %s, %s) "
                "ON CONFLICT (channel, in_reply_to) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now() "
                "WHERE progress_messages.seq < EXCLUDED.seq AND NOT progress_messages.finished "
                "RETURNING platform_message_id, typing_id",
                (channel, in_reply_to, seq),
            )
            row = await cur.fetchone()
        return None if row is None else Applied(row[0], row[1])

    async def set_message(self, channel: str, in_reply_to: str, message_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE progress_messages SET platform_message_id = %s WHERE channel = %s AND in_reply_to = %s "
                "AND platform_message_id IS NULL",
                (message_id, channel, in_reply_to),
            )

    async def set_typing(self, channel: str, in_reply_to: str, typing_id: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE progress_messages SET typing_id = %s WHERE channel = %s AND in_reply_to = %s "
                "RETURNING finished",
                (typing_id, channel, in_reply_to),
            )
            row = await cur.fetchone()
        return row is None or bool(row[0])

    async def posting(self, channel: str, in_reply_to: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE progress_messages SET posting_since = now() WHERE channel = %s AND in_reply_to = %s",
                (channel, in_reply_to),
            )

    async def finish(self, channel: str, in_reply_to: str) -> Finished:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO progress_messages (channel, in_reply_to, seq, finished) VALUES (%s, %s, %s, true) "
                "ON CONFLICT (channel, in_reply_to) DO UPDATE SET finished = true, seq = EXCLUDED.seq, "
                "updated_at = now() RETURNING platform_message_id, "
                "extract(epoch FROM now() - posting_since)::float8, typing_id",
                (channel, in_reply_to, FINISHED_SEQ),
            )
            row = await cur.fetchone()
            await conn.execute("DELETE FROM progress_messages WHERE finished AND updated_at < now() - interval '1 day'")
        return Finished(None, None) if row is None else Finished(row[0], row[1], row[2])

    async def message(self, channel: str, in_reply_to: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT platform_message_id FROM progress_messages WHERE channel = %s AND in_reply_to = %s",
                (channel, in_reply_to),
            )
            row = await cur.fetchone()
        return None if row is None else row[0]

"""The sizes of the tables retention prunes, read at the start and the end of a soak.

Pruning starts days after a row is written (a tenant's retention, or the redelivery horizon of at least
twice two days), so a soak of hours cannot see it: it measures how fast each table grows per message, which
times the messages of the retention period is the size the table settles at."""

from __future__ import annotations

from typing import Any

# (service, table) of every table a service prunes (libs/agentbus/retention.py and the bootstraps)
RETAINED = (
    ("ingress", "inbound_dedupe"), ("ingress", "processed_events"),
    ("memory", "turns"), ("memory", "vectors"), ("memory", "deferred_vectors"), ("memory", "processed_events"),
    ("reasoner", "inferences"), ("reasoner", "steps"), ("reasoner", "token_usage_counted"),
    ("reasoner", "processed_events"),
    ("scheduler", "firings"), ("scheduler", "processed_events"),
    ("egress", "deliveries"), ("egress", "processed_events"),
)

Sizes = dict[str, tuple[int, int]]  # "service.table" -> (rows, bytes with indexes and TOAST)


async def table_sizes(database_url: str, schema_suffix: str) -> Sizes:
    """Each retained table's rows and bytes; a table that does not exist (yet) is left out."""
    import psycopg

    out: Sizes = {}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for service, table in RETAINED:
            name = f'"{service}{schema_suffix}"."{table}"'
            cur = await conn.execute("SELECT to_regclass(%s)", (name,))
            row = await cur.fetchone()
            if row is None or row[0] is None:
                continue
            cur = await conn.execute(f"SELECT count(*), pg_total_relation_size(%s) FROM {name}", (name,))
            count = await cur.fetchone()
            assert count is not None
            out[f"{service}.{table}"] = (int(count[0]), int(count[1]))
    return out


def growth(start: Sizes, end: Sizes, messages: int) -> dict[str, dict[str, Any]]:
    """Rows and MB at the end, and rows and KB added per 1,000 messages delivered."""
    per = 1000.0 / max(messages, 1)
    report: dict[str, dict[str, Any]] = {}
    for key, (rows, size) in end.items():
        rows0, size0 = start.get(key, (0, 0))
        report[key] = {"rows": rows, "mb": round(size / 2**20, 2),
                       "rows_per_1k_msgs": round((rows - rows0) * per, 1),
                       "kb_per_1k_msgs": round((size - size0) * per / 1024, 1)}
    return report

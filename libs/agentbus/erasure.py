"""Forgetting a person: the ``user.erasure_requested`` command, each service's ``user.erased`` answer, and the
part every service's erasure shares (the key deleted first, one transaction for the rows and the record).

The command goes on the bus like every write of the control plane, from the command line, the operator API or
the person's own "forget everything about me" in chat. Each service that keeps text (``ERASERS``) deletes the
person's rows from its stores and answers with a ``user.erased`` saying what it deleted; the first to act
deletes the person's data key, which shreds their text in the event log and in processed-event records. A
redelivered command is answered with the record of the first time (nothing deleted twice, same event id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from agentbus.events import EraseUser, Event, UserErased, UserErasedData, UserErasureRequested, utcnow

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

# the services that keep a person's text and answer an erasure (egress and the scheduler keep none: the
# delivery ledger holds ids and statuses, jobs belong to chats)
ERASERS = ("ingress", "memory", "reasoner")
MAX_USER = 256


def erasure_key(tenant: str, user: str) -> str:
    """The partition key of a person's erasures: one person's commands stay in order."""
    return f"{tenant}/erasure/{user}"


def erasure_requested(tenant: str, user: str, requested_by: str, source: str) -> UserErasureRequested:
    return UserErasureRequested.new(EraseUser(user=user, requested_by=requested_by), source=source, tenant=tenant,
                                    conversation=erasure_key(tenant, user))


def erased(request: UserErasureRequested, service: str, deleted: Mapping[str, int], keys_deleted: int) -> UserErased:
    data = UserErasedData(user=request.data.user, service=service, request_id=request.id, deleted=dict(deleted),
                          keys_deleted=keys_deleted, requested_by=request.data.requested_by, at=utcnow())
    return request.follow(UserErased, data, source=service, step=f"erased:{service}")


class Forgetter(Protocol):
    async def forget(self, tenant: str, user: str) -> list[str]:
        """Delete the person's data key (and drop it from the process's cache); the key ids deleted."""
        ...


# one statement per store: run with %(tenant)s and %(user)s, its row count is what it deleted
Statements = Sequence[tuple[str, str]]


async def erase_rows(pool: AsyncConnectionPool, event: UserErasureRequested, service: str, statements: Statements,
                     before: Callable[[], Awaitable[Mapping[str, int]]] | None = None,
                     keys: Forgetter | None = None) -> list[Event]:
    """The erasure of one service: answered from its record when it was done before; else the key deleted,
    ``before`` run (stores outside the database, such as Qdrant), then every statement and the processed
    record with the ``user.erased`` answer in one transaction."""
    from agentbus.db import processed_outputs, record_processed

    async with pool.connection() as conn:
        previous = await processed_outputs(conn, event)
    if previous is not None:
        return previous
    shredded = await keys.forget(event.tenant, event.data.user) if keys is not None else []
    counts: dict[str, int] = dict(await before()) if before is not None else {}
    params = {"tenant": event.tenant, "user": event.data.user}
    async with pool.connection() as conn, conn.transaction():
        for name, sql in statements:
            cur = await conn.execute(sql, params)
            counts[name] = counts.get(name, 0) + max(cur.rowcount, 0)
        outputs: list[Event] = [erased(event, service, counts, len(shredded))]
        if not await record_processed(conn, event, outputs):  # another worker recorded it meanwhile: its stand
            previous = await processed_outputs(conn, event)
            return previous if previous is not None else outputs
    return outputs


def valid_user(user: str) -> str | None:
    """Why ``user`` cannot be a person's id (None: it can)."""
    if not user or len(user) > MAX_USER:
        return f"a user id is 1 to {MAX_USER} characters"
    if any(ord(c) < 32 for c in user):
        return "a user id has no control characters"
    return None



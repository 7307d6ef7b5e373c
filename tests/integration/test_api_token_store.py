"""The operator API's token store and audit log against the real PostgreSQL (ingress's migrated schema)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from agentbus.events import utcnow
from agentbus.services.ingress.api.access import Unauthenticated, authenticate, mint, token_hash
from agentbus.services.ingress.api.audit import audit_event
from agentbus.services.ingress.api.ports import TokenRecord
from agentbus.services.ingress.api.store import PgAuditLog, PgTokenStore
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_tokens_are_found_by_hash_listed_revoked_and_never_stored_in_clear(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress") as pool:
        store = PgTokenStore(pool)
        admin, admin_token = mint("ops", "acme", "admin", expires_days=1)
        owner, owner_token = mint("root", None, "owner")
        await store.create(admin, token_hash(admin_token))
        await store.create(owner, token_hash(owner_token))
        who = await authenticate(store, admin_token)
        assert (who.token_id, who.tenant, who.role) == (admin.id, "acme", "admin")
        found = await store.get(admin.id)
        assert found is not None and found.last_used_at is not None and found.expires_at == admin.expires_at
        assert [r.id for r in await store.list("acme")] == [admin.id]
        assert {r.id for r in await store.list()} == {admin.id, owner.id}
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM api_tokens")
            dump = repr(await cur.fetchall())
        assert admin_token.split("_", 2)[2] not in dump and owner_token.split("_", 2)[2] not in dump

        assert await store.revoke(admin.id) is True
        assert await store.revoke(admin.id) is False  # once
        with pytest.raises(Unauthenticated, match="revoked"):
            await authenticate(store, admin_token)
        old, old_token = mint("old", "acme", "viewer")
        await store.create(TokenRecord(**{**vars(old), "expires_at": utcnow() - timedelta(seconds=1)}),
                           token_hash(old_token))
        with pytest.raises(Unauthenticated, match="expired"):
            await authenticate(store, old_token)
        await store.delete(old.id)
        assert await store.get(old.id) is None

        bad, _ = mint("bad", "acme", "viewer")
        async with pool.connection() as conn:  # the table itself refuses an owner with a tenant
            with pytest.raises(Exception, match="check"):
                await conn.execute("INSERT INTO api_tokens (id, token_hash, name, tenant, role) "
                                   "VALUES (%s, %s, 'x', 'acme', 'owner')", (bad.id, b"h"))


async def test_audit_entries_are_kept_once_and_listed_newest_first_per_tenant(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress") as pool:
        log = PgAuditLog(pool)
        events = []
        for i, tenant in enumerate(("acme", "globex", "acme", None)):
            events.append(audit_event(actor="cli", actor_name=None, tenant=tenant, action="tokens.create",
                                      target=f"t{i}", outcome="ok", detail="viewer x"))
            await asyncio.sleep(0.002)  # distinct instants, so the order is the order of the actions
        await log.record(events)
        await log.record(events[:2])  # redelivered: nothing changes
        assert [e.target for e in await log.list(None, 10)] == ["t3", "t2", "t1", "t0"]
        acme = await log.list("acme", 10)
        assert [e.target for e in acme] == ["t2", "t0"] and acme[0].event_id == str(events[2].id)
        assert [e.target for e in await log.list("acme", 1)] == ["t2"]
        assert [e.target for e in await log.list("acme", 10, before=acme[0].at)] == ["t0"]
        assert (await log.list(None, 10))[0].tenant is None

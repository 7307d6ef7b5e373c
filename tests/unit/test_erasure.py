"""Forgetting a person through the operator API and ingress's part of it, against fakes: who may ask, what is
published, bad input refused with nothing published; the key deleted and each service's answer audited once."""

from __future__ import annotations

from agentbus.erasure import ERASERS, erased, erasure_requested
from agentbus.events import AuditRecorded, Replay, UserErasureRequested, parse_event
from agentbus.sealing import FORGOTTEN, Keyring
from agentbus.services.ingress.erasure import IngressErasure
from tests.unit.fakes_api import FakeAudit, served_api
from tests.unit.fakes_keys import MemoryKeyStore


async def test_an_admin_asks_for_an_erasure_and_its_command_and_audit_are_published() -> None:
    async with served_api() as api:
        admin = await api.token("acme", "admin", name="dpo")
        resp = await api.call("POST", "/tenants/acme/erasures", admin, json={"user": "ou_7f3a"})
        assert resp.status_code == 202, resp.text
        cmd, audit = api.publisher.published
        assert isinstance(cmd, UserErasureRequested) and isinstance(audit, AuditRecorded)
        assert resp.json() == {"command_id": str(cmd.id), "user": "ou_7f3a", "services": list(ERASERS)}
        assert (cmd.tenant, cmd.conversation, cmd.data.user, cmd.source) == (
            "acme", "acme/erasure/ou_7f3a", "ou_7f3a", "ingress")
        assert cmd.data.requested_by.startswith("token:")
        assert (audit.data.action, audit.data.target, audit.data.outcome, audit.data.tenant) == (
            "users.forget", "ou_7f3a", "ok", "acme")
        assert parse_event(cmd.to_bytes()) == cmd


async def test_only_admins_and_owners_may_and_bad_input_publishes_nothing() -> None:
    async with served_api() as api:
        op = await api.token("acme", "operator")
        resp = await api.call("POST", "/tenants/acme/erasures", op, json={"user": "u1"})
        assert resp.status_code == 403
        [denied] = api.publisher.published  # the refusal is audited, nothing else
        assert isinstance(denied, AuditRecorded) and denied.data.outcome == "denied"
        api.publisher.published.clear()
        other = await api.token("globex", "admin")
        assert (await api.call("POST", "/tenants/acme/erasures", other, json={"user": "u1"})).status_code == 404
        api.publisher.published.clear()
        admin = await api.token("acme", "admin")
        for bad in ({}, {"user": ""}, {"user": "a\nb"}, {"user": "x" * 257}, {"user": "u1", "also": 1}, {"user": 7}):
            resp = await api.call("POST", "/tenants/acme/erasures", admin, json=bad)
            assert resp.status_code == 422 and resp.json()["error"].startswith("body"), (bad, resp.text)
        assert api.publisher.published == []
        owner = await api.token(None, "owner")
        assert (await api.call("POST", "/tenants/globex/erasures", owner, json={"user": "u1"})).status_code == 202
        api.publisher.down = True
        resp = await api.call("POST", "/tenants/acme/erasures", admin, json={"user": "u1"})
        assert resp.status_code == 503 and "command_id" not in resp.text


async def test_ingress_deletes_the_key_and_audits_every_services_answer_once() -> None:
    store, audit = MemoryKeyStore(), FakeAudit()
    ring = Keyring(store, ttl_s=3600)
    sealed = await ring.seal_text("acme", "u1", "my locker code is 4417", "e")
    ingress = IngressErasure(ring, audit)
    command = erasure_requested("acme", "u1", "user:u1", source="ingress")
    [mine] = await ingress.erase(command)
    assert (mine.data.service, mine.data.keys_deleted, mine.data.deleted) == ("ingress", 1, {})
    assert await ring.open_text(sealed) == FORGOTTEN
    [again] = await ingress.erase(command)  # redelivered: the same answer's id, nothing left to delete
    assert again.id == mine.id and again.data.keys_deleted == 0
    memory = erased(command, "memory", {"turns": 4, "vectors": 3}, 0)
    for e in (mine, memory, memory):
        assert await ingress.keep_erased(e) == []
    assert [(a.data.actor, a.data.action, a.data.target, a.data.detail) for a in audit.events] == [
        ("service:ingress", "users.erased", "u1", f"request {command.id}; keys=1"),
        ("service:memory", "users.erased", "u1", f"request {command.id}; turns=4 vectors=3; keys=0")]
    assert await ingress.erase(command.model_copy(update={"replay": Replay(run="r1")})) == []

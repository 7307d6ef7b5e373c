"""The JWT signing keys in ingress's PostgreSQL: made once by the migration, shared by replicas, rotated by
``agentbus tokens rotate-signing-key`` (the command's own function, against the real database and broker)."""

from __future__ import annotations

import uuid

import jwt
import pytest

from agentbus.cli.tokens import rotate_signing_key
from agentbus.services.ingress.api.access import Identity
from agentbus.services.ingress.api.auth_jwt import Signer
from agentbus.services.ingress.api.auth_keys import PgSigningKeys
from agentbus.settings import Settings
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = [pytest.mark.integration, pytest.mark.broker]


async def test_the_migration_makes_one_random_key_that_every_replica_signs_and_verifies_with(infra: Infra) -> None:
    async with service_pool(infra.database_url, "ingress") as one, service_pool(infra.database_url, "ingress") as two:
        [a] = await PgSigningKeys(one).keys()
        [b] = await PgSigningKeys(two).keys()
        assert len(a.secret) == 32 and a.retired_at is None and a.secret != b.secret  # one per installation
        replica1, replica2 = Signer(PgSigningKeys(one)), Signer(PgSigningKeys(one))
        who = Identity("abc", "ci", "acme", "admin")
        token, _ = await replica1.issue(who)
        assert jwt.get_unverified_header(token)["kid"] == a.kid
        assert (await replica2.identity(token)).subject == "token:abc"

        store = PgSigningKeys(one)
        new = await store.rotate()
        newer = await store.rotate()
        keys = await store.keys()
        assert [k.kid for k in keys][0] == newer.kid and {k.kid for k in keys} == {a.kid, new.kid, newer.kid}
        assert [k.retired_at is None for k in keys] == [True, False, False]  # one active key, ever
        after, _ = await Signer(PgSigningKeys(one), unknown_kid_refresh_s=0).issue(who)
        assert jwt.get_unverified_header(after)["kid"] == newer.kid
        # a replica that loaded the keys before the rotation learns the new kid, and the old key still verifies
        assert (await Signer(PgSigningKeys(one), unknown_kid_refresh_s=0).identity(token)).role == "admin"
        stale = Signer(PgSigningKeys(one), unknown_kid_refresh_s=0)
        await stale.identity(token)
        assert (await stale.identity(after)).role == "admin"


async def test_the_rotate_command_retires_the_active_key_and_audits(infra: Infra,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = f"_k{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AGENTBUS_DB_SCHEMA_SUFFIX", suffix)
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.bootstrap,
                        topic_prefix=f"t{uuid.uuid4().hex[:10]}")
    from agentbus.bus.kafka import ensure_topics
    from agentbus.topics import all_topics

    await ensure_topics(settings, all_topics(settings.topic_prefix))
    first = await rotate_signing_key(settings)  # migrates the schema first (one key), then rotates
    second = await rotate_signing_key(settings)
    from agentbus.db import open_pool

    pool = await open_pool(settings, "ingress" + suffix, max_size=1)
    try:
        keys = await PgSigningKeys(pool).keys()
        assert keys[0].kid == second.kid and keys[0].retired_at is None
        assert len(keys) == 3 and all(k.retired_at is not None for k in keys[1:]) and first.kid in {k.kid for k in keys}
        async with pool.connection() as conn:
            await conn.execute(f'DROP SCHEMA "ingress{suffix}" CASCADE')
    finally:
        await pool.close()

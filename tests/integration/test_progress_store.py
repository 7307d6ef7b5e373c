"""Egress's progress store against the real PostgreSQL (the rules the fake in the unit tests copies): a higher
sequence only, nothing after the reply finished, the streamed message's id handed to the final reply, and the
marker that makes a final reply wait for a first partial still being sent."""

from __future__ import annotations

import pytest

from agentbus.services.egress.progress import Applied
from agentbus.services.egress.progress_store import PgProgressStore
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_progress_rows_follow_the_rules(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress", max_size=2) as pool:
        store = PgProgressStore(pool)
        assert await store.advance("tg", "m1", 0) == Applied(None)
        assert await store.advance("tg", "m1", 0) is None  # not higher: dropped
        assert await store.advance("tg", "m1", 1) == Applied(None)
        await store.posting("tg", "m1")
        await store.set_message("tg", "m1", "501")
        await store.set_message("tg", "m1", "999")  # the first message stays the one edited
        assert await store.advance("tg", "m1", 2) == Applied("501")
        assert await store.message("tg", "m1") == "501"
        done = await store.finish("tg", "m1")
        assert done.message_id == "501" and done.posting_age_s is not None and 0 <= done.posting_age_s < 60
        assert await store.advance("tg", "m1", 3) is None  # after the reply: dropped

        # a reply with no progress at all: finished, nothing was posted
        fresh = await store.finish("tg", "m2")
        assert fresh.message_id is None and fresh.posting_age_s is None
        assert await store.advance("tg", "m2", 1) is None
        # a first partial still being sent when the reply finishes: its id arrives later and is found
        assert await store.advance("tg", "m3", 1) == Applied(None)
        await store.posting("tg", "m3")
        pending = await store.finish("tg", "m3")
        assert pending.message_id is None and pending.posting_age_s is not None
        await store.set_message("tg", "m3", "777")
        assert await store.message("tg", "m3") == "777"
        assert await store.message("tg", "unknown") is None


async def test_the_working_mark_is_kept_and_handed_to_whoever_finishes(infra: Infra) -> None:
    """A Feishu reaction's id: kept once shown, returned by the progress that follows and by finish; a mark
    kept after the reply finished is reported so, to be taken away at once."""
    async with service_pool(infra.database_url, "egress", max_size=2) as pool:
        store = PgProgressStore(pool)
        assert await store.advance("fs", "om_1", 0) == Applied(None)
        assert await store.set_typing("fs", "om_1", "reaction-1") is False
        assert await store.advance("fs", "om_1", 1) == Applied(None, "reaction-1")
        done = await store.finish("fs", "om_1")
        assert done.typing_id == "reaction-1" and done.message_id is None
        # the reply went out while the reaction was being added: set_typing says so
        assert await store.advance("fs", "om_2", 0) == Applied(None)
        assert (await store.finish("fs", "om_2")).typing_id is None
        assert await store.set_typing("fs", "om_2", "reaction-2") is True

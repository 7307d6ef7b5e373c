"""The delivery ledger's release path against the real PostgreSQL.

After ``push_attempts`` retryable failures (e.g. a platform answering 429 longer than the attempts last),
egress releases the claim: the reply is known not delivered, so a later attempt may claim and push it again.
"""

from __future__ import annotations

import pytest

from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData
from agentbus.services.egress.ledger import DeliveryLedger
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


async def test_a_released_reply_can_be_claimed_again(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress", max_size=2) as pool:
        ledger = DeliveryLedger(pool)
        reply = ReplyGenerated.new(
            ReplyGeneratedData(agent="a", channel="acme", channel_type="webhook", chat=Chat(id="c"), text="hi",
                               model="m"),
            source="reasoner", tenant="acme", conversation="acme/acme/c",
        )
        assert await ledger.claim(reply, "acme:c") == "claimed"
        await ledger.release(reply.id, 6, "HTTP 429", 429)  # six 429s: not delivered, and known not to be
        assert await ledger.claim(reply, "acme:c") == "claimed"

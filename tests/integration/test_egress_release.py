"""The delivery ledger's release path against the real PostgreSQL.

After ``push_attempts`` retryable failures (e.g. a platform answering 429 longer than the attempts last),
egress releases the claim: the reply is known not delivered, so a later attempt may claim and push it again.
The attempts of every round add up, in the deliveries row and in delivery.completed alike.
"""

from __future__ import annotations

import httpx
import pytest

from agentbus.bus import TransientError
from agentbus.channeltypes import WebhookChannel
from agentbus.events import Chat, ReplyGenerated, ReplyGeneratedData
from agentbus.services.egress.channels.base import TokenCache
from agentbus.services.egress.channels.webhook import WebhookOutbound
from agentbus.services.egress.handlers import Egress
from agentbus.services.egress.ledger import PgDeliveryLedger
from agentbus.services.egress.ports import Claim
from agentbus.services.egress.ratelimit import TokenBuckets
from tests.support.db import service_pool
from tests.support.platform import Infra

pytestmark = pytest.mark.integration


def new_reply() -> ReplyGenerated:
    return ReplyGenerated.new(
        ReplyGeneratedData(agent="a", channel="acme", channel_type="webhook", chat=Chat(id="c"), text="hi",
                           model="m"),
        source="reasoner", tenant="acme", conversation="acme/acme/c",
    )


async def test_a_released_reply_can_be_claimed_again(infra: Infra) -> None:
    async with service_pool(infra.database_url, "egress", max_size=2) as pool:
        ledger = PgDeliveryLedger(pool)
        reply = new_reply()
        assert await ledger.claim(reply, "acme:c") == Claim("claimed")
        await ledger.release(reply.id, 6, "HTTP 429", 429)  # six 429s: not delivered, and known not to be
        assert await ledger.claim(reply, "acme:c") == Claim("claimed", previous_attempts=6)
        await ledger.aclose()


async def test_delivery_completed_reports_the_attempts_the_ledger_counts(infra: Infra) -> None:
    # the platform answers 500 eight times, then 200; six attempts a round: the first round releases the
    # reply after 6, the consumer's retry delivers it after 3 more
    answers = [500] * 8 + [200]

    def platform(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), headers={"x-message-id": "pm-1"})

    channel = WebhookChannel(id="acme", type="webhook", tenant="acme", agent="a", push_url="https://sink.test/in",
                             secret={"env": "UNSET_SECRET", "default": "whsec_eA=="})
    async with service_pool(infra.database_url, "egress", max_size=2) as pool, \
            httpx.AsyncClient(transport=httpx.MockTransport(platform)) as http:
        ledger = PgDeliveryLedger(pool)
        egress = Egress({"acme": WebhookOutbound(channel, http, TokenCache())}, ledger, TokenBuckets(),
                        attempts=6, backoff_initial_s=0.001, backoff_max_s=0.01)
        reply = new_reply()
        with pytest.raises(TransientError):
            await egress.push_reply(reply)
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT status, attempts FROM deliveries WHERE reply_id = %s",
                                            (reply.id,))).fetchone()
        assert row == ("pending", 6)
        [done] = await egress.push_reply(reply)
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT status, attempts, platform_message_id FROM deliveries "
                                            "WHERE reply_id = %s", (reply.id,))).fetchone()
        assert not answers
        assert done.data.status == "delivered" and done.data.platform_message_id == "pm-1"
        assert row == ("delivered", 9, "pm-1") and done.data.attempts == 9
        assert await egress.push_reply(reply) == [done]  # redelivered: its first outcome, not pushed again
        await ledger.aclose()

"""Accepting one inbound message: policy, de-duplication, publish (acks=all), then the platform's answer.

The event id is derived from (channel, platform event id), so a retry that slips past the de-duplication
table (a crash between publish and insert, two replicas racing) publishes the very same event again, which
every consumer downstream ignores. Nothing is answered 2xx before the broker has acknowledged.
The look-ups and records of webhooks handled at the same moment share one statement each.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import psycopg_pool
import structlog
from psycopg_pool import AsyncConnectionPool

from agentbus.bus import Producer
from agentbus.channeltypes import ChannelBase
from agentbus.db import coalesced, columns
from agentbus.events import MessageReceived, MessageReceivedData, derive_id
from agentbus.services.ingress.inbound import Inbound, InboundMessage

log = structlog.get_logger("agentbus.ingress")


@dataclass(frozen=True)
class Outcome:
    status: str  # published | duplicate | ignored
    event_id: uuid.UUID | None = None
    reason: str = ""


def conversation_key(channel: ChannelBase, chat_id: str) -> str:
    return f"{channel.tenant}/{channel.id}/{chat_id}"


def policy(channel: ChannelBase, msg: InboundMessage) -> tuple[str | None, str | None]:
    """(why to ignore, refusal text): group messages need a mention; direct ones may need the allowlist."""
    if msg.from_self:
        return "own message", None
    if msg.chat.type == "group" and channel.require_mention_in_groups and not msg.mentioned_bot:
        return "group message without a mention", None
    if msg.chat.type == "direct" and channel.allowlist is not None and msg.sender.id not in channel.allowlist:
        return None, channel.refusal_text
    return None, None


class Acceptor:
    def __init__(self, pool: AsyncConnectionPool, producer: Producer, publish_timeout_s: float = 10.0,
                 db_timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._producer = producer
        self._publish_timeout_s = publish_timeout_s
        self._db_timeout_s = db_timeout_s
        self._seen = coalesced(self._seen_many)
        self._record = coalesced(self._record_many)

    async def aclose(self) -> None:
        await self._seen.aclose()
        await self._record.aclose()

    async def _seen_many(self, keys: list[tuple[str, str]]) -> list[bool]:
        async with self._pool.connection(timeout=self._db_timeout_s) as conn:
            cur = await conn.execute(
                "SELECT d.channel, d.dedupe_id FROM inbound_dedupe d "
                "JOIN unnest(%b::text[], %b::text[]) AS q(c, i) ON d.channel = q.c AND d.dedupe_id = q.i",
                columns(keys, 2),
            )
            seen = {(r[0], r[1]) for r in await cur.fetchall()}
        return [k in seen for k in keys]

    async def _record_many(self, rows: list[tuple[str, str, uuid.UUID]]) -> list[None]:
        async with self._pool.connection(timeout=self._db_timeout_s) as conn:
            await conn.execute(
                "INSERT INTO inbound_dedupe (channel, dedupe_id, event_id) "
                "SELECT * FROM unnest(%b::text[], %b::text[], %b::uuid[]) ON CONFLICT DO NOTHING",
                columns(rows, 3),
            )
        return [None] * len(rows)

    async def accept(self, channel: ChannelBase, inbound: Inbound) -> Outcome:
        msg = inbound.message
        if msg is None:
            return Outcome("ignored", reason=inbound.note or "no message")
        ignore, refusal = policy(channel, msg)
        if ignore:
            return Outcome("ignored", reason=ignore)
        dedupe_id = inbound.dedupe_id or msg.platform_message_id
        event_id = derive_id(f"{channel.id}:{dedupe_id}", "message.received")
        try:
            if await self._seen((channel.id, dedupe_id)):
                log.info("webhook_duplicate", channel=channel.id)
                return Outcome("duplicate", event_id)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            # the table only saves work: the event id is deterministic, so a repeat is ignored downstream
            log.warning("dedupe_unavailable", channel=channel.id, error=str(exc)[:200])
        event = MessageReceived.new(
            MessageReceivedData(
                channel=channel.id,
                channel_type=channel.type,
                agent=channel.agent,
                platform_message_id=msg.platform_message_id,
                sender=msg.sender,
                chat=msg.chat,
                text=msg.text,
                mentions=msg.mentions,
                mentioned_bot=msg.mentioned_bot,
                reply_route=msg.reply_route,
                received_at=datetime.now(UTC),
                refusal=refusal,
            ),
            id=event_id,
            source="ingress",
            tenant=channel.tenant,
            conversation=conversation_key(channel, msg.chat.id),
        )
        # not acknowledged to the platform before the broker has it; a stalled broker gets a 503 in bounded time
        await asyncio.wait_for(self._producer.publish([event]), self._publish_timeout_s)
        try:
            await self._record((channel.id, dedupe_id, event_id))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.warning("dedupe_record_failed", channel=channel.id, error=str(exc)[:200])
        log.info("message_accepted", channel=channel.id, refused=refusal is not None)
        return Outcome("published", event_id)

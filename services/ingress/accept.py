"""Accepting one inbound message: policy, de-duplication, publish (acks=all), then the platform's answer.

The event id is derived from (channel, platform event id), so a retry that slips past the de-duplication
store (a crash between publish and record, two replicas racing, the store down) publishes the very same
event again, which every consumer downstream ignores. Nothing is answered 2xx before the broker has
acknowledged.

Within one process the same platform event handled twice at the same moment (a long connection's redelivery
arriving while the first copy is still being published, a platform retrying a webhook that is slow to answer)
is published once: the second waits for the first and is answered as a duplicate (or, if the first failed,
is accepted on its own).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from agentbus.channeltypes import ChannelBase
from agentbus.events import Attachment, Event, MessageReceived, MessageReceivedData
from agentbus.ids import conversation_key, message_id
from agentbus.services.ingress.inbound import Inbound, InboundMessage
from agentbus.services.ingress.ports import (
    DedupeStore,
    DedupeUnavailable,
    ErasureRequests,
    MediaDownloads,
    Publisher,
    Quota,
)

log = structlog.get_logger("agentbus.ingress")


@dataclass(frozen=True)
class Outcome:
    status: str  # published | duplicate | ignored | over_quota
    event_id: uuid.UUID | None = None
    reason: str = ""
    retry_after_s: float = 0.0  # over_quota: when the tenant's window has room again


def policy(channel: ChannelBase, msg: InboundMessage) -> tuple[str | None, str | None]:
    """(why to ignore, refusal text): group messages need a mention (a press of the bot's own card is addressed
    to it without one); direct ones may need the allowlist."""
    if msg.from_self:
        return "own message", None
    if msg.chat.type == "group" and channel.require_mention_in_groups and not msg.mentioned_bot \
            and msg.action is None:
        return "group message without a mention", None
    if msg.chat.type == "direct" and channel.allowlist is not None and msg.sender.id not in channel.allowlist:
        return None, channel.refusal_text
    return None, None


class Acceptor:
    def __init__(self, dedupe: DedupeStore, producer: Publisher, publish_timeout_s: float = 10.0,
                 media: MediaDownloads | None = None, quota: Quota | None = None,
                 erasures: ErasureRequests | None = None) -> None:
        self._dedupe = dedupe
        self._erasures = erasures
        self._quota = quota
        self._media = media
        self._producer = producer
        self._publish_timeout_s = publish_timeout_s
        self._in_flight: dict[tuple[str, str], asyncio.Future[Outcome]] = {}

    async def accept(self, channel: ChannelBase, inbound: Inbound) -> Outcome:
        msg = inbound.message
        if msg is None:
            return Outcome("ignored", reason=inbound.note or "no message")
        ignore, refusal = policy(channel, msg)
        if ignore:
            return Outcome("ignored", reason=ignore)
        dedupe_id = inbound.dedupe_id or msg.platform_message_id
        key = (channel.id, dedupe_id)
        while (first := self._in_flight.get(key)) is not None:  # the same event, being accepted right now
            try:
                done = await asyncio.shield(first)
            except BaseException:
                if not first.done():  # this copy itself was cancelled
                    raise
                continue  # the first copy failed or was cancelled: this one is accepted on its own
            log.info("webhook_duplicate", channel=channel.id, concurrent=True)
            return Outcome("duplicate", done.event_id)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            outcome = await self._accept(channel, inbound, msg, refusal, dedupe_id)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: a failure with no second copy waiting is not "never retrieved"
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            del self._in_flight[key]

    async def _accept(self, channel: ChannelBase, inbound: Inbound, msg: InboundMessage, refusal: str | None,
                      dedupe_id: str) -> Outcome:
        event_id = message_id(channel.id, dedupe_id)
        try:
            if await self._dedupe.seen(channel.id, dedupe_id):
                log.info("webhook_duplicate", channel=channel.id)
                return Outcome("duplicate", event_id)
        except DedupeUnavailable as exc:
            # the table only saves work: the event id is deterministic, so a repeat is ignored downstream
            log.warning("dedupe_unavailable", channel=channel.id, error=str(exc)[:200])
        # after de-duplication, so a retry of a message already published is never refused; a refused one
        # is not recorded, so the platform's retry after the window is published (once)
        if self._quota is not None:
            verdict = await self._quota.admit(channel.tenant)
            if not verdict.admitted:
                log.info("message_over_quota", channel=channel.id, tenant=channel.tenant)
                return Outcome("over_quota", reason="the tenant's messages_per_minute quota is used up",
                               retry_after_s=verdict.retry_after_s)
        # "forget everything about me" and its confirmation are answered by ingress itself (not remembered)
        commands: tuple[Event, ...] = ()
        if refusal is None and self._erasures is not None:
            spoken = await self._erasures.heard(channel, msg, event_id)
            if spoken is not None:
                refusal, commands = spoken.answer, spoken.commands
        # only a new message is downloaded (a retry the table caught costs nothing); a failed download marks
        # the attachment and the message goes on
        attachments: tuple[Attachment, ...] = ()
        if msg.attachments and self._media is not None and refusal is None:
            attachments = await self._media.download(channel, msg.attachments)
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
                attachments=attachments,
                action=msg.action,
            ),
            id=event_id,
            source="ingress",
            tenant=channel.tenant,
            conversation=conversation_key(channel.tenant, channel.id, msg.chat.id),
        )
        # not acknowledged to the platform before the broker has it; a stalled broker gets a 503 in bounded time
        await asyncio.wait_for(self._producer.publish([*commands, event]), self._publish_timeout_s)
        try:
            await self._dedupe.record(channel.id, dedupe_id, event_id)
        except DedupeUnavailable as exc:
            log.warning("dedupe_record_failed", channel=channel.id, error=str(exc)[:200])
        log.info("message_accepted", channel=channel.id, refused=refusal is not None, attachments=len(attachments))
        return Outcome("published", event_id)

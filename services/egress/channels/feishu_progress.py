"""Feishu progress: a reaction on the person's message while the agent works, the answer streamed into a card.

Feishu has no typing indicator for bots. ``progress: typing`` adds the channel's ``typing_emoji`` reaction
(``POST /open-apis/im/v1/messages/{id}/reactions``) to the message being answered, once per reply, and takes
it away (``DELETE .../reactions/{reaction_id}``) when the reply goes out; egress keeps the reaction id.

``progress: stream``: only a card can be edited, so the answer so far goes out as a card JSON 2.0 with
``config.update_multi: true`` (a shared card: the PATCH needs it before and after), answering the message as
the reply would; later partials ``PATCH /open-apis/im/v1/messages/{id}`` with the whole card (5 updates a
second per message at most; the reasoner sends one a second). The final reply PATCHes the card into the
reply's own text, with its title and buttons when it has a card; its images follow as messages, as a normal
reply's do. A card holds 30 KB: a longer partial shows its end. The custom bot webhook can do neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.events import ReplyGeneratedData, ReplyProgressData
from agentbus.services.egress.channels.feishu_answers import ReplyTargetGone
from agentbus.services.egress.channels.feishu_parts import SHARED
from agentbus.services.egress.ports import Permanent, Pushed

MAX_CARD_BYTES = 30 * 1024  # "card and rich text request bodies may not exceed 30 KB"
PARTIAL_BYTES = 28 * 1024  # what a partial's text may take of that, the card's JSON around it aside
STREAM_NS = uuid.UUID("6f1d2c1e-5b0a-4c55-9a57-0c1f3b2e7d41")  # the uuids a streamed card is sent with
log = structlog.get_logger("agentbus.egress")


def partial_card(text: str) -> dict[str, Any]:
    """The answer so far as a shared card (its last ``PARTIAL_BYTES`` when it outgrew one)."""
    data = text.encode()
    if len(data) > PARTIAL_BYTES:
        text = "…" + data[-PARTIAL_BYTES:].decode(errors="ignore")
    return {**SHARED, "schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": text}]}}


class FeishuProgress:
    """The progress methods of ``FeishuOutbound`` (see ``agentbus.services.egress.progress``)."""

    channel: FeishuChannel
    _app: tuple[str, str] | None

    if TYPE_CHECKING:
        async def _call(self, path: str, params: dict[str, str] | None, body: dict[str, Any] | None,
                        method: str = "POST", key: str = "message_id") -> Pushed: ...

        async def _send(self, reply: ReplyGeneratedData | ReplyProgressData, msg_type: str, content: str,
                        uid: str) -> Pushed: ...

        async def _messages(self, reply: ReplyGeneratedData, reply_id: uuid.UUID,
                            shared: bool = False) -> list[tuple[str, str, str]]: ...

        async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed: ...

    def _by_app(self, route: Mapping[str, Any]) -> bool:
        return self._app is not None and route.get("via") != "bot_webhook"

    async def mark_working(self, progress: ReplyProgressData) -> str:
        """The reaction's id; "" when there is nothing to react on (no app bot, no message answered)."""
        message_id = progress.reply_route.get("message_id")
        if not self._by_app(progress.reply_route) or not isinstance(message_id, str) or not message_id:
            return ""
        added = await self._call(f"/open-apis/im/v1/messages/{message_id}/reactions", None,
                                 {"reaction_type": {"emoji_type": self.channel.typing_emoji}}, key="reaction_id")
        if not added.platform_message_id:
            raise Permanent("the reaction was added without a reaction_id")
        return added.platform_message_id

    async def clear_working(self, reply_route: Mapping[str, Any], typing_id: str) -> None:
        message_id = reply_route.get("message_id")
        if typing_id and isinstance(message_id, str) and message_id:
            await self._call(f"/open-apis/im/v1/messages/{message_id}/reactions/{typing_id}", None, None,
                             method="DELETE", key="reaction_id")

    async def post_partial(self, progress: ReplyProgressData) -> str:
        if not self._by_app(progress.reply_route):
            raise Permanent("the custom bot webhook cannot edit a message: progress is not streamed there")
        uid = str(uuid.uuid5(STREAM_NS, f"{self.channel.id}:{progress.in_reply_to}"))  # one card per answer
        sent = await self._send(progress, "interactive", orjson.dumps(partial_card(progress.text)).decode(), uid)
        if not sent.platform_message_id:
            raise Permanent("the card was sent without a message_id")
        return sent.platform_message_id

    async def edit_partial(self, progress: ReplyProgressData, message_id: str) -> None:
        await self._patch(message_id, orjson.dumps(partial_card(progress.text)).decode())

    async def edit_final(self, reply: ReplyGeneratedData, message_id: str) -> Pushed:
        """The streamed card becomes the reply; its images follow. A card recalled meanwhile: sent anew."""
        reply_id = uuid.uuid5(STREAM_NS, f"final:{message_id}")  # the same for a retry: images not sent twice
        (_, card, _), *rest = await self._messages(reply, reply_id, shared=True)
        try:
            await self._patch(message_id, card)
        except ReplyTargetGone:
            log.info("feishu_streamed_card_gone", channel=self.channel.id)
            return await self.push(reply, reply_id)
        for msg_type, content, uid in rest:
            try:
                await self._send(reply, msg_type, content, uid)
            except Permanent as exc:
                log.warning("feishu_image_refused", channel=self.channel.id, reason=str(exc)[:200])
        return Pushed(http_status=200, platform_message_id=message_id)

    async def _patch(self, message_id: str, card: str) -> None:
        body = {"content": card}
        if len(orjson.dumps(body)) > MAX_CARD_BYTES:
            raise Permanent(f"the card is larger than the {MAX_CARD_BYTES} bytes Feishu lets a card update carry")
        await self._call(f"/open-apis/im/v1/messages/{message_id}", None, body, method="PATCH")

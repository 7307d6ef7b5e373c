"""DingTalk progress: the answer streamed into a robot interactive card (``progress: stream``, app robot only).

The card uses DingTalk's built-in ``StandardCard`` template, whose ``cardData`` is the whole card (``config``,
``header``, ``contents`` with a ``markdown`` element), so nothing has to be built in the developer console.
The first partial sends it (``POST /v1.0/im/v1.0/robot/interactiveCards/send``) to the chat asked in (a group's
``openConversationId``, or ``singleChatReceiver`` with the person's staff id) under a ``cardBizId`` of our own
(one per answer); later partials update it (``PUT /v1.0/im/robots/interactiveCards``, the whole card again).
The final reply updates it into the reply's first message's text; the rest of the reply (a card's buttons,
images, the continuation of a long text) follows as messages, as a normal reply's do. The robot OpenAPI has
no mention field, so the card mentions nobody. DingTalk has no typing indicator a robot can show, so
``progress: typing`` shows nothing; custom robots and session webhooks cannot edit a message.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.events import ReplyGeneratedData, ReplyProgressData
from agentbus.services.egress.channels.dingtalk_cards import Part, is_group, reply_parts
from agentbus.services.egress.ports import Permanent, Pushed

SEND_PATH = "/v1.0/im/v1.0/robot/interactiveCards/send"
UPDATE_PATH = "/v1.0/im/robots/interactiveCards"
TEMPLATE = "StandardCard"
MAX_CARD_BYTES = 20000  # the card's text is kept within what one robot message may carry
CARD_NS = uuid.UUID("1b0e6f0a-3c1d-4e0b-8a55-5d7f2f1c9e20")


def standard_card(title: str, text: str) -> str:
    """``cardData`` of a StandardCard: a title and the answer as markdown (its end when it outgrew a card)."""
    data = text.encode()
    if len(data) > MAX_CARD_BYTES:
        text = "…" + data[-MAX_CARD_BYTES:].decode(errors="ignore")
    return orjson.dumps({
        "config": {"autoLayout": True, "enableForward": True},
        "header": {"title": {"type": "text", "text": title}},
        "contents": [{"type": "markdown", "text": text, "id": "answer"}],
    }).decode()


class DingTalkProgress:
    """The progress methods of ``DingTalkOutbound`` (see ``agentbus.services.egress.progress``)."""

    channel: DingTalkChannel
    _app_secret: str | None
    _robot_code: str | None
    _robots: dict[str, tuple[str, str | None]]

    if TYPE_CHECKING:
        async def _openapi_call(self, path: str, body: dict[str, Any],
                                method: str = "POST") -> tuple[httpx.Response, dict[str, Any]]: ...

        async def _push_part(self, reply: ReplyGeneratedData, part: Part, mention: str | None) -> Pushed: ...

    def _title(self, text: str) -> str:
        from agentbus.services.egress.channels.dingtalk import markdown_title  # that module imports this one

        return markdown_title(text, self.channel.markdown_title)

    async def post_partial(self, progress: ReplyProgressData) -> str:
        route = progress.reply_route
        if self._app_secret is None or progress.chat.id in self._robots:
            raise Permanent("only the app robot can edit a message: progress is not streamed through a custom robot")
        biz = str(uuid.uuid5(CARD_NS, f"{self.channel.id}:{progress.in_reply_to}"))
        body: dict[str, Any] = {"cardTemplateId": TEMPLATE, "cardBizId": biz,
                                "robotCode": route.get("robot_code") or self._robot_code,
                                "cardData": standard_card(self._title(progress.text), progress.text),
                                "pullStrategy": False}
        if (route.get("conversation_type") or progress.chat.type) == "group":
            body["openConversationId"] = route.get("open_conversation_id") or progress.chat.id
        else:
            user = route.get("user_id")
            if not isinstance(user, str) or not user:
                raise Permanent("direct chat without the sender's staff id: the card cannot be addressed")
            body["singleChatReceiver"] = orjson.dumps({"userId": user}).decode()
        await self._openapi_call(SEND_PATH, body)
        return biz

    async def edit_partial(self, progress: ReplyProgressData, message_id: str) -> None:
        await self._update(message_id, progress.text)

    async def edit_final(self, reply: ReplyGeneratedData, message_id: str) -> Pushed:
        """The card becomes the reply's first text; a direct chat's card with buttons follows it, its body
        then the card's own text (as when a long answer goes before its card), then the images."""
        from agentbus.services.egress.channels.dingtalk import MAX_BYTES, split_utf8

        first, *rest = reply_parts(reply, split_utf8, MAX_BYTES)
        if first.buttons and not is_group(reply):
            card = reply.card
            extra = card.text.strip() if card is not None else ""
            short = extra if extra and extra != reply.text.strip() else (first.card_title or "…")
            rest = [Part(text=short, card_title=first.card_title, buttons=first.buttons), *rest]
            first = Part(text=reply.text)
        elif first.image is not None:
            rest = [first, *rest]
            first = Part(text=reply.text)
        await self._update(message_id, first.text)
        for part in rest:
            await self._push_part(reply, part, None)
        return Pushed(http_status=200, platform_message_id=message_id)

    async def _update(self, biz: str, text: str) -> None:
        await self._openapi_call(UPDATE_PATH, {"cardBizId": biz, "cardData": standard_card(self._title(text), text)},
                                 method="PUT")

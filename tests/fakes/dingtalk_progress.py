"""The robot interactive cards of the fake DingTalk: ``POST /v1.0/im/v1.0/robot/interactiveCards/send`` and
``PUT /v1.0/im/robots/interactiveCards``, as the robot interactive card docs and the open-dingtalk samples use
them with the built-in ``StandardCard`` template.

Send: the access token, ``cardTemplateId``, ``cardBizId``, the app's ``robotCode``, ``cardData`` a JSON string
of a card (``contents`` a list of typed elements), and exactly one of ``openConversationId`` or
``singleChatReceiver`` (a JSON string ``{"userId": ...}``); the answer is ``{"processQueryKey": ...}``. A
``cardBizId`` already sent is refused here (this fake's choice: the docs do not say, so egress must not
depend on it). Update: the ``cardBizId`` of a sent card and a new ``cardData``.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from tests.fakes.dingtalk import FakeDingTalk

BUILT_IN_TEMPLATES = {"StandardCard"}
ELEMENT_TYPES = {"text", "markdown", "image", "divider", "action", "section"}


def _bad(fake: FakeDingTalk, reason: str, code: str, message: str) -> Response:
    return fake._reject(f"card: {reason}", 400, {"code": code, "requestid": "fake", "message": message})


def _card_data(raw: Any) -> dict[str, Any] | None:
    try:
        card = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        return None
    contents = card.get("contents") if isinstance(card, dict) else None
    if not isinstance(contents, list) or not contents:
        return None
    for el in contents:
        if not isinstance(el, dict) or el.get("type") not in ELEMENT_TYPES:
            return None
        if el["type"] in ("text", "markdown") and not isinstance(el.get("text"), str):
            return None
    return card


async def send_card(fake: FakeDingTalk, request: Request) -> Response:
    from tests.fakes.dingtalk import INVALID_TOKEN, _loads  # here: that module imports this one

    if request.headers.get("x-acs-dingtalk-access-token") not in fake._tokens:
        return fake._reject("card: invalid token", 400, INVALID_TOKEN)
    body = _loads(await request.body())
    if not isinstance(body, dict):
        return _bad(fake, "not json", "param.empty", "入参为空")
    if body.get("cardTemplateId") not in BUILT_IN_TEMPLATES:
        return _bad(fake, "template", "cardTemplateInvalid", "卡片模板无效")
    biz = body.get("cardBizId")
    if not isinstance(biz, str) or not biz:
        return _bad(fake, "cardBizId", "card.outTrackIdEmpty", "业务标识为空")
    if biz in fake.cards:
        return _bad(fake, "cardBizId sent before", "card.outTraceIdError", "卡片业务标识重复")
    if body.get("robotCode") != fake.app_key:
        return _bad(fake, "robotCode", "chatbot.notFound", "机器人不存在")
    card = _card_data(body.get("cardData"))
    if card is None:
        return _bad(fake, "cardData", "param.invalid", "cardData")
    group, single = body.get("openConversationId"), body.get("singleChatReceiver")
    receiver = _loads(single.encode()) if isinstance(single, str) else None
    if (group is None) == (single is None) or (group is not None and not (isinstance(group, str) and group)) or (
            single is not None and not (isinstance(receiver, dict) and isinstance(receiver.get("userId"), str))):
        return _bad(fake, "receiver", "param.invalid", "openConversationId or singleChatReceiver")
    if planned := fake._planned():
        return planned
    key = uuid.uuid4().hex
    fake.cards[biz] = {"card": card, "conversation": group, "user": receiver.get("userId") if receiver else None,
                       "updates": [], "at": time.time()}
    fake._record("card", orjson.dumps(body), biz=biz, conversation=group, key=key,
                 users=[receiver["userId"]] if receiver else None)
    return JSONResponse({"processQueryKey": key})


async def update_card(fake: FakeDingTalk, request: Request) -> Response:
    from tests.fakes.dingtalk import INVALID_TOKEN, _loads

    if request.headers.get("x-acs-dingtalk-access-token") not in fake._tokens:
        return fake._reject("card: invalid token", 400, INVALID_TOKEN)
    body = _loads(await request.body())
    if not isinstance(body, dict):
        return _bad(fake, "not json", "param.empty", "入参为空")
    found = fake.cards.get(body.get("cardBizId"))  # type: ignore[arg-type]
    if found is None:
        return _bad(fake, "unknown cardBizId", "param.invalid", "cardBizId")
    card = _card_data(body.get("cardData"))
    if card is None:
        return _bad(fake, "cardData", "param.invalid", "cardData")
    found["card"] = card
    found["updates"].append(card)
    return JSONResponse({"processQueryKey": uuid.uuid4().hex})


def card_text(fake: FakeDingTalk, biz: str) -> str:
    """The markdown a sent card shows now."""
    return "\n".join(str(el["text"]) for el in fake.cards[biz]["card"]["contents"] if el["type"] == "markdown")

"""The progress parts of the fake Feishu: message reactions and the PATCH of a card the bot sent.

Reactions (``POST /open-apis/im/v1/messages/{id}/reactions``, ``DELETE .../reactions/{reaction_id}``): an
``emoji_type`` of the platform's list (231001 otherwise), none on a recalled message (231003), and a bot may
remove only a reaction it added to that message (231010 / 231011). ``PATCH /open-apis/im/v1/messages/{id}``:
only an ``interactive`` message this bot sent, not recalled (230011), declaring ``config.update_multi: true``
both as sent and in the new card, a body of at most 30 KB (230025), the card valid as a card JSON 2.0 is.
The answers have the shapes of lark-oapi's CreateMessageReactionResponseBody and PatchMessageResponse.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes import feishu_rich

if TYPE_CHECKING:
    from tests.fakes.feishu import FakeFeishu

# a part of the documented emoji list ("表情文案说明"), enough for what the tests send
EMOJI_TYPES = {"Typing", "OnIt", "OK", "THUMBSUP", "THANKS", "MUSCLE", "DONE", "SMILE", "Get", "LGTM", "HEART"}
MAX_PATCH_BYTES = 30 * 1024


def _err(code: int, msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


def _shared(card: Any) -> bool:
    config = card.get("config") if isinstance(card, dict) else None
    return isinstance(config, dict) and config.get("update_multi") is True


async def add_reaction(fake: FakeFeishu, request: Request) -> Response:
    if (denied := fake._auth(request)) is not None:
        return denied
    body = await fake._json(request)
    mid = request.path_params["message_id"]
    kind = body.get("reaction_type") if body else None
    emoji = kind.get("emoji_type") if isinstance(kind, dict) else None
    if emoji not in EMOJI_TYPES:
        fake.rejected.append("reaction type")
        return _err(231001, "reaction type is invalid.")
    if mid in fake.recalled:
        return _err(231003, "The message is not found, maybe not exist or deleted.")
    rid = f"ZCa{uuid.uuid4().hex}"
    fake.reactions[rid] = {"message_id": mid, "emoji_type": emoji, "_at": time.time()}
    fake.reaction_log.append(("add", mid, emoji))
    return JSONResponse({"code": 0, "msg": "success", "data": {
        "reaction_id": rid, "operator": {"operator_id": "cli_test", "operator_type": "app"},
        "action_time": str(int(time.time() * 1000)), "reaction_type": {"emoji_type": emoji}}})


async def delete_reaction(fake: FakeFeishu, request: Request) -> Response:
    if (denied := fake._auth(request)) is not None:
        return denied
    mid, rid = request.path_params["message_id"], request.path_params["reaction_id"]
    found = fake.reactions.get(rid)
    if found is None:
        return _err(231011, "The request has an invalid reaction_id.")
    if found["message_id"] != mid:
        return _err(231010, "The reaction does not belong to the message.")
    del fake.reactions[rid]
    fake.reaction_log.append(("delete", mid, found["emoji_type"]))
    return JSONResponse({"code": 0, "msg": "success", "data": {
        "reaction_id": rid, "operator": {"operator_id": "cli_test", "operator_type": "app"},
        "action_time": str(int(time.time() * 1000)), "reaction_type": {"emoji_type": found["emoji_type"]}}})


async def patch_message(fake: FakeFeishu, request: Request) -> Response:
    if (denied := fake._auth(request)) is not None:
        return denied
    raw = await request.body()
    if len(raw) > MAX_PATCH_BYTES:
        return _err(230025, "The length of the message content reaches its limit.")
    body = await fake._json(request)
    mid = request.path_params["message_id"]
    [sent] = [m for m in fake.sent if m["message_id"] == mid] or [None]
    if mid in fake.recalled:
        return _err(230011, "The message is recalled.")
    if sent is None or sent["msg_type"] != "interactive":
        fake.rejected.append("patch target")
        return _err(230001, "Your request contains an invalid request parameter: not a card this bot sent.")
    content = body.get("content") if body else None
    try:
        card = orjson.loads(content) if isinstance(content, str) else None
    except orjson.JSONDecodeError:
        card = None
    if not _shared(sent["content_json"]) or not _shared(card):
        fake.rejected.append("update_multi")
        return _err(230099, "Failed to create card content: update_multi must be true before and after.")
    problem = feishu_rich.card_problem(card)
    if problem is not None or feishu_mentions(card) is None:
        fake.rejected.append("patch card")
        return _err(230099, f"Failed to create card content: {problem or 'an <at> tag is misspelled'}")
    sent["content_json"], sent["content"] = card, content
    fake.patches.append({"message_id": mid, "content_json": card, "_at": time.time()})
    return JSONResponse({"code": 0, "msg": "success", "data": {}})


def feishu_mentions(card: Any) -> list[str] | None:
    from tests.fakes.feishu import mentions  # here: that module imports this one

    return mentions("interactive", card)

"""The rich parts of the fake Feishu: card JSON 2.0 as the platform validates it, image upload, card callbacks.

``card_problem`` refuses what the card JSON 2.0 docs say the platform refuses (no ``action`` module in 2.0,
buttons need ``plain_text`` text, a known ``type`` and ``behaviors``; a ``callback`` behaviour needs a
``value`` object). ``upload`` is ``POST /open-apis/im/v1/images``: multipart ``image_type`` + ``image``, at
most 10 MB, a real image format (sniffed from the bytes, as the platform does, not taken from the client's
content type). ``card_action_event`` builds the ``card.action.trigger`` callback (schema 2.0) as documented;
the tests parse it with lark-oapi's ``P2CardActionTrigger``.
"""

from __future__ import annotations

import time
import uuid
from email import policy
from email.parser import BytesParser
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

BUTTON_TYPES = {"default", "primary", "danger", "text", "primary_text", "danger_text", "primary_filled",
                "danger_filled", "laser"}
MAX_IMAGE = 10 * 2**20
MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
         (b"BM", "bmp"))


def _plain_text(node: Any) -> bool:
    return isinstance(node, dict) and node.get("tag") == "plain_text" and isinstance(node.get("content"), str)


def card_problem(card: Any) -> str | None:
    """Why the platform would refuse this card JSON 2.0 (None: it renders)."""
    if not isinstance(card, dict) or card.get("schema") != "2.0":
        return "not a card JSON 2.0"
    header = card.get("header")
    if header is not None and not (isinstance(header, dict) and _plain_text(header.get("title"))):
        return "header.title must be plain_text"
    body = card.get("body")
    elements = body.get("elements") if isinstance(body, dict) else None
    if not isinstance(elements, list) or not elements:
        return "body.elements must be a non-empty list"
    for i, el in enumerate(elements):
        tag = el.get("tag") if isinstance(el, dict) else None
        if tag == "markdown":
            if not isinstance(el.get("content"), str):
                return f"elements[{i}]: markdown needs content"
        elif tag == "button":
            if not _plain_text(el.get("text")) or not el["text"]["content"]:
                return f"elements[{i}]: button text must be plain_text"
            if el.get("type", "default") not in BUTTON_TYPES:
                return f"elements[{i}]: unknown button type {el.get('type')!r}"
            behaviors = el.get("behaviors")
            if not isinstance(behaviors, list) or not behaviors:
                return f"elements[{i}]: button needs behaviors"
            for b in behaviors:
                if not isinstance(b, dict) or b.get("type") not in ("callback", "open_url"):
                    return f"elements[{i}]: unknown behavior"
                if b["type"] == "callback" and not isinstance(b.get("value"), dict):
                    return f"elements[{i}]: a callback behavior needs a value object"
        elif tag == "action":
            return "card JSON 2.0 has no action module: put buttons in elements"
        else:
            return f"elements[{i}]: tag {tag!r} not handled by this fake"
    return None


def multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """name -> bytes of each part, with or without a filename (lark-oapi sends a file part without one)."""
    msg = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    out: dict[str, bytes] = {}
    for part in msg.iter_parts() if msg.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            out[name] = payload
    return out


def image_format(data: bytes) -> str | None:
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


async def upload(request: Request, images: dict[str, bytes], rejected: list[str]) -> Response:
    """``POST /open-apis/im/v1/images`` (authorised by the caller): ``{"code": 0, "data": {"image_key"}}``."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        rejected.append("image upload content-type")
        return JSONResponse({"code": 234001, "msg": "Invalid request param."}, status_code=400)
    form = multipart_fields(request.headers["content-type"], await request.body())
    data, kind = form.get("image"), form.get("image_type")
    if kind not in (b"message", b"avatar") or not data:
        rejected.append("image upload fields")
        return JSONResponse({"code": 234001, "msg": "Invalid request param."}, status_code=400)
    if len(data) > MAX_IMAGE:
        return JSONResponse({"code": 234006, "msg": "The file size exceed the max value."}, status_code=400)
    if image_format(data) is None:
        rejected.append("image format")
        return JSONResponse({"code": 234011, "msg": "Can't recognize image format."}, status_code=400)
    key = f"img_v3_{uuid.uuid4().hex}"
    images[key] = data
    return JSONResponse({"code": 0, "msg": "success", "data": {"image_key": key}})


def card_action_event(
    *, token: str, value: dict[str, Any], open_message_id: str, open_chat_id: str, operator: str = "ou_alice",
    event_id: str | None = None, tag: str = "button",
) -> dict[str, Any]:
    """A ``card.action.trigger`` callback (schema 2.0), as the card callback docs show it."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "token": token,
            "create_time": str(int(time.time() * 1_000_000)),
            "event_type": "card.action.trigger",
            "tenant_key": "tenant_1",
            "app_id": "cli_test",
        },
        "event": {
            "operator": {"tenant_key": "tenant_1", "user_id": f"u_{operator}", "open_id": operator,
                         "union_id": f"on_{operator}"},
            "token": f"c-{uuid.uuid4().hex}",  # the card's update token, not the verification token
            "action": {"value": value, "tag": tag},
            "host": "im_message",
            "context": {"open_message_id": open_message_id, "open_chat_id": open_chat_id},
        },
    }


def pressed(sent: dict[str, Any], label: str) -> dict[str, Any]:
    """The callback value object of the button ``label`` of a sent card (what a press brings back)."""
    for el in sent["content_json"]["body"]["elements"]:
        if el.get("tag") == "button" and el["text"]["content"] == label:
            return dict(el["behaviors"][0]["value"])
    raise KeyError(label)

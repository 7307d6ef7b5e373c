"""A Feishu reply's card and images: the card JSON 2.0 with callback buttons, and images as ``image_key``s.

Card: ``msg_type: interactive`` with a card JSON 2.0 (``schema: "2.0"``, ``header.title``, ``body.elements``);
the text is a ``markdown`` element and every button a ``button`` element whose ``behaviors`` hold one
``callback`` with the value object the press brings back as ``event.action.value`` of ``card.action.trigger``.
That object carries the button's value and label, and what the callback itself does not say: whether the
chat is a direct or a group one, and the thread the card went into, so a press comes back addressed like a
message of that chat would be. A press brings back nothing the bot did not put on the card.

Images: Feishu does not fetch a URL; a message names an ``image_key`` from ``POST /open-apis/im/v1/images``
(multipart, ``image_type=message``, at most 10 MB). The image is downloaded here first, streamed, with a
time limit, refusing anything that is not an image or is larger than the limit, so a bad URL costs a link
line in the text (``parts_text``), never the reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from agentbus.events import Attachment, Card, ReplyGeneratedData
from agentbus.httpclient import TooLarge, read_capped
from agentbus.netguard import Refused, checked_addresses, system_resolve
from agentbus.services.egress.channels.parts_text import text_with_parts
from agentbus.services.egress.ports import Pushed

IMAGES_PATH = "/open-apis/im/v1/images"
SHARED: dict[str, Any] = {"config": {"update_multi": True}}  # a shared card: one that can be edited (PATCH)
MAX_IMAGE_BYTES = 10 * 2**20  # "the image may not exceed 10 MB"
FETCH_TIMEOUT_S = 15.0
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff", "image/x-icon",
               "image/vnd.microsoft.icon", "image/heic"}  # the formats the upload accepts


@dataclass
class Plan:
    """The messages one reply goes out as (msg_type, content, uuid), and how many went out already."""

    messages: list[tuple[str, str, str]]
    done: int = 0
    first: Pushed | None = None

    @property
    def has_main(self) -> bool:
        return bool(self.messages) and self.messages[0][0] != "image"


class ImageFailed(Exception):
    """An image that cannot go out as an image (it goes out as a link line)."""


def parts_as_text(reply: ReplyGeneratedData) -> ReplyGeneratedData:
    """For the custom bot webhook, which can neither receive presses nor send images: the parts as text."""
    if reply.card is None and not reply.attachments:
        return reply
    return reply.model_copy(update={"text": text_with_parts(reply), "card": None, "attachments": ()})


def button_value(value: str, label: str, chat_type: str, thread_id: str | None) -> dict[str, str]:
    """The callback value object of a button: what ``card.action.trigger`` brings back."""
    out = {"value": value, "label": label, "chat_type": chat_type}
    if thread_id:
        out["thread_id"] = thread_id
    return out


def card_json(card: Card, markdown: str, chat_type: str, thread_id: str | None) -> dict[str, Any]:
    """The card JSON 2.0 of ``card`` with ``markdown`` as its text."""
    elements: list[dict[str, Any]] = []
    if markdown.strip():
        elements.append({"tag": "markdown", "content": markdown})
    for b in card.buttons:
        elements.append({
            "tag": "button",
            "text": {"tag": "plain_text", "content": b.label},
            "type": b.style,
            "behaviors": [{"type": "callback", "value": button_value(b.value, b.label, chat_type, thread_id)}],
        })
    out: dict[str, Any] = {"schema": "2.0", "body": {"elements": elements}}
    if card.title:
        out["header"] = {"title": {"tag": "plain_text", "content": card.title}, "template": "blue"}
    return out


def card_markdown(reply_text: str, card: Card) -> str:
    """The card's text: the reply's, then the card's own body when it says something else."""
    blocks = [t for t in (reply_text.strip(), card.text.strip()) if t]
    if len(blocks) == 2 and blocks[0] == blocks[1]:
        blocks = blocks[:1]
    return "\n\n".join(blocks)


async def pinned(url: httpx.URL) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The request to make for ``url``: to one of its host's addresses, each checked by the SSRF guard (the URL
    is the model's choice, and egress sits inside the network), with the host name kept for ``Host`` and for
    TLS (SNI and the certificate check), so a name that resolves differently a moment later (DNS rebinding)
    cannot turn the request inward. ``ImageFailed`` when any address is not public."""
    try:
        addresses = await checked_addresses(url.host, url.port or 443, system_resolve)
    except Refused as exc:
        raise ImageFailed(f"not public: {exc}") from None
    host = url.netloc.decode("ascii")
    return url.copy_with(host=addresses[0]), {"host": host}, {"sni_hostname": url.host}


async def fetch_image(http: httpx.AsyncClient, a: Attachment, schemes: tuple[str, ...], public_only: bool = True,
                      limit: int = MAX_IMAGE_BYTES) -> tuple[bytes, str]:
    """(bytes, content type) of an image attachment's URL; ``ImageFailed`` for anything else."""
    url = a.url or ""
    if not url.startswith(tuple(f"{s}://" for s in schemes)):
        raise ImageFailed(f"not a {'/'.join(schemes)} URL")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ImageFailed("malformed URL") from None
    target, headers, extensions = (await pinned(parsed)) if public_only else (parsed, {}, {})
    try:
        async with http.stream("GET", target, headers=headers, extensions=extensions, timeout=FETCH_TIMEOUT_S,
                               follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise ImageFailed(f"HTTP {resp.status_code}")
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in IMAGE_TYPES:
                raise ImageFailed(f"content type {ctype[:60]!r} is not an image Feishu takes")
            try:
                data = await read_capped(resp, limit)
            except TooLarge as big:
                if big.declared is not None:
                    raise ImageFailed(f"{big.declared} bytes: more than {limit}") from None
                raise ImageFailed(f"more than {limit} bytes") from None
    except httpx.HTTPError as exc:
        raise ImageFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not data:
        raise ImageFailed("empty body")
    return data, ctype


async def upload_image(http: httpx.AsyncClient, base: str, token: str, name: str, data: bytes,
                       ctype: str) -> tuple[str | None, int | None]:
    """(image_key, None) on success, (None, Feishu's code) when the platform refused the upload."""
    try:
        resp = await http.post(base + IMAGES_PATH, data={"image_type": "message"},
                               files={"image": (name, data, ctype)}, headers={"authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ImageFailed(f"upload: {type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise ImageFailed(f"upload: HTTP {resp.status_code}, not JSON") from None
    body = answer if isinstance(answer, dict) else {}
    payload = body.get("data")
    key = payload.get("image_key") if isinstance(payload, dict) else None
    if resp.status_code < 300 and body.get("code") == 0 and isinstance(key, str) and key:
        return key, None
    code = body.get("code")
    return None, code if isinstance(code, int) else -1

"""A press of a Block Kit button (an interactivity ``block_actions`` payload) as a message of the card's chat.

Slack POSTs interactivity to the app's Request URL as ``application/x-www-form-urlencoded`` with one field,
``payload`` (the JSON), signed exactly as Events API requests; in Socket Mode the same JSON comes in an
``interactive`` envelope. Either way it is acknowledged with an empty 200 once the message is on the broker.
A press has no event id: the card message's ``ts``, the action's ``action_ts`` and the presser identify it, so
a redelivery is the same message and a second press another. The button's ``value`` (egress put the reply's
button value there) is the text; a press on the bot's own card needs no mention.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from agentbus.channeltypes.slack import SlackChannel
from agentbus.events import Action, Chat, Sender
from agentbus.services.ingress.channels.base import Rejected
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage

ACK = Answer(200, b"", "text/plain")
MAX_VALUE = 2000  # Slack's limit for a button's value
_ID = re.compile(r"^[A-Z0-9]{1,40}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")


def _str(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) and v else None


def payload_of(body: bytes) -> dict[str, Any] | None:
    """The ``payload`` JSON of an interactivity request, ``None`` for another form (a slash command);
    ``Rejected`` when the payload is not one JSON object."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "malformed form body") from None
    if "payload" not in form:
        return None
    if len(form["payload"]) != 1:
        raise Rejected(400, "more than one payload field")
    try:
        payload = orjson.loads(form["payload"][0])
    except orjson.JSONDecodeError:
        raise Rejected(400, "payload is not JSON") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "payload is not a JSON object")
    return payload


def press(channel: SlackChannel, payload: dict[str, Any]) -> Inbound:
    """A ``block_actions`` payload as at most one message; other interactions are acknowledged and dropped."""
    kind = payload.get("type")
    if kind != "block_actions":
        return Inbound(answer=ACK, note=f"interaction type {str(kind)[:40]!r} ignored")
    user, container, actions = payload.get("user"), payload.get("container"), payload.get("actions")
    user_id = _str(user, "id")
    if user_id is None or not _ID.match(user_id):
        raise Rejected(400, "block_actions without a valid user.id")
    if not isinstance(container, dict) or container.get("type") != "message":
        return Inbound(answer=ACK, note="block_actions outside a message (a view) ignored")
    chat_id = _str(payload.get("channel"), "id") or _str(container, "channel_id")
    message_ts = _str(container, "message_ts")
    if chat_id is None or not _ID.match(chat_id) or message_ts is None or not _TS.match(message_ts):
        raise Rejected(400, "block_actions without a valid channel.id or container.message_ts")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise Rejected(400, "block_actions must carry exactly one action")
    action = actions[0]
    if action.get("type") != "button":
        return Inbound(answer=ACK, note=f"action type {str(action.get('type'))[:40]!r} ignored")
    value, action_ts = action.get("value"), _str(action, "action_ts")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE:
        raise Rejected(400, f"button press without a value of 1-{MAX_VALUE} characters")
    if action_ts is None or not _TS.match(action_ts):
        raise Rejected(400, "button press without a valid action_ts")
    label = _str(action.get("text"), "text")
    message = payload.get("message")
    thread_ts = _str(container, "thread_ts") or _str(message, "thread_ts")
    direct = chat_id.startswith("D")
    route: dict[str, Any] = {"channel": chat_id, "ts": message_ts}
    team = _str(payload.get("team"), "id") or _str(user, "team_id")
    if team:
        route["team"] = team
    if thread_ts and _TS.match(thread_ts):
        route["thread_ts"] = thread_ts
    elif channel.reply_in_thread and not direct:
        route["thread_ts"] = message_ts
    platform_id = f"{chat_id}:{message_ts}:press:{action_ts}:{user_id}"
    return Inbound(
        answer=ACK,
        dedupe_id=platform_id,
        message=InboundMessage(
            platform_message_id=platform_id,
            sender=Sender(id=user_id, name=(_str(user, "username") or _str(user, "name") or "")[:256] or None),
            chat=Chat(id=chat_id, type="direct" if direct else "group"),
            text=value,
            mentioned_bot=True,
            reply_route=route,
            action=Action(value=value, label=label[:200] if label else None, card_message_id=message_ts),
        ),
    )

"""Block Kit as Slack checks it, and button presses as Slack sends them (interactivity).

``blocks_problems`` parses each block and each interactive element with slack_sdk's own models
(``slack_sdk.models.blocks``) and runs their validation (text and value lengths, styles, element counts), and
adds what Slack checks across blocks: at most 50, block_id and action_id unique in the message. Slack answers
such a message ``{"ok": false, "error": "invalid_blocks", "errors": [...]}``.

``block_actions`` is the payload Slack sends when a person presses a button of a posted message;
``signed_form`` wraps it as the Request URL receives it (``payload=<json>`` form-encoded, signed as Events API
requests are, by slack_sdk's verifier).
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, BlockElement
from slack_sdk.signature import SignatureVerifier

APP_ID = "A0APP00001"


def blocks_problems(blocks: Any) -> list[str]:
    """What Slack refuses in ``blocks`` (empty when it takes them)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    if len(blocks) > 50:
        return ["no more than 50 items allowed [json-pointer:/blocks]"]
    problems: list[str] = []
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for n, raw in enumerate(blocks):
        block = Block.parse(raw) if isinstance(raw, dict) else None
        if block is None or type(block) is Block:
            problems.append(f"unsupported type [json-pointer:/blocks/{n}/type]")
            continue
        try:
            block.validate_json()
            for el in raw.get("elements", []) if raw.get("type") == "actions" else []:
                element = BlockElement.parse(el)
                if element is None:
                    raise SlackObjectFormationError("unsupported element type")
                element.validate_json()
                action_id = el.get("action_id")
                if action_id in action_ids:
                    raise SlackObjectFormationError(f"duplicate action_id {action_id}")
                if isinstance(action_id, str):
                    action_ids.add(action_id)
        except SlackObjectFormationError as err:
            problems.append(f"{err} [json-pointer:/blocks/{n}]")
        bid = raw.get("block_id")
        if isinstance(bid, str):
            if bid in block_ids:
                problems.append(f"duplicate block_id {bid} [json-pointer:/blocks/{n}]")
            block_ids.add(bid)
    return problems


def block_actions(posted: dict[str, Any], value: str, *, user: str = "U0ALICE001",
                  action_ts: str | None = None) -> dict[str, Any]:
    """The payload of a press of the button carrying ``value`` on a message as the fake recorded it."""
    from tests.fakes.slack import BOT_USER, TEAM  # the fake Web API imports this module's checks

    button = next(el for b in posted["blocks"] if b["type"] == "actions" for el in b["elements"]
                  if el.get("value") == value)
    actions_block = next(b for b in posted["blocks"] if b["type"] == "actions" and button in b["elements"])
    container: dict[str, Any] = {"type": "message", "message_ts": posted["ts"], "channel_id": posted["channel"],
                                 "is_ephemeral": False}
    message: dict[str, Any] = {"type": "message", "user": BOT_USER, "ts": posted["ts"], "bot_id": "B0BOT00001",
                               "app_id": APP_ID, "text": posted.get("text", ""), "team": TEAM,
                               "blocks": posted["blocks"]}
    if posted.get("thread_ts"):
        container["thread_ts"] = posted["thread_ts"]
        message["thread_ts"] = posted["thread_ts"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": container,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "team": {"id": TEAM, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": posted["channel"], "name": "directmessage" if posted["channel"][0] == "D" else "general"},
        "message": message,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM}/{uuid.uuid4().int % 10**12}/{uuid.uuid4().hex}",
        "actions": [{"action_id": button["action_id"], "block_id": actions_block.get("block_id", "b1"),
                     "text": button["text"], "value": button["value"], "type": "button",
                     **({"style": button["style"]} if "style" in button else {}),
                     "action_ts": action_ts or f"{time.time():.6f}"}],
    }


def signed_form(secret: str, payload: dict[str, Any] | bytes, *, timestamp: int | None = None
                ) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an interactivity request: ``payload=<json>``, form-encoded, signed."""
    raw = payload if isinstance(payload, bytes) else urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=raw)
    assert sig is not None
    return raw, {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
                 "x-slack-signature": sig}

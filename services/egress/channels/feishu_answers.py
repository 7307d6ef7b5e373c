"""How a Feishu / Lark API answer is read: ``{"code": N, "msg": ...}`` (the custom bot webhook also answers
``StatusCode`` / ``StatusMessage``), rate limits as HTTP 429 (or 400) with a rate code and
``x-ogw-ratelimit-reset``; 5xx, 408, 425 and answers that are not JSON may be repeated, other errors not."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from agentbus.services.egress.channels.base import retry_after_seconds
from agentbus.services.egress.ports import Permanent, Retryable


class ReplyTargetGone(Permanent):
    """The message to answer (or the card to edit) was recalled."""


RATE_CODES = {99991400, 230020, 11232}  # API frequency limit, per-chat send limit, custom bot limit


def json_of(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        data = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _rate_wait(resp: httpx.Response) -> float | None:
    reset = resp.headers.get("x-ogw-ratelimit-reset")
    if reset:
        try:
            return max(float(reset), 0.0)
        except ValueError:
            pass
    return retry_after_seconds(resp)


def code_of(data: dict[str, Any] | None) -> int | None:
    code = data.get("code", data.get("StatusCode")) if data else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def failure_of(resp: httpx.Response, data: dict[str, Any] | None) -> Exception:
    """The exception for a failed answer (not raised here, so callers can decide)."""
    code = code_of(data)
    msg = str((data or {}).get("msg", (data or {}).get("StatusMessage", "")))[:200]
    what = f"HTTP {resp.status_code}, code {code}: {msg}" if data else f"HTTP {resp.status_code}: {resp.text[:200]}"
    if resp.status_code == 429 or code in RATE_CODES:
        return Retryable(f"rate limited: {what}", resp.status_code, _rate_wait(resp))
    if resp.status_code >= 500 or resp.status_code in (408, 425) or data is None:
        return Retryable(what, resp.status_code, retry_after_seconds(resp))
    return Permanent(what, resp.status_code)

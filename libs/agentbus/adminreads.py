"""What every service's read-only admin listing shares: a strict query string, a bounded page size, and an
opaque cursor to the next page.

The operator API reads each service's own state through these listings (no service reads another's tables),
so they refuse what they do not understand instead of guessing: an unknown or repeated parameter, a value
that is not printable or too long, a limit out of range, a cursor they did not make.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_VALUE = re.compile(r"^[^\x00-\x1f]{1,512}$")
T = TypeVar("T")


class BadQuery(ValueError):
    """The reason a listing's query is refused (answered 400 with it)."""


def query_of(request: Request, allowed: Sequence[str], required: Sequence[str] = ("tenant",)) -> dict[str, str]:
    """The query string as single values; raises ``BadQuery`` naming the first problem."""
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadQuery(f"unknown query parameter {name[:40]!r} (allowed: {', '.join(allowed)})")
        if name in values:
            raise BadQuery(f"{name}: give it once")
        if not _VALUE.match(value):
            raise BadQuery(f"{name}: must be 1 to 512 printable characters")
        values[name] = value
    missing = [r for r in required if r not in values]
    if missing:
        raise BadQuery(f"{missing[0]}: required")
    return values


def limit_of(values: dict[str, str]) -> int:
    raw = values.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\n".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    """The ``n`` parts of a cursor ``encode_cursor`` made; raises ``BadQuery`` for anything else."""
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("\n")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadQuery("before: not a cursor this listing made") from None
    if len(parts) != n:
        raise BadQuery("before: not a cursor this listing made")
    return parts


def page(rows: Sequence[T], limit: int, item: Callable[[T], dict[str, Any]],
         cursor: Callable[[T], str]) -> dict[str, Any]:
    """``rows`` were fetched with ``limit + 1``: the extra one only says there is a next page."""
    shown = rows[:limit]
    more = len(rows) > limit
    return {"items": [item(r) for r in shown], "next_before": cursor(shown[-1]) if more and shown else None}

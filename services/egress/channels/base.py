"""The outbound half of a channel: push one reply to the platform, exactly as it documents.

An adapter makes one attempt and classifies the result: ``Retryable`` (429, 5xx, network; with the
platform's Retry-After when it gives one) or ``Permanent`` (a documented permanent error). Egress owns
retries, backoff, rate limits and the delivery ledger, so every channel gets the same guarantees. The
outcomes are the values of ``egress.ports``, which ``OutboundAdapter`` implements as its ``Outbound`` port.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

import httpx

from agentbus.channeltypes import ChannelBase
from agentbus.events import ReplyGeneratedData, Sender
from agentbus.services.egress.ports import Permanent, Pushed, Retryable


def transport_failure(exc: httpx.TransportError) -> Retryable:
    """A request that never reached the platform is safe to repeat; one that may have is ambiguous."""
    safe = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return Retryable(f"{type(exc).__name__}: {exc}", ambiguous=not safe)


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return None


def classify_http(resp: httpx.Response) -> None:
    """Raise for a non-2xx answer: 408/425/429/5xx are retryable, other 4xx permanent."""
    if resp.status_code < 300:
        return
    if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
        raise Retryable(f"HTTP {resp.status_code}", resp.status_code, retry_after_seconds(resp))
    raise Permanent(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)


class TokenCache:
    """Access tokens per credential: refreshed before expiry, one refresh at a time per key."""

    def __init__(self, margin_s: float = 300.0) -> None:
        self._margin = margin_s
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """``fetch`` returns (token, lifetime in seconds)."""
        hit = self._tokens.get(key)
        if hit and hit[1] - self._margin > time.monotonic():
            return hit[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._tokens.get(key)
            if hit and hit[1] - self._margin > time.monotonic():
                return hit[0]
            token, ttl = await fetch()
            self._tokens[key] = (token, time.monotonic() + ttl)
            return token

    def invalidate(self, key: str) -> None:
        self._tokens.pop(key, None)


class OutboundAdapter(ABC):
    type: ClassVar[str]
    # the platform de-duplicates by our idempotency key, so an ambiguous push may be repeated safely (an
    # instance may decide by its configuration, as WeCom's duplicate check does)
    idempotent: bool = False
    # documented default rate limit per target (pushes per minute), None for none
    default_rate_per_minute: ClassVar[int | None] = None

    def __init__(self, channel: ChannelBase, http: httpx.AsyncClient, tokens: TokenCache) -> None:
        self.channel = channel
        self.http = http
        self.tokens = tokens

    def target(self, reply: ReplyGeneratedData) -> str:
        """The rate-limit key: by default the chat."""
        return f"{self.channel.id}:{reply.chat.id}"

    @property
    def rate_per_minute(self) -> int | None:
        return self.channel.rate_limit_per_minute or self.default_rate_per_minute

    def rate_for(self, reply: ReplyGeneratedData) -> int | None:
        """Pushes per minute allowed to this reply's target (a channel may have several kinds of target)."""
        return self.rate_per_minute

    def addressee(self, reply: ReplyGeneratedData) -> Sender | None:
        """Whom a group reply addresses: the sender of the message answered, when the channel mentions."""
        asker = reply.asker
        if not self.channel.mention_asker or reply.chat.type != "group" or asker is None or not asker.id:
            return None
        return asker

    def is_idempotent(self, reply: ReplyGeneratedData) -> bool:
        """Whether the platform de-duplicates a repeated push of this reply (by our idempotency key)."""
        return self.idempotent

    @abstractmethod
    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        """One attempt; raise ``Retryable`` or ``Permanent`` on failure."""

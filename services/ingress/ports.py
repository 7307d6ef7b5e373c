"""What accepting a message needs from outside, so ``Acceptor`` is tested with fakes and wired in bootstrap.

The de-duplication store only saves work: message ids are derived from (channel, platform event id), so a
platform retry that gets past it publishes the same event again, which consumers ignore. That is why its
failures are a ``DedupeUnavailable`` the acceptor logs and goes on from, rather than the store's own errors.
The publisher is the kernel's producer (``publish`` returns once the broker has acknowledged).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agentbus.channeltypes import ChannelBase
from agentbus.events import Attachment, Event
from agentbus.services.ingress.inbound import InboundMessage, MediaItem


class DedupeUnavailable(Exception):
    """The de-duplication store could not answer or record in time."""


class DedupeStore(Protocol):
    async def seen(self, channel: str, dedupe_id: str) -> bool:
        """Whether this platform event was published before; raises ``DedupeUnavailable``."""
        ...

    async def record(self, channel: str, dedupe_id: str, event_id: uuid.UUID) -> None:
        """Remember a published platform event; raises ``DedupeUnavailable``."""
        ...


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...


class MediaDownloads(Protocol):
    async def download(self, channel: ChannelBase, items: Sequence[MediaItem]) -> tuple[Attachment, ...]:
        """Fetch and store each item; never raises: an item that cannot be had gets ``error`` set, so the
        message is still published and answered."""
        ...


class LeaseUnavailable(Exception):
    """The lease store could not answer in time (its holder keeps the lease only until it expires)."""


class Leases(Protocol):
    """Who holds each long connection: at most one replica per channel at a time."""

    async def acquire(self, channel: str, holder: str, ttl_s: float) -> str:
        """Take or renew the lease when it is free, expired or ours; returns the holder after the call
        (``holder`` itself when it is ours). Raises ``LeaseUnavailable``."""
        ...

    async def release(self, channel: str, holder: str) -> None:
        """Give a held lease up at once (graceful shutdown), so another replica need not wait for expiry."""
        ...



@dataclass(frozen=True)
class Verdict:
    admitted: bool
    retry_after_s: float = 0.0  # refused: when there is room again


class Quota(Protocol):
    async def admit(self, tenant: str) -> Verdict:
        """Whether one more message of the tenant is within its quota (and count it when it is)."""
        ...


@dataclass(frozen=True)
class Spoken:
    """Ingress's own answer to a message (said to the person without the model, and not remembered), and the
    commands to publish before it."""

    answer: str
    commands: tuple[Event, ...] = ()


class ErasureRequests(Protocol):
    async def heard(self, channel: ChannelBase, msg: InboundMessage, event_id: uuid.UUID) -> Spoken | None:
        """A person asking to be forgotten, or confirming it: what to answer and publish; None for any other
        message."""
        ...

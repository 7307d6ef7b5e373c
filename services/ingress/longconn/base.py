"""The contract between a platform's long connection and ingress.

A connection opens one outbound session to its platform (a WebSocket, or a long poll) and serves it until
it ends. For every platform event it builds an ``Inbound`` (normally with the channel's webhook adapter's
own normalisation, so both modes produce the same message) and awaits ``deliver``: that runs the same
acceptor as a webhook (policy, de-duplication by the platform's event id, publish with acks=all) and
returns only once the event is on the broker. Only then does the connection acknowledge the event to the
platform (DingTalk/Feishu/Slack ack frames, Telegram's update offset). When ``deliver`` raises, the event
is not acknowledged, so the platform delivers it again.

The supervisor (``supervisor.py``) owns everything around one session: the lease that lets one replica at
a time hold a channel's connection, reconnecting with backoff, the state shown in ``/readyz`` and the
``agentbus_channel_connection_up`` metric. ``run`` itself only connects once and raises (or returns) when
the session ends.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import httpx

from agentbus.channeltypes import ChannelBase
from agentbus.services.ingress.accept import Outcome
from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.inbound import Inbound

Deliver = Callable[[Inbound], Awaitable[Outcome]]


@dataclass
class LinkState:
    """What ``/readyz`` and the metrics show of one channel's connection (written by the connection and
    its supervisor, read by the routes)."""

    connected: bool = False
    since: float = 0.0  # unix seconds of the last change of ``connected``
    last_error: str | None = None
    reconnects: int = 0
    events: int = 0  # platform events delivered on this replica
    held: bool = False  # this replica holds the channel's lease
    holder: str = ""  # the replica holding the lease, as last seen ("" while unknown)

    def up(self) -> None:
        if not self.connected:
            self.connected, self.since = True, time.time()
        self.last_error = None

    def down(self, error: str | None) -> None:
        if self.connected:
            self.connected, self.since = False, time.time()
        if error:
            self.last_error = error[:300]


class LongConnection(ABC):
    """One per channel instance in ``mode: stream``; ``run`` is called again by the supervisor after it ends."""

    type: ClassVar[str]

    def __init__(self, channel: ChannelBase, adapter: InboundAdapter, deliver: Deliver,
                 http: httpx.AsyncClient, state: LinkState) -> None:
        self.channel = channel
        self.adapter = adapter  # the channel's webhook adapter: its normalisation, never its HTTP checks
        self.deliver = deliver
        self.http = http
        self.state = state

    @abstractmethod
    async def run(self) -> None:
        """Open one session and serve it until it ends.

        Call ``self.state.up()`` once the platform accepted the session. Acknowledge each event only after
        ``await self.deliver(inbound)`` returned; when it raises, leave the event unacknowledged (or answer
        the platform's documented "failed, redeliver" status) and go on or end the session. Raise on any
        failure: the supervisor records it, backs off and calls ``run`` again. Cancellation (lease lost,
        shutdown) must close the session promptly.
        """

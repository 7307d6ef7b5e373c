"""The inbound half of a channel: turn one verified platform request into at most one message.

An adapter verifies the request exactly as its platform documents (signature over the raw body, timestamp
window, decryption, handshakes) and normalises it. It never publishes or touches the database: ingress
does that, so every channel gets the same de-duplication and publish-before-answer guarantee.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from agentbus.channeltypes import ChannelBase
from agentbus.services.ingress.inbound import Inbound


class Rejected(Exception):
    """The request is refused with a 4xx and a reason; nothing is published."""

    def __init__(self, status: int, reason: str) -> None:
        if not 400 <= status < 500:
            raise ValueError("Rejected is for 4xx answers")
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]
    body: bytes
    received_at: float  # unix seconds


class InboundAdapter(ABC):
    """One per channel type; instantiated once per configured channel."""

    type: ClassVar[str]

    def __init__(self, channel: ChannelBase) -> None:
        self.channel = channel

    @abstractmethod
    async def receive(self, request: HttpRequest) -> Inbound:
        """Verify and normalise; raise ``Rejected`` for anything that is not a genuine platform request."""

    def accepts_method(self, method: str) -> bool:
        return method == "POST"

"""The load: many conversations at once, each sending its messages one after another, like a chat platform.

A conversation sends its next message only after ingress acknowledged (2xx) the previous one. A request
that fails (connection refused, timeout) or gets a 5xx is sent again with the same ``webhook-id``, as a real
platform retries, so "accepted" means exactly: ingress answered 2xx for that webhook-id. Messages are spread
over ``duration_s`` so that the faults happen while traffic flows.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx

from agentbus.cli.tools import signed_request


@dataclass
class Message:
    conversation: str  # chat id
    channel: str
    seq: int
    webhook_id: str
    text: str
    accepted_at: float | None = None  # time.monotonic() of the 2xx
    sent_at: float | None = None  # when the request that got the 2xx was sent
    outcome: str | None = None  # ingress's x-agentbus-outcome
    event_id: str | None = None  # the message.received event id (the chain's correlation id)
    attempts: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # what made us retry, by kind
    rejected: str | None = None  # a 4xx: should never happen for these well-formed messages


def plan(conversations: int, messages: int, channels: list[str], run_id: str) -> list[list[Message]]:
    """Messages per conversation (as even as possible), with the sequence number in the text."""
    base, extra = divmod(messages, conversations)
    out: list[list[Message]] = []
    for c in range(conversations):
        chat = f"chaos-{run_id}-{c:04d}"
        channel = channels[c % len(channels)]
        n = base + (1 if c < extra else 0)
        out.append([
            Message(chat, channel, s, f"msg_{run_id}_{c:04d}_{s:04d}_{uuid.uuid4().hex[:8]}",
                    f"{chat} seq={s:04d} hello {uuid.uuid4().hex[:6]}")
            for s in range(n)
        ])
    return out


@dataclass
class Load:
    ingress_url: str
    secrets: dict[str, str]  # channel -> webhook secret
    conversations: list[list[Message]]
    duration_s: float
    request_timeout_s: float = 20.0
    give_up_s: float = 600.0  # per message: bounded, reported as not accepted
    started: float = 0.0
    finished: float = 0.0

    @property
    def messages(self) -> list[Message]:
        return [m for conv in self.conversations for m in conv]

    async def run(self) -> None:
        self.started = time.monotonic()
        limits = httpx.Limits(max_connections=len(self.conversations) + 10, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=self.request_timeout_s, limits=limits) as client:
            await asyncio.gather(*(self._conversation(client, conv) for conv in self.conversations))
        self.finished = time.monotonic()

    async def _conversation(self, client: httpx.AsyncClient, conv: list[Message]) -> None:
        if not conv:
            return
        offset = random.random()
        step = self.duration_s / len(conv)
        for m in conv:
            due = self.started + (m.seq + offset) * step
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._send(client, m)

    async def _send(self, client: httpx.AsyncClient, m: Message) -> None:
        payload = {"conversation": m.conversation, "sender": {"id": f"user-{m.conversation[-4:]}"}, "text": m.text}
        url = f"{self.ingress_url}/v1/webhooks/{m.channel}"
        deadline = time.monotonic() + self.give_up_s
        delay = 0.2
        while time.monotonic() < deadline:
            m.attempts += 1
            # the same webhook-id every time; a fresh timestamp and signature, as a platform's retry has
            body, headers = signed_request(self.secrets[m.channel], payload, m.webhook_id)
            sent = time.monotonic()
            try:
                r = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
            else:
                if 200 <= r.status_code < 300:
                    m.sent_at, m.accepted_at = sent, time.monotonic()
                    m.outcome = r.headers.get("x-agentbus-outcome")
                    m.event_id = r.headers.get("x-agentbus-event-id")
                    return
                if r.status_code < 500:
                    m.rejected = f"{r.status_code} {r.text[:200]}"
                    return
                kind = f"http {r.status_code}"
            m.failures[kind] = m.failures.get(kind, 0) + 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

"""The long-connection side of a chaos run: a Telegram channel in ``mode: stream`` (getUpdates long polling).

Its messages are not posted to ingress: they wait in the fake Bot API's update queue until the replica holding
the channel's lease fetches them, and are confirmed only by the next poll's offset, after ingress published
them. When ingress is SIGKILLed while it holds the connection, the restarted replica takes the lease over once
it expires and polls again from the last confirmed offset, so updates fetched but not confirmed come a second
time: the run counts, from the fake's raw ``sendMessage`` log, that every update is answered exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, chat, update, user

CHANNEL = "tgpoll"
FIRST_CHAT = 7_000_000


@dataclass
class LcMessage:
    chat_id: int
    seq: int
    token: str  # unique, alphanumeric: survives any formatting of the answer
    text: str
    update_id: int = 0
    queued_at: float | None = None


@dataclass
class LcResult:
    messages: int = 0
    confirmed: int = 0  # updates confirmed by a later poll's offset (ingress published them)
    answered: int = 0
    lost: int = 0  # not answered
    duplicated: int = 0  # answers beyond the first to one update
    wrong: int = 0
    out_of_order: int = 0
    polls: int = 0
    lost_examples: list[dict[str, Any]] = field(default_factory=list)
    duplicate_examples: list[dict[str, Any]] = field(default_factory=list)


def channel_config(tg: FakeTelegram, tenant: str) -> dict[str, Any]:
    return {"id": CHANNEL, "type": "telegram", "mode": "stream", "tenant": tenant, "agent": "assistant",
            "api_base": tg.url, "bot_token": {"env": "CHAOS_TG_TOKEN", "default": BOT_TOKEN},
            "bot_username": BOT_USERNAME, "poll_timeout_s": 2}


def plan(conversations: int, messages: int, run_id: str) -> list[list[LcMessage]]:
    base, extra = divmod(messages, conversations)
    out = []
    for c in range(conversations):
        cid = FIRST_CHAT + c
        n = base + (1 if c < extra else 0)
        out.append([LcMessage(cid, s, tok, f"tg {run_id} {c:03d} seq={s:04d} {tok}")
                    for s in range(n) for tok in [uuid.uuid4().hex[:12]]])
    return out


@dataclass
class TelegramLoad:
    """Puts each conversation's messages in the update queue one after another, spread over ``duration_s``,
    as people writing to the bot would (the next one after the previous was answered, or after a while)."""

    tg: FakeTelegram
    conversations: list[list[LcMessage]]
    duration_s: float
    answer_wait_s: float = 5.0

    @property
    def messages(self) -> list[LcMessage]:
        return [m for conv in self.conversations for m in conv]

    async def run(self) -> None:
        for conv in self.conversations:
            if conv:
                self.tg.chats[conv[0].chat_id] = "private"
        await asyncio.gather(*(self._conversation(i, conv) for i, conv in enumerate(self.conversations)))

    async def _conversation(self, index: int, conv: list[LcMessage]) -> None:
        if not conv:
            return
        gap = self.duration_s / max(1, len(conv))
        await asyncio.sleep(gap * index / max(1, len(self.conversations)))
        for m in conv:
            started = time.monotonic()
            u = update(m.text, chat_=chat(m.chat_id, "private"), from_=user(m.chat_id, "Chaos", None))
            m.update_id, m.queued_at = u["update_id"], time.monotonic()
            self.tg.updates.push(u)
            deadline = started + max(gap, self.answer_wait_s)
            while time.monotonic() < deadline and not any(m.token in (s.get("plain") or "") for s in self.tg.sent):
                await asyncio.sleep(0.1)
            await asyncio.sleep(max(0.0, started + gap - time.monotonic()))


def answers(tg: FakeTelegram, messages: list[LcMessage]) -> dict[str, list[dict[str, Any]]]:
    """token → the sendMessage calls (raw, accepted by the fake) that carry it, in arrival order."""
    by_token: dict[str, list[dict[str, Any]]] = defaultdict(list)
    tokens = {m.token for m in messages}
    for s in tg.sent:
        words = set((s.get("plain") or "").split())
        for tok in words & tokens:
            by_token[tok].append(s)
    return by_token


def pending(tg: FakeTelegram, messages: list[LcMessage]) -> int:
    got = answers(tg, messages)
    return sum(1 for m in messages if m.queued_at is not None and m.token not in got)


def count(tg: FakeTelegram, messages: list[LcMessage]) -> LcResult:
    got = answers(tg, messages)
    unconfirmed = set(tg.updates.unconfirmed())
    r = LcResult(messages=len(messages), polls=len(tg.updates.polls))
    r.confirmed = sum(1 for m in messages if m.queued_at is not None and m.update_id not in unconfirmed)
    by_chat: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for m in messages:
        sent = got.get(m.token, [])
        if not sent:
            r.lost += 1
            if len(r.lost_examples) < 20:
                r.lost_examples.append({"chat": m.chat_id, "seq": m.seq, "update_id": m.update_id,
                                        "confirmed": m.update_id not in unconfirmed})
            continue
        r.answered += 1
        if len(sent) > 1:
            r.duplicated += len(sent) - 1
            if len(r.duplicate_examples) < 20:
                r.duplicate_examples.append({"chat": m.chat_id, "seq": m.seq, "answers": len(sent)})
        if sent[0].get("chat_id") != m.chat_id or sent[0].get("plain") != f"answer: {m.text}":
            r.wrong += 1
        by_chat[m.chat_id].append((float(sent[0]["_at"]), m.seq))
    for seqs in by_chat.values():
        highest = -1
        for _, seq in sorted(seqs):
            if seq < highest:
                r.out_of_order += 1
            highest = max(highest, seq)
    return r

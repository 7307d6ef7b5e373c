"""The load generator, in its own process: ``python -m bench.load <spec.json>``.

Signed webhooks (Standard Webhooks, signed as they are sent so timestamps stay fresh) over keep-alive
connections (aiohttp), either an open loop at a target rate or a closed loop of N concurrent senders.
Each message ``i`` goes to conversation ``i % conversations``; its ``message_id`` (echoed by egress as
``in_reply_to``) is ``bm_<run>_<i>`` and its text carries ``[m<i>]`` so the fakes can attribute their time.

Per message it records ``i scheduled sent answered status`` (``time.monotonic()``): in the open loop
``scheduled`` is when the message was due, so a slow server cannot hide its queueing (no coordinated
omission). The last line on stdout is a JSON summary, including this process's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def message_id(run: str, i: int) -> str:
    return f"bm_{run}_{i}"


def payload(run: str, i: int, conversations: int) -> tuple[int, dict[str, Any]]:
    c = i % conversations
    text = f"[m{i}] Hello, this is message {i // conversations} of conversation {c}: how is the weather today?"
    return c, {"conversation": f"bench-{run}-{c}", "sender": {"id": f"user-{c}", "name": f"User {c}"},
               "text": text, "message_id": message_id(run, i)}


@dataclass
class Spec:
    url: str  # .../v1/webhooks
    channels: list[tuple[str, str]]  # (channel id, secret)
    run: str
    count: int
    conversations: int
    mode: str = "closed"  # open | closed
    rate: float = 1000.0
    concurrency: int = 64
    start: int = 0
    out: str | None = None
    timeout_s: float = 60.0
    max_outstanding: int = 20000


class Generator:
    def __init__(self, spec: Spec) -> None:
        from standardwebhooks import Webhook

        self.s = spec
        self._hooks = [(cid, Webhook(secret)) for cid, secret in spec.channels]
        self._lines: list[str] = []
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.first_send = 0.0
        self.last_done = 0.0

    def _request(self, i: int) -> tuple[str, bytes, dict[str, str]]:
        c, body = payload(self.s.run, i, self.s.conversations)
        cid, wh = self._hooks[c % len(self._hooks)]
        raw = orjson.dumps(body)
        msg_id = body["message_id"]
        now = datetime.fromtimestamp(int(time.time()), UTC)
        headers = {"content-type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": wh.sign(msg_id, now, raw.decode())}
        return f"{self.s.url}/{cid}", raw, headers

    async def _send(self, session: Any, i: int, scheduled: float | None) -> None:
        import aiohttp

        url, body, headers = self._request(i)
        sent = time.monotonic()
        if not self.first_send:
            self.first_send = sent
        status = 0
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            kind = type(exc).__name__
            self.errors[kind] = self.errors.get(kind, 0) + 1
        done = time.monotonic()
        self.last_done = max(self.last_done, done)
        if 200 <= status < 300:
            self.ok += 1
        elif status:
            self.errors[f"http_{status}"] = self.errors.get(f"http_{status}", 0) + 1
        self._lines.append(f"{i} {scheduled if scheduled is not None else sent:.6f} {sent:.6f} {done:.6f} {status}")

    def flush(self) -> None:
        if not self.s.out or not self._lines:
            return
        lines, self._lines = self._lines, []
        with open(self.s.out, "a", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.flush()

    async def run(self) -> None:
        import aiohttp

        limit = self.s.concurrency if self.s.mode == "closed" else max(self.s.concurrency, 256)
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=120,
                                         enable_cleanup_closed=False, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=self.s.timeout_s)
        flusher = asyncio.create_task(self._flusher())
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]) as s:
            if self.s.mode == "closed":
                await self._closed(s)
            else:
                await self._open(s)
        flusher.cancel()
        self.flush()

    async def _closed(self, session: Any) -> None:
        end = self.s.start + self.s.count
        nxt = [self.s.start]

        async def worker() -> None:
            while nxt[0] < end:
                i = nxt[0]
                nxt[0] += 1
                await self._send(session, i, None)

        await asyncio.gather(*(worker() for _ in range(min(self.s.concurrency, self.s.count))))

    async def _open(self, session: Any) -> None:
        room = asyncio.Semaphore(self.s.max_outstanding)
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int, due: float) -> None:
            try:
                await self._send(session, i, due)
            finally:
                room.release()

        t0 = time.monotonic() + 0.05
        period = 1.0 / self.s.rate
        for k in range(self.s.count):
            due = t0 + k * period
            wait = due - time.monotonic()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            await room.acquire()
            task = asyncio.create_task(one(self.s.start + k, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))


def main(argv: list[str] | None = None) -> None:
    import uvloop

    args = argv if argv is not None else sys.argv[1:]
    spec = Spec(**orjson.loads(Path(args[0]).read_bytes()))
    gen = Generator(spec)
    started = time.monotonic()
    uvloop.run(gen.run())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(orjson.dumps({
        "sent": spec.count, "ok": gen.ok, "errors": gen.errors, "started": started,
        "first_send": gen.first_send, "last_done": gen.last_done,
        "cpu_s": ru.ru_utime + ru.ru_stime, "max_rss_bytes": ru.ru_maxrss * 1024,
    }).decode(), flush=True)


if __name__ == "__main__":
    main()

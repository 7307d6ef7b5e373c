"""Micro-batching: items submitted concurrently under one key are gathered for a few milliseconds (or until
``max_batch`` are waiting) and handed to one call, whose results go back to each submitter.

Under load this turns hundreds of small requests (embeddings, vector upserts) into a few large ones; at
low load an item waits at most ``max_wait_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from agentbus.telemetry import tracer

T = TypeVar("T")
R = TypeVar("R")

class MicroBatcher(Generic[T, R]):
    def __init__(self, run: Callable[[str, list[T]], Awaitable[Sequence[R]]], max_batch: int,
                 max_wait_s: float) -> None:
        """``run(key, items)`` answers a batch of at most ``max_batch`` items with one result per item, in
        order; if it raises, every submitter of the batch gets the exception."""
        self._run = run
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._pending: dict[str, list[tuple[T, asyncio.Future[R]]]] = {}
        self._timers: dict[str, asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, items: Sequence[T]) -> list[R]:
        loop = asyncio.get_running_loop()
        pending = self._pending.setdefault(key, [])
        futures: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            pending.append((item, fut))
            futures.append(fut)
        if len(pending) >= self._max_batch:
            self.flush(key)
        elif key not in self._timers:  # no wait: flushed in the next turn of the loop, with what joined it
            self._timers[key] = (loop.call_later(self._max_wait_s, self.flush, key) if self._max_wait_s > 0
                                 else loop.call_soon(self.flush, key))
        if len(futures) == 1:  # the usual case: one awaited future, without gather's wrapper and callbacks
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def flush(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        waiting = self._pending.pop(key, [])
        while waiting:
            batch, waiting = waiting[: self._max_batch], waiting[self._max_batch:]
            task = asyncio.create_task(self._answer(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, key: str, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run(key, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items got {len(results)} results")
        except Exception as exc:  # handed to every submitter, whose events are retried
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is waiting and wait (up to ``timeout``) for the batches in flight."""
        for key in list(self._pending):
            self.flush(key)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)


@dataclass(frozen=True)
class Span:
    """The name and attributes of the span each batch call is recorded as."""

    name: str
    attributes: dict[str, str] = field(default_factory=dict)


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class Coalescer(Generic[T, R]):
    """Calls made at the same moment (in one turn of the event loop) answered by one batch call.

    ``many(items)`` answers them together (one database statement for tens of events), one result per item,
    in order; an item's result may be an exception, raised to that item's caller alone. A call made alone
    is a batch of one: at low load nothing waits. If ``many`` raises an error that ``alone_if`` says an
    item may be at fault for, each item is tried again as a batch of its own (concurrently), so a bad item
    fails by itself and the others go on; any other error (the database unreachable, say) goes to every
    caller at once."""

    def __init__(self, many: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], max_batch: int = 256,
                 alone_if: Callable[[Exception], bool] = lambda _exc: True, span: Span | None = None) -> None:
        """With ``span``, each batch call is a client span in the trace of its first caller, linked to the
        traces of the others (the batch's statement serves them all)."""
        self._many = many
        self._alone_if = alone_if
        self._span = span
        self._batcher: MicroBatcher[tuple[T, Context | None], R | _Failed] = MicroBatcher(self._run, max_batch, 0.0)

    async def __call__(self, item: T) -> R:
        ctx = otel_context.get_current() if self._span is not None else None
        [result] = await self._batcher.submit("", [(item, ctx)])
        if isinstance(result, _Failed):
            raise result.exc
        return result

    async def _call(self, asks: list[tuple[T, Context | None]]) -> Sequence[R | Exception]:
        items = [item for item, _ in asks]
        if self._span is None:
            return await self._many(items)
        links = [Link(trace.get_current_span(c).get_span_context()) for _, c in asks[1:]]
        with tracer().start_as_current_span(self._span.name, context=asks[0][1], kind=SpanKind.CLIENT,
                                            links=links) as span:
            span.set_attributes(self._span.attributes)
            span.set_attribute("db.operation.batch.size", len(items))
            return await self._many(items)

    async def _run(self, _: str, asks: list[tuple[T, Context | None]]) -> list[R | _Failed]:
        try:
            answered = await self._call(asks)
        except Exception as exc:  # tried alone below if an item may be at fault, else everyone's error
            if len(asks) == 1 or not self._alone_if(exc):
                return [_Failed(exc) for _ in asks]
        else:
            return [_Failed(r) if isinstance(r, Exception) else r for r in answered]
        # all at once, not one after another: when the database is down, every item fails within one
        # timeout instead of a timeout each
        answers = await asyncio.gather(*(self._call([ask]) for ask in asks), return_exceptions=True)
        results: list[R | _Failed] = []
        for answer in answers:
            if isinstance(answer, Exception):
                results.append(_Failed(answer))
            elif isinstance(answer, BaseException):  # cancelled: not an answer to hand on
                raise answer
            else:
                [r] = answer
                results.append(_Failed(r) if isinstance(r, Exception) else r)
        return results

    async def aclose(self) -> None:
        await self._batcher.aclose()

"""The micro-batcher shared by the embeddings client and the vector stores."""

from __future__ import annotations

import asyncio

from agentbus.batching import MicroBatcher


async def test_concurrent_items_of_a_key_go_in_one_call_and_get_their_own_results() -> None:
    calls: list[tuple[str, list[int]]] = []

    async def run(key: str, items: list[int]) -> list[int]:
        calls.append((key, items))
        return [i * 10 for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=100, max_wait_s=0.01)
    results = await asyncio.gather(b.submit("a", [1, 2]), b.submit("a", [3]), b.submit("b", [4]))
    assert results == [[10, 20], [30], [40]]
    assert sorted(calls) == [("a", [1, 2, 3]), ("b", [4])]


async def test_a_full_batch_goes_at_once_in_chunks_of_max_batch() -> None:
    sizes: list[int] = []

    async def run(_: str, items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=3, max_wait_s=60)  # the timer never fires
    assert await asyncio.wait_for(b.submit("k", list(range(7))), 5) == list(range(7))
    assert sizes == [3, 3, 1]


async def test_a_failed_or_short_batch_fails_every_submitter() -> None:
    async def boom(_: str, items: list[int]) -> list[int]:
        raise ConnectionError("down")

    async def short(_: str, items: list[int]) -> list[int]:
        return items[:-1]

    for run, error in ((boom, ConnectionError), (short, RuntimeError)):
        b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=10, max_wait_s=0.001)
        outcomes = await asyncio.gather(b.submit("k", [1]), b.submit("k", [2]), return_exceptions=True)
        assert all(isinstance(o, error) for o in outcomes)


async def test_aclose_sends_what_is_waiting() -> None:
    seen: list[int] = []

    async def run(_: str, items: list[int]) -> list[None]:
        seen.extend(items)
        return [None] * len(items)

    b: MicroBatcher[int, None] = MicroBatcher(run, max_batch=10, max_wait_s=60)
    waiting = asyncio.ensure_future(b.submit("k", [5]))
    await asyncio.sleep(0)
    await b.aclose()
    assert seen == [5] and await waiting == [None]


async def test_coalescer_answers_concurrent_calls_in_one_batch_and_lone_calls_alone() -> None:
    from agentbus.batching import Coalescer

    batches: list[list[int]] = []

    async def many(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        return [ValueError("odd") if i % 2 else i * 10 for i in items]

    c: Coalescer[int, int] = Coalescer(many)
    results = await asyncio.gather(c(2), c(3), c(4), return_exceptions=True)
    assert results[0] == 20 and results[2] == 40 and isinstance(results[1], ValueError)
    assert batches == [[2, 3, 4]]
    assert await c(6) == 60 and batches[-1] == [6]  # alone: a batch of one, sent at once
    try:
        await c(5)
    except ValueError:
        pass
    else:
        raise AssertionError("a lone item's error reaches its caller")


async def test_coalescer_tries_each_item_alone_when_the_batch_fails() -> None:
    from agentbus.batching import Coalescer

    batches: list[list[int]] = []

    async def many(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        if len(items) > 1:
            raise RuntimeError("the batch statement failed")
        if items == [13]:
            raise ValueError("bad item")
        return items

    c: Coalescer[int, int] = Coalescer(many)
    results = await asyncio.gather(c(1), c(13), c(2), return_exceptions=True)
    assert results[0] == 1 and results[2] == 2 and isinstance(results[1], ValueError)
    assert batches[0] == [1, 13, 2] and sorted(batches[1:]) == [[1], [2], [13]]


async def test_coalescer_hands_an_unreachable_database_to_every_caller_without_retrying_alone() -> None:
    from agentbus.batching import Coalescer

    batches: list[list[int]] = []

    async def many(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        raise ConnectionError("database unreachable")

    c: Coalescer[int, int] = Coalescer(many, alone_if=lambda exc: not isinstance(exc, ConnectionError))
    results = await asyncio.gather(c(1), c(2), c(3), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and batches == [[1, 2, 3]]

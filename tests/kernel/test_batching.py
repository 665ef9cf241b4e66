"""``Batcher`` (hub/batching.py): no caller waits forever, whatever ``flush`` does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sportello.batching import Batcher, BatchError

WITHIN = 1.0  # a caller that is not answered by then is hanging


async def gather_outcomes(batcher: Batcher[int, str], items: Sequence[int]) -> list[object]:
    calls = [batcher(item) for item in items]
    async with asyncio.timeout(WITHIN):
        return await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.parametrize("returned", [0, 2, 4], ids=["none", "too-few", "too-many"])
async def test_wrong_number_of_results_fails_every_caller(returned: int) -> None:
    async def flush(items: Sequence[int]) -> list[str]:
        return [f"r{i}" for i in range(returned)]

    batcher: Batcher[int, str] = Batcher(flush)
    outcomes = await gather_outcomes(batcher, [1, 2, 3])
    assert all(isinstance(outcome, BatchError) for outcome in outcomes), outcomes
    assert f"returned {returned} results for 3 items" in str(outcomes[0])


async def test_flush_error_reaches_every_caller_and_later_batches_still_run() -> None:
    batches: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[str]:
        batches.append(list(items))
        if len(batches) == 1:
            raise LookupError("database is down")
        return [f"ok {item}" for item in items]

    batcher: Batcher[int, str] = Batcher(flush, max_items=3)
    outcomes = await gather_outcomes(batcher, [1, 2, 3, 4, 5])
    assert [type(outcome) for outcome in outcomes[:3]] == [LookupError] * 3
    assert outcomes[3:] == ["ok 4", "ok 5"]
    assert batches == [[1, 2, 3], [4, 5]]
    # and the batcher still works afterwards
    assert await gather_outcomes(batcher, [6]) == ["ok 6"]


async def test_a_bad_batch_does_not_strand_the_next_one() -> None:
    calls = 0

    async def flush(items: Sequence[int]) -> list[str]:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else [f"ok {item}" for item in items]

    batcher: Batcher[int, str] = Batcher(flush, max_items=2)
    outcomes = await gather_outcomes(batcher, [1, 2, 3, 4])
    assert [type(outcome) for outcome in outcomes[:2]] == [BatchError] * 2
    assert outcomes[2:] == ["ok 3", "ok 4"]


async def test_cancelled_writer_fails_its_callers() -> None:
    started = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[str]:
        started.set()
        await asyncio.sleep(10)
        return [str(item) for item in items]

    batcher: Batcher[int, str] = Batcher(flush, max_items=1)
    calls = asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    await started.wait()
    assert batcher._running is not None
    batcher._running.cancel()
    async with asyncio.timeout(WITHIN):
        outcomes = await calls
    assert [type(outcome) for outcome in outcomes] == [BatchError, BatchError]

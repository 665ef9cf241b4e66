"""The database-shared rate limiter: two replicas (two engines) together never exceed the
limit in any sliding window, and together they use nearly all of it."""

from __future__ import annotations

import asyncio
import time

from sportello.config import DatabaseSettings
from sportello.db import create_engine
from sportello.ratelimit import DbRateLimiter


async def test_two_replicas_share_one_limit(engine, db_url: str) -> None:  # type: ignore[no-untyped-def]
    other = create_engine(DatabaseSettings(url=db_url))  # a second replica's engine
    limit, window = 10, 0.5
    replicas = [DbRateLimiter(e, limit=limit, window=window, margin=0.02) for e in (engine, other)]
    calls: list[float] = []

    async def caller(limiter: DbRateLimiter) -> None:
        calls.append(await limiter.acquire("io:service-1"))

    start = time.monotonic()
    await asyncio.gather(*(caller(replicas[i % 2]) for i in range(40)))
    elapsed = time.monotonic() - start
    await other.dispose()
    calls.sort()
    # never more than `limit` calls logged in any window (the margin covers the time from
    # logging a call to making it)
    for i, t in enumerate(calls):
        in_window = [c for c in calls[i:] if c - t < window]
        assert len(in_window) <= limit, f"{len(in_window)} calls within {window}s"
    # 40 calls at 10 per 0.5 s need at least 1.5 s; using the limit well means not much more
    assert 1.5 <= elapsed < 3.5, elapsed
    # another key has its own allowance
    t0 = time.monotonic()
    await replicas[0].acquire("io:service-2")
    assert time.monotonic() - t0 < 0.5


async def test_a_call_restamped_to_when_it_is_made_counts_from_then(engine) -> None:  # type: ignore[no-untyped-def]
    """A slot taken ahead (IoClient.take_slot) is moved to the moment of the call, so the
    window is counted from when the platform sees the call, not from when it was logged."""
    now = [1000.0]
    limiter = DbRateLimiter(engine, limit=2, window=5.0, margin=0.05, clock=lambda: now[0])
    taken_at = await limiter.acquire("io:s")  # the slot, taken ahead
    now[0] += 1.0  # `sending` committed meanwhile; the call is made now
    await limiter.restamp("io:s", taken_at)
    assert await limiter.try_acquire("io:s") == (0.0, now[0])  # the second call of the window
    now[0] += 4.06  # past 5.05 s from the slot's first stamp, not from the restamp
    wait, _ = await limiter.try_acquire("io:s")
    assert 0.9 < wait <= 1.0  # still two calls in the window: wait for the restamped one
    other = DbRateLimiter(engine, limit=2, window=5.0, margin=0.05, clock=lambda: now[0])
    await other.restamp("io:s", 123.0)  # a stamp that is not there changes nothing
    assert (await other.try_acquire("io:s"))[0] == wait

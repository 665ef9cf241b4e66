"""A rate limiter shared by every replica through the database (a sliding log per key).

App IO allows 150 calls per 5 seconds per key. Replicas share the allowance: before each
call, a replica takes the key's row lock (``SELECT ... FOR UPDATE`` on PostgreSQL, the
single writer lock on SQLite), counts the calls logged in the last window, and either logs
its own call or learns how long to wait. The log is exact, so no burst at a window edge can
exceed the limit.

The platform counts calls when they reach it, not when they were logged here: a call held up
on the way (commit, connection, network) by ``d`` seconds more than the call ``limit`` places
later shrinks the platform's view of their span by ``d``. So the log uses a window ``margin``
seconds longer than the platform's: the shortest span of ``limit + 1`` consecutive calls is
``window + margin``, and up to ``margin`` seconds of jitter never cost a 429.
``DEFAULT_MARGIN`` (250 ms) survives 100 ms of network jitter with room for the hub's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import rate_limit_events, rate_limit_keys

#: Seconds added to the platform's window (see the module docstring): at 150 calls / 5 s it
#: costs 5% of the throughput, and 100 ms of network jitter still gets no 429.
DEFAULT_MARGIN = 0.25


class DbRateLimiter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        limit: int,
        window: float,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or window <= 0 or margin < 0:
            raise ValueError("limit must be >= 1, window > 0 and margin >= 0")
        self.engine = engine
        self.limit = limit
        self.margin = margin
        self.window = window + margin  # the window the log counts in
        self.clock = clock
        self._sleep = sleep
        self.waited = 0.0  # total seconds spent waiting (for reports and benchmarks)

    async def _ensure_key(self, key: str) -> None:
        async with self.engine.begin() as conn:
            ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
                rate_limit_keys
            )
            await conn.execute(ins.values(key=key).on_conflict_do_nothing(index_elements=["key"]))

    async def try_acquire(self, key: str) -> tuple[float, float]:
        """Log one call: ``(0, logged_at)``, or ``(seconds to wait, 0)`` when full."""
        async with self.engine.begin() as conn:
            lock = select(rate_limit_keys.c.key).where(rate_limit_keys.c.key == key)
            if conn.dialect.name == "postgresql":
                lock = lock.with_for_update()
            if (await conn.execute(lock)).first() is None:
                missing = True
            else:
                missing = False
                now = self.clock()
                horizon = now - self.window
                await conn.execute(
                    delete(rate_limit_events).where(
                        rate_limit_events.c.key == key, rate_limit_events.c.at <= horizon
                    )
                )
                count, oldest = (
                    await conn.execute(
                        select(func.count(), func.min(rate_limit_events.c.at)).where(
                            rate_limit_events.c.key == key
                        )
                    )
                ).one()
                if count < self.limit:
                    await conn.execute(insert(rate_limit_events).values(key=key, at=now))
                    return 0.0, now
                return max(0.001, float(oldest) + self.window - now), 0.0
        if missing:
            await self._ensure_key(key)
        return 0.001, 0.0

    async def restamp(self, key: str, logged_at: float) -> None:
        """Move a logged call to now: for a slot taken ahead of the call it stands for.

        A caller that takes its slot, then writes something, then calls, would otherwise
        have the call reach the platform later than the log says, and a window counted by
        the platform could hold more calls than the log allows. Moving a call later only
        makes the next acquirers more careful.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                update(rate_limit_events)
                .where(rate_limit_events.c.key == key, rate_limit_events.c.at == logged_at)
                .values(at=max(self.clock(), logged_at))
            )

    async def acquire(self, key: str) -> float:
        """Wait until a call on ``key`` is within the limit, log it, return when it was logged."""
        while True:
            wait, logged_at = await self.try_acquire(key)
            if wait == 0.0:
                return logged_at
            self.waited += wait
            await self._sleep(wait)

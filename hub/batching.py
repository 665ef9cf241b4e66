"""Group commits: many concurrent callers' small writes, one transaction.

SQLite has one writer and every transaction costs a lock, a thread hop and a commit; so
does a round trip to PostgreSQL. When dozens of outbox handlers each want one row changed,
``Batcher`` collects what arrives while the previous batch is being written, writes it all
with set-based statements in one transaction, and wakes each caller only after the commit.
A caller therefore still knows its change is durable before it goes on (e.g. before it
calls a platform that has no idempotency key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")


class Batcher(Generic[I, R]):
    def __init__(
        self, flush: Callable[[Sequence[I]], Awaitable[Sequence[R]]], *, max_items: int = 500
    ) -> None:
        self._flush = flush
        self._max = max_items
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let every caller ready in this tick join the batch
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            items = [item for item, _ in batch]
            try:
                results = await self._flush(items)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

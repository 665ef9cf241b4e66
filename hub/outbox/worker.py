"""The delivery worker: claims due outbox rows with a lease, runs their handlers
concurrently, and commits every outcome (with its ledger row) in small group commits."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock, SystemClock
from ..config import OutboxSettings
from ..schema import (
    DONE,
    FAILED,
    GAVE_UP,
    LEASE_LOST,
    OK,
    PENDING,
    RETRY,
    RUNNING,
    ledger,
    outbox,
)
from . import store
from .backoff import next_delay
from .store import Job

if TYPE_CHECKING:
    from ..metrics import HubMetrics

log = logging.getLogger("sportello.outbox")

INTERRUPTED = "interrupted"
_gc_frozen = False


def freeze_startup_objects() -> None:
    """Move what the process holds so far (modules, configuration, schema, compiled caches:
    ~100k objects) to the garbage collector's permanent generation, once per process.

    A busy worker promotes many short-lived objects (tasks, futures, rows) to the oldest
    generation, so CPython runs full collections often, and each one walked every object
    of the process: measured with bench/io, 16-22 % of the worker's CPU. Frozen objects are
    still freed by reference counting; only cycles among them are never collected, so call
    this in a process that runs workers for its lifetime, after startup (not in tests).
    """
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.collect()
        gc.freeze()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a handler returns when the platform accepted the job."""

    remote_id: str | None = None


Handler = Callable[[Job], Awaitable[Delivery | None]]


@dataclass(slots=True)
class _Outcome:
    job: Job
    outcome: str  # OK, RETRY, GAVE_UP, INTERRUPTED
    remote_id: str | None = None
    error: str | None = None
    delay: float = 0.0


@dataclass
class WorkerStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lease_lost: int = 0
    in_flight: set[int] = field(default_factory=set)


def describe_error(exc: BaseException) -> tuple[bool, float | None, str]:
    """(retryable, retry_after, one-line reason) for any exception a handler raised.

    Typed connector errors say whether they are retryable; anything else (a bug, a timeout)
    is retried, because the outbox must never drop work on an unexpected error.
    """
    retryable = bool(getattr(exc, "retryable", True))
    retry_after = getattr(exc, "retry_after", None)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return retryable, (float(retry_after) if retry_after is not None else None), text[:1000]


class OutboxWorker:
    """One worker; run several (processes or replicas) on PostgreSQL, exactly one on SQLite."""

    def __init__(
        self,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        settings: OutboxSettings,
        *,
        clock: Clock | None = None,
        metrics: HubMetrics | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        flush_interval: float = 0.02,
        freeze_gc: bool = False,
    ) -> None:
        self.engine = engine
        self.handlers = dict(handlers)
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.rng = rng or random.Random()
        self.flush_interval = flush_interval
        self.freeze_gc = freeze_gc  # see freeze_startup_objects: for dedicated processes
        self.stats = WorkerStats()
        self._results: list[_Outcome] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._slot_free = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._claim_min = max(1, settings.concurrency // 4)
        self._db_backoff = 0.5

    def wake(self) -> None:
        """Tell the worker new jobs were enqueued in this process (skips the poll wait)."""
        self._wakeup.set()

    # -- main loop ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        if self.freeze_gc:
            freeze_startup_objects()
        committer = asyncio.create_task(self._commit_loop(stop), name="outbox-commit")
        heartbeat = asyncio.create_task(self._heartbeat_loop(stop), name="outbox-heartbeat")
        try:
            await self._claim_loop(stop)
        finally:
            await self._drain()
            stop.set()
            self._results_ready.set()
            await committer
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        conc = self.settings.concurrency
        while not stop.is_set():
            free = conc - len(self._tasks)
            if self._tasks and free < self._claim_min:
                self._slot_free.clear()
                await _wait_any(stop, self._slot_free, seconds=self.settings.poll_interval)
                continue
            try:
                jobs = await self.claim(free)
            except Exception:
                # Database down or locked: keep the worker alive and try again shortly.
                log.exception("outbox: claim failed, retrying in %.1fs", self._db_backoff)
                await _wait_any(stop, asyncio.Event(), seconds=self._db_backoff)
                self._db_backoff = min(self._db_backoff * 2, 30.0)
                continue
            self._db_backoff = 0.5
            if not jobs:
                self._wakeup.clear()
                await _wait_any(stop, self._wakeup, seconds=self.settings.poll_interval)
                continue
            for job in jobs:
                self._tasks[job.id] = asyncio.create_task(self._execute(job))

    async def claim(self, limit: int) -> list[Job]:
        now = self.clock.now()
        async with self.engine.begin() as conn:
            jobs = await store.claim(
                conn,
                worker=self.name,
                limit=limit,
                now=now,
                lease=timedelta(seconds=self.settings.lease_seconds),
            )
        self.stats.claimed += len(jobs)
        self.stats.in_flight.update(j.id for j in jobs)
        return jobs

    async def _execute(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for outbox kind {job.kind!r} (plugin disabled?)")
            async with asyncio.timeout(self.settings.job_timeout):
                result = await handler(job)
            self._results.append(_Outcome(job, OK, remote_id=result.remote_id if result else None))
        except asyncio.CancelledError:
            self._results.append(_Outcome(job, INTERRUPTED, error="worker stopped"))
            raise
        except Exception as exc:
            retryable, retry_after, reason = describe_error(exc)
            if retryable and job.attempt < job.max_attempts:
                delay = next_delay(
                    job.attempt,
                    base=self.settings.backoff_base,
                    cap=self.settings.backoff_cap,
                    retry_after=retry_after,
                    rng=self.rng,
                )
                self._results.append(_Outcome(job, RETRY, error=reason, delay=delay))
            else:
                if retryable:
                    reason = f"gave up after {job.attempt} attempts: {reason}"
                self._results.append(_Outcome(job, GAVE_UP, error=reason))
        finally:
            self._tasks.pop(job.id, None)
            self._slot_free.set()
            if len(self._results) >= 64:
                self._results_ready.set()

    async def _drain(self) -> None:
        """Graceful stop: let in-flight jobs finish for ``shutdown_grace`` s, then interrupt."""
        if self._tasks:
            _done, pending = await asyncio.wait(
                list(self._tasks.values()), timeout=self.settings.shutdown_grace
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    # -- committing outcomes -----------------------------------------------------------------
    async def _commit_loop(self, stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._results_ready.wait()
            self._results_ready.clear()
            if self._results:
                batch, self._results = self._results, []
                try:
                    await self.settle(batch)
                except Exception:
                    # Keep them for the next flush: a database hiccup must not lose outcomes.
                    log.exception("outbox: could not record %d outcomes, will retry", len(batch))
                    self._results[:0] = batch
                    await asyncio.sleep(0.5)
            elif stop.is_set() and not self._tasks:
                return

    async def settle(self, batch: list[_Outcome]) -> None:
        now = self.clock.now()
        ids = [o.job.id for o in batch]
        async with self.engine.begin() as conn:
            owned_q = select(outbox.c.id).where(
                outbox.c.id.in_(ids), outbox.c.lease_owner == self.name, outbox.c.status == RUNNING
            )
            if conn.dialect.name == "postgresql":
                owned_q = owned_q.with_for_update()
            owned = set((await conn.scalars(owned_q)).all())
            done, retry, failed, released, ledger_rows = [], [], [], [], []
            for o in batch:
                outcome = o.outcome if o.job.id in owned else LEASE_LOST
                if outcome == OK:
                    done.append({"b_id": o.job.id, "b_remote": o.remote_id})
                elif outcome == RETRY:
                    retry.append(
                        {
                            "b_id": o.job.id,
                            "b_err": o.error,
                            "b_next": now + timedelta(seconds=o.delay),
                        }
                    )
                elif outcome == GAVE_UP:
                    failed.append({"b_id": o.job.id, "b_err": o.error})
                elif outcome == INTERRUPTED:
                    released.append({"b_id": o.job.id, "b_err": o.error})
                ledger_rows.append(
                    {
                        "outbox_id": o.job.id,
                        "tenant_id": o.job.tenant_id,
                        "kind": o.job.kind,
                        "idempotency_key": o.job.idempotency_key,
                        "attempt": o.job.attempt,
                        "outcome": outcome,
                        "worker": self.name,
                        "remote_id": o.remote_id,
                        "error": o.error,
                        "recorded_at": now,
                    }
                )
            common = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
            where = outbox.c.id == bindparam("b_id")
            if done:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        status=DONE, remote_id=bindparam("b_remote"), finished_at=now, **common
                    ),
                    done,
                )
            if retry:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        status=PENDING,
                        last_error=bindparam("b_err"),
                        next_attempt_at=bindparam("b_next"),
                        **common,
                    ),
                    retry,
                )
            if failed:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        status=FAILED, last_error=bindparam("b_err"), finished_at=now, **common
                    ),
                    failed,
                )
            if released:
                await conn.execute(
                    update(outbox)
                    .where(where)
                    .values(
                        status=PENDING, last_error=bindparam("b_err"), next_attempt_at=now, **common
                    ),
                    released,
                )
            await conn.execute(insert(ledger), ledger_rows)
        if any(o.job.lock is not None for o in batch):
            self._wakeup.set()  # the next job of a lock may be claimable now
        for o in batch:
            self.stats.in_flight.discard(o.job.id)
            kind = o.outcome if o.job.id in owned else LEASE_LOST
            if kind == OK:
                self.stats.delivered += 1
            elif kind == RETRY:
                self.stats.retried += 1
            elif kind == GAVE_UP:
                self.stats.failed += 1
                log.warning(
                    "outbox job failed for good",
                    extra={"job_id": o.job.id, "kind": o.job.kind, "reason": o.error},
                )
            elif kind == LEASE_LOST:
                self.stats.lease_lost += 1
            if self.metrics is not None:
                self.metrics.outbox_attempts.labels(kind=o.job.kind, outcome=kind).inc()

    # -- leases --------------------------------------------------------------------------------
    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        period = self.settings.lease_seconds / 3
        while not stop.is_set():
            await _wait_any(stop, asyncio.Event(), seconds=period)
            ids = list(self._tasks)
            if not ids:
                continue
            until = self.clock.now() + timedelta(seconds=self.settings.lease_seconds)
            try:
                async with self.engine.begin() as conn:
                    await store.extend_leases(conn, worker=self.name, ids=ids, until=until)
            except Exception:
                log.exception("outbox: lease heartbeat failed")


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, *, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def handlers_from(
    factories: Mapping[str, Callable[[Any], Handler]], services: Any
) -> dict[str, Handler]:
    """Build handlers from the factories that plugins register (``hub_outbox_handlers``)."""
    return {kind: factory(services) for kind, factory in factories.items()}

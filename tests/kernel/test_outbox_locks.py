"""Outbox lock keys, on SQLite and PostgreSQL: the jobs of one key run one at a time and in
the order they were queued, across several workers claiming at once; a failed or cancelled
job does not hold back the later ones, a job waiting for its next attempt does; a job whose
worker died (its lease expires) is run again before the next job of its key."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.config import OutboxSettings
from sportello.connectors.errors import PermanentError, ServerError
from sportello.outbox import Delivery, Job, OutboxWorker, store
from sportello.outbox.store import NewJob
from sportello.schema import outbox, outbox_locks

KIND = "locked"


def settings(**kw: object) -> OutboxSettings:
    base = {"concurrency": 8, "poll_interval": 0.02, "backoff_base": 0.01, "lease_seconds": 30}
    return OutboxSettings.model_validate({**base, **kw})


async def enqueue(engine: AsyncEngine, jobs: list[NewJob]) -> list[str]:
    async with engine.begin() as conn:
        return await store.enqueue_many(conn, jobs, now=datetime.now(UTC), default_max_attempts=5)


def job(lock: str | list[str] | None, n: int, **payload: object) -> NewJob:
    return NewJob("t1", KIND, {"lock": lock, "n": n, **payload}, lock=lock)


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload, outbox.c.status))
        return {json.loads(p)["n"]: s for p, s in rows}


async def run_workers(
    workers: list[OutboxWorker], engine: AsyncEngine, settled: int, timeout: float = 20.0
) -> None:
    """Run ``workers`` until ``settled`` jobs are done, failed or cancelled."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with engine.connect() as conn:
                    counts = await store.counts_by_status(conn)
                final = sum(counts.get(s, 0) for s in ("done", "failed", "cancelled"))
                if final >= settled:
                    break
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


class Recorder:
    """A handler that records the order per lock and any overlap of two jobs of one lock."""

    def __init__(self, rng: random.Random, *, sleep: float = 0.004) -> None:
        self.rng = rng
        self.sleep = sleep
        self.order: dict[str, list[int]] = defaultdict(list)
        self.running: set[str] = set()
        self.overlaps: list[tuple[str, int]] = []
        self.workers: set[str] = set()

    async def __call__(self, j: Job) -> Delivery:
        lock = j.payload["lock"]
        if lock is not None:
            if lock in self.running:
                self.overlaps.append((lock, j.payload["n"]))
            self.running.add(lock)
        try:
            await asyncio.sleep(self.rng.random() * self.sleep)
            if lock is not None:
                self.order[lock].append(j.payload["n"])
            return Delivery()
        finally:
            if lock is not None:
                self.running.discard(lock)


async def test_jobs_of_one_lock_run_in_order_under_four_workers(engine: AsyncEngine) -> None:
    rng = random.Random(13)
    keys = [f"pagopa.gpd:t1:IUPD-{k}" for k in range(25)]
    per_key = 8
    jobs = [job(key, i * 100 + k) for i in range(per_key) for k, key in enumerate(keys)]
    rng.shuffle(jobs)  # queued interleaved: the order per key is the order of enqueue
    jobs += [job(None, 10_000 + i) for i in range(40)]  # unlocked work mixed in
    expected: dict[str, list[int]] = defaultdict(list)
    for one in jobs:
        if one.lock is not None:
            expected[str(one.lock)].append(one.payload["n"])
    for start in range(0, len(jobs), 37):  # several transactions
        await enqueue(engine, jobs[start : start + 37])
    recorder = Recorder(rng)
    workers = [OutboxWorker(engine, {KIND: recorder}, settings(), name=f"w{i}") for i in range(4)]
    await run_workers(workers, engine, len(jobs))
    assert recorder.overlaps == []
    assert dict(recorder.order) == dict(expected)
    assert set((await statuses(engine)).values()) == {"done"}
    assert sum(w.stats.delivered for w in workers) == len(jobs)
    assert sum(1 for w in workers if w.stats.delivered) >= 2  # the work was shared


async def test_concurrent_claims_never_take_two_jobs_of_one_lock(engine: AsyncEngine) -> None:
    # 60 keys with 3 jobs each, and 8 claims racing on their own connections
    await enqueue(engine, [job(f"k{k}", i * 100 + k) for i in range(3) for k in range(60)])
    now = datetime.now(UTC)

    async def claim(name: str) -> list[Job]:
        async with engine.begin() as conn:
            return await store.claim(
                conn, worker=name, limit=200, now=now, lease=timedelta(seconds=30)
            )

    claimed = [
        j for batch in await asyncio.gather(*(claim(f"w{i}") for i in range(8))) for j in batch
    ]
    locks = [j.lock for j in claimed]
    assert len(locks) == len(set(locks)) == 60
    assert sorted(j.payload["n"] for j in claimed) == list(range(60))  # the first of each
    # while they run, nothing more of those keys can be claimed
    async with engine.begin() as conn:
        again = await store.claim(
            conn, worker="late", limit=200, now=now, lease=timedelta(seconds=30)
        )
    assert again == []


async def test_failed_or_cancelled_earlier_jobs_do_not_block_but_retrying_ones_do(
    engine: AsyncEngine,
) -> None:
    order: list[int] = []
    attempts: dict[int, int] = defaultdict(int)

    async def handler(j: Job) -> Delivery:
        n = j.payload["n"]
        attempts[n] += 1
        order.append(n)
        if n == 1:
            raise PermanentError("refused for good", platform="test")
        if n == 3 and j.attempt < 3:
            raise ServerError("upstream 503", platform="test", status=503)
        return Delivery()

    await enqueue(engine, [job("a", n) for n in (1, 2, 3, 4)] + [job("b", 10), job("b", 11)])
    # job 10 is cancelled by an operator before any worker runs: 11 goes
    async with engine.begin() as conn:
        (ten,) = (
            await conn.execute(select(outbox.c.id).where(outbox.c.payload.like('%"n":10%')))
        ).scalars()
        await store.cancel(conn, ten, now=datetime.now(UTC), operator="op")
    worker = OutboxWorker(engine, {KIND: handler}, settings(backoff_base=0.05, backoff_cap=0.1))
    await run_workers([worker], engine, 6)
    assert await statuses(engine) == {
        1: "failed",
        2: "done",
        3: "done",
        4: "done",
        10: "cancelled",
        11: "done",
    }
    on_a = [n for n in order if n < 10]
    # 3 was retried twice (waiting for its next attempt in between): 4 waited for it
    assert on_a == [1, 2, 3, 3, 3, 4], on_a
    assert 10 not in order and attempts[11] == 1


async def test_a_job_whose_worker_died_runs_again_before_the_next_of_its_lock(
    engine: AsyncEngine,
) -> None:
    await enqueue(engine, [job("k", 1), job("k", 2), job(None, 3)])
    now = datetime.now(UTC)
    async with engine.begin() as conn:  # a worker claims job 1, then dies
        (first,) = await store.claim(
            conn, worker="dead", limit=1, now=now, lease=timedelta(seconds=0.5)
        )
    assert first.payload["n"] == 1 and first.lock == "k"
    async with engine.begin() as conn:  # its lease holds: job 2 waits, job 3 goes
        others = await store.claim(
            conn, worker="alive", limit=10, now=now, lease=timedelta(seconds=30)
        )
        assert [j.payload["n"] for j in others] == [3]
        await store.release(conn, worker="alive", ids=[j.id for j in others], now=now)
    order: list[tuple[int, int]] = []

    async def handler(j: Job) -> Delivery:
        order.append((j.payload["n"], j.attempt))
        return Delivery()

    await asyncio.sleep(0.6)  # the dead worker's lease expires
    worker = OutboxWorker(engine, {KIND: handler}, settings())
    await run_workers([worker], engine, 3)
    locked = [o for o in order if o[0] != 3]
    assert locked == [(1, 2), (2, 1)], order  # job 1 again (second attempt), then job 2
    assert set((await statuses(engine)).values()) == {"done"}


async def test_an_earlier_job_retried_by_an_operator_does_not_deadlock_a_dead_workers_job(
    engine: AsyncEngine,
) -> None:
    # job 1 failed for good, job 2 (same key) was taken by a worker that died; an
    # operator retries job 1: job 2 is taken back when its lease expires, then job 1 runs
    await enqueue(engine, [job("k", 1), job("k", 2)])
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        one, two = (await conn.execute(select(outbox.c.id).order_by(outbox.c.id))).scalars()
        await conn.execute(
            outbox.update().where(outbox.c.id == one).values(status="failed", finished_at=now)
        )
        (taken,) = await store.claim(
            conn, worker="dead", limit=5, now=now, lease=timedelta(seconds=0.3)
        )
        assert taken.id == two
        await store.retry(conn, one, now=now, operator="op")
    order: list[int] = []

    async def handler(j: Job) -> Delivery:
        order.append(j.payload["n"])
        return Delivery()

    await asyncio.sleep(0.4)
    worker = OutboxWorker(engine, {KIND: handler}, settings())
    await run_workers([worker], engine, 2, timeout=5)
    assert order == [2, 1]


async def test_a_job_holding_several_locks_waits_for_each_and_holds_each(
    engine: AsyncEngine,
) -> None:
    # an upload of three positions queued after a change of one and before a change of
    # another: it waits for the first, and the second waits for it
    await enqueue(engine, [job("p1", 1), job(["p1", "p2", "p3"], 2), job("p2", 3), job("p4", 4)])
    now = datetime.now(UTC)
    lease = timedelta(seconds=30)

    async def claim() -> list[int]:
        async with engine.begin() as conn:
            got = await store.claim(conn, worker="w", limit=10, now=now, lease=lease)
        return sorted(j.payload["n"] for j in got)

    async def done(n: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                outbox.update()
                .where(outbox.c.payload.like(f'%"n":{n}}}%'))
                .values(status="done", lease_owner=None)
            )

    assert await claim() == [1, 4]
    assert await claim() == []
    await done(1)
    assert await claim() == [2]
    await done(2)
    assert await claim() == [3]


async def test_a_job_queued_again_keeps_its_locks_once(engine: AsyncEngine) -> None:
    again = NewJob("t1", KIND, {"n": 1}, idempotency_key="same", lock=["a", "b"])
    assert await enqueue(engine, [again]) == ["same"]
    assert (await enqueue(engine, [again, job("c", 2)]))[0] == "same"
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.id, outbox.c.lock).order_by(outbox.c.id))).all()
        held = (await conn.execute(select(outbox_locks).order_by(outbox_locks.c.lock_key))).all()
    assert [r.lock for r in rows] == ["a", "c"]
    assert [(h.lock_key, h.outbox_id) for h in held] == [
        ("a", rows[0].id),
        ("b", rows[0].id),
        ("c", rows[1].id),
    ]


def test_a_lock_key_is_one_to_200_characters() -> None:
    assert NewJob("t", KIND, {}, lock=["a", "b", "a"]).lock_keys() == ("a", "b")
    with pytest.raises(ValueError, match="lock key"):
        NewJob("t", KIND, {}, lock="x" * 201).lock_keys()
    with pytest.raises(ValueError, match="lock key"):
        NewJob("t", KIND, {}, lock="").lock_keys()

"""The worker in-process, on SQLite and PostgreSQL: delivery, retries with backoff and
retry_after, giving up with the reason, graceful shutdown, a lost lease."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import migrate
from sportello.config import DatabaseSettings, OutboxSettings
from sportello.connectors.errors import PermanentError, RateLimited, ServerError
from sportello.db import create_engine
from sportello.outbox import Delivery, Job, OutboxWorker, store
from sportello.outbox.store import NewJob
from sportello.schema import ledger, outbox


def settings(**kw: object) -> OutboxSettings:
    base = {"concurrency": 16, "poll_interval": 0.02, "backoff_base": 0.01, "lease_seconds": 30}
    return OutboxSettings.model_validate({**base, **kw})


async def enqueue(engine: AsyncEngine, payloads: list[dict], max_attempts: int = 5) -> list[str]:
    async with engine.begin() as conn:
        return await store.enqueue_many(
            conn,
            [NewJob("t1", "test", p) for p in payloads],
            now=datetime.now(UTC),
            default_max_attempts=max_attempts,
        )


async def run_until(worker: OutboxWorker, predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task


def counts(engine: AsyncEngine):  # type: ignore[no-untyped-def]
    async def get() -> dict[str, int]:
        async with engine.connect() as conn:
            return await store.counts_by_status(conn)

    return get


async def test_delivers_every_job_with_its_key(engine: AsyncEngine) -> None:
    seen: list[tuple[int, str, int]] = []

    async def handler(job: Job) -> Delivery:
        seen.append((job.payload["n"], job.idempotency_key, job.attempt))
        return Delivery(remote_id=f"r{job.payload['n']}")

    keys = await enqueue(engine, [{"n": i} for i in range(300)])
    worker = OutboxWorker(engine, {"test": handler}, settings())
    get = counts(engine)
    await run_until(worker, lambda: _eq(get, {"done": 300}))
    assert sorted(n for n, _, _ in seen) == list(range(300))
    assert [k for _, k, _ in sorted(seen)] == keys
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.remote_id, outbox.c.lease_owner))).all()
        oks = (await conn.execute(select(ledger).where(ledger.c.outcome == "ok"))).all()
    assert {r.remote_id for r in rows} == {f"r{i}" for i in range(300)}
    assert all(r.lease_owner is None for r in rows)
    assert len(oks) == 300 and {o.worker for o in oks} == {worker.name}


async def _eq(get, expected: dict[str, int]) -> bool:  # type: ignore[no-untyped-def]
    return await get() == expected


async def test_retryable_errors_back_off_and_then_succeed(engine: AsyncEngine) -> None:
    attempts: dict[str, list[int]] = {}

    async def handler(job: Job) -> Delivery:
        attempts.setdefault(job.idempotency_key, []).append(job.attempt)
        if job.attempt < 3:
            raise ServerError("upstream 503", platform="test", status=503)
        return Delivery()

    await enqueue(engine, [{"n": 1}])
    worker = OutboxWorker(engine, {"test": handler}, settings())
    await run_until(worker, lambda: _eq(counts(engine), {"done": 1}))
    assert list(attempts.values()) == [[1, 2, 3]]
    async with engine.connect() as conn:
        outcomes = (await conn.execute(select(ledger.c.outcome).order_by(ledger.c.id))).scalars()
        assert list(outcomes) == ["retry", "retry", "ok"]


async def test_retry_after_from_the_platform_is_honoured(engine: AsyncEngine) -> None:
    async def handler(job: Job) -> Delivery:
        raise RateLimited("429", platform="io", status=429, retry_after=120)

    await enqueue(engine, [{"n": 1}])
    worker = OutboxWorker(engine, {"test": handler}, settings())
    before = datetime.now(UTC)
    await run_until(
        worker, lambda: _eq(counts(engine), {"pending": 1}) if worker.stats.retried else _false()
    )
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    assert row.next_attempt_at >= before + timedelta(seconds=120)
    assert row.attempts == 1 and "RateLimited" in row.last_error


async def _false() -> bool:
    return False


async def test_permanent_error_fails_at_once_and_exhausted_retries_fail_with_reason(
    engine: AsyncEngine,
) -> None:
    async def handler(job: Job) -> Delivery:
        if job.payload["n"] == 0:
            raise PermanentError("IBAN not valid for this tenant", platform="gpd", status=400)
        raise aiohttp.ClientConnectionError("connection reset")

    await enqueue(engine, [{"n": 0}, {"n": 1}], max_attempts=3)
    worker = OutboxWorker(engine, {"test": handler}, settings())
    await run_until(worker, lambda: _eq(counts(engine), {"failed": 2}))
    async with engine.connect() as conn:
        rows = {r.payload: r for r in (await conn.execute(select(outbox))).all()}
    first, second = rows['{"n":0}'], rows['{"n":1}']
    assert first.attempts == 1 and "IBAN not valid" in first.last_error
    assert second.attempts == 3
    assert second.last_error.startswith("gave up after 3 attempts: ClientConnectionError")
    assert first.finished_at is not None


async def test_unknown_kind_is_retried_not_dropped(engine: AsyncEngine) -> None:
    await enqueue(engine, [{"n": 1}], max_attempts=2)
    worker = OutboxWorker(engine, {}, settings())
    await run_until(worker, lambda: _eq(counts(engine), {"failed": 1}))
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    assert "no handler for outbox kind 'test'" in row.last_error and row.attempts == 2


async def test_graceful_stop_finishes_short_jobs_and_releases_long_ones(
    engine: AsyncEngine,
) -> None:
    started = asyncio.Event()

    async def handler(job: Job) -> Delivery:
        started.set()
        await asyncio.sleep(0.05 if job.payload["n"] == 0 else 60)
        return Delivery()

    await enqueue(engine, [{"n": 0}, {"n": 1}])
    worker = OutboxWorker(engine, {"test": handler}, settings(shutdown_grace=0.5))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await started.wait()
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    async with engine.connect() as conn:
        rows = {r.payload: r for r in (await conn.execute(select(outbox))).all()}
        outcomes = sorted((await conn.execute(select(ledger.c.outcome))).scalars())
    assert rows['{"n":0}'].status == "done"
    long = rows['{"n":1}']
    assert long.status == "pending" and long.lease_owner is None
    assert outcomes == ["interrupted", "ok"]


async def test_an_outcome_after_a_lost_lease_does_not_overwrite(engine: AsyncEngine) -> None:
    async def handler(job: Job) -> Delivery:
        async with engine.begin() as conn:  # another worker took the row meanwhile
            await conn.execute(
                update(outbox).where(outbox.c.id == job.id).values(lease_owner="someone-else")
            )
        return Delivery()

    await enqueue(engine, [{"n": 1}])
    worker = OutboxWorker(engine, {"test": handler}, settings())
    await run_until(worker, lambda: _true_if(worker.stats.lease_lost == 1))
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
        outcome = (await conn.execute(select(ledger.c.outcome))).scalar()
    assert row.status == "running" and row.lease_owner == "someone-else"
    assert outcome == "lease_lost"


async def _true_if(value: bool) -> bool:
    return value


async def test_worker_without_pre_ping_survives_dropped_connections(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`sportello worker` does not ping pooled connections (db.create_engine): when
    PostgreSQL drops them (a restart, pg_terminate_backend), the batch that meets a dead
    connection fails, the outbox retries it, and every job is still delivered."""
    engine = create_engine(DatabaseSettings(url=pg_url), pre_ping=False)
    await migrate.upgrade(engine)
    delivered: list[int] = []
    dropped = asyncio.Event()

    async def handler(job: Job) -> Delivery:
        delivered.append(job.payload["n"])
        if len(delivered) == 50 and not dropped.is_set():
            dropped.set()
            admin = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    pg_url.rsplit("/", 1)[1],
                )
            finally:
                await admin.close()
            assert killed >= 1  # the worker's pooled connections
        return Delivery()

    observer = create_engine(DatabaseSettings(url=pg_url))  # the test's own reads
    try:
        await enqueue(engine, [{"n": i} for i in range(200)])
        worker = OutboxWorker(engine, {"test": handler}, settings(concurrency=8))
        get = counts(observer)

        async def all_done() -> bool:
            try:
                return await get() == {"done": 200}
            except DBAPIError:  # the test's own connection was terminated too: read again
                return False

        await run_until(worker, all_done, timeout=60)
        assert dropped.is_set() and set(delivered) == set(range(200))
        # it did meet a dead connection, and got past it
        assert any(r.name == "sportello.outbox" and r.levelname == "ERROR" for r in caplog.records)
    finally:
        await engine.dispose()
        await observer.dispose()

"""Crash safety: a worker process is killed with SIGKILL in the middle of delivering 2,000
jobs to a local HTTP sink, then restarted. Every job arrives; the only repeats are the jobs
that were in flight at the kill, and they carry the same idempotency key. On SQLite and
PostgreSQL. On PostgreSQL, two worker processes drain 10,000 jobs with no job run twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.outbox import store
from sportello.outbox.store import NewJob
from sportello.schema import ledger, outbox

pytestmark = pytest.mark.slow
SPORTELLO = str(Path(sys.executable).with_name("sportello"))


def write_config(tmp_path: Path, db_url: str, *, lease: float, concurrency: int) -> Path:
    cfg = tmp_path / f"worker-{os.urandom(3).hex()}.toml"
    cfg.write_text(
        f"""
[database]
url = "{db_url}"

[outbox]
concurrency = {concurrency}
lease_seconds = {lease}
poll_interval = 0.05
backoff_base = 0.05
shutdown_grace = 5

[logging]
level = "WARNING"
"""
    )
    return cfg


def start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    return subprocess.Popen(
        [SPORTELLO, "worker", "--config", str(cfg)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


async def enqueue_jobs(engine: AsyncEngine, url: str, n: int) -> list[str]:
    async with engine.begin() as conn:
        return await store.enqueue_many(
            conn,
            [
                NewJob("demo", "webhook", {"url": url, "event": "test", "data": {"n": i}})
                for i in range(n)
            ],
            now=datetime.now(UTC),
            default_max_attempts=10,
        )


async def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.005)


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await store.counts_by_status(conn)


async def test_sigkill_mid_delivery_loses_nothing_and_repeats_only_in_flight_jobs(
    engine: AsyncEngine,
    db_url: str,
    sink,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    total = 2000
    sink.delay = 0.002
    keys = await enqueue_jobs(engine, sink.url, total)
    cfg = write_config(tmp_path, db_url, lease=2, concurrency=32)
    log = tmp_path / "worker.log"

    first = start_worker(cfg, log)
    try:

        async def enough() -> bool:
            assert first.poll() is None, log.read_text()
            return len(sink.received) >= 600

        await wait_for(enough, 60, "first deliveries")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    received_at_kill = len(sink.received)
    async with engine.connect() as conn:
        in_flight = set(
            (
                await conn.execute(
                    select(outbox.c.idempotency_key).where(outbox.c.status == "running")
                )
            ).scalars()
        )
    assert 0 < received_at_kill < total, "the kill must land mid-delivery"
    assert in_flight, "some jobs were in flight when the worker was killed"

    second = start_worker(cfg, log)
    try:

        async def drained() -> bool:
            assert second.poll() is None, log.read_text()
            return (await status_counts(engine)) == {"done": total}

        await wait_for(drained, 120, "all delivered after restart")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    per_key = Counter(r["key"] for r in sink.received)
    assert set(per_key) == set(keys), "every job delivered"
    repeated = {k for k, c in per_key.items() if c > 1}
    assert repeated <= in_flight, "only jobs in flight at the kill arrive twice"
    assert max(per_key.values()) == 2
    # each job always carried its own key, the one stored at enqueue time
    by_n: dict[int, set[str]] = {}
    for r in sink.received:
        by_n.setdefault(int(r["n"]), set()).add(str(r["key"]))  # type: ignore[arg-type]
    assert all(len(v) == 1 for v in by_n.values())
    assert [next(iter(by_n[i])) for i in range(total)] == keys
    async with engine.connect() as conn:
        oks = (
            await conn.execute(
                select(ledger.c.idempotency_key, func.count())
                .where(ledger.c.outcome == "ok")
                .group_by(ledger.c.idempotency_key)
            )
        ).all()
    assert len(oks) == total and all(n == 1 for _, n in oks)
    print(
        f"\nkill test: {received_at_kill} received before SIGKILL, {len(in_flight)} in flight, "
        f"{len(repeated)} repeated after restart"
    )


@pytest.mark.pg
async def test_two_worker_processes_on_postgresql_never_run_a_job_twice(
    pg_url: str,
    sink,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from sportello import migrate
    from sportello.config import DatabaseSettings
    from sportello.db import create_engine

    engine = create_engine(DatabaseSettings(url=pg_url))
    await migrate.upgrade(engine)
    total = 10_000
    cfg = write_config(tmp_path, pg_url, lease=60, concurrency=64)
    log = tmp_path / "workers.log"
    workers = [start_worker(cfg, log), start_worker(cfg, log)]
    try:
        await asyncio.sleep(1.0)  # both are polling before the jobs appear
        keys = await enqueue_jobs(engine, sink.url, total)

        async def drained() -> bool:
            for w in workers:
                assert w.poll() is None, log.read_text()
            return (await status_counts(engine)) == {"done": total}

        await wait_for(drained, 240, "10,000 jobs drained by two workers")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=30) for w in workers]
    assert codes == [0, 0]
    per_key = Counter(r["key"] for r in sink.received)
    assert set(per_key) == set(keys)
    assert max(per_key.values()) == 1, "no job executed twice"
    async with engine.connect() as conn:
        by_worker = dict(
            (
                await conn.execute(
                    select(ledger.c.worker, func.count())
                    .where(ledger.c.outcome == "ok")
                    .group_by(ledger.c.worker)
                )
            ).all()
        )
    await engine.dispose()
    assert sum(by_worker.values()) == total
    assert len(by_worker) == 2 and min(by_worker.values()) > 0, by_worker

"""Outbox throughput: enqueue and delivery (jobs/s) to a local HTTP sink, SQLite and PostgreSQL.

    .venv/bin/python bench/outbox/run.py [--jobs 20000] [--backends sqlite,postgresql]

Baseline, in the same run: plain aiohttp POSTs from one process to the same sink at the same
concurrency, with no database at all. The outbox figure is reported as a ratio to it. Every
state change of every job is committed (claim, outcome, ledger row), in group commits.
Each backend runs in a child process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

HERE = Path(__file__).resolve().parent
PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "128"))  # the default outbox.concurrency


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def baseline(url: str, n: int) -> float:
    """Requests/s of bare aiohttp POSTs at the outbox's concurrency (no database)."""
    body = json.dumps({"event": "bench", "data": {"n": 0}}).encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as s:
        queue = iter(range(n))

        async def one_lane() -> None:
            for _ in queue:
                async with s.post(url, data=body, headers={"Idempotency-Key": "x"}) as r:
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(one_lane() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - start)


async def bench_backend(backend: str, url: str, n: int) -> dict[str, float | str]:
    from sportello import migrate
    from sportello.clock import SystemClock
    from sportello.config import parse_config
    from sportello.db import create_engine
    from sportello.metrics import HubMetrics
    from sportello.outbox import OutboxWorker, store
    from sportello.outbox.store import NewJob
    from sportello.outbox.worker import handlers_from
    from sportello.plugins import Plugins
    from sportello.services import HubServices

    tmp = tempfile.mkdtemp(prefix="sportello-bench-")
    db_name = None
    if backend == "sqlite":
        db_url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite"
    else:
        db_name = f"sportello_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{db_name}"')
        await conn.close()
        db_url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        db_url += f"/{db_name}"
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"concurrency": CONCURRENCY, "poll_interval": 0.05},
            "logging": {"level": "WARNING"},
        }
    )
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    clock = SystemClock()
    payload = {"url": url, "event": "bench", "data": {"n": 0}}
    results: dict[str, float | str] = {"backend": backend, "jobs": n}

    # enqueue, one job per transaction (a business change and its job commit together)
    single = min(2000, n)
    start = time.perf_counter()
    for _ in range(single):
        async with engine.begin() as conn:
            await store.enqueue_many(
                conn, [NewJob("bench", "webhook", payload)], now=clock.now(), default_max_attempts=5
            )
    results["enqueue_1_per_tx"] = single / (time.perf_counter() - start)

    # enqueue in batches of 500 (a TARI run, a campaign)
    rest = n - single
    start = time.perf_counter()
    for i in range(0, rest, 500):
        async with engine.begin() as conn:
            await store.enqueue_many(
                conn,
                [NewJob("bench", "webhook", payload) for _ in range(min(500, rest - i))],
                now=clock.now(),
                default_max_attempts=5,
            )
    results["enqueue_batch_500"] = rest / (time.perf_counter() - start)

    # delivery: every job claimed, posted to the sink, settled with its ledger row
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2),
        timeout=aiohttp.ClientTimeout(total=20),
    ) as session:
        services = HubServices(config, engine, session, clock, HubMetrics())
        handlers = handlers_from(Plugins().outbox_handlers(), services)
        worker = OutboxWorker(engine, handlers, config.outbox, clock=clock)
        stop = asyncio.Event()
        start = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        while worker.stats.delivered < n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        stop.set()
        await task
    results["delivered_per_s"] = n / elapsed
    results["peak_rss_mb"] = peak_rss_mb()
    await engine.dispose()
    if db_name:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE "{db_name}" WITH (FORCE)')
        await conn.close()
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.child == "baseline":
            rate = asyncio.run(baseline(args.url, args.jobs))
            print(json.dumps({"baseline_per_s": rate, "peak_rss_mb": peak_rss_mb()}))
        else:
            print(json.dumps(asyncio.run(bench_backend(args.child, args.url, args.jobs))))
        return

    port = free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port)])
    url = f"http://127.0.0.1:{port}/hook"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

        def child(name: str) -> dict[str, float | str]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--url", url, "--jobs", str(args.jobs)],
                check=True,
                capture_output=True,
                text=True,
            )
            return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

        base = child("baseline")
        figures: list[dict[str, object]] = []
        print(f"{datetime.now(UTC):%Y-%m-%d} jobs={args.jobs} concurrency={CONCURRENCY}")
        print(f"baseline  bare aiohttp POST, no database: {base['baseline_per_s']:8.0f} req/s")
        for backend in args.backends.split(","):
            r = child(backend)
            ratio = float(r["delivered_per_s"]) / float(base["baseline_per_s"])
            print(
                f"{backend:10} enqueue 1/tx {float(r['enqueue_1_per_tx']):7.0f} jobs/s | "
                f"enqueue 500/tx {float(r['enqueue_batch_500']):7.0f} jobs/s | "
                f"delivered {float(r['delivered_per_s']):6.0f} jobs/s "
                f"({ratio:.2f}x baseline) | peak RSS {float(r['peak_rss_mb']):.0f} MB"
            )
            label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(backend, backend)
            figures += [
                {
                    "name": f"{label}: delivered",
                    "value": float(r["delivered_per_s"]),
                    "unit": "jobs/s",
                    "baseline": float(base["baseline_per_s"]),
                    "baseline_name": "bare aiohttp POSTs, no database",
                    "goal": ">= 2,000 jobs/s",
                    "met": float(r["delivered_per_s"]) >= 2000,
                },
                {
                    "name": f"{label}: enqueue 1/tx",
                    "value": float(r["enqueue_1_per_tx"]),
                    "unit": "jobs/s",
                },
                {
                    "name": f"{label}: enqueue 500/tx",
                    "value": float(r["enqueue_batch_500"]),
                    "unit": "jobs/s",
                },
                {"name": f"{label}: peak RSS", "value": float(r["peak_rss_mb"]), "unit": "MB"},
            ]
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "bench": "outbox",
                        "params": f"{args.jobs:,} jobs, concurrency {CONCURRENCY}",
                        "figures": figures,
                    }
                )
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()

"""App IO delivery: messages/s with the rate limit off, and, with the limit on and two
replicas on PostgreSQL, the share of App IO's limit used and the share of 429s.

    .venv/bin/python bench/io/run.py [--messages 20000] [--limited-seconds 30]

The IO sandbox runs in a child process (the other core). Every message costs two App IO
calls (the profile check, then the message) and three committed state changes.

Part 1 (limit off): one in-process outbox worker delivers a campaign of --messages to the
sandbox (rate_limit=0) on SQLite. Baseline in the same run: the same number of bare
profile+message call pairs from one process with no database. With --pg-workers N, the
same campaign is then delivered by N `sportello worker` processes on PostgreSQL. Each line
also gives the CPU time per message of the hub (its process or processes) and of the
sandbox, which machines shared with other work distort less than messages/s. --repeat R
runs part 1 R times (the spread between runs is part of the figure).

Part 2 (limit on): the sandbox enforces 150 calls / 5 s per service; two `sportello worker`
processes on PostgreSQL share the hub's database-backed limiter for --limited-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy

from sportello import migrate
from sportello.clock import SystemClock
from sportello.config import parse_config
from sportello.connectors.http1 import LeanHttpClient
from sportello.db import create_engine
from sportello.metrics import HubMetrics
from sportello.outbox import OutboxWorker
from sportello.outbox.worker import handlers_from
from sportello.platforms.io import campaigns
from sportello.plugins import Plugins
from sportello.runner import run_service_loop
from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID
from sportello.sandbox.io.population import Population
from sportello.services import HubServices

PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPORTELLO = str(Path(sys.executable).with_name("sportello"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "256"))
# The in-process worker freezes the startup objects out of the GC (OutboxWorker freeze_gc),
# as a dedicated worker process should; BENCH_FREEZE_GC=0 measures without.
FREEZE_GC = os.environ.get("BENCH_FREEZE_GC", "1") != "0"
CHILD = """
import asyncio, json, sys
from aiohttp.test_utils import TestServer
from sportello.sandbox.io.app import create_app
from sportello.sandbox.io.population import Population

async def main():
    size, limit = int(sys.argv[1]), int(sys.argv[2])
    pop = Population.generate(size, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0)
    server = TestServer(create_app(population=pop, rate_limit=limit), host="127.0.0.1")
    await server.start_server()
    print(json.dumps({"url": str(server.make_url("")).rstrip("/")}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""
MARKDOWN = (
    "Gentile cittadino, è disponibile l'avviso TARI 2026 del Comune di Esempio. Lo trova "
    "nella sezione pagamenti dell'app e può pagarlo con pagoPA. Riferimento {{ rif }}."
)


async def sandbox(size: int, limit: int) -> tuple[asyncio.subprocess.Process, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(size),
        str(limit),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    return child, json.loads(await child.stdout.readline())["url"]


async def stop(child: asyncio.subprocess.Process) -> None:
    assert child.stdin is not None
    child.stdin.close()
    await child.wait()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a live process (all its threads); this one by default."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process on this machine, by pid."""
    seen: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "postgres":
                seen[int(proc.name)] = cpu_seconds(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return seen


def postgres_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds PostgreSQL spent since ``before`` (processes started since count whole)."""
    return sum(now - before.get(pid, 0.0) for pid, now in postgres_cpu().items())


def reset_peak_rss() -> None:
    """Restart this process's peak RSS count (Linux ≥ 4.0), so it covers what follows only."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def pg_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database: (name, SQLAlchemy URL)."""
    name = f"sportello_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await conn.close()


def worker_config(path: Path, db_url: str, io_url: str, *, rate_limit: int, outbox: str) -> None:
    """The TOML of a `sportello worker` delivering to the sandbox at ``io_url``."""
    path.write_text(
        f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "ERROR"\n[outbox]\n{outbox}\n'
        '[[tenants]]\nid = "demo"\nname = "Comune di Esempio"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n[tenants.io]\n'
        f'base_url = "{io_url}/api/v1"\nrate_limit = {rate_limit}\nstatus_poll_attempts = 0\n'
        f'services = [{{ id = "{DEMO_SERVICE_ID}", key = {{ env = "IO_BENCH_KEY" }} }}]\n'
    )


def start_workers(cfg: Path, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "IO_BENCH_KEY": DEMO_PRIMARY_KEY}
    return [
        subprocess.Popen(
            [SPORTELLO, "worker", "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL
        )
        for _ in range(n)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(30)


def tenant(io_url: str, rate_limit: int) -> dict[str, Any]:
    return {
        "id": "demo",
        "name": "Comune di Esempio",
        "ipa_code": "c_z999",
        "fiscal_code": "00000000999",
        "cadastral_code": "Z999",
        "io": {
            "base_url": io_url + "/api/v1",
            "rate_limit": rate_limit,
            "status_poll_attempts": 0,
            "services": [{"id": DEMO_SERVICE_ID, "key": {"env": "IO_BENCH_KEY"}}],
        },
    }


async def queue_campaign(engine: Any, n: int) -> int:
    """Queue a campaign of ``n`` messages; returns the number of outbox jobs it made."""
    pop = Population.generate(n, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0)
    rows = "\n".join(f"{c.fiscal_code};;;;;{i}" for i, c in enumerate(pop))
    template = campaigns.Template("TARI 2026: il suo avviso", MARKDOWN)
    now = datetime.now(UTC)
    prepared = campaigns.prepare(
        "fiscal_code;expedition_date;due_date;notice_number;amount;rif\n" + rows,
        template,
        source="bench.csv",
        now=now,
    )
    async with engine.begin() as conn:
        await campaigns.create_campaign(
            conn,
            tenant_id="demo",
            service_id=DEMO_SERVICE_ID,
            name="bench",
            template=template,
            prepared=prepared,
            source="bench.csv",
            created_by="bench",
            now=now,
        )
        return int(
            (await conn.execute(sqlalchemy.text("SELECT count(*) FROM outbox"))).scalar_one()
        )


async def check_all_sent(engine: Any, n: int) -> None:
    """The bench counts only if every message of the campaign was sent."""
    async with engine.connect() as conn:
        sent = (
            await conn.execute(
                sqlalchemy.text("SELECT count(*) FROM io_messages WHERE status = 'sent'")
            )
        ).scalar_one()
    if sent != n:
        raise SystemExit(f"bench/io: only {sent} of {n} messages were sent")


async def baseline(url: str, fiscal_codes: list[str], concurrency: int) -> float:
    headers = {"Ocp-Apim-Subscription-Key": DEMO_PRIMARY_KEY}
    content = {
        "subject": "TARI 2026: il suo avviso",
        "markdown": MARKDOWN.replace("{{ rif }}", "0"),
    }
    it = iter(fiscal_codes)
    async with aiohttp.ClientSession(headers=headers) as s:

        async def lane() -> None:
            for cf in it:
                async with s.post(url + "/api/v1/profiles", json={"fiscal_code": cf}) as r:
                    await r.read()
                async with s.post(
                    url + "/api/v1/messages", json={"fiscal_code": cf, "content": content}
                ) as r:
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return len(fiscal_codes) / (time.perf_counter() - t0)


async def delivered_sqlite(url: str, n: int) -> tuple[float, float, float]:
    """One in-process outbox worker on SQLite: (messages/s, hub CPU seconds, peak RSS MB of
    the delivery; the bench's own data, such as the citizen list, is counted in it)."""
    tmp = tempfile.mkdtemp(prefix="sportello-bench-io-")
    config = parse_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp}/io.sqlite"},
            "outbox": {"concurrency": CONCURRENCY, "poll_interval": 0.05},
            "tenants": [tenant(url, 0)],
        }
    )
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    jobs = await queue_campaign(engine, n)
    clock = SystemClock()
    async with aiohttp.ClientSession() as session:
        http = LeanHttpClient(limit=max(100, CONCURRENCY * 2))
        services = HubServices(config, engine, session, clock, HubMetrics(), http=http)
        worker = OutboxWorker(
            engine,
            handlers_from(Plugins().outbox_handlers(), services),
            config.outbox,
            freeze_gc=FREEZE_GC,
        )
        stop_ev = asyncio.Event()
        reset_peak_rss()  # not the campaign's preparation: the bench does that, not the hub
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        task = asyncio.create_task(worker.run(stop_ev))
        while worker.stats.delivered < jobs:
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        stop_ev.set()
        await task
        await http.close()
    await check_all_sent(engine, n)
    await engine.dispose()
    return n / elapsed, cpu, peak_rss_mb()


async def delivered_pg(url: str, n: int, workers: int) -> tuple[float, float, float, float]:
    """``workers`` `sportello worker` processes on PostgreSQL: (messages/s, their CPU s,
    the largest peak RSS MB among them, the PostgreSQL server's CPU s).

    The workers start on an empty queue; the clock starts when the campaign is committed
    and stops when its last outbox job is done."""
    name, db_url = await pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-io-"))
    engine = create_engine(parse_config({"database": {"url": db_url}}).database)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await migrate.upgrade(engine)
        worker_config(
            tmp / "w.toml",
            db_url,
            url,
            rate_limit=0,
            outbox=f"concurrency = {CONCURRENCY}\npoll_interval = 0.05",
        )
        procs = start_workers(tmp / "w.toml", workers)
        await asyncio.sleep(3)  # imported, connected, polling an empty queue
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        jobs = await queue_campaign(engine, n)
        t0, db0 = time.perf_counter(), postgres_cpu()
        done = 0
        while done < jobs:
            await asyncio.sleep(0.05)
            async with engine.connect() as conn:
                done = (
                    await conn.execute(
                        sqlalchemy.text("SELECT count(*) FROM outbox WHERE status = 'done'")
                    )
                ).scalar_one()
        elapsed = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        db_cpu = postgres_cpu_since(db0)
        rss = max(peak_rss_mb(p.pid) for p in procs)
        await check_all_sent(engine, n)
    finally:
        stop_workers(procs)
        await engine.dispose()
        await drop_pg_database(name)
    return n / elapsed, cpu, rss, db_cpu


# the figures of this run, for --json (bench/report.py)
FIGURES: list[dict[str, Any]] = []


async def unlimited(n: int, pg_workers: int) -> dict[str, float]:
    """One round of part 1; prints its lines and returns the rates by setup."""
    rates: dict[str, float] = {}
    pop = Population.generate(n, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0)
    child, url = await sandbox(n, 0)
    try:
        cpu0 = cpu_seconds(child.pid)
        base = await baseline(url, [c.fiscal_code for c in pop], 64)
        box = (cpu_seconds(child.pid) - cpu0) / n
    finally:
        await stop(child)
    rates["baseline"] = base
    print(
        f"  baseline, bare call pairs, no database: {base:,.0f}/s "
        f"(sandbox CPU {box * 1e6:.0f} µs/pair)"
    )
    runs: list[tuple[str, Any]] = [("SQLite, 1 in-process worker", None)]
    if pg_workers:
        runs.append((f"PostgreSQL, {pg_workers} worker processes", pg_workers))
    for label, workers in runs:
        child, url = await sandbox(n, 0)  # fresh sandbox state for each run
        try:
            cpu0 = cpu_seconds(child.pid)
            db = ""  # SQLite runs inside the hub's process: its CPU is the hub's
            if workers is None:
                rate, hub_cpu, rss = await delivered_sqlite(url, n)
            else:
                rate, hub_cpu, rss, db_cpu = await delivered_pg(url, n, workers)
                db = f", PostgreSQL {db_cpu / n * 1e6:.0f} µs"
            box = (cpu_seconds(child.pid) - cpu0) / n
        finally:
            await stop(child)
        rates[label] = rate
        FIGURES.append(
            {
                "name": f"limit off, {label}: delivered",
                "value": rate,
                "unit": "messages/s",
                "baseline": base,
                "baseline_name": "bare profile+message call pairs",
                **({"goal": ">= 2,000/s", "met": rate >= 2000} if workers is None else {}),
            }
        )
        FIGURES.append(
            {
                "name": f"limit off, {label}: hub CPU per message",
                "value": hub_cpu / n * 1e6,
                "unit": "µs",
            }
        )
        print(
            f"  limit off, {label}, {n} messages: {rate:,.0f} messages/s "
            f"({rate / base:.2f}x the baseline); CPU per message: hub "
            f"{hub_cpu / n * 1e6:.0f} µs, sandbox {box * 1e6:.0f} µs{db}; "
            f"hub peak RSS {rss:.0f} MB"
        )
    return rates


async def limited(seconds: float) -> None:
    child, url = await sandbox(20_000, 150)
    name, db_url = await pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-io-"))
    config = parse_config({"database": {"url": db_url}, "tenants": [tenant(url, 150)]})
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    await queue_campaign(engine, 5_000)
    worker_config(tmp / "w.toml", db_url, url, rate_limit=150, outbox="concurrency = 64")
    workers = start_workers(tmp / "w.toml", 2)
    try:
        async with aiohttp.ClientSession() as s:

            async def calls() -> list[dict[str, Any]]:
                async with s.get(url + "/__sandbox/calls") as r:
                    return list((await r.json())["calls"])

            await asyncio.sleep(6)  # both replicas up and past the first window
            before = await calls()
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            after = await calls()
            elapsed = time.monotonic() - t0
        window = after[len(before) :]
        accepted = sum(1 for c in window if c["status"] != 429)
        limited_n = sum(1 for c in window if c["status"] == 429)
        allowance = 150 * elapsed / 5
        print(
            f"limit on (150 calls / 5 s), 2 replicas on PostgreSQL, {elapsed:.0f} s: "
            f"{accepted} calls accepted of {allowance:.0f} allowed = {accepted / allowance:.1%} "
            f"of the limit used; 429s {limited_n} = {limited_n / max(1, len(window)):.2%}"
        )
        FIGURES.append(
            {
                "name": f"limit on, 2 replicas on PostgreSQL, {elapsed:.0f} s: limit used",
                "value": 100 * accepted / allowance,
                "unit": "%",
                "goal": ">= 95 %",
                "met": accepted / allowance >= 0.95,
            }
        )
        FIGURES.append(
            {
                "name": "limit on: 429 answers",
                "value": 100 * limited_n / max(1, len(window)),
                "unit": "%",
                "goal": "< 1 %",
                "met": limited_n / max(1, len(window)) < 0.01,
            }
        )
    finally:
        stop_workers(workers)
        await engine.dispose()
        await drop_pg_database(name)
        await stop(child)


async def main(args: argparse.Namespace) -> None:
    os.environ["IO_BENCH_KEY"] = DEMO_PRIMARY_KEY
    print(f"{datetime.now(UTC):%Y-%m-%d} bench/io (outbox concurrency {CONCURRENCY})")
    rounds = []
    for i in range(args.repeat):
        print(f"part 1, run {i + 1} of {args.repeat}:")
        rounds.append(await unlimited(args.messages, args.pg_workers))
    if args.repeat > 1:
        for label in rounds[0]:
            if label == "baseline":
                continue
            rates = [r[label] for r in rounds]
            ratios = [r[label] / r["baseline"] for r in rounds]
            print(
                f"{label}: median {statistics.median(rates):,.0f} messages/s "
                f"(min {min(rates):,.0f}, max {max(rates):,.0f}); ratio to the baseline "
                f"median {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the bench process, campaign preparation included: {rss:.0f} MB")
    if args.limited_seconds > 0:
        await limited(args.limited_seconds)
    if args.json:
        params = f"{args.messages:,} messages, limit on for {args.limited_seconds:g} s"
        args.json.write_text(json.dumps({"bench": "io", "params": params, "figures": FIGURES}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--limited-seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1, help="part 1 runs (spread)")
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    parser.add_argument(
        "--pg-workers",
        type=int,
        default=0,
        help="also run part 1 with N `sportello worker` processes on PostgreSQL",
    )
    # the event loop of `sportello worker` (uvloop unless SPORTELLO_EVENT_LOOP=asyncio)
    run_service_loop(main(parser.parse_args()))

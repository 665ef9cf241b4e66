"""App IO delivery: messages/s with the rate limit off, and, with the limit on and two
replicas on PostgreSQL, the share of App IO's limit used and the share of 429s.

    .venv/bin/python bench/io/run.py [--messages 20000] [--limited-seconds 30]

The IO sandbox runs in a child process (the other core). Every message costs two App IO
calls (the profile check, then the message) and three committed state changes.

Part 1 (limit off): one in-process outbox worker delivers a campaign of --messages to the
sandbox (rate_limit=0) on SQLite. Baseline in the same run: the same number of bare
profile+message call pairs from one process with no database.

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

from sportello import campaigns, migrate
from sportello.clock import SystemClock
from sportello.config import parse_config
from sportello.db import create_engine
from sportello.metrics import HubMetrics
from sportello.outbox import OutboxWorker
from sportello.outbox.worker import handlers_from
from sportello.plugins import Plugins
from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID
from sportello.sandbox.io.population import Population
from sportello.services import HubServices

PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPORTELLO = str(Path(sys.executable).with_name("sportello"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "256"))
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


async def queue_campaign(engine: Any, n: int) -> None:
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


async def unlimited(n: int) -> None:
    child, url = await sandbox(n, 0)
    try:
        pop = Population.generate(n, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0)
        base = await baseline(url, [c.fiscal_code for c in pop], 64)
        await stop(child)
        child, url = await sandbox(n, 0)  # fresh sandbox state for the hub's run
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
        await queue_campaign(engine, n)
        clock = SystemClock()
        async with aiohttp.ClientSession() as session:
            services = HubServices(config, engine, session, clock, HubMetrics())
            worker = OutboxWorker(
                engine, handlers_from(Plugins().outbox_handlers(), services), config.outbox
            )
            stop_ev = asyncio.Event()
            t0 = time.perf_counter()
            task = asyncio.create_task(worker.run(stop_ev))
            while worker.stats.delivered < n:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            stop_ev.set()
            await task
        await engine.dispose()
        rate = n / elapsed
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"limit off, SQLite, {n} messages: {rate:,.0f} messages/s "
            f"(baseline bare calls {base:,.0f}/s: {rate / base:.2f}x), peak RSS {rss:.0f} MB"
        )
    finally:
        await stop(child)


async def limited(seconds: float) -> None:
    child, url = await sandbox(20_000, 150)
    name = f"sportello_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db_url = (
        PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    )
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-io-"))
    config = parse_config({"database": {"url": db_url}, "tenants": [tenant(url, 150)]})
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    await queue_campaign(engine, 5_000)
    cfg = tmp / "w.toml"
    cfg.write_text(
        f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "ERROR"\n'
        "[outbox]\nconcurrency = 64\n"
        '[[tenants]]\nid = "demo"\nname = "Comune di Esempio"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n[tenants.io]\n'
        f'base_url = "{url}/api/v1"\nstatus_poll_attempts = 0\n'
        f'services = [{{ id = "{DEMO_SERVICE_ID}", key = {{ env = "IO_BENCH_KEY" }} }}]\n'
    )
    env = {**os.environ, "IO_BENCH_KEY": DEMO_PRIMARY_KEY}
    workers = [
        subprocess.Popen(
            [SPORTELLO, "worker", "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
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
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        await engine.dispose()
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()
        await stop(child)


async def main(args: argparse.Namespace) -> None:
    os.environ["IO_BENCH_KEY"] = DEMO_PRIMARY_KEY
    print(f"{datetime.now(UTC):%Y-%m-%d} bench/io")
    await unlimited(args.messages)
    if args.limited_seconds > 0:
        await limited(args.limited_seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--limited-seconds", type=float, default=30.0)
    asyncio.run(main(parser.parse_args()))

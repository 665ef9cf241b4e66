"""Hub overhead per audited ANPR call: ModI signing, PDND voucher handling, audit log.

    .venv/bin/python bench/anpr/run.py [--calls 300]

The PDND token server and the ANPR gateway sandboxes run in a child process (the other
core), on real sockets. This process makes audited C030 calls one after another (latency,
not throughput) through the hub's own AnprClient + ModiCaller + PdndClient, and appends one
audit-log row per call to a SQLite database, as a resident look-up does.

For every call it measures the total time and, with an aiohttp trace, the time spent
waiting on the two sandboxes (token request + e-service request). The hub's overhead is the
difference: everything the hub does itself (three RSA signatures, JSON, the audit write).
The baseline, in the same run, is the sandboxes' own share of each call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from sportello import audit, migrate
from sportello.config import DatabaseSettings
from sportello.connectors.anpr.client import AnprClient
from sportello.connectors.pdnd.client import ModiCaller, PdndClient
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
from sportello.connectors.pdnd.keys import generate_key
from sportello.connectors.pdnd.modi import AuditContext
from sportello.db import create_engine
from sportello.sandbox.anpr.app import modi_audience_for
from sportello.sandbox.anpr.population import generate

DOOR = "/govway/rest/in/MinInternoPortaANPR"
CHILD = """
import asyncio, json, sys
from aiohttp.test_utils import TestServer
from sportello.sandbox.anpr.app import create_app as anpr_app
from sportello.sandbox.anpr.population import generate
from sportello.sandbox.pdnd.app import create_app as pdnd_app

async def main():
    pdnd = TestServer(pdnd_app(rate_limit=None), host="127.0.0.1")
    await pdnd.start_server()
    url = str(pdnd.make_url("")).rstrip("/")
    anpr = TestServer(anpr_app(population=generate(seed=1, size=400),
        voucher_key=url + "/.well-known/jwks.json", client_keys=url + "/keys"), host="127.0.0.1")
    await anpr.start_server()
    print(json.dumps({"pdnd": url, "anpr": str(anpr.make_url("")).rstrip("/")}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(calls: int) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None and child.stdin is not None
    urls = json.loads(await child.stdout.readline())
    waited: dict[str, float] = {"s": 0.0}

    async def on_start(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.t0 = time.perf_counter()

    async def on_end(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        waited["s"] += time.perf_counter() - ctx.t0

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-anpr-"))
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp}/bench.sqlite"))
    await migrate.upgrade(engine)
    private_pem, public_pem = generate_key()
    client_id = str(uuid.uuid4())
    purposes = {"C030": str(uuid.uuid4())}
    people = [p.fiscal_code for p in generate(seed=1, size=400).active()]
    totals: list[float] = []
    overheads: list[float] = []
    peers: list[float] = []
    try:
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            audiences = {
                purposes["C030"]: modi_audience_for(urls["anpr"] + DOOR, "C030"),
            }
            async with session.post(
                urls["pdnd"] + "/__sandbox/clients",
                json={
                    "client_id": client_id,
                    "public_key": public_pem.decode(),
                    "purposes": audiences,
                },
            ) as r:
                kid = (await r.json())["kid"]
            pdnd = PdndClient(
                session,
                urls["pdnd"] + "/token.oauth2",
                client_id=client_id,
                kid=kid,
                private_key=lambda: private_pem,
                assertion_audience=SANDBOX_ASSERTION_AUDIENCE,
            )
            anpr = AnprClient(
                session, urls["anpr"] + DOOR + "-PDND", modi=ModiCaller(pdnd), purposes=purposes
            )
            who = AuditContext(user_id="bench", user_location="ufficio", loa="LoA2")
            for i in range(calls + 20):
                cf = people[i % len(people)]
                waited["s"] = 0.0
                t0 = time.perf_counter()
                await anpr.id_anpr(cf, purpose="PROT.BENCH", audit=who)
                async with engine.begin() as conn:
                    await audit.record(
                        conn,
                        audit.AuditEntry(
                            "bench", "bench", "resident.lookup", cf, "PROT.BENCH", "anpr", "ok"
                        ),
                        at=datetime.now(UTC),
                    )
                total = time.perf_counter() - t0
                if i >= 20:  # warm-up excluded
                    totals.append(total * 1000)
                    peers.append(waited["s"] * 1000)
                    overheads.append((total - waited["s"]) * 1000)
    finally:
        child.stdin.close()
        await child.wait()
        await engine.dispose()
    print(f"{datetime.now(UTC):%Y-%m-%d} {calls} audited C030 calls, sequential")
    for name, values in (
        ("total per call", totals),
        ("sandboxes (baseline)", peers),
        ("hub overhead", overheads),
    ):
        median, p99 = statistics.median(values), pct(values, 0.99)
        print(f"{name:22} median {median:6.2f} ms   p99 {p99:6.2f} ms")
    share = statistics.median(overheads) / statistics.median(totals)
    print(f"overhead share of the call: {share:.2f}")
    figures = [
        {
            "name": f"hub overhead per audited call, {q}",
            "value": f(overheads),
            "unit": "ms",
            "baseline": f(peers),
            "baseline_name": "the sandboxes' share",
            "goal": "< 5 ms",
            "met": f(overheads) < 5,
        }
        for q, f in (("median", statistics.median), ("p99", lambda v: pct(v, 0.99)))
    ]
    figures.append(
        {"name": "total per call, median", "value": statistics.median(totals), "unit": "ms"}
    )
    return {"bench": "anpr", "params": f"{calls} calls", "figures": figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    ns = parser.parse_args()
    result = asyncio.run(main(ns.calls))
    if ns.json:
        ns.json.write_text(json.dumps(result))

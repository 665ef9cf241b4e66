"""The EC station under concurrent load: requests/s and latency of paVerifyPaymentNotice
and paGetPaymentV2 on existing positions, over loopback.

    .venv/bin/python bench/pagopa/run.py [--seconds 10] [--clients 32] [--positions 1000]
        [--backends sqlite,postgresql] [--no-xsd-run]

The hub (its whole web app: middlewares, tenant look-up, XSD validation, the store) runs in
a child process on one core; this process is the Node, with --clients aiohttp clients
posting one request after another for --seconds per operation, cycling over the positions.
paGetPaymentV2 also commits ``activated_at`` for the option (one write per call).

Baseline in the same run: a bare aiohttp handler in a child process answering a fixed SOAP
body of the same size, under the same load: what loopback HTTP and this client cost.
With XSD on and off (``$SPORTELLO_PAGOPA_XSD_DIR`` pointing at an empty directory) the
share of the XSD validation shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
EC, BROKER, STATION = "77777777777", "77777777777", "77777777777_01"
NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
XSD_DIR = (
    Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagopa" / "wsdl" / "xsd"
)
IBAN = "IT60X0542811101000000123456"


def envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:pafn="{NS}"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>'
    ).encode()


def head(element: str) -> str:
    return (
        f"<pafn:{element}><idPA>{EC}</idPA><idBrokerPA>{BROKER}</idBrokerPA>"
        f"<idStation>{STATION}</idStation>"
    )


def verify_body(nav: str) -> bytes:
    qr = f"<qrCode><fiscalCode>{EC}</fiscalCode><noticeNumber>{nav}</noticeNumber></qrCode>"
    return envelope(head("paVerifyPaymentNoticeReq") + qr + "</pafn:paVerifyPaymentNoticeReq>")


def get_payment_body(nav: str) -> bytes:
    qr = f"<qrCode><fiscalCode>{EC}</fiscalCode><noticeNumber>{nav}</noticeNumber></qrCode>"
    return envelope(
        head("paGetPaymentV2Request") + qr + "<amount>84.00</amount></pafn:paGetPaymentV2Request>"
    )


# -- child: the hub, or the baseline ------------------------------------------------------


def hub_config(db_url: str) -> Any:
    from sportello.config import parse_config

    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "logging": {"level": "WARNING"},
            "tenants": [
                {
                    "id": "prova",
                    "name": "Comune di Prova",
                    "ipa_code": "c_prova",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "mode": "station",
                    },
                }
            ],
        }
    )


def position(i: int) -> dict[str, Any]:
    due = datetime.now(UTC) + timedelta(days=60)
    return {
        "iupd": f"BENCH-{i:06d}",
        "type": "F",
        "fiscal_code": "RSSMRA80A01H501U",
        "full_name": "Mario Rossi",
        "company_name": "Comune di Prova",
        "payment_options": [
            {
                "amount": 8400,
                "description": "TARI 2026",
                "due_date": due,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 8000,
                        "organization_fiscal_code": EC,
                        "remittance_information": "TARI 2026",
                        "category": "9/0101101IM/",
                        "iban": IBAN,
                    },
                    {
                        "id_transfer": 2,
                        "amount": 400,
                        "organization_fiscal_code": "80000000001",
                        "remittance_information": "TEFA 2026",
                        "category": "9/0201102IM/",
                        "iban": IBAN,
                    },
                ],
            }
        ],
    }


async def serve_hub(db_url: str, positions: int, port: int, navs_file: Path) -> None:
    from aiohttp import web

    from sportello import migrate
    from sportello.app import create_app
    from sportello.clock import SystemClock
    from sportello.db import create_engine
    from sportello.platforms.pagopa.store import PagopaStore

    config = hub_config(db_url)
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    store = PagopaStore(engine, config, SystemClock())
    navs = []
    for i in range(positions):
        stored = await store.create_position("prova", position(i))
        navs.append(stored.options[0].nav)
    await engine.dispose()
    await asyncio.to_thread(navs_file.write_text, "\n".join(navs))
    runner = web.AppRunner(create_app(config, run_workers=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("READY", flush=True)
    await asyncio.Event().wait()


async def serve_baseline(port: int) -> None:
    from aiohttp import web

    body = envelope(
        f'<pafn:paVerifyPaymentNoticeRes xmlns:pafn="{NS}"><outcome>OK</outcome>'
        "<paymentList><paymentOptionDescription><amount>84.00</amount><options>EQ</options>"
        "<dueDate>2026-12-31</dueDate><allCCP>false</allCCP></paymentOptionDescription>"
        "</paymentList><paymentDescription>TARI 2026</paymentDescription>"
        f"<fiscalCodePA>{EC}</fiscalCodePA><companyName>Comune di Prova</companyName>"
        "</pafn:paVerifyPaymentNoticeRes>"
    )

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    app = web.Application()
    app.router.add_post("/t/{tenant}/pagopa/station", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("READY", flush=True)
    await asyncio.Event().wait()


# -- parent: the load --------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        child.kill()
        raise SystemExit(f"child did not start: {line!r}")
    return child


def stop(child: subprocess.Popen[str]) -> None:
    child.terminate()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()


async def load(
    url: str, bodies: list[bytes], action: str, seconds: float, clients: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up
        for body in bodies[:20]:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
        deadline = time.perf_counter() + seconds
        counter = iter(range(10**9))

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                body = bodies[next(counter) % len(bodies)]
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    text = await resp.read()
                    if resp.status != 200 or b"<outcome>OK</outcome>" not in text:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
        "count": len(latencies),
    }


async def pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"bench_pagopa_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await conn.close()


def show(label: str, r: dict[str, float], base: float | None = None) -> None:
    ratio = f"  {r['rps'] / base:.2f}x baseline" if base else ""
    print(
        f"  {label:<34} {r['rps']:8,.0f} req/s  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms"
        f"  errors {int(r['errors'])}{ratio}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-pagopa-"))
    print(
        f"station load: {args.clients} clients, {args.seconds:g} s per run, "
        f"{args.positions} positions, loopback; hub and baseline in a child process; "
        f"load average {os.getloadavg()[0]:.2f} (compare ratios, not req/s, across runs)"
    )
    port = free_port()
    child = start(["--baseline", "--port", str(port)])
    url = f"http://127.0.0.1:{port}/t/prova/pagopa/station"
    try:
        fixed = [verify_body("3" + "0" * 17)]
        base = await load(url, fixed, "paVerifyPaymentNotice", args.seconds, args.clients)
    finally:
        stop(child)
    show("baseline (fixed SOAP body)", base)
    figures: list[dict[str, object]] = []

    def record(name: str, r: dict[str, float]) -> None:
        common = {"baseline": base["rps"], "baseline_name": "bare aiohttp handler"}
        figures.append(
            {
                "name": name,
                "value": r["rps"],
                "unit": "req/s",
                **common,
                "goal": ">= 1,000 req/s",
                "met": r["rps"] >= 1000,
            }
        )
        figures.append(
            {
                "name": f"{name}, p99",
                "value": r["p99"],
                "unit": "ms",
                "goal": "< 50 ms",
                "met": r["p99"] < 50,
            }
        )

    no_xsd = tmp / "no-xsd"
    no_xsd.mkdir()
    for backend in args.backends.split(","):
        runs = [("XSD on", {"SPORTELLO_PAGOPA_XSD_DIR": str(XSD_DIR)})]
        if args.xsd_off:
            runs.append(("XSD off", {"SPORTELLO_PAGOPA_XSD_DIR": str(no_xsd)}))
        for label, env in runs:
            pg_name = None
            if backend == "sqlite":
                db_url = f"sqlite+aiosqlite:///{tmp / f'hub-{uuid.uuid4().hex[:6]}.sqlite'}"
            else:
                pg_name, db_url = await pg_database()
            navs_file = tmp / "navs.txt"
            port = free_port()
            started = time.perf_counter()
            child = start(
                [
                    "--serve",
                    "--db",
                    db_url,
                    "--positions",
                    str(args.positions),
                    "--port",
                    str(port),
                    "--navs",
                    str(navs_file),
                ],
                env,
            )
            print(f"{backend}, {label} (set-up {time.perf_counter() - started:.1f} s):")
            url = f"http://127.0.0.1:{port}/t/prova/pagopa/station"
            navs = navs_file.read_text().split()
            try:
                r = await load(
                    url,
                    [verify_body(n) for n in navs],
                    "paVerifyPaymentNotice",
                    args.seconds,
                    args.clients,
                )
                show("paVerifyPaymentNotice", r, base["rps"])
                name = f"{'SQLite' if backend == 'sqlite' else 'PostgreSQL'}, {label}"
                record(f"{name}: verify", r)
                r = await load(
                    url,
                    [get_payment_body(n) for n in navs],
                    "paGetPaymentV2",
                    args.seconds,
                    args.clients,
                )
                show("paGetPaymentV2 (commits activated_at)", r, base["rps"])
                record(f"{name}: getPaymentV2", r)
            finally:
                stop(child)
                if pg_name:
                    await drop_pg(pg_name)
    if args.json:
        params = f"{args.clients} clients, {args.seconds:g} s per run, {args.positions} positions"
        args.json.write_text(json.dumps({"bench": "pagopa", "params": params, "figures": figures}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-xsd-run", dest="xsd_off", action="store_false")
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--navs", type=Path, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve:
        asyncio.run(serve_hub(ns.db, ns.positions, ns.port, ns.navs))
    elif ns.baseline:
        asyncio.run(serve_baseline(ns.port))
    else:
        asyncio.run(main(ns))

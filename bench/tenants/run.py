"""A hub with thousands of tenants against the same hub with one, in the same run: start-up,
memory, reload and the latency of three requests for one tenant among many.

    .venv/bin/python bench/tenants/run.py [--scenarios postgresql:1000,postgresql:8000,sqlite:1000]
        [--seconds 1.5] [--rounds 3] [--clients 8] [--positions 200]

Every tenant has every platform configured: SPID and CIE (SAML keys, IdP metadata, return
URLs), App IO (one service), PDND (client key and purposes) and the pagoPA station (with
its shared key). The key files are shared: one SPID, one CIE, one PDND, one IO and one
station key file, referenced by every tenant (as a software house may do with a shared
signing key; the hub reads each reference per tenant all the same). Tenants come from a
``tenants_dir`` of one TOML file each (``c00001.toml``...), as docs/tenants.md describes.

Per scenario (backend and tenant count), on one fresh database:

- the **one-tenant hub** (baseline) and the **many-tenant hub** are real ``sportello serve
  --no-workers`` processes on loopback; **start-up** is the time from the process start to
  its first answer on ``/healthz`` (configuration read and validated, database reached,
  tenants synced, every platform's setup done), **ready** the time to a 200 on ``/readyz``
  (every platform of every tenant checked), **RSS** the resident memory of the replica after
  the load (``/proc/<pid>/status``);
- **latency**: --clients clients, one request after another, for --seconds per burst,
  alternately on the one-tenant and the many-tenant hub for --rounds rounds (a change of
  the machine's load weighs on both): ``GET /t/<id>/spid/metadata`` (signed SP metadata),
  the station's ``paVerifyPaymentNotice`` on existing positions, and the API read
  ``GET /api/v1/tenants/<id>/outbox?limit=10`` (a key of the tenant, one query). The
  tenant is the middle one of the many (same id, same data in both hubs); the figure is
  the median (p50) over all rounds and its ratio to the one-tenant hub's;
- **reload**: a second replica of the many-tenant hub starts; the middle tenant's file is
  changed (its name, which the SP metadata carries) and ``sportello tenants reload`` moves
  the configuration generation; the time from the generation moving in the database (this
  process watches it) until both replicas serve the new metadata (each polls the
  generation every ``[periodic] config_poll_seconds``, 2 s by default).

Everything runs on loopback; every child is stopped at the end (and on error), each hub
has a deadline of --startup-timeout seconds to start. Goals (issue 17): 8,000 tenants start
in < 10 s with RSS < 1 GB per replica; every latency <= 1.1x the one-tenant hub's; a reload
of one tenant applies on every replica in < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
IBAN = "IT60X0542811101000000123456"
IDP = "https://idp.bench.example.it/spid"
CIE_IDP = "https://idp.bench.example.it/cie"
STATION_KEY = "bench-station-key-0123456789"
SPORTELLO = str(Path(sys.executable).with_name("sportello"))
START_GOAL, RSS_GOAL_MB, RATIO_GOAL, RELOAD_GOAL = 10.0, 1024.0, 1.1, 5.0


def tenant_id(i: int) -> str:
    return f"c{i:05d}"


def fiscal_code(i: int) -> str:
    return f"{80000000000 + i:011d}"


# -- the material every tenant shares ------------------------------------------------------


def make_material(root: Path) -> None:
    """Key files and IdP metadata under ``root`` (shared by every tenant)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from sportello.connectors.spid.keys import make_sp_certificate
    from sportello.platforms.login.keys import write_keys
    from sportello.sandbox.idp.keys import generate
    from sportello.sandbox.idp.metadata import idp_metadata

    for kind in ("spid", "cie"):
        key_pem, cert_pem = make_sp_certificate(
            entity_id=f"https://hub.bench.example.it/{kind}",
            organization_name="Comuni di prova",
            common_name="Comuni di prova",
            locality="Z999",
            ipa_code="c_z999",
            key_size=2048,
        )
        write_keys(root / "keys" / kind, key_pem, cert_pem, rotate=False)
        idp = generate(f"Bench {kind} IdP")
        (root / f"idp-{kind}.xml").write_bytes(
            idp_metadata(kind, IDP if kind == "spid" else CIE_IDP, idp)
        )
    pdnd = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (root / "pdnd.pem").write_bytes(
        pdnd.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "io.key").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "station.key").write_text(STATION_KEY + "\n")
    for name in ("pdnd.pem", "io.key", "station.key"):
        (root / name).chmod(0o600)


def tenant_toml(i: int, shared: Path, name: str | None = None) -> str:
    tid, fc = tenant_id(i), fiscal_code(i)
    return f"""id = "{tid}"
name = "{name or f"Comune di Prova {i}"}"
ipa_code = "c_{tid}"
fiscal_code = "{fc}"
cadastral_code = "Z{i % 1000:03d}"

[pdnd]
client_id = "{uuid.UUID(int=i)}"
key = {{ file = "{shared / "pdnd.pem"}" }}
token_url = "https://auth.uat.interop.pagopa.it/token.oauth2"
purposes = {{ C030 = "{uuid.UUID(int=10**6 + i)}" }}

[io]
base_url = "https://api.io.pagopa.it/api/v1"
services = [
  {{ id = "01BENCH{i:019d}", name = "Tributi", key = {{ file = "{shared / "io.key"}" }} }},
]

[pagopa]
ec_fiscal_code = "{fc}"
broker_id = "{fc}"
station_id = "{fc}_01"
mode = "station"

[pagopa.station_auth]
key = {{ file = "{shared / "station.key"}" }}

[spid]
keys_dir = "{shared / "keys" / "spid"}"
contact_email = "protocollo@{tid}.example.it"
contact_phone = "+390612345678"
organization_url = "https://www.{tid}.example.it"
idp_metadata = ["{shared / "idp-spid.xml"}"]
return_urls = ["https://servizi.{tid}.example.it/callback"]

[cie]
keys_dir = "{shared / "keys" / "cie"}"
contact_email = "protocollo@{tid}.example.it"
contact_phone = "+390612345678"
organization_url = "https://www.{tid}.example.it"
attributes = ["name", "familyName", "fiscalNumber", "dateOfBirth"]
level = 3
province = "RM"
idp_metadata = ["{shared / "idp-cie.xml"}"]
return_urls = ["https://servizi.{tid}.example.it/callback"]
technical_contact_email = "assistenza@softwarehouse.example.it"
technical_contact_company = "Software House S.r.l."
"""


def write_config(folder: Path, db_url: str, port: int, tenants: list[int], shared: Path) -> Path:
    (folder / "tenants").mkdir(parents=True)
    for i in tenants:
        (folder / "tenants" / f"{tenant_id(i)}.toml").write_text(tenant_toml(i, shared))
    path = folder / "sportello.toml"
    path.write_text(
        f"""tenants_dir = "tenants"

[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"

[database]
url = "{db_url}"

[logging]
level = "WARNING"
"""
    )
    return path


def position(i: int, n: int) -> dict[str, Any]:
    due = datetime.now(UTC) + timedelta(days=60)
    fc = fiscal_code(i)
    return {
        "iupd": f"BENCH-{n:06d}",
        "type": "F",
        "fiscal_code": "RSSMRA80A01H501U",
        "full_name": "Mario Rossi",
        "company_name": f"Comune di Prova {i}",
        "payment_options": [
            {
                "amount": 8400,
                "description": "TARI 2026",
                "due_date": due,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 8400,
                        "organization_fiscal_code": fc,
                        "remittance_information": "TARI 2026",
                        "category": "9/0101101IM/",
                        "iban": IBAN,
                    }
                ],
            }
        ],
    }


async def prepare_database(config_path: Path, target: int, positions: int) -> tuple[str, list[str]]:
    """Schema, the target tenant's positions and an API key of it: (key, navs)."""
    from sportello import apikeys, migrate
    from sportello.clock import SystemClock
    from sportello.config import load_config
    from sportello.db import create_engine
    from sportello.platforms.pagopa.store import PagopaStore

    config = load_config(config_path)
    engine = create_engine(config.database)
    try:
        await migrate.upgrade(engine)
        from sportello import tenant_store

        await tenant_store.sync_rows(engine, config, SystemClock().now())
        store = PagopaStore(engine, config, SystemClock())
        navs = []
        for n in range(positions):
            stored = await store.create_position(tenant_id(target), position(target, n))
            navs.append(stored.options[0].nav)
        async with engine.begin() as conn:
            key = await apikeys.create(
                conn,
                tenant_id=tenant_id(target),
                name="bench",
                scopes=["read"],
                now=SystemClock().now(),
            )
    finally:
        await engine.dispose()
    return key, navs


# -- the hubs -------------------------------------------------------------------------------


class Hub:
    """One ``sportello serve --no-workers`` process."""

    def __init__(self, label: str, config: Path, port: int) -> None:
        self.label, self.config, self.port = label, config, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = config.with_name(f"serve-{port}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = self.ready = float("nan")

    async def start(self, session: aiohttp.ClientSession, limit: float) -> None:
        t0 = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SPORTELLO, "serve", "--config", str(self.config), "--no-workers"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = await self._until(session, "/healthz", t0, limit)
        self.ready = await self._until(session, "/readyz", t0, limit)

    async def _until(
        self, session: aiohttp.ClientSession, path: str, t0: float, limit: float
    ) -> float:
        assert self.proc is not None
        while time.perf_counter() - t0 < limit:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited; its log:\n{self.log.read_text()[-4000:]}")
            try:
                async with session.get(self.url + path) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{self.label}: no 200 on {path} within {limit:g} s; its log:\n{tail}")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the requests ---------------------------------------------------------------------------


def verify_body(fc: str, nav: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:pafn="{NS}"><soapenv:Body><pafn:paVerifyPaymentNoticeReq>'
        f"<idPA>{fc}</idPA><idBrokerPA>{fc}</idBrokerPA><idStation>{fc}_01</idStation>"
        f"<qrCode><fiscalCode>{fc}</fiscalCode><noticeNumber>{nav}</noticeNumber></qrCode>"
        "</pafn:paVerifyPaymentNoticeReq></soapenv:Body></soapenv:Envelope>"
    ).encode()


class Request:
    """One kind of request for the target tenant: (method, path, body, headers) per call."""

    def __init__(self, name: str, target: int, key: str, navs: list[str], positions: int):
        self.name, self.n = name, 0
        tid, fc = tenant_id(target), fiscal_code(target)
        if name == "SPID metadata":
            self.calls = [("GET", f"/t/{tid}/spid/metadata", None, {}, b"EntityDescriptor")]
        elif name == "station verify":
            headers = {
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '"paVerifyPaymentNotice"',
                "Ocp-Apim-Subscription-Key": STATION_KEY,
            }
            self.calls = [
                ("POST", f"/t/{tid}/pagopa/station", verify_body(fc, nav), headers, b"OK</outcome>")
                for nav in navs
            ]
        else:
            headers = {"Authorization": f"Bearer {key}"}
            path = f"/api/v1/tenants/{tid}/outbox?limit=10"
            self.calls = [("GET", path, None, headers, b'"items"')]

    def next(self) -> tuple[str, str, bytes | None, dict[str, str], bytes]:
        self.n += 1
        return self.calls[self.n % len(self.calls)]


async def burst(
    session: aiohttp.ClientSession, base: str, req: Request, seconds: float, clients: int
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            method, path, body, headers, expect = req.next()
            t0 = time.perf_counter()
            async with session.request(method, base + path, data=body, headers=headers) as resp:
                text = await resp.read()
            latencies.append(time.perf_counter() - t0)
            if resp.status != 200 or expect not in text:
                raise SystemExit(f"{req.name} on {base}: {resp.status} {text[:300]!r}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def compare(
    session: aiohttp.ClientSession,
    one: Hub,
    many: Hub,
    req: Request,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """p50 (ms) of the one-tenant and the many-tenant hub, bursts alternating."""
    for hub in (one, many):  # warm-up
        await burst(session, hub.url, req, 0.3, args.clients)
    got: dict[str, list[float]] = {"one": [], "many": []}
    for r in range(args.rounds):
        order = [("one", one), ("many", many)] if r % 2 == 0 else [("many", many), ("one", one)]
        for label, hub in order:
            got[label] += await burst(session, hub.url, req, args.seconds, args.clients)
    return statistics.median(got["one"]) * 1000, statistics.median(got["many"]) * 1000


async def reload_time(
    session: aiohttp.ClientSession,
    replicas: list[Hub],
    folder: Path,
    target: int,
    shared: Path,
    db_url: str,
) -> tuple[float, float]:
    """Change the target tenant's name and run `sportello tenants reload`: (seconds the
    command took, seconds from the generation moving in the database until every replica
    serves the new SP metadata)."""
    from sportello import tenant_store
    from sportello.config import DatabaseSettings
    from sportello.db import create_engine, reading

    new_name = f"Comune Rinominato {uuid.uuid4().hex[:8]}"
    path = folder / "tenants" / f"{tenant_id(target)}.toml"
    path.write_text(tenant_toml(target, shared, name=new_name))
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with reading(engine) as conn:
            before = await tenant_store.generation(conn)
        t_cli = time.perf_counter()
        command = asyncio.ensure_future(
            asyncio.to_thread(
                subprocess.run,
                [SPORTELLO, "tenants", "reload", "--config", str(folder / "sportello.toml")],
                capture_output=True,
            )
        )
        moved = None
        while moved is None and time.perf_counter() - t_cli < 120:
            async with reading(engine) as conn:
                if await tenant_store.generation(conn) != before:
                    moved = time.perf_counter()
            if moved is None:
                if command.done() and command.result().returncode != 0:
                    raise SystemExit(f"tenants reload failed: {command.result().stderr.decode()}")
                await asyncio.sleep(0.01)
        if moved is None:
            raise SystemExit("the configuration generation did not move within 120 s")
        waiting = {h.url for h in replicas}
        url = f"/t/{tenant_id(target)}/spid/metadata"
        while waiting and time.perf_counter() - moved < 60:
            for base in list(waiting):
                async with session.get(base + url) as resp:
                    if resp.status == 200 and new_name.encode() in await resp.read():
                        waiting.discard(base)
            await asyncio.sleep(0.01)
        applied = time.perf_counter() - moved
        if waiting:
            raise SystemExit(f"reload not seen within 60 s on {sorted(waiting)}")
        done = await command
        if done.returncode != 0:
            raise SystemExit(f"tenants reload failed: {done.stderr.decode()}")
        return time.perf_counter() - t_cli, applied
    finally:
        await engine.dispose()


# -- databases ------------------------------------------------------------------------------


async def pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"bench_tenants_{uuid.uuid4().hex[:8]}"
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one scenario ---------------------------------------------------------------------------


async def scenario(
    backend: str, count: int, shared: Path, tmp: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    label = f"{'SQLite' if backend == 'sqlite' else 'PostgreSQL'}, {count:,} tenants"
    target = (count + 1) // 2
    pg_name = None
    if backend == "sqlite":
        db_url = f"sqlite+aiosqlite:///{tmp / f'hub-{backend}-{count}.sqlite'}"
    else:
        pg_name, db_url = await pg_database()
    hubs: list[Hub] = []
    figures: list[dict[str, Any]] = []
    try:
        one_dir, many_dir = tmp / f"{backend}-{count}-one", tmp / f"{backend}-{count}-many"
        t0 = time.perf_counter()
        one_port, many_port, second_port = free_port(), free_port(), free_port()
        one_cfg = write_config(one_dir, db_url, one_port, [target], shared)
        many_cfg = write_config(many_dir, db_url, many_port, list(range(1, count + 1)), shared)
        second_cfg = many_dir / "replica2.toml"
        second_cfg.write_text(
            many_cfg.read_text()
            .replace(f"port = {many_port}", f"port = {second_port}")
            .replace(f":{many_port}", f":{second_port}")
        )
        key, navs = await prepare_database(one_cfg, target, args.positions)
        print(
            f"{label} (files and database {time.perf_counter() - t0:.1f} s; "
            f"tenant {tenant_id(target)} measured):",
            flush=True,
        )
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=args.clients * 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            one = Hub("one-tenant hub", one_cfg, one_port)
            hubs.append(one)
            await one.start(session, args.startup_timeout)
            many = Hub(f"{count}-tenant hub", many_cfg, many_port)
            hubs.append(many)
            await many.start(session, args.startup_timeout)
            print(
                f"  start-up     one tenant {one.started:5.2f} s (ready {one.ready:5.2f} s)   "
                f"{count:,} tenants {many.started:5.2f} s (ready {many.ready:5.2f} s)",
                flush=True,
            )
            figures.append(
                {
                    "name": f"{label}: start-up",
                    "value": round(many.started, 2),
                    "unit": "s",
                    "baseline": round(one.started, 2),
                    "baseline_name": "one-tenant hub",
                    "goal": f"< {START_GOAL:g} s",
                    "met": many.started < START_GOAL,
                }
            )
            figures.append(
                {
                    "name": f"{label}: ready (/readyz 200)",
                    "value": round(many.ready, 2),
                    "unit": "s",
                    "baseline": round(one.ready, 2),
                    "baseline_name": "one-tenant hub",
                }
            )
            for name in args.requests.split(","):
                req = Request(name, target, key, navs, args.positions)
                p_one, p_many = await compare(session, one, many, req, args)
                ratio = p_many / p_one
                print(
                    f"  {name:<14} p50 one tenant {p_one:6.2f} ms   {count:,} tenants "
                    f"{p_many:6.2f} ms   {ratio:.2f}x",
                    flush=True,
                )
                figures.append(
                    {
                        "name": f"{label}: {name} p50",
                        "value": round(p_many, 2),
                        "unit": "ms",
                        "baseline": round(p_one, 2),
                        "baseline_name": "one-tenant hub",
                        "ratio": round(ratio, 2),
                        "goal": f"<= {RATIO_GOAL:g}x one tenant",
                        "met": ratio <= RATIO_GOAL,
                    }
                )
            rss_one, rss_many = one.rss_mb(), many.rss_mb()
            print(
                f"  RSS          one tenant {rss_one:5.0f} MB   {count:,} tenants "
                f"{rss_many:5.0f} MB",
                flush=True,
            )
            figures.append(
                {
                    "name": f"{label}: RSS per replica",
                    "value": round(rss_many),
                    "unit": "MB",
                    "baseline": round(rss_one),
                    "baseline_name": "one-tenant hub",
                    "goal": f"< {RSS_GOAL_MB:,.0f} MB",
                    "met": rss_many < RSS_GOAL_MB,
                }
            )
            one.stop()
            second = Hub(f"{count}-tenant replica 2", second_cfg, second_port)
            hubs.append(second)
            await second.start(session, args.startup_timeout)
            cli, took = await reload_time(session, [many, second], many_dir, target, shared, db_url)
            print(
                f"  reload       one tenant changed: both replicas serve it {took:.2f} s after "
                f"the generation moved (polled every 2 s; `sportello tenants reload`, "
                f"which validates every file first, took {cli:.2f} s)",
                flush=True,
            )
            figures.append(
                {
                    "name": f"{label}: reload of one tenant, every replica",
                    "value": round(took, 2),
                    "unit": "s",
                    "goal": f"< {RELOAD_GOAL:g} s",
                    "met": took < RELOAD_GOAL,
                }
            )
    finally:
        for hub in hubs:
            hub.stop()
        if pg_name:
            await drop_pg(pg_name)
    return figures


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-tenants-"))
    print(
        f"tenants at scale: {args.clients} clients, {args.rounds} rounds of {args.seconds:g} s "
        f"per hub and request, loopback; load average {os.getloadavg()[0]:.2f} "
        "(compare ratios to the one-tenant hub, not absolute times, across runs)",
        flush=True,
    )
    try:
        shared = tmp / "shared"
        shared.mkdir()
        make_material(shared)
        figures: list[dict[str, Any]] = []
        for item in args.scenarios.split(","):
            backend, count = item.split(":")
            figures += await scenario(backend, int(count), shared, tmp, args)
        if args.json:
            params = (
                f"{args.scenarios}; {args.clients} clients, {args.rounds} x {args.seconds:g} s "
                "per hub and request; every platform configured per tenant"
            )
            result = {"bench": "tenants", "params": params, "figures": figures}
            args.json.write_text(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        default="postgresql:1000,postgresql:8000,sqlite:1000",
        help="backend:count, comma-separated",
    )
    parser.add_argument(
        "--requests",
        default="SPID metadata,station verify,API read",
        help="which requests to time, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    asyncio.run(main(parser.parse_args()))

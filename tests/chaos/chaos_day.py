"""`make chaos`: a comune's busy day while the platforms misbehave and hub replicas are killed.

    .venv/bin/python tests/chaos/chaos_day.py                 # the long form (docs/chaos.md)
    .venv/bin/python tests/chaos/chaos_day.py --positions 100 --payments 30 --kills 1   # short

What runs (this process, plus two ``sportello serve`` replicas as child processes):

- a fresh PostgreSQL database ``chaos_<pid>_<hex>`` (dropped at the end), migrated once; in
  the long form on a private PostgreSQL server of this run (initdb in a temporary folder,
  restarted once during the day; ``--no-pg-restart``: the shared server, no restart);
- the sandboxes, in this process, on loopback: pagoPA (the Node, FdR), App IO, PDND, ANPR,
  the SPID IdP, SEND; a webhook sink that fails at times (500s, 429s, a connection dropped before
  the request is read or after it was read and processed, a slow answer);
- two hub replicas (``sportello serve``: HTTP and outbox workers) on the same database,
  behind a small round-robin balancer in this process, which is the hub's public URL (the
  Node's station, the SAML entityID and ACS, the API): a replica that refuses connections
  is skipped; a request cut by a kill gets a 502, as behind a real load balancer;
- the day: TARI positions imported from the accounting CSV; an App IO campaign about them
  (one message per position, with its notice number and amount); payments through the Node
  (some with duplicate receipts, some Stand-In), which retries receipts that did not get
  through; every receipt forwarded to the accounting CSV and announced by a signed webhook;
  plain webhook events; resident look-ups through the API (PDND voucher, ANPR, audit log);
  SPID logins, each a browser of its own, whose AuthnRequest and Response may pass through
  different replicas; SEND fines (``sportello send import`` at a random moment, an act PDF
  each). App IO answers 5xx, 429, hangs past the hub's timeout, or fails after processing;
  ANPR answers 503 and 429; SEND answers 5xx and 429 and drops answers after storing the
  request or the upload; again at every kill;
- a replica is SIGKILLed at random moments spread over the whole day (``--kills``): each
  kill waits for a random share of the day's work to be done (payments, look-ups, logins,
  the campaign, the fines, the outbox's jobs), so it may hit any phase, the drain
  included; it is restarted a moment later. In the long form PostgreSQL is restarted once
  too, between 20 % and 80 % of the day.

Then it waits for everything to settle and counts, per platform, from the sandboxes' own
records (the Node's receipts, the IO sandbox's messages, the sink's log, the accounting
file, ANPR's call log, the IdP's sessions, SEND's notifications) against what the hub
stored: sent, done, retried, unknown (with the reason), lost, doubled. Exit 1 if anything
is lost, or doubled where the platform gives a key (pagoPA's receiptId, the webhooks'
Idempotency-Key, the receipt forwarded to accounting, a SAML assertion, SEND's
paProtocolNumber).

Not in this run (docs/chaos.md): faults injected in PDND's token server, CIE logins.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from sqlalchemy import func, select

SPORTELLO = str(Path(sys.executable).with_name("sportello"))
TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # run as a script: tests/factories.py makes the SP's keys
    sys.path.insert(0, str(TESTS))
PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"
XSD_DIR = SPECS / "pagopa" / "wsdl" / "xsd"
TENANT = "chaos"
SEND_KEY_ENV = "SPORTELLO_CHAOS_SEND_KEY"
SEND_API_KEY = "chaos-send-api-key"
SEND_PURPOSE = "6e1f0c2a-4b3d-4c5e-9f60-718293a4b5c6"
SEND_DONE = {"accepted", "refused", "failed", "cancelled"}
EC = "77777777777"
BROKER = "77777777777"
STATION = "77777777777_01"
PROVINCE = "80000000001"
IO_KEY_ENV = "SPORTELLO_CHAOS_IO_KEY"
PDND_KEY_ENV = "SPORTELLO_CHAOS_PDND_KEY"
ANPR_DOOR = "/govway/rest/in/MinInternoPortaANPR"
PURPOSES = {
    "C030": "0b7a3f2e-1c4d-4e5f-8a6b-7c8d9e0f1a2b",
    "C021": "2d9c5b4a-3e6f-4071-8c8d-9e0f1a2b3c4d",
}
WEBHOOK_SECRET_ENV = "SPORTELLO_CHAOS_WEBHOOK_SECRET"
LEASE = 3.0
PDND_CLIENT_ID = "5c0c53b4-7a51-4f7e-9c43-0d6f2b7d2a10"


def iban_with(abi: str, account: str) -> str:
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


@dataclass
class Plan:
    positions: int = 1000
    payments: int = 300
    webhooks: int = 300
    lookups: int = 200
    logins: int = 100
    kills: int = 3
    fines: int = 200
    seed: int = 0
    settle_timeout: float = 240.0
    # restart PostgreSQL once during the day: only on a private server this run starts (never
    # the shared one: docs/chaos.md); the long form does it, the short form does not
    pg_restart: bool = False


@dataclass
class Row:
    """One platform's line of the summary."""

    platform: str
    sent: int = 0
    done: int = 0
    retried: int = 0
    unknown: int = 0
    lost: int = 0
    doubled: int = 0
    keyed: bool = True  # the platform gives an idempotency key: doubled must be 0
    reasons: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and (self.doubled == 0 or not self.keyed)


# --- the sink -----------------------------------------------------------------------------
class FlakySink:
    """A tenant's webhook endpoint that misbehaves in every way a real one does."""

    def __init__(self, rng: random.Random, fail_share: float = 0.25) -> None:
        self.rng = rng
        self.fail_share = fail_share
        self.log: list[dict[str, Any]] = []  # every request that reached the handler
        self.processed: dict[str, list[dict[str, Any]]] = defaultdict(list)  # key -> bodies

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key", "")
        roll = self.rng.random()
        share = self.fail_share
        if roll < share * 0.25:  # dropped before the request is read
            self.log.append({"key": key, "outcome": "dropped-before"})
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        body = await request.json()
        if roll < share * 0.45:  # read, processed, then the connection drops
            self.processed[key].append(body)
            self.log.append({"key": key, "outcome": "dropped-after"})
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if roll < share * 0.75:
            self.log.append({"key": key, "outcome": "500"})
            return web.Response(status=500, text="sink down")
        if roll < share:
            self.log.append({"key": key, "outcome": "429"})
            return web.Response(status=429, headers={"Retry-After": "1"})
        if self.rng.random() < 0.02:
            await asyncio.sleep(0.5)  # slow, still within the hub's timeout
        self.processed[key].append(body)
        self.log.append({"key": key, "outcome": "ok"})
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


# --- the replicas and their load balancer -------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, name: str, config: Path, log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.config = config
        self.port = free_port()
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SPORTELLO, "serve", "--config", str(self.config), "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while True:
                if not self.alive:
                    raise RuntimeError(
                        f"replica {self.name} exited: {self.log.read_text()[-2000:]}"
                    )
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)


class Balancer:
    """Round-robin over the replicas; a replica that does not answer is skipped."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        # no cookie jar (each browser keeps its own), bodies passed through as they are
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.turn = 0
        self.failovers = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        first = self.turn
        self.turn += 1
        for k in range(len(self.replicas)):  # each replica tried at most once
            replica = self.replicas[(first + k) % len(self.replicas)]
            url = f"http://127.0.0.1:{replica.port}{request.path_qs}"
            try:
                async with self.session.request(
                    request.method, url, data=body, headers=headers, allow_redirects=False
                ) as r:
                    payload = await r.read()
                    out = CIMultiDict(
                        (k, v)
                        for k, v in r.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection")
                    )
                    return web.Response(status=r.status, body=payload, headers=out)
            except aiohttp.ClientConnectorError:
                self.failovers += 1  # nothing was sent: the other replica may take it
                continue
            except (aiohttp.ClientError, TimeoutError):
                # sent, and the replica died before answering: the outcome is unknown to the
                # caller, as behind a real load balancer (502)
                return web.Response(status=502, text="replica went away")
        return web.Response(status=503, text="no replica")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


# --- configuration and data ---------------------------------------------------------------
def toml_value(value: Any) -> str:
    """Strings, numbers, booleans and lists of them (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def toml_table(header: str, table: dict[str, Any]) -> str:
    return f"[{header}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())


def write_config(
    tmp: Path,
    db_url: str,
    io_url: str,
    sink_url: str,
    fdr_url: str,
    pdnd_url: str,
    anpr_url: str,
    public_url: str,
    tail: str,
) -> Path:
    cfg = tmp / "hub.toml"
    cfg.write_text(
        f"""
[server]
host = "127.0.0.1"
public_url = "{public_url}"

[database]
url = "{db_url}"

[outbox]
concurrency = 32
lease_seconds = {LEASE}
poll_interval = 0.05
backoff_base = 0.2
backoff_cap = 2
http_timeout = 5
max_attempts = 40

[logging]
level = "WARNING"

[[tenants]]
id = "{TENANT}"
name = "Comune di Caos"
ipa_code = "c_caos"
fiscal_code = "{EC}"
cadastral_code = "Z999"

[[tenants.webhooks]]
url = "{sink_url}"
secret = {{ env = "{WEBHOOK_SECRET_ENV}" }}
events = ["*"]

[tenants.io]
base_url = "{io_url}"
rate_limit = 0
status_poll_attempts = 0
services = [{{ id = "01DEMOSERVICE0000000000000", key = {{ env = "{IO_KEY_ENV}" }} }}]

[tenants.pagopa]
ec_fiscal_code = "{EC}"
broker_id = "{BROKER}"
station_id = "{STATION}"
segregation_code = "01"
mode = "station"
fdr_base_url = "{fdr_url}"
fdr_api_key = {{ env = "SPORTELLO_CHAOS_FDR_KEY" }}

[tenants.pdnd]
client_id = "{PDND_CLIENT_ID}"
key = {{ env = "{PDND_KEY_ENV}" }}
token_url = "{pdnd_url}/token.oauth2"
assertion_audience = "auth.sandbox.interop.pagopa.local/client-assertion"

[tenants.pdnd.purposes]
C030 = "{PURPOSES["C030"]}"
C021 = "{PURPOSES["C021"]}"

[tenants.anpr]
base_url = "{anpr_url}{ANPR_DOOR}-PDND"
user_location = "chaos"

[tenants.adapters.accounting]
plugin = "csv"

[tenants.adapters.accounting.options]
path = "{tmp / "positions.csv"}"
receipts_path = "{tmp / "receipts.csv"}"
company_name = "Comune di Caos"
fiscal_code = "{EC}"

{tail}
"""
    )
    return cfg


def write_positions(path: Path, debtors: list[str]) -> None:
    """One TARI instalment per debtor (TARI + TEFA to the province)."""
    due = datetime.now(UTC).date() + timedelta(days=60)
    iban, province_iban = iban_with("05428", "000000123456"), iban_with("05428", "000000654321")
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow(
            "iupd debtor_fiscal_code debtor_name description installment due_date "
            "transfer1_amount transfer1_iban transfer1_category transfer2_amount "
            "transfer2_fiscal_code transfer2_iban transfer2_category".split()
        )
        for i, cf in enumerate(debtors):
            tari = 9_000 + (i % 50) * 100
            tefa = tari * 5 // 100
            out.writerow(
                [
                    f"TARI2026-{i:05d}",
                    cf,
                    f"Contribuente {i}",
                    "TARI 2026",
                    "1",
                    due.isoformat(),
                    f"{tari // 100},{tari % 100:02d}",
                    iban,
                    "9/0101101IM/",
                    f"{tefa // 100},{tefa % 100:02d}",
                    PROVINCE,
                    province_iban,
                    "9/0201102IM/",
                ]
            )


def _act(i: int) -> bytes:
    """A small PDF act (SEND's twin checks the header, the hub the checksum)."""
    text = f"Verbale n. {i:06d}/2026 - art. 7 Codice della strada".encode()
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n3 0 obj<</Length "
        + str(len(text)).encode()
        + b">>stream\n"
        + text
        + b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def write_fines(path: Path, documents: Path, debtors: list[str], count: int) -> list[str]:
    """Traffic fines for `sportello send import` (the reference CSV source), an act each;
    a quarter by post (no PEC). Their protocol numbers."""
    documents.mkdir(exist_ok=True)
    protocols = []
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow(
            "paProtocolNumber subject taxonomyCode document recipientType taxId "
            "denomination address zip municipality province digitalDomicile".split()
        )
        for i in range(count):
            name = f"verbale-{i:06d}.pdf"
            (documents / name).write_bytes(_act(i))
            protocol = f"CDS-CAOS-{i:06d}"
            protocols.append(protocol)
            out.writerow(
                [
                    protocol,
                    f"Verbale di accertamento n. {i:06d}/2026",
                    "010101P",
                    name,
                    "PF",
                    debtors[i % len(debtors)],
                    f"Trasgressore {i}",
                    f"Via Roma {i + 1}",
                    "00100",
                    "Roma",
                    "RM",
                    f"trasgressore{i}@pec.example.it" if i % 4 else "",
                ]
            )
    return protocols


class PrivatePostgres:
    """A PostgreSQL server of this run only (initdb in a temporary folder, a free port), so
    the day can restart it without touching the shared server other work uses."""

    def __init__(self) -> None:
        self.bin = self._bin()
        self.dir = Path(tempfile.mkdtemp(prefix="sportello-chaos-pg-"))
        self.port = free_port()
        self.user = "postgres"

    @staticmethod
    def _bin() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            raise RuntimeError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        return found[-1].parent

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if os.geteuid() == 0:
            subprocess.run(["chown", self.user, str(self.dir)], check=True)
        data = str(self.dir / "data")
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        args = ["pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log")]
        self._run(*args, "-o", options, "-w", "-m", "fast", action)

    def restart(self) -> None:
        self._pg_ctl("restart")

    def stop(self) -> None:
        try:
            self._pg_ctl("stop")
        finally:
            subprocess.run(["rm", "-rf", str(self.dir)], check=False)


async def create_database(admin: str = PG_ADMIN) -> tuple[str, str]:
    name = f"chaos_{os.getpid()}_{random.randrange(16**6):06x}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_database(name: str, admin: str = PG_ADMIN) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- the day ------------------------------------------------------------------------------
async def run_day(plan: Plan, say: Any = print, db_url: str | None = None) -> list[Row]:
    """The whole day; ``db_url``: an empty PostgreSQL database to use (default: a fresh
    ``chaos_<pid>_<hex>`` database, dropped at the end)."""
    from factories import login_section

    from sportello import apikeys, migrate
    from sportello.config import parse_config
    from sportello.connectors.pdnd.keys import generate_key
    from sportello.db import create_engine
    from sportello.outbox import store
    from sportello.outbox.store import NewJob
    from sportello.platforms.io import campaigns
    from sportello.platforms.pagopa.operations import import_positions_file
    from sportello.platforms.pagopa.store import PagopaStore
    from sportello.sandbox.anpr.app import ANPR_STATE, modi_audience_for
    from sportello.sandbox.anpr.app import create_app as anpr_sandbox
    from sportello.sandbox.anpr.population import generate as anpr_population
    from sportello.sandbox.idp.app import create_app as idp_sandbox
    from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM
    from sportello.sandbox.idp.state import STATE as IDP_STATE
    from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID, STATE
    from sportello.sandbox.io.app import create_app as io_sandbox
    from sportello.sandbox.io.population import Population
    from sportello.sandbox.pagopa.app import DEFAULT_FDR_API_KEY
    from sportello.sandbox.pagopa.app import create_app as pagopa_sandbox
    from sportello.sandbox.pagopa.fdr_routes import FDR_PREFIX
    from sportello.sandbox.pagopa.node import NodeSettings
    from sportello.sandbox.pdnd.app import create_app as pdnd_sandbox
    from sportello.sandbox.send.app import SEND_STATE, Sender
    from sportello.sandbox.send.app import create_app as send_sandbox

    seed = plan.seed or random.randrange(1, 1_000_000)
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="sportello-chaos-"))
    say(f"chaos: seed {seed} (the same day again: --seed {seed}); working directory {tmp}")
    db_name = None
    private_pg: PrivatePostgres | None = None
    admin = PG_ADMIN
    if plan.pg_restart:
        if db_url is not None:
            raise ValueError("pg_restart needs the run's own server: no db_url")
        private_pg = PrivatePostgres()
        admin = private_pg.start()
        say(f"chaos: private PostgreSQL on port {private_pg.port} (restarted during the day)")
    if db_url is None:
        db_name, db_url = await create_database(admin)
    population = Population.generate(
        plan.positions, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0
    )
    debtors = [c.fiscal_code for c in population]
    io_server = TestServer(io_sandbox(population=population, rate_limit=0), host="127.0.0.1")
    node_settings = NodeSettings(retry_interval=0.5, max_attempts=50, send_rt_timeout=5)
    pagopa_server = TestServer(
        pagopa_sandbox(
            processing_delay=0,
            xsd_dir=XSD_DIR if XSD_DIR.is_dir() else None,
            node_settings=node_settings,
        ),
        host="127.0.0.1",
    )
    sink = FlakySink(rng)
    sink_server = TestServer(sink.app(), host="127.0.0.1")
    pdnd_server = TestServer(pdnd_sandbox(rate_limit=None), host="127.0.0.1")
    residents = anpr_population(seed=11, size=max(60, plan.lookups // 4))
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    send_server: TestServer | None = None
    hub_port = free_port()  # the balancer's: the hub's public URL (SAML entityID, ACS)
    hub_url = f"http://127.0.0.1:{hub_port}"
    anpr_server: TestServer | None = None
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
    replicas: list[Replica] = []
    balancer_server: TestServer | None = None
    balancer: Balancer | None = None
    engine = None
    try:
        for server in (io_server, pagopa_server, sink_server, pdnd_server, idp_server):
            await server.start_server()
        idp_url = str(idp_server.make_url("")).rstrip("/")
        spid = login_section(
            tmp / "keys" / "spid",
            hub_url=hub_url,
            tenant_id=TENANT,
            kind="spid",
            idp_metadata=[f"{idp_url}/spid/metadata"],
            return_urls=["https://app.comune.example/callback"],
        )
        tail = (
            toml_table("tenants.spid", spid)
            + "\n"
            + toml_table("idps", {"signing_certs": [FEDERATION_CERT_PEM.decode()]})
        )
        pdnd_url = str(pdnd_server.make_url("")).rstrip("/")
        anpr_server = TestServer(
            anpr_sandbox(
                population=residents,
                voucher_key=pdnd_url + "/.well-known/jwks.json",
                client_keys=pdnd_url + "/keys",
            ),
            host="127.0.0.1",
        )
        await anpr_server.start_server()
        anpr_url = str(anpr_server.make_url("")).rstrip("/")
        send_server = TestServer(
            send_sandbox(
                senders=[Sender(SEND_API_KEY, EC, "Comune di Caos")],
                pdnd_url=pdnd_url,
                acceptance_delay=0.2,
                step_delay=0.0,
            ),
            host="127.0.0.1",
        )
        await send_server.start_server()
        send_url = str(send_server.make_url("")).rstrip("/")
        tail = (
            toml_table(
                "tenants.send",
                {
                    "base_url": send_url,
                    "purpose_id": SEND_PURPOSE,
                    "acceptance_poll_seconds": 0.3,
                    "stream_poll_seconds": 3600,
                },
            )
            + f'api_key = {{ env = "{SEND_KEY_ENV}" }}\n\n'
            + tail
        )
        private_pem, public_pem = generate_key()
        await _post(
            session,
            pdnd_url + "/__sandbox/clients",
            {
                "client_id": PDND_CLIENT_ID,
                "public_key": public_pem.decode(),
                "purposes": {
                    purpose: modi_audience_for(anpr_url + ANPR_DOOR, code)
                    for code, purpose in PURPOSES.items()
                }
                | {SEND_PURPOSE: send_url},
            },
        )
        env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
        env |= {
            IO_KEY_ENV: DEMO_PRIMARY_KEY,
            PDND_KEY_ENV: private_pem.decode(),
            WEBHOOK_SECRET_ENV: "chaos-webhook-secret",
            "SPORTELLO_CHAOS_FDR_KEY": DEFAULT_FDR_API_KEY,
            SEND_KEY_ENV: SEND_API_KEY,
        }
        if XSD_DIR.is_dir():
            env["SPORTELLO_PAGOPA_XSD_DIR"] = str(XSD_DIR)
        os.environ.update({k: env[k] for k in (IO_KEY_ENV, WEBHOOK_SECRET_ENV, SEND_KEY_ENV)})
        cfg_path = write_config(
            tmp,
            db_url,
            str(io_server.make_url("/api/v1")),
            str(sink_server.make_url("/hook")),
            str(pagopa_server.make_url(FDR_PREFIX)),
            pdnd_url,
            anpr_url,
            hub_url,
            tail,
        )
        config = parse_config(tomllib.loads(cfg_path.read_text()))
        engine = create_engine(config.database)
        await migrate.upgrade(engine)

        # 1. the TARI positions, imported from the accounting CSV
        write_positions(tmp / "positions.csv", debtors)
        created, _, errors = await import_positions_file(
            config, TENANT, tmp / "positions.csv", True
        )
        assert created == plan.positions and not errors, errors[:3]
        pagopa = PagopaStore(engine, config, _Clock())
        stored: list[Any] = []
        after = 0
        while page := await pagopa.list_positions(TENANT, after=after, limit=500):
            stored += page
            after = page[-1].id
        options = [p.options[0] for p in stored]
        say(f"chaos: {len(options)} TARI positions imported")

        # 2. the App IO campaign about them, and plain webhook events
        rows = "\n".join(
            f"{p.position.fiscal_code};;;{o.nav};{o.amount // 100},{o.amount % 100:02d};{i}"
            for i, (p, o) in enumerate(zip(stored, options, strict=True))
        )
        csv_text = "fiscal_code;expedition_date;due_date;notice_number;amount;rif\n" + rows
        template = campaigns.Template(
            "TARI 2026: il suo avviso",
            "Gentile contribuente, è disponibile l'avviso TARI 2026 del Comune di Caos. "
            "Può pagarlo con pagoPA dall'app. Riferimento {{ rif }}.",
        )
        now = datetime.now(UTC)
        prepared = campaigns.prepare(csv_text, template, source="tari.csv", now=now)
        assert not prepared.problems, prepared.problems[:3]
        webhook_url = str(sink_server.make_url("/hook"))
        async with engine.begin() as conn:
            campaign_id = await campaigns.create_campaign(
                conn,
                tenant_id=TENANT,
                service_id=DEMO_SERVICE_ID,
                name="TARI 2026",
                template=template,
                prepared=prepared,
                source="tari.csv",
                created_by="chaos",
                now=now,
            )
            await store.enqueue_many(
                conn,
                [
                    NewJob(
                        TENANT, "webhook", {"url": webhook_url, "event": "chaos", "data": {"n": i}}
                    )
                    for i in range(plan.webhooks)
                ],
                now=now,
                default_max_attempts=40,
            )
        # IO misbehaves from the start: errors, 429 bursts, hangs, and failures after the
        # message was already accepted (the hub cannot know: "unknown")
        await _io_faults(session, str(io_server.make_url("")), rng)

        # 3. two replicas, the Node calling them through the balancer
        for name in ("A", "B"):
            replicas.append(Replica(name, cfg_path, tmp / f"replica-{name}.log", env))
        for r in replicas:
            r.start()
        for r in replicas:
            await r.ready(session)
        balancer = Balancer(replicas)
        balancer_server = TestServer(balancer.app(), host="127.0.0.1", port=hub_port)
        await balancer_server.start_server()
        node = str(pagopa_server.make_url(""))
        station_url = str(balancer_server.make_url(f"/t/{TENANT}/pagopa/station"))
        await _post(
            session,
            node + "/__sandbox/stations",
            {EC: {"url": station_url, "broker_id": BROKER, "station_id": STATION}},
        )
        say(f"chaos: replicas A :{replicas[0].port}, B :{replicas[1].port}; campaign queued")

        # 4. payments (plain, with duplicate receipts, Stand-In), SEND fines, look-ups and
        # logins, while replicas are killed at random moments of the whole day
        chaos_done = asyncio.Event()
        io_url = str(io_server.make_url(""))
        phase: dict[str, str] = {"day": "payments, fines, look-ups, logins"}
        protocols = write_fines(tmp / "fines.csv", tmp / "atti", debtors, plan.fines)
        await _send_faults(session, send_url, rng)

        async def in_flight() -> str:
            async with engine.connect() as conn:
                counts = await store.counts_by_status(conn)
            await _io_faults(session, io_url, rng)  # and IO misbehaves again
            await _send_faults(session, send_url, rng)  # and SEND
            for fault in (
                {"service": "*", "status": 503, "count": 3},
                {"service": "*", "status": 429, "count": 2, "retry_after": 1},
            ):
                await _post(session, anpr_url + "/__sandbox/faults", fault)
            return (
                f"during {phase['day']}; outbox pending {counts.get('pending', 0)}, "
                f"running {counts.get('running', 0)}"
            )

        async def restart_pg() -> str:
            assert private_pg is not None and engine is not None
            started = time.monotonic()
            await asyncio.to_thread(private_pg.restart)
            await engine.dispose()  # this process's own pool: the replicas must cope alone
            return (
                f"PostgreSQL restarted in {time.monotonic() - started:.1f} s during {phase['day']}"
            )

        paying = rng.sample(options, min(plan.payments, len(options)))
        progress = Progress(plan, engine, len(paying))
        killer = asyncio.create_task(
            _killer(
                plan,
                replicas,
                session,
                rng,
                chaos_done,
                say,
                in_flight,
                progress,
                restart_pg if private_pg is not None else None,
            )
        )
        importing = asyncio.create_task(
            _import_fines(cfg_path, tmp / "fines.csv", tmp / "atti", env, rng, say)
        )
        async with engine.begin() as conn:
            api_key = await apikeys.create(
                conn,
                tenant_id=TENANT,
                name="anagrafe",
                scopes=["personal_data"],
                now=datetime.now(UTC),
            )
        people = [p.fiscal_code for p in residents.active()]
        looking = asyncio.create_task(
            _lookups(session, hub_url, api_key, people, plan.lookups, rng, progress)
        )
        logging_in = asyncio.create_task(_logins(hub_url, idp_url, plan.logins, rng, progress))
        pay_results = await _pay(session, node, paying, rng, progress)
        lookup_results = await looking
        login_results = await logging_in
        import_output = await importing
        phase["day"] = "the drain (the hub finishing its queue)"
        await chaos_done.wait()
        await killer
        for r in replicas:
            if not r.alive:
                r.start()
                await r.ready(session)
        # the platforms calm down; the hub must now finish everything
        async with session.delete(str(io_server.make_url("/__sandbox/faults"))):
            pass
        async with session.delete(send_url + "/__sandbox/faults"):
            pass
        sink.fail_share = 0.05
        say("chaos: kills over, waiting for the hub to settle")
        settled = await _settle(engine, session, node, plan.settle_timeout)
        say(f"chaos: settled={settled}")

        # 5. count, from the sandboxes' own records against what the hub stored
        return await _count(
            engine,
            session,
            node=node,
            io_state=io_server.app[STATE],
            campaign_id=campaign_id,
            sink=sink,
            receipts_csv=tmp / "receipts.csv",
            pay_results=pay_results,
            webhooks=plan.webhooks,
            failovers=balancer.failovers,
            lookup_results=lookup_results,
            anpr_calls=dict(anpr_server.app[ANPR_STATE].calls),
            login_results=login_results,
            idp_sessions=len(idp_server.app[IDP_STATE].sessions),
            send_url=send_url,
            send_twin=send_server.app[SEND_STATE],
            protocols=protocols,
            import_output=import_output,
        )
    finally:
        for r in replicas:
            r.stop()
        if balancer_server is not None:
            await balancer_server.close()
        if balancer is not None:
            await balancer.session.close()
        await session.close()
        for server in (sink_server, pagopa_server, io_server, pdnd_server, idp_server):
            await server.close()
        for extra in (anpr_server, send_server):
            if extra is not None:
                await extra.close()
        if engine is not None:
            await engine.dispose()
        if db_name is not None and private_pg is None:
            await drop_database(db_name, admin)
        if private_pg is not None:
            private_pg.stop()


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with session.post(url, json=body) as r:
        if r.status >= 300:
            raise RuntimeError(f"{url}: {r.status} {await r.text()}")
        return await r.json()


async def _io_faults(session: aiohttp.ClientSession, io: str, rng: random.Random) -> None:
    submit = ["submitMessageforUserWithFiscalCodeInBody"]
    for fault in (
        {"count": rng.randint(5, 15), "status": 503},
        {"count": rng.randint(10, 30), "status": 429},
        {"count": 3, "status": 503, "hang": 6},  # longer than the hub's 5 s timeout
        {"count": 5, "status": 500, "operations": ["getProfileByPOST"]},
        {"count": 4, "status": 503, "after_processing": True, "operations": submit},
        {"count": rng.randint(5, 15), "status": 500},
    ):
        await _post(session, io + "/__sandbox/faults", fault)


async def _send_faults(session: aiohttp.ClientSession, send: str, rng: random.Random) -> None:
    """SEND misbehaves: 5xx and 429s on the preload, the upload, the request and the
    acceptance check; answers dropped after the request or the upload was stored."""
    for fault in (
        {"mode": "fail", "status": 503, "count": rng.randint(3, 8)},
        {"mode": "fail", "status": 429, "count": rng.randint(3, 10), "retry_after": 0},
        {"mode": "fail", "status": 500, "count": 3, "operations": ["upload"]},
        {"mode": "drop", "count": rng.randint(2, 5), "operations": ["upload"]},
        {"mode": "drop", "count": rng.randint(2, 6), "operations": ["sendNewNotificationV26"]},
        {"mode": "lose", "status": 502, "count": 3, "operations": ["sendNewNotificationV26"]},
        {
            "mode": "fail",
            "status": 429,
            "count": 5,
            "retry_after": 0,
            "operations": ["retrieveNotificationRequestStatusV26"],
        },
    ):
        async with session.post(send + "/__sandbox/faults", json=fault) as r:
            if r.status != 201:
                raise RuntimeError(f"SEND faults: {r.status} {await r.text()}")


async def _import_fines(
    cfg: Path,
    fines: Path,
    documents: Path,
    env: dict[str, str],
    rng: random.Random,
    say: Any,
) -> str:
    """`sportello send import` at a random moment of the day, as an operator runs it; run
    again if it fails (a protocol number already queued is not queued twice)."""
    await asyncio.sleep(rng.uniform(0, 10))  # while the payments go on
    out = ""
    for attempt in range(1, 6):
        proc = await asyncio.create_subprocess_exec(
            SPORTELLO,
            "send",
            "import",
            TENANT,
            "--config",
            str(cfg),
            "--file",
            str(fines),
            "--documents",
            str(documents),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        raw, _ = await proc.communicate()
        out = raw.decode(errors="replace").strip()
        say(f"chaos: sportello send import (attempt {attempt}): exit {proc.returncode}: {out}")
        if proc.returncode == 0:
            return out
        await asyncio.sleep(2)
    return out


class Progress:
    """The share of the day's work done, so the kills land at random moments of the whole
    day whatever its speed: the mean of the payments, look-ups and logins made, the
    campaign's messages and the fines past sending, and the outbox's jobs done."""

    def __init__(self, plan: Plan, engine: Any, payments: int) -> None:
        self.plan = plan
        self.engine = engine
        self.totals = {"payments": payments, "lookups": plan.lookups, "logins": plan.logins}
        self.ticks: Counter[str] = Counter()
        self.db = {"campaign": 0.0, "fines": 0.0 if plan.fines else 1.0, "outbox": 0.0}

    def tick(self, what: str, n: int = 1) -> None:
        self.ticks[what] += n

    async def refresh(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from sportello.outbox import store
        from sportello.platforms.io.campaigns import QUEUED, SENDING
        from sportello.platforms.io.tables import io_messages
        from sportello.platforms.send.tables import send_notifications

        try:
            async with self.engine.connect() as conn:
                counts = await store.counts_by_status(conn)
                busy_io = (
                    await conn.execute(
                        select(func.count()).where(io_messages.c.status.in_([QUEUED, SENDING]))
                    )
                ).scalar_one()
                fines_done = (
                    await conn.execute(
                        select(func.count()).where(send_notifications.c.status.in_(SEND_DONE))
                    )
                ).scalar_one()
        except (SQLAlchemyError, OSError):  # PostgreSQL restarting: the last figures stand
            return
        total = sum(counts.values())
        self.db = {
            "campaign": 1 - busy_io / max(1, self.plan.positions),
            "fines": fines_done / max(1, self.plan.fines) if self.plan.fines else 1.0,
            "outbox": counts.get("done", 0) / total if total else 0.0,
        }

    def share(self) -> float:
        parts = [min(1.0, self.ticks[k] / n) if n else 1.0 for k, n in self.totals.items()]
        parts += list(self.db.values())
        return sum(parts) / len(parts)


async def _killer(
    plan: Plan,
    replicas: list[Replica],
    session: aiohttp.ClientSession,
    rng: random.Random,
    done: asyncio.Event,
    say: Any,
    in_flight: Any,
    progress: Progress,
    restart_pg: Any = None,
) -> None:
    """SIGKILLs (and a PostgreSQL restart) at random moments spread over the whole day:
    each waits for a random share of the day's work to be done (``Progress``), so it may
    land in the payments, the fines' import and sending, the look-ups and logins, or the
    drain after them. If the day stalls, the rest happen after ``settle_timeout``."""
    moments = sorted(
        [(rng.uniform(0.03, 0.95), "kill") for _ in range(plan.kills)]
        + ([(rng.uniform(0.2, 0.8), "pg")] if restart_pg else [])
    )
    started = time.monotonic()
    kills = 0
    try:
        for share, what in moments:
            while progress.share() < share and time.monotonic() - started < plan.settle_timeout:
                await asyncio.sleep(0.3)
                await progress.refresh()
            when = f"at {time.monotonic() - started:.0f} s, {progress.share():.0%} of the day"
            if what == "pg":
                say(f"chaos: {when}: {await restart_pg()}")
                continue
            kills += 1
            victim = rng.choice(replicas)
            victim.kill()
            say(
                f"chaos: {when}: SIGKILL {kills}/{plan.kills}: replica {victim.name} "
                f"({await in_flight()})"
            )
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            victim.start()
            await victim.ready(session)
    finally:
        done.set()


async def _pay(
    session: aiohttp.ClientSession,
    node: str,
    options: list[Any],
    rng: random.Random,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """The Node pays in small batches; every third batch with duplicate receipts."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(options), 10):
        chunk = options[start : start + 10]
        await _post(session, node + "/__sandbox/node", {"duplicate_receipts": start % 30 == 10})
        payments = []
        for o in chunk:
            p: dict[str, Any] = {"fiscalCode": EC, "noticeNumber": o.nav}
            if rng.random() < 0.2:
                p |= {"standIn": True, "amountCents": o.amount}
            payments.append(p)
        batch = await _post(
            session, node + "/psp/pay-batch", {"payments": payments, "concurrency": 4}
        )
        results += batch["results"]
        if progress is not None:
            progress.tick("payments", len(batch["results"]))
        await asyncio.sleep(rng.uniform(0.05, 0.4))
    await _post(session, node + "/__sandbox/node", {"duplicate_receipts": False})
    return results


async def _lookups(
    session: aiohttp.ClientSession,
    hub: str,
    api_key: str,
    people: list[str],
    n: int,
    rng: random.Random,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Resident look-ups through the balancer, two at a time, each with its own purpose
    (the protocol number of the file it is for), so its audit row can be found."""
    results: list[dict[str, Any]] = []
    todo = iter(range(n))

    async def lane() -> None:
        for i in todo:
            purpose = f"CHAOS.{i}"
            cf = rng.choice(people)
            url = f"{hub}/api/v1/tenants/{TENANT}/residents/{cf}"
            try:
                async with session.get(
                    url,
                    params={"purpose": purpose},
                    headers={"Authorization": f"Bearer {api_key}"},
                ) as r:
                    body = await r.text()
                    results.append({"purpose": purpose, "status": r.status, "body": body[:200]})
            except aiohttp.ClientError as exc:
                results.append({"purpose": purpose, "status": 0, "body": type(exc).__name__})
            if progress is not None:
                progress.tick("lookups")
            await asyncio.sleep(rng.uniform(0.01, 0.08))

    await asyncio.gather(lane(), lane())
    return results


async def _logins(
    hub: str, idp: str, n: int, rng: random.Random, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """SPID logins, one browser (cookie jar) each, through the balancer: the AuthnRequest
    may leave from one replica and the Response reach the other."""
    from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES

    results: list[dict[str, Any]] = []
    todo = iter(range(n))
    able = [i for i in DEFAULT_IDENTITIES if i.max_level >= 2]  # the tenant asks for level 2

    async def one() -> dict[str, Any]:
        jar = aiohttp.CookieJar(unsafe=True)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as browser:
            async with browser.get(
                f"{hub}/t/{TENANT}/spid/login",
                params={"idp": f"{idp}/spid"},
                allow_redirects=False,
            ) as r:
                if r.status != 302:
                    return {"step": "login", "status": r.status, "error": _detail(await r.text())}
                location = r.headers["Location"]
            async with browser.get(yarl.URL(location, encoded=True)) as page:
                if page.status != 200:
                    return {"step": "idp", "status": page.status}
                txn = page.headers["X-Sandbox-Txn"]
            identity = rng.choice(able).code
            async with browser.post(
                f"{idp}/spid/sso/answer",
                data={"txn": txn, "format": "json", "identity": identity},
            ) as r:
                answer = await r.json()
            async with browser.post(
                answer["acs_url"],
                data={"SAMLResponse": answer["SAMLResponse"], "RelayState": answer["RelayState"]},
            ) as r:
                text = await r.text()
                ok = r.status == 200 and "Accesso effettuato" in text
                return {"step": "acs", "status": r.status, "ok": ok, "error": _detail(text)}

    async def lane() -> None:
        for _ in todo:
            try:
                results.append(await one())
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
                results.append({"step": "error", "status": 0, "error": type(exc).__name__})
            if progress is not None:
                progress.tick("logins")
            await asyncio.sleep(rng.uniform(0.02, 0.1))

    await asyncio.gather(lane(), lane())
    return results


async def _settle(engine: Any, session: aiohttp.ClientSession, node: str, timeout: float) -> bool:
    from sportello.outbox import store
    from sportello.platforms.io.campaigns import QUEUED, SENDING
    from sportello.platforms.io.tables import io_messages
    from sportello.platforms.send.tables import send_notifications

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            counts = await store.counts_by_status(conn)
            busy_io = (
                await conn.execute(
                    select(func.count()).where(io_messages.c.status.in_([QUEUED, SENDING]))
                )
            ).scalar_one()
            busy_send = (
                await conn.execute(
                    select(func.count()).where(send_notifications.c.status.not_in(SEND_DONE))
                )
            ).scalar_one()
        async with session.get(node + "/__sandbox/receipts") as r:
            pending = (await r.json())["pending"]
        if not (counts.get("pending") or counts.get("running") or busy_io or busy_send or pending):
            return True
        await asyncio.sleep(0.5)
    return False


# --- counting -----------------------------------------------------------------------------
async def _count(
    engine: Any,
    session: aiohttp.ClientSession,
    *,
    node: str,
    io_state: Any,
    campaign_id: int,
    sink: FlakySink,
    receipts_csv: Path,
    pay_results: list[dict[str, Any]],
    webhooks: int,
    failovers: int,
    lookup_results: list[dict[str, Any]],
    anpr_calls: dict[str, int],
    login_results: list[dict[str, Any]],
    idp_sessions: int,
    send_url: str,
    send_twin: Any,
    protocols: list[str],
    import_output: str,
) -> list[Row]:
    from sportello.platforms.io import campaigns
    from sportello.platforms.login.tables import login_sessions
    from sportello.platforms.pagopa.tables import receipts
    from sportello.platforms.send.tables import send_notifications
    from sportello.schema import audit_log, outbox

    rows: list[Row] = []

    # pagoPA: the Node's receipts (each paid notice) against the hub's receipts
    async with session.get(node + "/__sandbox/receipts") as r:
        node_receipts = (await r.json())["receipts"]
    async with engine.connect() as conn:
        hub = (await conn.execute(select(receipts.c.receipt_id, receipts.c.nav))).all()
        outbox_rows = (
            await conn.execute(
                select(
                    outbox.c.kind,
                    outbox.c.status,
                    outbox.c.attempts,
                    outbox.c.idempotency_key,
                    outbox.c.payload,
                    outbox.c.last_error,
                )
            )
        ).all()
        report = await campaigns.report(conn, campaign_id)
        hub_sessions = (
            await conn.execute(
                select(func.count())
                .select_from(login_sessions)
                .where(login_sessions.c.kind == "spid")
            )
        ).scalar_one()
        audit_rows = (
            await conn.execute(
                select(audit_log.c.purpose, audit_log.c.outcome, audit_log.c.detail).where(
                    audit_log.c.purpose.like("CHAOS.%")
                )
            )
        ).all()
        audited = Counter(r.purpose for r in audit_rows)
        send_rows = (
            await conn.execute(
                select(
                    send_notifications.c.pa_protocol_number,
                    send_notifications.c.status,
                    send_notifications.c.iun,
                    send_notifications.c.errors,
                )
            )
        ).all()
    hub_ids = Counter(rid for rid, _ in hub)
    pg = Row("pagoPA receipts")
    pg.sent = len(node_receipts)
    for rec in node_receipts:
        pg.retried += max(0, int(rec["attempts"]) - 1)
        if rec["id"] in hub_ids:
            pg.done += 1
        elif rec["status"] == "delivered":
            pg.lost += 1  # the hub answered OK and has no receipt
            pg.details.append(f"lost: receipt {rec['id']} ({rec['noticeNumber']})")
        else:
            pg.unknown += 1
            pg.reasons[f"Node gave up: {str(rec['lastError'])[:60]}"] += 1
    pg.doubled = sum(1 for n in hub_ids.values() if n > 1)
    navs = Counter(nav for _, nav in hub)
    pg.doubled += sum(1 for n in navs.values() if n > 1)  # one notice paid twice
    ko = [r for r in pay_results if r.get("outcome") != "OK"]
    for r in ko:
        pg.reasons[f"payment refused at the Node: {r.get('faultCode')}"] += 1
    pg.details.append(
        f"{len(pay_results)} payments tried, {len(ko)} refused before payment (no money "
        f"taken: replica down or 502 at verify/activate); balancer fail-overs {failovers}"
    )
    rows.append(pg)

    # accounting: every hub receipt forwarded to the accounting file, once
    acc = Row("accounting forward")
    forwarded = _forwarded(receipts_csv)
    acc.sent = len(hub_ids)
    fwd_jobs = [o for o in outbox_rows if o.kind == "pagopa.receipt.forward"]
    acc.retried = sum(max(0, o.attempts - 1) for o in fwd_jobs)
    for rid in hub_ids:
        if forwarded.get(rid):
            acc.done += 1
        else:
            job = next((o for o in fwd_jobs if rid in json.dumps(o.payload)), None)
            if job is not None and job.status not in ("done",):
                acc.unknown += 1
                acc.reasons[f"forward {job.status}: {str(job.last_error)[:60]}"] += 1
            else:
                acc.lost += 1
                acc.details.append(f"lost: receipt {rid} never reached the accounting file")
    acc.doubled = sum(1 for n in forwarded.values() if n > 1)
    rows.append(acc)

    # App IO: the sandbox's messages against the hub's campaign rows
    io = Row("App IO campaign", keyed=False)
    arrivals = Counter(m.fiscal_code for m in io_state.messages.values())
    assert report is not None
    io.sent = len(report["messages"])
    calls = getattr(io_state, "calls", [])
    io.retried = sum(1 for c in calls if int(c.get("status", 200)) >= 429) if calls else 0
    for m in report["messages"]:
        status, cf = m["status"], m["fiscal_code"]
        if status == campaigns.SENT or status == campaigns.PROCESSED:
            if arrivals[cf]:
                io.done += 1
            else:
                io.lost += 1
                io.details.append(f"lost: {cf} is {status} in the hub, never reached IO")
        elif status == campaigns.UNKNOWN:
            io.unknown += 1
            io.reasons[
                f"unknown ({'reached IO' if arrivals[cf] else 'not at IO'}): {str(m['error'])[:50]}"
            ] += 1
        elif status in (campaigns.QUEUED, campaigns.SENDING):
            io.lost += 1
            io.details.append(f"lost: {cf} still {status} after settling")
        else:
            io.unknown += 1
            io.reasons[f"{status}: {str(m['error'])[:60]}"] += 1
    io.doubled = sum(1 for n in arrivals.values() if n > 1)
    if io.doubled:
        io.details.append(f"{io.doubled} citizens got the message twice (App IO gives no key)")
    rows.append(io)

    # webhooks: the sink's log against the hub's webhook jobs
    wh = Row("webhooks")
    hooks = [o for o in outbox_rows if o.kind == "webhook"]
    wh.sent = len(hooks)
    wh.retried = sum(1 for e in sink.log if e["outcome"] != "ok")
    by_event: dict[str, set[str]] = defaultdict(set)
    for key, bodies in sink.processed.items():
        for b in bodies:
            data = b.get("data") or {}
            if b.get("event") == "chaos":
                ident = f"n:{data.get('n')}"
            elif "receipt_id" in data:
                ident = f"receipt:{data['receipt_id']}"
            else:  # any other event: the same content twice under two keys is a double
                ident = f"{b.get('event')}:{json.dumps(data, sort_keys=True)}"
            by_event[ident].add(key)
    for o in hooks:
        if sink.processed.get(o.idempotency_key):
            wh.done += 1
        elif o.status in ("pending", "running"):
            wh.lost += 1
            wh.details.append(f"lost: webhook {o.idempotency_key} still {o.status}")
        elif o.status == "done":
            wh.lost += 1
            wh.details.append(f"lost: webhook {o.idempotency_key} done but never processed")
        else:
            wh.unknown += 1
            wh.reasons[f"{o.status}: {str(o.last_error)[:60]}"] += 1
    wh.doubled = sum(1 for keys in by_event.values() if len(keys) > 1)
    wh.details += [
        f"doubled: {event[:80]} under {len(keys)} keys"
        for event, keys in by_event.items()
        if len(keys) > 1
    ][:10]
    expected = {f"n:{i}" for i in range(webhooks)}
    missing = expected - set(by_event)
    if missing:
        wh.details.append(f"{len(missing)} plain events never processed by the sink")
    receipt_events = {e for e in by_event if e.startswith("receipt:")}
    missing_receipts = {f"receipt:{rid}" for rid in hub_ids} - receipt_events
    if missing_receipts:
        wh.details.append(f"{len(missing_receipts)} receipts not announced to the sink")
    repeats = sum(len(b) - 1 for b in sink.processed.values())
    wh.details.append(f"{repeats} deliveries repeated with the same key (deduplicable)")
    rows.append(wh)

    # resident look-ups: every answer given must be in the audit log, once
    # a look-up is a read with no key: a GET that reaches the hub twice (a client or proxy
    # retrying an idempotent request on a connection that dropped) is audited twice, truly
    rl = Row("resident look-ups", keyed=False)
    rl.sent = len(lookup_results)
    rl.retried = sum(n for outcome, n in anpr_calls.items() if outcome != "ok")
    for r in lookup_results:
        if r["status"] == 200:
            if audited.get(r["purpose"]):
                rl.done += 1
            else:
                rl.lost += 1  # personal data handed out with no audit row
                rl.details.append(f"lost: {r['purpose']} answered without an audit row")
        else:
            rl.unknown += 1
            rl.reasons[f"HTTP {r['status']}: {_detail(r['body'])}"] += 1
    rl.doubled = sum(1 for n in audited.values() if n > 1)
    rl.details += [
        f"doubled: {r.purpose} audited as {r.outcome} ({str(r.detail)[:50]})"
        for r in audit_rows
        if audited[r.purpose] > 1
    ][:10]
    rl.details.append(f"ANPR's own record of the calls: {anpr_calls}")
    rows.append(rl)

    # SPID logins: the IdP's sessions (one per Response it issued) against the hub's
    li = Row("SPID logins")
    li.sent = len(login_results)
    for r in login_results:
        if r.get("ok"):
            li.done += 1
            r.pop("error", None)
        else:
            li.unknown += 1
            li.reasons[f"{r['step']}: HTTP {r['status']} {r.get('error', '')}".strip()] += 1
    if hub_sessions < li.done:
        li.lost = li.done - hub_sessions  # a login shown as done with no session stored
        li.details.append(f"lost: {li.lost} logins succeeded with no session row")
    li.doubled = max(0, hub_sessions - idp_sessions)  # one assertion, two sessions
    li.details.append(f"IdP sessions {idp_sessions}, hub sessions {hub_sessions}")
    rows.append(li)

    # SEND fines: the twin's own record (every request it stored, its state and IUN) against
    # the hub's notifications; SEND gives a key (paProtocolNumber + idempotenceToken)
    async with session.get(send_url + "/__sandbox/notifications") as answer:
        records = (await answer.json())["notifications"]
    at_send: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        at_send[rec["paProtocolNumber"]].append(rec)
    hub_send = {r.pa_protocol_number: r for r in send_rows}
    se = Row("SEND fines")
    se.sent = len(protocols)
    se.retried = sum(1 for c in send_twin.calls if int(c.get("status", 200)) >= 429)
    accepted_there = {
        p for p, recs in at_send.items() if any(x["state"] == "ACCEPTED" for x in recs)
    }
    for p in protocols:
        mine = hub_send.get(p)
        theirs = at_send.get(p, [])
        if mine is None:
            se.lost += 1
            se.details.append(f"lost: {p} never queued (import: {import_output[:80]})")
        elif mine.status == "accepted":
            iuns = {x["iun"] for x in theirs if x["state"] == "ACCEPTED"}
            if iuns == {mine.iun}:
                se.done += 1
            else:
                se.lost += 1
                se.details.append(f"lost: {p} accepted in the hub ({mine.iun}), SEND has {iuns}")
        elif mine.status in ("refused", "failed", "cancelled"):
            se.unknown += 1
            se.reasons[f"{mine.status}: {str(mine.errors)[:60]}"] += 1
            if p in accepted_there:
                se.lost += 1  # SEND accepted it and the hub thinks otherwise
                se.details.append(f"lost: {p} {mine.status} in the hub, ACCEPTED at SEND")
        else:
            se.lost += 1
            se.details.append(f"lost: {p} still {mine.status} after settling")
    se.doubled = sum(1 for recs in at_send.values() if len(recs) > 1)
    se.details += [
        f"doubled: {p} {len(recs)} times at SEND" for p, recs in at_send.items() if len(recs) > 1
    ][:10]
    strangers = set(at_send) - set(protocols)
    if strangers:
        se.lost += len(strangers)
        se.details.append(f"{len(strangers)} notifications at SEND the hub never imported")
    send_jobs = [o for o in outbox_rows if o.kind.startswith("send.")]
    faulted = Counter(c["status"] for c in send_twin.calls if c["status"] >= 429)
    se.details.append(
        f"SEND's record: {len(records)} requests, {len(accepted_there)} accepted; hub outbox "
        f"attempts beyond the first {sum(max(0, o.attempts - 1) for o in send_jobs)}; "
        f"faulted answers {dict(faulted)}"
    )
    rows.append(se)
    return rows


def _detail(body: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        if "<" in body:  # an HTML page: its text
            body = " ".join(re.sub(r"(?s)<(script|style|head).*?</\1>|<[^>]+>", " ", body).split())
        return body[:80]
    return str(doc.get("detail") or doc.get("title") or doc)[:60] if isinstance(doc, dict) else ""


def _forwarded(path: Path) -> Counter[str]:
    """receipt_id -> rows in the accounting file."""
    if not path.is_file():
        return Counter()
    with path.open(encoding="utf-8", newline="") as fh:
        return Counter(r["receipt_id"] for r in csv.DictReader(fh, delimiter=";"))


def print_summary(rows: list[Row], plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"chaos: {plan.positions} positions, {plan.payments} payments, "
        f"{plan.webhooks} webhooks, {plan.lookups} look-ups, {plan.logins} logins, "
        f"{plan.fines} SEND fines, {plan.kills} SIGKILLs"
        + (", a PostgreSQL restart" if plan.pg_restart else "")
    )
    for col in ("platform", "sent", "done", "retried", "unknown", "lost", "doubled"):
        table.add_column(col, justify="left" if col == "platform" else "right")
    for r in rows:
        doubled = str(r.doubled) + ("" if r.keyed else " (no key)")
        table.add_row(
            r.platform,
            str(r.sent),
            str(r.done),
            str(r.retried),
            str(r.unknown),
            f"[red]{r.lost}[/red]" if r.lost else "0",
            f"[red]{doubled}[/red]" if r.doubled and r.keyed else doubled,
        )
    console.print(table)
    for r in rows:
        for reason, n in r.reasons.most_common():
            console.print(f"  {r.platform}: unknown/not done x{n}: {reason}")
        for d in r.details[:20]:
            console.print(f"  {r.platform}: {d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--webhooks", type=int, default=300)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--fines", type=int, default=200, help="SEND fines")
    parser.add_argument(
        "--no-pg-restart",
        action="store_true",
        help="do not run a private PostgreSQL server and restart it during the day",
    )
    parser.add_argument("--seed", type=int, default=0, help="0: a random day")
    parser.add_argument("--settle-timeout", type=float, default=240.0)
    parser.add_argument("--json", type=Path, help="also write the rows there")
    args = parser.parse_args(argv)
    plan = Plan(
        positions=args.positions,
        payments=args.payments,
        webhooks=args.webhooks,
        lookups=args.lookups,
        logins=args.logins,
        kills=args.kills,
        fines=args.fines,
        pg_restart=not args.no_pg_restart,
        seed=args.seed,
        settle_timeout=args.settle_timeout,
    )
    rows = asyncio.run(run_day(plan))
    print_summary(rows, plan)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "platform": r.platform,
                        "sent": r.sent,
                        "done": r.done,
                        "retried": r.retried,
                        "unknown": r.unknown,
                        "lost": r.lost,
                        "doubled": r.doubled,
                        "keyed": r.keyed,
                        "reasons": dict(r.reasons),
                        "details": r.details,
                    }
                    for r in rows
                ]
            )
        )
    bad = [r.platform for r in rows if not r.ok]
    if bad:
        print(f"chaos: FAILED: lost or doubled in {', '.join(bad)}", file=sys.stderr)
        return 1
    print("chaos: nothing lost, nothing doubled where the platform gives a key")
    return 0


if __name__ == "__main__":
    sys.exit(main())

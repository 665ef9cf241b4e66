"""SEND: notifications per second through the hub to the SEND sandbox, against a bare client
doing the same calls in the same run.

    .venv/bin/python bench/send/run.py [--notifications 1000] [--backends sqlite]
    .venv/bin/python bench/send/run.py --backends sqlite,postgresql --notifications 2000

Every notification is one 100 KB PDF act: the preload, the upload to the presigned URL
(secret and SHA-256 checksum), the notification request, then the acceptance check until
SEND answers ACCEPTED with the IUN.

- The PDND token server and the SEND twin run in a child process (``acceptance_delay=0``:
  the twin decides at the next call; one timeline step only, ``step_delay`` one hour), a
  fresh one for each run, so every run starts with an empty twin.
- **hub**: ``sportello serve`` (HTTP and outbox workers in one process, as deployed) on a
  new database; this process posts the notifications to ``POST /api/v1/tenants/{t}/send/
  notifications`` (Idempotency-Key, the PDF in base64), --concurrency at a time, and the
  clock stops when the hub's last notification is ``accepted`` (polled in its database).
  The hub's ``acceptance_poll_seconds`` is 0.01 here (10 s by default: SEND takes seconds to
  minutes to validate a request, the twin here none).
- **bare client** (baseline): aiohttp from this process, --concurrency lanes, one voucher
  for the whole run, the same four calls per notification, no database.

The figures: notifications/s of each, the ratio, the hub's peak RSS (its process' VmHWM),
and the CPU seconds per notification of the hub and of the twin, read from ``/proc``. Goal
(issue 15): >= 200 notifications/s on 2 cores and >= 0.5x the bare client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import signal
import socket
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

PG_ADMIN = os.environ.get("SPORTELLO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPORTELLO = str(Path(sys.executable).with_name("sportello"))
PDF_SIZE = 100 * 1024
TENANT = "demo"
PROFILE = os.environ.get("BENCH_PYSPY")  # a file for py-spy's collapsed stacks of the hub
CHILD = """
import asyncio, json, sys
from aiohttp.test_utils import TestServer
from sportello.sandbox.pdnd.app import create_app as pdnd_app
from sportello.sandbox.send.app import create_app as send_app

async def main():
    pdnd = TestServer(pdnd_app(rate_limit=None), host="127.0.0.1")
    await pdnd.start_server()
    pdnd_url = str(pdnd.make_url("")).rstrip("/")
    send = TestServer(
        send_app(pdnd_url=pdnd_url, acceptance_delay=0.0, step_delay=3600.0), host="127.0.0.1"
    )
    await send.start_server()
    send_url = str(send.make_url("")).rstrip("/")
    print(json.dumps({"pdnd": pdnd_url, "send": send_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


# -- processes ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Twin:
    """The PDND and SEND sandboxes in a child process, with a PDND client registered."""

    def __init__(self) -> None:
        self.child: asyncio.subprocess.Process | None = None
        self.pdnd_url = self.send_url = ""
        self.client_id, self.purpose, self.kid = str(uuid.uuid4()), str(uuid.uuid4()), ""
        from sportello.connectors.pdnd.keys import generate_key

        self.private_pem, self.public_pem = generate_key()

    async def __aenter__(self) -> Twin:
        self.child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.child.stdout is not None
        urls = json.loads(await self.child.stdout.readline())
        self.pdnd_url, self.send_url = urls["pdnd"], urls["send"]
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                self.pdnd_url + "/__sandbox/clients",
                json={
                    "client_id": self.client_id,
                    "public_key": self.public_pem.decode(),
                    "purposes": {self.purpose: self.send_url},
                },
            ) as r,
        ):
            assert r.status == 201, await r.text()
            self.kid = (await r.json())["kid"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.child is not None and self.child.stdin is not None
        self.child.stdin.close()
        await self.child.wait()

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    async def accepted(self, session: aiohttp.ClientSession) -> int:
        """ACCEPTED requests in the twin's own record (``/__sandbox/notifications``)."""
        async with session.get(self.send_url + "/__sandbox/notifications") as r:
            records = (await r.json())["notifications"]
        return sum(1 for n in records if n["state"] == "ACCEPTED")


# -- the documents ------------------------------------------------------------------------


def pdfs(n: int) -> list[bytes]:
    """``n`` different PDFs of 100 KB (a header, a binary stream, a trailer)."""
    filler = secrets.token_bytes(PDF_SIZE)
    out = []
    for i in range(n):
        head = f"%PDF-1.4\n% verbale {i:08d}\n1 0 obj<</Length {PDF_SIZE}>>stream\n".encode()
        tail = b"\nendstream endobj\ntrailer<<>>\n%%EOF\n"
        out.append(head + filler[: PDF_SIZE - len(head) - len(tail)] + tail)
    return out


def recipient(i: int) -> dict[str, Any]:
    return {
        "recipientType": "PF",
        "taxId": "RSSMRA80A01H501U",
        "denomination": f"Destinatario {i}",
        "digitalDomicile": {"type": "PEC", "address": f"destinatario{i}@pec.example.it"},
        "physicalAddress": {
            "address": "Via Roma 1",
            "municipality": "Roma",
            "zip": "00100",
            "province": "RM",
        },
    }


SUBJECT = "Verbale di accertamento violazione codice della strada"


# -- the bare client ----------------------------------------------------------------------


async def bare(twin: Twin, documents: list[bytes], concurrency: int) -> float:
    """Notifications/s of bare aiohttp calls: preload, upload, request, status until
    ACCEPTED (one voucher for the whole run, no database)."""
    from sportello.connectors.pdnd.client import PdndClient
    from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
    from sportello.sandbox.send.app import DEMO_API_KEY, DEMO_SENDER_TAX_ID

    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as s:
        pdnd = PdndClient(
            s,
            twin.pdnd_url + "/token.oauth2",
            client_id=twin.client_id,
            kid=twin.kid,
            private_key=lambda: twin.private_pem,
            assertion_audience=SANDBOX_ASSERTION_AUDIENCE,
        )
        headers = {
            "x-api-key": DEMO_API_KEY,
            "Authorization": f"Bearer {await pdnd.token(twin.purpose)}",
        }
        work = iter(enumerate(documents))

        async def one(i: int, pdf: bytes) -> None:
            digest = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
            async with s.post(
                twin.send_url + "/delivery/attachments/preload",
                json=[{"preloadIdx": "0", "contentType": "application/pdf", "sha256": digest}],
                headers=headers,
            ) as r:
                assert r.status == 200, await r.text()
                [slot] = await r.json()
            async with s.put(
                slot["url"],
                data=pdf,
                headers={
                    "Content-Type": "application/pdf",
                    "x-amz-meta-secret": slot["secret"],
                    "x-amz-checksum-sha256": digest,
                },
            ) as r:
                assert r.status == 200, await r.text()
                version = r.headers["x-amz-version-id"]
            request = {
                "paProtocolNumber": f"BARE-{i:07d}",
                "idempotenceToken": uuid.uuid4().hex,
                "subject": SUBJECT,
                "recipients": [recipient(i)],
                "documents": [
                    {
                        "digests": {"sha256": digest},
                        "contentType": "application/pdf",
                        "ref": {"key": slot["key"], "versionToken": version},
                        "title": "Verbale",
                    }
                ],
                "notificationFeePolicy": "DELIVERY_MODE",
                "physicalCommunicationType": "AR_REGISTERED_LETTER",
                "senderDenomination": "Comune di Esempio",
                "senderTaxId": DEMO_SENDER_TAX_ID,
                "taxonomyCode": "010101P",
            }
            async with s.post(
                twin.send_url + "/delivery/v2.6/requests", json=request, headers=headers
            ) as r:
                assert r.status == 202, await r.text()
                request_id = (await r.json())["notificationRequestId"]
            while True:
                async with s.get(
                    twin.send_url + "/delivery/v2.6/requests",
                    params={"notificationRequestId": request_id},
                    headers=headers,
                ) as r:
                    answer = await r.json()
                if answer["notificationRequestStatus"] == "ACCEPTED":
                    return
                assert answer["notificationRequestStatus"] == "WAITING", answer
                await asyncio.sleep(0.01)

        async def lane() -> None:
            for i, pdf in work:
                await one(i, pdf)

        t0 = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        if await twin.accepted(s) != len(documents):
            raise SystemExit("bench/send: the bare client's notifications were not all accepted")
        return len(documents) / elapsed


# -- the hub ------------------------------------------------------------------------------


async def pg_database() -> tuple[str, str]:
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


def hub_toml(tmp: Path, db_url: str, port: int, twin: Twin, concurrency: int) -> Path:
    from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
    from sportello.sandbox.send.app import DEMO_API_KEY

    (tmp / "pdnd.pem").write_bytes(twin.private_pem)
    (tmp / "send.key").write_text(DEMO_API_KEY)
    cfg = tmp / "hub.toml"
    cfg.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
max_body_bytes = 4194304

[database]
url = "{db_url}"

[outbox]
concurrency = {concurrency}
poll_interval = 0.05

[logging]
level = "ERROR"

[[tenants]]
id = "{TENANT}"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"

[tenants.pdnd]
client_id = "{twin.client_id}"
key = {{ file = "{tmp / "pdnd.pem"}" }}
kid = "{twin.kid}"
token_url = "{twin.pdnd_url}/token.oauth2"
assertion_audience = "{SANDBOX_ASSERTION_AUDIENCE}"

[tenants.send]
base_url = "{twin.send_url}"
api_key = {{ file = "{tmp / "send.key"}" }}
purpose_id = "{twin.purpose}"
acceptance_poll_seconds = 0.01
stream_poll_seconds = 3600
"""
    )
    return cfg


async def through_hub(
    twin: Twin, documents: list[bytes], backend: str, concurrency: int, outbox_concurrency: int
) -> dict[str, float]:
    from sportello import apikeys, migrate
    from sportello.config import parse_config
    from sportello.db import create_engine

    tmp = Path(tempfile.mkdtemp(prefix="sportello-bench-send-"))
    pg_name = None
    if backend == "sqlite":
        db_url = f"sqlite+aiosqlite:///{tmp}/hub.sqlite"
    else:
        pg_name, db_url = await pg_database()
    engine = create_engine(parse_config({"database": {"url": db_url}}).database)
    hub: subprocess.Popen[bytes] | None = None
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            key = await apikeys.create(
                conn, tenant_id=TENANT, name="bench", scopes=["write"], now=datetime.now(UTC)
            )
        port = free_port()
        cfg = hub_toml(tmp, db_url, port, twin, outbox_concurrency)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTELLO_")}
        hub = subprocess.Popen([SPORTELLO, "serve", "--config", str(cfg)], env=env)
        url = f"http://127.0.0.1:{port}/api/v1/tenants/{TENANT}/send/notifications"
        connector = aiohttp.TCPConnector(limit=concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as s:
            for _ in range(200):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                        if r.status < 500:
                            break
                except aiohttp.ClientError:
                    pass
                if hub.poll() is not None:
                    raise SystemExit("bench/send: the hub did not start")
                await asyncio.sleep(0.1)
            bodies = [
                json.dumps(
                    {
                        "pa_protocol_number": f"HUB-{i:07d}",
                        "subject": SUBJECT,
                        "taxonomy_code": "010101P",
                        "recipients": [recipient(i)],
                        "documents": [
                            {"title": "Verbale", "content_base64": base64.b64encode(pdf).decode()}
                        ],
                    }
                ).encode()
                for i, pdf in enumerate(documents)
            ]
            work = iter(enumerate(bodies))
            auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

            async def lane() -> None:
                for i, body in work:
                    headers = {**auth, "Idempotency-Key": f"bench-{i}"}
                    async with s.post(url, data=body, headers=headers) as r:
                        assert r.status == 202, await r.text()

            async def accepted() -> int:
                async with engine.connect() as conn:
                    return int(
                        (
                            await conn.execute(
                                sqlalchemy.text(
                                    "SELECT count(*) FROM send_notifications "
                                    "WHERE status = 'accepted'"
                                )
                            )
                        ).scalar_one()
                    )

            spy = None
            if PROFILE:  # py-spy (pip install py-spy) samples the hub: collapsed stacks
                spy = subprocess.Popen(
                    [*"py-spy record -r 100 -f raw --pid".split(), str(hub.pid), "-o", PROFILE]
                )
            cpu0, box0 = cpu_seconds(hub.pid), cpu_seconds(twin.pid)
            t0 = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            posted = time.perf_counter() - t0
            deadline = time.monotonic() + 120
            while await accepted() < len(documents):
                if time.monotonic() > deadline or hub.poll() is not None:
                    raise SystemExit(f"bench/send: only {await accepted()} accepted by the hub")
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - t0
            hub_cpu, box_cpu = cpu_seconds(hub.pid) - cpu0, cpu_seconds(twin.pid) - box0
            rss = peak_rss_mb(hub.pid)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            in_twin = await twin.accepted(s)
        if in_twin != len(documents):
            raise SystemExit(f"bench/send: the twin accepted {in_twin}, not {len(documents)}")
        n = len(documents)
        return {
            "rate": n / elapsed,
            "post_rate": n / posted,
            "hub_cpu_ms": hub_cpu / n * 1e3,
            "twin_cpu_ms": box_cpu / n * 1e3,
            "peak_rss_mb": rss,
        }
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(30)
        await engine.dispose()
        if pg_name:
            await drop_pg_database(pg_name)


async def main(args: argparse.Namespace) -> None:
    n = args.notifications
    documents = pdfs(n)
    load = os.getloadavg()
    print(
        f"{datetime.now(UTC):%Y-%m-%d} bench/send: {n} notifications of one {PDF_SIZE // 1024} KB "
        f"PDF, client concurrency {args.concurrency}, outbox concurrency "
        f"{args.outbox_concurrency}; load average {load[0]:.1f}"
    )
    async with Twin() as twin:
        box0 = cpu_seconds(twin.pid)
        base = await bare(twin, documents, args.concurrency)
        box = (cpu_seconds(twin.pid) - box0) / n * 1e3
    print(
        f"  bare client (aiohttp, no database): {base:,.0f} notifications/s "
        f"(twin {box:.2f} ms CPU each)"
    )
    figures: list[dict[str, object]] = []
    for backend in args.backends.split(","):
        async with Twin() as twin:
            r = await through_hub(
                twin, documents, backend, args.concurrency, args.outbox_concurrency
            )
        label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(backend, backend)
        ratio = r["rate"] / base
        print(
            f"  hub, {label}: {r['rate']:,.0f} notifications/s ({ratio:.2f}x the bare client; "
            f"API accepted the {n} POSTs at {r['post_rate']:,.0f}/s); CPU per notification: "
            f"hub {r['hub_cpu_ms']:.2f} ms, twin {r['twin_cpu_ms']:.2f} ms; hub peak RSS "
            f"{r['peak_rss_mb']:.0f} MB"
        )
        figures += [
            {
                "name": f"{label}: accepted through the hub",
                "value": r["rate"],
                "unit": "notifications/s",
                "baseline": base,
                "baseline_name": "bare aiohttp client, no database",
                "goal": ">= 200/s and >= 0.5x",
                "met": r["rate"] >= 200 and ratio >= 0.5,
            },
            {"name": f"{label}: hub peak RSS", "value": r["peak_rss_mb"], "unit": "MB"},
        ]
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "bench": "send",
                    "params": f"{n:,} notifications, 100 KB PDF, concurrency {args.concurrency}",
                    "figures": figures,
                }
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--concurrency", type=int, default=32, help="client lanes (both sides)")
    parser.add_argument(
        "--outbox-concurrency", type=int, default=128, help="the hub's [outbox] concurrency"
    )
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    # the event loop of `sportello serve` (uvloop unless SPORTELLO_EVENT_LOOP=asyncio)
    from sportello.runner import run_service_loop

    run_service_loop(main(parser.parse_args()))

"""SEND end to end (issue 15, item 5), on SQLite and PostgreSQL.

1,000 traffic fines (taxonomy ``010101P``): their pagoPA debt positions are created by the
hub's pagoPA import (station mode), then the fines come from the reference CSV source with
a PDF act each and the position's notice code (``applyCost``; the hub attaches the notice
PDF), through the bulk import. A ``sportello worker`` process sends them to the SEND twin,
which answers with faults (503s and 429s on the preload, 500s on the upload, 502s and 503s
on the request, 429s on the acceptance check; the answer dropped after the request was
stored and after the upload was stored), and is killed with SIGKILL while sending; a second
worker finishes.

Checked by the twin's own record: every fine reached SEND once and was accepted once, and
its timeline ran to the end (refinement); by the hub: every notification accepted with the
twin's IUN, every stream event stored once. Then the pagoPA Node pays 30 % of the notices
through the hub's station (some receipts sent twice): exactly that many receipts stored, each
for the fine plus SEND's notification cost (``applyCost``: the station adds the twin's
current price), and SEND is told of each payment once (the twin's PAYMENT step, PAID).

``SPORTELLO_E2E_FINES`` (default 1,000, the issue's size) sets the number of fines; the paid
share stays 30 %. The run took 45 s on SQLite and 62 s on PostgreSQL with the machine's
load average at 3.4, 78 s and 103 s at 5-7 (docs/send.md).
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from factories import POSITION_COLUMNS, drain_outbox
from pagopa_node import XSD_DIR
from send_stack import NOTIFICATION_COLUMNS, Stack, client_key
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.app import ENGINE, SERVICES, create_app
from sportello.config import HubConfig, load_config
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
from sportello.platforms.pagopa.operations import import_positions_file
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import payment_options, receipts
from sportello.platforms.send.service import SEND_STREAMS
from sportello.platforms.send.tables import send_events, send_notifications
from sportello.sandbox.pagopa.app import create_app as create_pagopa
from sportello.sandbox.pagopa.node import NodeSettings
from sportello.sandbox.send.app import (
    ANALOG_COST,
    DEMO_API_KEY,
    DEMO_SENDER_TAX_ID,
    SEND_FEE,
    SEND_STATE,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (XSD_DIR / "paForNode.xsd").is_file(), reason="pagoPA specs (shared/specs) not found"
    ),
    pytest.mark.timeout(600),
]

SPORTELLO = str(Path(sys.executable).with_name("sportello"))
FINES = int(os.environ.get("SPORTELLO_E2E_FINES", "1000"))
PAID = FINES * 3 // 10
TENANT = "demo"
EC = DEMO_SENDER_TAX_ID  # the comune: SEND's sender and pagoPA's creditor
BROKER = EC
STATION = f"{EC}_01"
IBAN = "IT60X0542811101000000123456"
WORKFLOW_ENDS = {"DIGITAL_SUCCESS_WORKFLOW", "ANALOG_SUCCESS_WORKFLOW"}

# The twin: acceptance after 0.2 s, then the whole timeline at the next look.
TWIN = {"acceptance_delay": 0.2, "step_delay": 0.0, "page_size": 500}


def pdf(i: int) -> bytes:
    """A small PDF act (the twin checks the PDF header, the hub the checksum)."""
    text = f"Verbale n. {i:06d}/2026 - art. 7 Codice della strada".encode()
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n3 0 obj<</Length "
        + str(len(text)).encode()
        + b">>stream\n"
        + text
        + b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def fine_amount(i: int) -> int:
    return 4_200 + (i % 7) * 1_000  # cents


def notification_cost(i: int) -> int:
    """The twin's price of fine ``i`` once delivered (``write_fines``: every fourth by post):
    SEND's 1 euro, plus the AR registered letter (5.45 euro) with 22 % VAT on it."""
    return SEND_FEE + (0 if i % 4 else ANALOG_COST["AR_REGISTERED_LETTER"] * 122 // 100)


def write_positions(path: Path, count: int) -> None:
    """The fines' debt positions, as the comune's accounting exports them."""
    due = datetime.now(UTC).date() + timedelta(days=60)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow(POSITION_COLUMNS)
        for i in range(count):
            amount = fine_amount(i)
            out.writerow(
                [
                    f"CDS2026-{i:06d}",
                    "RSSMRA80A01H501U",
                    f"Trasgressore {i}",
                    f"Verbale {i:06d}/2026",
                    "1",
                    due.isoformat(),
                    f"{amount // 100},{amount % 100:02d}",
                    IBAN,
                    "9/0101101IM/",
                ]
            )


def write_fines(path: Path, documents: Path, navs: list[str]) -> None:
    """The reference CSV source's file: one fine per row, its act in ``documents``."""
    documents.mkdir()
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow(NOTIFICATION_COLUMNS)
        for i, nav in enumerate(navs):
            name = f"verbale-{i:06d}.pdf"
            (documents / name).write_bytes(pdf(i))
            amount = fine_amount(i)
            out.writerow(
                [
                    f"CDS-2026-{i:06d}",
                    f"Verbale di accertamento n. {i:06d}/2026",
                    "010101P",
                    name,
                    "PF",
                    "RSSMRA80A01H501U",
                    f"Trasgressore {i}",
                    f"Via Roma {i + 1}",
                    "00100",
                    "Roma",
                    "RM",
                    f"trasgressore{i}@pec.example.it" if i % 4 else "",  # a quarter by post
                    nav,
                    EC,
                    f"{amount // 100},{amount % 100:02d}",
                    "true",
                ]
            )


def write_config(tmp_path: Path, db_url: str, stack: Stack, fdr_url: str) -> Path:
    (tmp_path / "pdnd.pem").write_bytes(client_key()[0])
    (tmp_path / "send.key").write_text(DEMO_API_KEY)
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f"""
[database]
url = "{db_url}"

[outbox]
concurrency = 64
lease_seconds = 2
poll_interval = 0.05
backoff_base = 0.05
backoff_cap = 0.5

[logging]
level = "WARNING"

[[tenants]]
id = "{TENANT}"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "{EC}"
cadastral_code = "Z999"

[tenants.pdnd]
client_id = "{stack.client_id}"
key = {{ file = "{tmp_path / "pdnd.pem"}" }}
kid = "{stack.kid}"
token_url = "{stack.pdnd_url}/token.oauth2"
assertion_audience = "{SANDBOX_ASSERTION_AUDIENCE}"

[tenants.send]
base_url = "{stack.send_url}"
api_key = {{ file = "{tmp_path / "send.key"}" }}
purpose_id = "{stack.send_purpose}"
acceptance_poll_seconds = 0.2
stream_poll_seconds = 3600

[tenants.pagopa]
ec_fiscal_code = "{EC}"
broker_id = "{BROKER}"
station_id = "{STATION}"
segregation_code = "01"
mode = "station"
fdr_base_url = "{fdr_url}"
fdr_api_key = {{ file = "{tmp_path / "send.key"}" }}

[tenants.adapters.accounting]
plugin = "csv"

[tenants.adapters.accounting.options]
path = "{tmp_path / "positions.csv"}"
receipts_path = "{tmp_path / "receipts.csv"}"
company_name = "Comune di Esempio"
fiscal_code = "{EC}"
"""
    )
    return cfg


def start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTELLO_")}
    return subprocess.Popen(
        [SPORTELLO, "worker", "--config", str(cfg)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


async def until(predicate: Any, timeout: float, interval: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(interval)


async def count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(table)
        for w in where:
            stmt = stmt.where(w)
        return int((await conn.execute(stmt)).scalar_one())


@pytest.fixture
async def pagopa() -> AsyncIterator[TestServer]:
    app = create_pagopa(
        processing_delay=0,
        xsd_dir=XSD_DIR,
        node_settings=NodeSettings(retry_interval=0.2, max_attempts=5),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def faults(session: aiohttp.ClientSession, url: str, *specs: dict[str, Any]) -> None:
    for spec in specs:
        async with session.post(url + "/__sandbox/faults", json=spec) as r:
            assert r.status == 201, await r.text()


async def import_fines(hub_app: Any, fines: Path, documents: Path) -> list[int]:
    """The fines through the reference CSV source and the bulk import (``sportello send
    import``'s code path); the ids of the queued notifications."""
    from sportello.adapters.notifications.csv_source import CsvNotificationSource
    from sportello.platforms.send.imports import import_notifications

    source = CsvNotificationSource({"path": str(fines)}, base_dir=fines.parent)
    result = await import_notifications(
        hub_app[SERVICES], TENANT, source.rows(), documents=documents, source=source.label
    )
    assert result.problems == [], result.problems[:5]
    assert result.rows == FINES and len(result.queued) == FINES
    return list(result.queued)


@pytest.mark.parametrize("stack", [TWIN], indirect=True)
async def test_fines_survive_faults_and_a_sigkill(
    db_url: str, tmp_path: Path, stack: Stack, pagopa: TestServer
) -> None:
    started = time.monotonic()
    marks: dict[str, float] = {}
    cfg = write_config(tmp_path, db_url, stack, str(pagopa.make_url("/fdr")))
    config: HubConfig = load_config(cfg)
    hub_app = create_app(config, apply_migrations=True, run_workers=False)
    hub_app[XSD_KEY] = XSD_DIR
    hub = TestServer(hub_app, host="127.0.0.1")
    await hub.start_server()
    twin = stack.send_app[SEND_STATE]
    session = stack.session
    worker: subprocess.Popen[bytes] | None = None
    log = tmp_path / "worker.log"
    try:
        engine = hub_app[ENGINE]
        reader = hub_app[SEND_STREAMS]
        assert await reader.read(TENANT) == {"events": 0, "webhooks": 0}  # the stream exists

        # 1. the fines' debt positions (pagoPA import, station mode), their notice codes
        write_positions(tmp_path / "positions.csv", FINES)
        created, _, errors = await import_positions_file(
            config, TENANT, tmp_path / "positions.csv", True
        )
        assert (created, errors) == (FINES, [])
        positions_store = PagopaStore(engine, config, hub_app[SERVICES].clock)
        positions: list[Any] = []
        while page := await positions_store.list_positions(
            TENANT, after=positions[-1].id if positions else 0, limit=500
        ):
            positions += page
        by_iupd = {p.iupd: p for p in positions}
        navs = [by_iupd[f"CDS2026-{i:06d}"].options[0].nav for i in range(FINES)]
        marks["positions"] = time.monotonic() - started

        # 2. the fines, from the reference CSV source, through the bulk import
        write_fines(tmp_path / "fines.csv", tmp_path / "atti", navs)
        queued = await import_fines(hub_app, tmp_path / "fines.csv", tmp_path / "atti")
        marks["imported"] = time.monotonic() - started

        # 3. SEND misbehaves, the worker is killed while sending, a second one finishes
        await faults(
            session,
            stack.send_url,
            {"mode": "fail", "status": 503, "count": 15, "operations": ["presignedUploadRequest"]},
            {
                "mode": "fail",
                "status": 429,
                "count": 15,
                "retry_after": 0,
                "operations": ["presignedUploadRequest"],
            },
            {"mode": "drop", "count": 10, "operations": ["upload"]},
            {"mode": "fail", "status": 500, "count": 10, "operations": ["upload"]},
            {"mode": "drop", "count": 12, "operations": ["sendNewNotificationV26"]},
            {"mode": "lose", "status": 502, "count": 8, "operations": ["sendNewNotificationV26"]},
            {"mode": "fail", "status": 503, "count": 10, "operations": ["sendNewNotificationV26"]},
            {
                "mode": "fail",
                "status": 429,
                "count": 15,
                "retry_after": 0,
                "operations": ["retrieveNotificationRequestStatusV26"],
            },
        )
        worker = start_worker(cfg, log)

        async def halfway() -> bool:
            assert worker is not None and worker.poll() is None, log.read_text()[-3000:]
            return len(twin.notifications) >= FINES * 2 // 5

        await until(halfway, 120, 0.005)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        at_kill = len(twin.notifications)
        marks["killed"] = time.monotonic() - started
        await faults(
            session,
            stack.send_url,
            {"mode": "drop", "count": 5, "operations": ["sendNewNotificationV26"]},
            {
                "mode": "fail",
                "status": 503,
                "count": 5,
                "operations": ["retrieveNotificationRequestStatusV26"],
            },
        )
        worker = start_worker(cfg, log)

        async def all_accepted() -> bool:
            assert worker is not None and worker.poll() is None, log.read_text()[-3000:]
            return (
                await count(engine, send_notifications, send_notifications.c.status == "accepted")
                == FINES
            )

        await until(all_accepted, 240, 0.2)
        marks["accepted"] = time.monotonic() - started
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        worker = None

        # 4. by the twin's own record: each fine reached SEND once, accepted once, and its
        # timeline ran to the end (the twin applies the remaining steps when asked)
        async with session.get(stack.send_url + "/__sandbox/notifications") as r:
            records = (await r.json())["notifications"]
        per_protocol = Counter(n["paProtocolNumber"] for n in records)
        assert len(per_protocol) == FINES and set(per_protocol.values()) == {1}, [
            p for p, n in per_protocol.items() if n != 1
        ][:5]
        assert all(n["state"] == "ACCEPTED" for n in records)
        for n in records:
            assert n["categories"][0] == "REQUEST_ACCEPTED", n
            assert WORKFLOW_ENDS & set(n["categories"]) and "REFINEMENT" in n["categories"], n
        assert len({n["iun"] for n in records}) == FINES
        async with engine.connect() as conn:
            hub_rows = (
                await conn.execute(
                    select(
                        send_notifications.c.id,
                        send_notifications.c.pa_protocol_number,
                        send_notifications.c.iun,
                    )
                )
            ).all()
        assert sorted(r.id for r in hub_rows) == sorted(queued)
        twin_iun = {n["paProtocolNumber"]: n["iun"] for n in records}
        assert {r.pa_protocol_number: r.iun for r in hub_rows} == twin_iun
        faulted = Counter(c["status"] for c in twin.calls if c["status"] >= 429)
        assert faulted[429] and faulted[503] and faulted[502] and faulted[500], faulted
        async with session.get(stack.send_url + "/__sandbox/faults") as r:
            assert (await r.json())["faults"] == [], "every injected fault happened"

        # 5. the progress stream: every event stored once, every timeline complete in the hub
        stored = 0
        for _ in range(100):
            got = await reader.read(TENANT)
            stored += got["events"]
            if not got["events"]:
                break
        assert stored == twin.event_counter
        assert await count(engine, send_events) == stored
        async with engine.connect() as conn:
            ends = (
                await conn.execute(
                    select(func.count(func.distinct(send_events.c.iun))).where(
                        send_events.c.category == "REFINEMENT"
                    )
                )
            ).scalar_one()
        assert ends == FINES
        marks["stream"] = time.monotonic() - started

        # 6. the Node pays 300 notices through the hub's station, some receipts sent twice
        station_url = str(hub.make_url(f"/t/{TENANT}/pagopa/station"))
        async with session.post(
            pagopa.make_url("/__sandbox/stations"),
            json={EC: {"url": station_url, "broker_id": BROKER, "station_id": STATION}},
        ) as r:
            assert r.status == 200, await r.text()
        chosen = navs[:PAID]

        async def pay(notices: list[str]) -> dict[str, Any]:
            async with session.post(
                pagopa.make_url("/psp/pay-batch"),
                json={
                    "payments": [{"fiscalCode": EC, "noticeNumber": n} for n in notices],
                    "concurrency": 32,
                },
            ) as r:
                assert r.status == 200, await r.text()
                return dict(await r.json())

        first = await pay(chosen[: PAID // 2])
        async with session.post(
            pagopa.make_url("/__sandbox/node"), json={"duplicate_receipts": True}
        ) as r:
            assert r.status == 200
        second = await pay(chosen[PAID // 2 :])
        for batch in (first, second):
            assert batch["ko"] == 0, [x for x in batch["results"] if x["outcome"] != "OK"][:3]
        assert await count(engine, receipts) == PAID
        assert await count(engine, payment_options, payment_options.c.status == "paid") == PAID
        # each citizen paid the fine plus SEND's notification cost (applyCost): the twin's
        # price, 1 euro for a digital delivery, plus the registered letter with VAT by post
        async with engine.connect() as conn:
            paid = dict((await conn.execute(select(receipts.c.nav, receipts.c.amount))).all())
        expected = {nav: fine_amount(i) + notification_cost(i) for i, nav in enumerate(chosen)}
        assert paid == expected, [
            (n, paid.get(n), a) for n, a in expected.items() if paid.get(n) != a
        ][:5]
        marks["paid"] = time.monotonic() - started

        # 7. the receipts close the notifications too: SEND learns of each payment once
        await drain_outbox(hub_app)
        async with session.get(stack.send_url + "/__sandbox/notifications") as r:
            records = {n["paProtocolNumber"]: n for n in (await r.json())["notifications"]}
        payments = Counter(p for p, n in records.items() for c in n["categories"] if c == "PAYMENT")
        assert payments == Counter({f"CDS-2026-{i:06d}": 1 for i in range(PAID)})
        assert {records[f"CDS-2026-{i:06d}"]["notificationStatus"] for i in range(PAID)} == {"PAID"}
        marks["closed"] = time.monotonic() - started
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        await hub.close()
    print(
        f"\nSEND e2e ({db_url.split(':')[0]}): {FINES} fines, {at_kill} at SEND at the kill; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in marks.items())
    )

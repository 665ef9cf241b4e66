"""pagoPA end to end, station mode, on SQLite and PostgreSQL.

An accounting CSV of 1,000 TARI positions (2 instalments each; TARI to the comune, TEFA to
the province) → ``sportello pagopa import``'s code path → positions with NAVs → notices
(a sample of 20 PDFs) → the sandbox Node, configured with the hub's station URL, pays 300
notices with ``/psp/pay-batch`` (some receipts sent twice, some collected in Stand-In) →
exactly 300 receipts stored → the outbox drained → exactly 300 rows in the accounting
receipts CSV → the next day's FdR published → ``sportello pagopa reconcile``'s code path
matches all 300.

GPD mode (positions created in the GPD sandbox by the outbox) is not covered here yet: it
needs the ``pagopa.gpd.create`` jobs drained against the sandbox's GPD before paying.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from e2e_env import (
    BROKER,
    EC,
    PAID,
    PAY_DAY,
    POSITIONS,
    SANDBOX_START,
    STATION,
    TENANT,
    count,
    drain,
    make_config,
    write_positions,
)
from pagopa_node import XSD_DIR
from pypdf import PdfReader

from sportello.app import CLOCK, ENGINE, create_app
from sportello.clock import FakeClock
from sportello.connectors.pagopa.notice_layout import Creditor
from sportello.connectors.pagopa.notice_pdf import render_notice
from sportello.platforms.pagopa.fdr import MATCHED, MISSING_RECEIPT, FdrReconciler
from sportello.platforms.pagopa.fdr_tables import fdr_flows, fdr_results
from sportello.platforms.pagopa.operations import import_positions_file, reconcile_flows
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import payment_options, receipts
from sportello.sandbox.pagopa.app import DEFAULT_FDR_API_KEY
from sportello.sandbox.pagopa.app import create_app as create_sandbox
from sportello.sandbox.pagopa.fdr_routes import FDR_PREFIX
from sportello.sandbox.pagopa.node import NodeSettings
from sportello.schema import outbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (XSD_DIR / "paForNode.xsd").is_file(), reason="pagoPA specs (shared/specs) not found"
    ),
]


@pytest.fixture
async def sandbox() -> AsyncIterator[TestServer]:
    app = create_sandbox(
        processing_delay=0,
        clock=FakeClock(SANDBOX_START),
        xsd_dir=XSD_DIR,
        node_settings=NodeSettings(retry_interval=0.2, max_attempts=5),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_station_mode_end_to_end(
    db_url: str, tmp_path: Path, sandbox: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    monkeypatch.setenv("SPORTELLO_E2E_FDR_KEY", DEFAULT_FDR_API_KEY)
    config = make_config(db_url, tmp_path, str(sandbox.make_url(FDR_PREFIX)))
    hub_app = create_app(config, apply_migrations=True, run_workers=False)
    hub_app[XSD_KEY] = XSD_DIR
    hub = TestServer(hub_app, host="127.0.0.1")
    await hub.start_server()
    session = aiohttp.ClientSession()
    try:
        engine = hub_app[ENGINE]
        pagopa = PagopaStore(engine, config, hub_app[CLOCK])

        async def post(path: str, body: Any) -> Any:
            async with session.post(sandbox.make_url(path), json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        # 1. the accounting CSV, imported as `sportello pagopa import` does
        source = tmp_path / "positions.csv"
        write_positions(source, POSITIONS)
        created, existing, errors = await import_positions_file(config, TENANT, source, True)
        assert (created, existing, errors) == (POSITIONS, 0, [])
        assert await count(engine, payment_options) == 2 * POSITIONS
        again = await import_positions_file(config, TENANT, source, True)
        assert again == (0, POSITIONS, [])
        stored = []
        after = 0
        while True:
            page = await pagopa.list_positions(TENANT, after=after, limit=500)
            if not page:
                break
            stored += page
            after = page[-1].id
        assert len(stored) == POSITIONS
        navs = {o.nav for p in stored for o in p.options}
        assert len(navs) == 2 * POSITIONS and all(n.startswith("301") for n in navs)
        t_import = time.monotonic() - started

        # 2. notices for a sample
        creditor = Creditor(name="Comune di Prova", fiscal_code=EC, sector="Settore Tributi")
        for p in stored[:20]:
            pdf = render_notice(p.position, creditor=creditor)
            assert pdf.startswith(b"%PDF-")
            text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
            flat = text.replace(" ", "")
            assert all(o.nav in flat for o in p.options), p.iupd
        t_pdf = time.monotonic() - started

        # 3. the Node pays 300 notices through the hub's station
        station_url = str(hub.make_url(f"/t/{TENANT}/pagopa/station"))
        await post(
            "/__sandbox/stations",
            {EC: {"url": station_url, "broker_id": BROKER, "station_id": STATION}},
        )
        # both instalments of positions 0-99, instalment 1 of positions 100-199
        chosen = [p.options[0] for p in stored[:200]] + [p.options[1] for p in stored[:100]]
        assert len({o.nav for o in chosen}) == PAID
        plain, doubled, stand_in = chosen[:150], chosen[150:250], chosen[250:]

        def pay(option: Any, **extra: Any) -> dict[str, Any]:
            return {"fiscalCode": EC, "noticeNumber": option.nav, **extra}

        batch = await post(
            "/psp/pay-batch", {"payments": [pay(o) for o in plain], "concurrency": 16}
        )
        assert batch["ok"] == len(plain), [r for r in batch["results"] if r["outcome"] != "OK"][:3]
        await post("/__sandbox/node", {"duplicate_receipts": True})
        batch = await post(
            "/psp/pay-batch",
            {
                "payments": [pay(o) for o in doubled]
                + [pay(o, standIn=True, amountCents=o.amount) for o in stand_in],
                "concurrency": 16,
            },
        )
        assert batch["ok"] == len(doubled) + len(stand_in), batch["results"][:3]
        assert all(r["receipt"]["delivered"] for r in batch["results"])
        assert sum(1 for r in batch["results"] if r["standIn"]) == len(stand_in)
        t_pay = time.monotonic() - started

        # 4. exactly 300 receipts, each marking its option paid
        assert await count(engine, receipts) == PAID
        assert await count(engine, receipts, receipts.c.stand_in.is_(True)) == len(stand_in)
        assert await count(engine, payment_options, payment_options.c.status == "paid") == PAID
        assert await count(engine, receipts, receipts.c.position_id.is_(None)) == 0

        # 5. the outbox forwards them to the accounting CSV, once each
        await drain(hub_app, config)
        with (tmp_path / "receipts.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        assert len(rows) == PAID
        assert {r["notice_number"] for r in rows} == {o.nav for o in chosen}
        assert sum(1 for r in rows if r["stand_in"] == "true") == len(stand_in)
        t_forward = time.monotonic() - started

        # 6. the next day's flows, reconciled as `sportello pagopa reconcile --date` does
        published = await post(f"/__sandbox/fdr/publish?date={PAY_DAY.isoformat()}", None)
        comune_flows = [f for f in published["published"] if f["organizationId"] == EC]
        assert sum(f["totPayments"] for f in comune_flows) == PAID
        lines, failed = await reconcile_flows(config, TENANT, PAY_DAY, True)
        assert not failed, lines
        assert f"matched: {PAID}" in lines, lines
        assert (
            "unmatched: 0 payments without receipt (missing receipt), "
            "0 receipts without payment, 0 amount mismatches"
        ) in lines, lines
        reconciler = FdrReconciler(engine, config, hub_app[CLOCK], session)
        summary = await reconciler.summary(TENANT, [PAY_DAY])
        assert summary.matched == PAID and summary.statuses[MISSING_RECEIPT] == 0
        assert summary.receipts_without_payment == 0 and summary.failed_flows == 0
        assert await count(engine, fdr_results, fdr_results.c.status == MATCHED) == PAID
        assert await count(engine, fdr_flows) == len(comune_flows)
        # a second run reads nothing again
        report = await reconciler.reconcile(TENANT)
        assert report.reconciled == 0 and report.already == len(comune_flows)
        await drain(hub_app, config)
        assert await count(
            engine,
            outbox,
            outbox.c.kind == "pagopa.reconciliation.forward",
            outbox.c.status == "done",
        ) == len(comune_flows)
        total = time.monotonic() - started
        print(
            f"\ne2e {db_url.split(':')[0]}: import {t_import:.1f}s, pdf {t_pdf - t_import:.1f}s, "
            f"pay {t_pay - t_pdf:.1f}s, forward {t_forward - t_pay:.1f}s, "
            f"reconcile {total - t_forward:.1f}s, total {total:.1f}s"
        )
        assert total < 60
    finally:
        await session.close()
        await hub.close()

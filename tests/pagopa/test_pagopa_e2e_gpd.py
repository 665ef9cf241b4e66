"""pagoPA end to end, GPD (asynchronous) mode, on SQLite and PostgreSQL.

The same accounting CSV of 1,000 TARI positions (2 instalments, TARI + TEFA) as the
station-mode test → ``sportello pagopa import``'s code path, which in GPD mode above
``bulk_threshold`` stores them with ONE ``pagopa.gpd.bulk`` job → the outbox uploads them
to the GPD sandbox (ZIP, status polling, report) → all 1,000 VALID there → the GPD side
is paid for 300 options (some collected in Stand-In), the sandbox writing a receipt for
each in its receipts API → ``sportello pagopa receipts-sync``'s code path reads them back
(a second read and a re-fetch of receipts already held are harmless duplicates; receipts
of "lost" payments come back through ``sportello pagopa recover``) → exactly 300 receipts
stored → the outbox forwards exactly 300 to the accounting CSV → the next day's FdR
reconciles all 300.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from e2e_env import (
    EC,
    PAID,
    PAY_DAY,
    POSITIONS,
    TENANT,
    count,
    drain,
    gpd_config,
    write_positions,
)
from sqlalchemy import select

from sportello.app import CLOCK, ENGINE, create_app
from sportello.platforms.pagopa.fdr import MATCHED, FdrReconciler
from sportello.platforms.pagopa.fdr_tables import fdr_results
from sportello.platforms.pagopa.gpd_bulk import GPD_BULK_KIND
from sportello.platforms.pagopa.operations import (
    import_positions_file,
    reconcile_flows,
    recover_receipts,
    sync_receipts,
)
from sportello.platforms.pagopa.receipts import ReceiptSync
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import payment_options, receipts
from sportello.sandbox.pagopa.app import DEFAULT_FDR_API_KEY, DEFAULT_GPD_API_KEY
from sportello.schema import outbox

pytestmark = [pytest.mark.slow]

STAND_IN = 40
LOST = 10


async def test_gpd_mode_end_to_end(
    db_url: str, tmp_path: Path, gpd_sandbox: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    monkeypatch.setenv("SPORTELLO_E2E_FDR_KEY", DEFAULT_FDR_API_KEY)
    monkeypatch.setenv("SPORTELLO_E2E_GPD_KEY", DEFAULT_GPD_API_KEY)
    config = gpd_config(db_url, tmp_path, gpd_sandbox)
    hub_app = create_app(config, apply_migrations=True, run_workers=False)
    hub = TestServer(hub_app, host="127.0.0.1")
    await hub.start_server()
    session = aiohttp.ClientSession()
    try:
        engine = hub_app[ENGINE]
        pagopa = PagopaStore(engine, config, hub_app[CLOCK])

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with session.request(method, gpd_sandbox.make_url(path), json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        # 1. import: stored in the hub, ONE bulk job instead of 1,000 create jobs
        source = tmp_path / "positions.csv"
        write_positions(source, POSITIONS)
        assert await import_positions_file(config, TENANT, source, True) == (POSITIONS, 0, [])
        assert await count(engine, outbox, outbox.c.kind == "pagopa.gpd.create") == 0
        assert await count(engine, outbox, outbox.c.kind == GPD_BULK_KIND) == 1
        assert await import_positions_file(config, TENANT, source, True) == (0, POSITIONS, [])
        assert await count(engine, outbox, outbox.c.kind == GPD_BULK_KIND) == 1

        # 2. the outbox uploads them: all VALID in GPD
        await drain(hub_app, config)
        async with engine.connect() as conn:
            job = (await conn.execute(select(outbox).where(outbox.c.kind == GPD_BULK_KIND))).one()
        assert job.status == "done", job.last_error
        uploads = (await call("GET", "/__sandbox/uploads"))["uploads"]
        assert [u["submitted"] for u in uploads] == [POSITIONS]
        held = await call("GET", f"/__sandbox/positions?organization={EC}&status=VALID")
        assert held["count"] == POSITIONS
        t_upload = time.monotonic() - started

        # 3. 300 options paid on the GPD side (both instalments of 0-99, the first of
        # 100-199), some in Stand-In, each with its receipt in GPD's receipts API
        stored = []
        after = 0
        while page := await pagopa.list_positions(TENANT, after=after, limit=500):
            stored += page
            after = page[-1].id
        chosen = [p.options[0] for p in stored[:200]] + [p.options[1] for p in stored[:100]]
        assert len({o.nav for o in chosen}) == PAID
        first, rest, lost = chosen[:150], chosen[150 : PAID - LOST], chosen[PAID - LOST :]
        for o in first:
            await call("POST", f"/__sandbox/pay/{EC}/{o.iuv}", {})

        # 4. read back: 150 stored; a second read lists them again, stores nothing
        lines, failed = await sync_receipts(config, TENANT, None)
        assert not failed and "150 stored" in lines[0], lines
        lines, failed = await sync_receipts(config, TENANT, None)
        assert not failed and "0 stored" in lines[0] and "150 already held" in lines[0], lines

        for i, o in enumerate(rest):
            body = {"stand_in": True, "psp_id": "SNDPITMM"} if i < STAND_IN else {}
            await call("POST", f"/__sandbox/pay/{EC}/{o.iuv}", body)
        # payments the hub saw start (paGetPayment) but whose receipts it never read
        for o in lost:
            await call("POST", f"/__sandbox/pay/{EC}/{o.iuv}", {})
            await pagopa.mark_activated(TENANT, o.nav)
        sync = ReceiptSync(engine, config, hub_app[CLOCK], session)
        # redelivered: receipts already held fetched and stored again change nothing
        for o in first[:50]:
            outcome = await sync.store_iuv(TENANT, o.iuv)
            assert outcome is not None and outcome.duplicate
        lines, missing = await recover_receipts(config, TENANT, 0, None)
        assert not missing and f"recovered: {LOST}; still missing: 0" in lines[0], lines
        lines, failed = await sync_receipts(config, TENANT, None)
        assert not failed and f"{len(rest)} stored" in lines[0], lines
        t_pay = time.monotonic() - started

        # 5. exactly 300 receipts, each marking its option paid
        assert await count(engine, receipts) == PAID
        assert await count(engine, receipts, receipts.c.stand_in.is_(True)) == STAND_IN
        assert await count(engine, payment_options, payment_options.c.status == "paid") == PAID
        assert await count(engine, receipts, receipts.c.position_id.is_(None)) == 0
        assert await count(engine, receipts, receipts.c.note.is_not(None)) == STAND_IN

        # 6. forwarded once each to the accounting CSV
        await drain(hub_app, config)
        with (tmp_path / "receipts.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        assert len(rows) == PAID
        assert {r["notice_number"] for r in rows} == {o.nav for o in chosen}
        assert sum(1 for r in rows if r["stand_in"] == "true") == STAND_IN
        t_forward = time.monotonic() - started

        # 7. the next day's flows reconcile all 300
        published = await call("POST", f"/__sandbox/fdr/publish?date={PAY_DAY.isoformat()}")
        comune_flows = [f for f in published["published"] if f["organizationId"] == EC]
        assert sum(f["totPayments"] for f in comune_flows) == PAID
        lines, failed = await reconcile_flows(config, TENANT, PAY_DAY, True)
        assert not failed, lines
        assert f"matched: {PAID}" in lines, lines
        assert (
            "unmatched: 0 payments without receipt (missing receipt), "
            "0 receipts without payment, 0 amount mismatches"
        ) in lines, lines
        summary = await FdrReconciler(engine, config, hub_app[CLOCK], session).summary(
            TENANT, [PAY_DAY]
        )
        assert summary.matched == PAID and summary.receipts_without_payment == 0
        assert await count(engine, fdr_results, fdr_results.c.status == MATCHED) == PAID
        total = time.monotonic() - started
        print(
            f"\ne2e gpd {db_url.split(':')[0]}: import+upload {t_upload:.1f}s, "
            f"pay+read {t_pay - t_upload:.1f}s, forward {t_forward - t_pay:.1f}s, "
            f"reconcile {total - t_forward:.1f}s, total {total:.1f}s"
        )
        assert total < 60
    finally:
        await session.close()
        await hub.close()

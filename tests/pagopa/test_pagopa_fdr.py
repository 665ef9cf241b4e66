"""FdR reconciliation against a scripted FdR server: a revision replaces the earlier
results, a flow that fails (HTTP 500, malformed) is recorded and does not stop the others,
and is read again on the next run; payments without a receipt are reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from sportello import migrate
from sportello.clock import SystemClock
from sportello.config import HubConfig, parse_config
from sportello.connectors.pagopa.fdr import FdrClient
from sportello.db import create_engine
from sportello.platforms.pagopa.fdr import MISSING_RECEIPT, REVOKED, FdrReconciler
from sportello.platforms.pagopa.fdr_tables import fdr_flows, fdr_results

EC = "77777777777"


def flow(fdr: str, revision: int, payments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fdr": fdr,
        "revision": revision,
        "status": "PUBLISHED",
        "published": f"2026-03-11T10:00:0{revision}Z",
        "regulation": "RIV1",
        "regulationDate": "2026-03-11",
        "sender": {"pspId": "PSP1"},
        "receiver": {"organizationId": EC},
        "totPayments": len(payments),
        "sumPayments": sum(p["pay"] for p in payments),
    }


def payment(index: int, status: str = "EXECUTED") -> dict[str, Any]:
    return {
        "index": index,
        "iuv": f"01{index:015d}",
        "iur": f"r{index}",
        "idTransfer": 1,
        "pay": 10.5,
        "payStatus": status,
        "payDate": "2026-03-10T09:00:00Z",
    }


class FakeFdr:
    def __init__(self) -> None:
        self.flows: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.broken: dict[str, str] = {}  # fdr → "500" | "malformed"

    def app(self) -> web.Application:
        async def listing(request: web.Request) -> web.Response:
            data = [
                {"fdr": k, "pspId": "PSP1", "revision": r, "published": flow(k, r, [])["published"]}
                for k, (r, _) in self.flows.items()
            ]
            return web.json_response(
                {"metadata": {"pageSize": 1000, "pageNumber": 1, "totPage": 1}, "data": data}
            )

        async def single(request: web.Request) -> web.Response:
            fdr = request.match_info["fdr"]
            revision, payments = self.flows[fdr]
            if self.broken.get(fdr) == "500":
                return web.Response(status=500)
            doc = flow(fdr, revision, payments)
            if self.broken.get(fdr) == "malformed":
                doc["totPayments"] = 99
            return web.json_response(doc)

        async def pays(request: web.Request) -> web.Response:
            _, payments = self.flows[request.match_info["fdr"]]
            return web.json_response(
                {"metadata": {"pageSize": 1000, "pageNumber": 1, "totPage": 1}, "data": payments}
            )

        base = "/organizations/{org}/fdrs"
        one = base + "/{fdr}/revisions/{rev}/psps/{psp}"
        app = web.Application()
        app.router.add_get(base, listing)
        app.router.add_get(one, single)
        app.router.add_get(one + "/payments", pays)
        return app


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[FakeFdr, FdrReconciler]]:
    config: HubConfig = parse_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"},
            "tenants": [
                {
                    "id": "prova",
                    "name": "Comune di Prova",
                    "ipa_code": "c_prova",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": EC,
                        "station_id": f"{EC}_01",
                        "mode": "station",
                    },
                }
            ],
        }
    )
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    fake = FakeFdr()
    server = TestServer(fake.app())
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        client = FdrClient(session, str(server.make_url("")), api_key="k")
        yield fake, FdrReconciler(engine, config, SystemClock(), session, client=client)
    await server.close()
    await engine.dispose()


async def test_revisions_failures_and_missing_receipts(
    setup: tuple[FakeFdr, FdrReconciler],
) -> None:
    fake, reconciler = setup
    fake.flows = {
        "F-A": (1, [payment(1), payment(2)]),
        "F-B": (1, [payment(3)]),
        "F-C": (1, [payment(4)]),
    }
    fake.broken = {"F-B": "500", "F-C": "malformed"}
    report = await reconciler.reconcile("prova")
    assert report.reconciled == 1 and report.statuses[MISSING_RECEIPT] == 2
    reasons = {f[0]: f[3] for f in report.failed}
    assert "HTTP 500" in reasons["F-B"] and "totPayments" in reasons["F-C"]

    # F-A revised (payment 2 revoked), F-B repaired: both read; F-C still failing
    fake.flows["F-A"] = (2, [payment(1), payment(2, "REVOKED")])
    del fake.broken["F-B"]
    report = await reconciler.reconcile("prova")
    assert report.reconciled == 2 and [f[0] for f in report.failed] == ["F-C"]
    async with reconciler.engine.connect() as conn:
        flows = {
            (r.fdr, r.revision): r.status
            for r in await conn.execute(
                select(fdr_flows.c.fdr, fdr_flows.c.revision, fdr_flows.c.status)
            )
        }
        results = (await conn.execute(select(fdr_results.c.iur, fdr_results.c.status))).all()
    assert flows == {
        ("F-A", 1): "superseded",
        ("F-A", 2): "reconciled",
        ("F-B", 1): "reconciled",
        ("F-C", 1): "failed",
    }
    assert sorted(results) == [
        ("r1", MISSING_RECEIPT),
        ("r2", REVOKED),
        ("r3", MISSING_RECEIPT),
    ]
    again = await reconciler.reconcile("prova")
    assert again.reconciled == 0 and again.already == 2

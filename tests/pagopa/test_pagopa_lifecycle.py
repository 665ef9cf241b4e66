"""A debt position's life after creation, on SQLite and PostgreSQL, over real sockets.

GPD mode against the GPD sandbox, with an outbox worker draining the jobs: update (GPD
gets the new content, the notice numbers stay), publish (DRAFT → VALID), invalidate
(INVALID in GPD); an invalidation whose answer is lost, and whose read-back fails too, is
retried, meets GPD's 409, reads the position back and is done; changes of one IUPD reach
GPD in order (create, update, invalidate queued together; an update that GPD fails first
holds the invalidation back); an illegal change (update after invalidate, invalidating a
DRAFT) is 409 and queues nothing. Station mode: an invalidated position's notice is
answered PAA_PAGAMENTO_ANNULLATO. The CLI's publish and invalidate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from factories import drain_outbox
from pagopa_node import XSD_DIR, outcome, verify
from sqlalchemy import func, select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import HubConfig, parse_config
from sportello.platforms.pagopa.gpd_bulk import create_positions_bulk
from sportello.platforms.pagopa.operations import OperationError, change_position
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore, change_key, gpd_lock
from sportello.sandbox.pagopa.app import DEFAULT_GPD_API_KEY
from sportello.sandbox.pagopa.app import create_app as create_sandbox
from sportello.sandbox.pagopa.gpd_app import GPD_PREFIX
from sportello.schema import ledger, outbox, outbox_locks

EC = "77777777777"  # the station tenant: pagopa_node's defaults
BROKER = "77777777777"
STATION = "77777777777_01"
GPD_EC = "00000000999"
KEY_ENV = "SPORTELLO_TEST_LIFECYCLE_GPD_KEY"
CF = "RSSMRA80A01H501U"
GPD = "/api/v1/tenants/comune/pagopa"
STN = "/api/v1/tenants/stazione/pagopa"
HAVE_XSD = (XSD_DIR / "paForNode.xsd").is_file()


def iban_with(abi: str, account: str) -> str:
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


IBAN = iban_with("05428", "000000123456")
DUE = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)


def position(
    iupd: str, amount: int = 8400, description: str = "TARI 2026", *, ec: str = GPD_EC
) -> dict[str, Any]:
    """A position's fields, complete enough for the store (the API fills in the creditor)."""
    return {
        "iupd": iupd,
        "type": "F",
        "fiscal_code": CF,
        "full_name": "Mario Rossi",
        "company_name": "Comune di Prova",
        "payment_options": [
            {
                "amount": amount,
                "description": description,
                "due_date": DUE.isoformat(),
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": amount,
                        "organization_fiscal_code": ec,
                        "remittance_information": description,
                        "category": "9/0101101IM/",
                        "iban": IBAN,
                    }
                ],
            }
        ],
    }


def make_config(db_url: str, sandbox: TestServer) -> HubConfig:
    def tenant(tid: str, fc: str, cc: str, pagopa: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": tid,
            "name": f"Comune {tid}",
            "ipa_code": f"c_{cc.lower()}",
            "fiscal_code": fc,
            "cadastral_code": cc,
        }
        if pagopa is not None:
            out["pagopa"] = pagopa
        return out

    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {
                "workers": False,
                "poll_interval": 0.02,
                "concurrency": 8,
                "backoff_base": 0.05,
                "backoff_cap": 0.5,
            },
            "tenants": [
                tenant(
                    "comune",
                    GPD_EC,
                    "Z999",
                    {
                        "ec_fiscal_code": GPD_EC,
                        "broker_id": GPD_EC,
                        "station_id": GPD_EC + "_01",
                        "segregation_code": "01",
                        "mode": "gpd",
                        "base_url": str(sandbox.make_url(GPD_PREFIX)),
                        "api_key": {"env": KEY_ENV},
                    },
                ),
                tenant(
                    "stazione",
                    EC,
                    "Z888",
                    {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "segregation_code": "01",
                        "mode": "station",
                    },
                ),
                tenant("senza", "00000000777", "Z777", None),
            ],
        }
    )


@dataclass
class Env:
    app: Any
    config: HubConfig
    hub: TestServer
    sandbox: TestServer
    session: aiohttp.ClientSession
    keys: dict[str, str]

    @property
    def store(self) -> PagopaStore:
        return PagopaStore(self.app[ENGINE], self.config, self.app[CLOCK])

    async def api(
        self, method: str, path: str, key: str, body: Any = None, idem: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        if idem is not None:
            headers["Idempotency-Key"] = idem
        async with self.session.request(
            method, self.hub.make_url(path), json=body, headers=headers
        ) as r:
            return r.status, json.loads(await r.read())

    async def gpd(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.sandbox.make_url(path), json=body) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()

    async def held(self, iupd: str) -> dict[str, Any]:
        """The position as the GPD sandbox holds it."""
        found = await self.gpd("GET", f"/__sandbox/positions?organization={GPD_EC}")
        (one,) = [p for p in found["positions"] if p["iupd"] == iupd]
        return one  # type: ignore[no-any-return]

    async def calls(self, operation: str) -> list[int]:
        found = await self.gpd("GET", f"/__sandbox/calls?operation={operation}")
        return [c["status"] for c in found["calls"]]

    async def jobs(self, kind: str | None = None) -> list[Any]:
        async with self.app[ENGINE].connect() as conn:
            stmt = select(outbox).order_by(outbox.c.id)
            if kind:
                stmt = stmt.where(outbox.c.kind == kind)
            return list((await conn.execute(stmt)).all())

    async def drain(self) -> None:
        """Run one outbox worker until nothing is pending or running."""
        await drain_outbox(self.app, outbox=self.config.outbox)

    async def station(self, nav: str) -> tuple[str, str | None]:
        async with self.session.post(
            self.hub.make_url("/t/stazione/pagopa/station"),
            data=verify(nav),
            headers={"Content-Type": "text/xml; charset=utf-8"},
        ) as r:
            return outcome(await r.read())


@pytest.fixture
async def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_GPD_API_KEY)
    sandbox = TestServer(create_sandbox(processing_delay=0), host="127.0.0.1")
    await sandbox.start_server()
    config = make_config(db_url, sandbox)
    app = create_app(config, apply_migrations=True, run_workers=False)
    if HAVE_XSD:
        app[XSD_KEY] = XSD_DIR
    hub = TestServer(app, host="127.0.0.1")
    await hub.start_server()
    session = aiohttp.ClientSession()
    try:
        keys: dict[str, str] = {}
        async with app[ENGINE].begin() as conn:
            for name, tenant, scopes in (
                ("gpd", "comune", ["read", "write", "personal_data"]),
                ("read", "comune", ["read"]),
                ("stn", "stazione", ["read", "write"]),
                ("senza", "senza", ["read", "write", "personal_data"]),
            ):
                keys[name] = await apikeys.create(
                    conn, tenant_id=tenant, name=name, scopes=scopes, now=app[CLOCK].now()
                )
        yield Env(app, config, hub, sandbox, session, keys)
    finally:
        await session.close()
        await hub.close()
        await sandbox.close()


async def test_gpd_update_publish_invalidate(env: Env) -> None:
    # a DRAFT position, created in GPD by its create job
    created = await env.store.create_position("comune", position("L-1"), to_publish=False)
    nav = created.options[0].nav
    await env.drain()
    assert (await env.held("L-1"))["status"] == "DRAFT"

    # update: new amount and description; the notice number stays; GPD gets the content
    new = position("L-1", amount=9100, description="TARI 2026 conguaglio")
    del new["iupd"]  # the path's
    status, answer = await env.api("PUT", GPD + "/positions/L-1", "gpd", new, "u1")
    assert status == 200, answer
    assert answer["status"] == "DRAFT" and answer["payment_options"][0]["amount"] == 9100
    assert answer["payment_options"][0]["notice_number"] == nav
    # the same key: the stored answer, no second job
    status, again = await env.api("PUT", GPD + "/positions/L-1", "gpd", new, "u1")
    assert status == 200 and again == answer
    # the same content under another key: nothing to do, nothing queued
    status, same = await env.api("PUT", GPD + "/positions/L-1", "gpd", new, "u2")
    assert status == 200 and same["status"] == "DRAFT"
    (update_job,) = await env.jobs("pagopa.gpd.update")
    assert update_job.idempotency_key == change_key("comune", "L-1", "update", 1)
    assert "Rossi" not in update_job.payload and CF not in update_job.payload
    await env.drain()
    held = await env.held("L-1")
    assert held["status"] == "DRAFT"
    (option,) = held["options"]
    assert option["nav"] == nav and option["body"]["amount"] == 9100
    assert option["body"]["description"] == "TARI 2026 conguaglio"

    # publish: VALID at once (no validity date), here and in GPD
    status, answer = await env.api("POST", GPD + "/positions/L-1/publish", "gpd", None, "p1")
    assert status == 200 and answer["status"] == "VALID", answer
    status, answer = await env.api("POST", GPD + "/positions/L-1/publish", "gpd", None, "p2")
    assert status == 200 and answer["status"] == "VALID"  # already: nothing queued
    assert len(await env.jobs("pagopa.gpd.publish")) == 1
    await env.drain()
    assert (await env.held("L-1"))["status"] == "VALID"

    # invalidate: INVALID, for good
    status, answer = await env.api("POST", GPD + "/positions/L-1/invalidate", "gpd", None, "i1")
    assert status == 200 and answer["status"] == "INVALID", answer
    await env.drain()
    assert (await env.held("L-1"))["status"] == "INVALID"
    status, answer = await env.api("POST", GPD + "/positions/L-1/invalidate", "gpd", None, "i2")
    assert status == 200 and answer["status"] == "INVALID"

    # illegal now: 409 naming the state, nothing stored, nothing queued
    before = len(await env.jobs())
    status, answer = await env.api("PUT", GPD + "/positions/L-1", "gpd", new, "u3")
    assert status == 409 and "INVALID" in answer["detail"], answer
    other = position("L-1", amount=5000)
    status, answer = await env.api("PUT", GPD + "/positions/L-1", "gpd", other, "u4")
    assert status == 409 and "INVALID" in answer["detail"], answer
    status, answer = await env.api("POST", GPD + "/positions/L-1/publish", "gpd", None, "p3")
    assert status == 409 and "INVALID" in answer["detail"], answer
    assert len(await env.jobs()) == before
    stored = await env.store.get_position("comune", "L-1")
    assert stored is not None and stored.status == "INVALID"
    assert stored.position.payment_options[0].amount == 9100 and stored.gpd_seq == 3

    assert {j.status for j in await env.jobs()} == {"done"}
    # the notice is gone from GPD's point of view too
    assert await env.calls("invalidatePosition") == [200]


async def test_illegal_changes_and_refusals(env: Env) -> None:
    await env.store.create_position("comune", position("R-1"), to_publish=False)
    await env.api("POST", GPD + "/positions", "gpd", position("R-2"), "c2")
    before = len(await env.jobs())
    # a DRAFT cannot be invalidated (GPD: only PUBLISHED or VALID)
    status, answer = await env.api("POST", GPD + "/positions/R-1/invalidate", "gpd", None, "x1")
    assert status == 409 and "DRAFT" in answer["detail"], answer
    # unknown IUPD
    for method, path in (
        ("PUT", "/positions/NOPE"),
        ("POST", "/positions/NOPE/publish"),
        ("POST", "/positions/NOPE/invalidate"),
    ):
        body = position("NOPE") if method == "PUT" else None
        status, answer = await env.api(method, GPD + path, "gpd", body, "x2" + path)
        assert status == 404 and "IUPD" in answer["detail"], (path, answer)
        # a tenant without pagoPA: 409, like every pagoPA route
        foreign = "/api/v1/tenants/senza/pagopa" + path
        status, answer = await env.api(method, foreign, "senza", body, "x3")
        assert status == 409 and "pagoPA" in answer["detail"], (path, answer)
        # the write scope and an Idempotency-Key are needed
        status, _ = await env.api(method, GPD + path, "read", body, "x4")
        assert status == 403
        status, answer = await env.api(method, GPD + path, "gpd", body)
        assert status == 400 and "Idempotency-Key" in answer["detail"]
    # a body for another IUPD, a body with IUVs, a past due date (GPD mode): 422
    status, answer = await env.api("PUT", GPD + "/positions/R-2", "gpd", position("R-1"), "x5")
    assert status == 422 and answer["errors"] == ["iupd: must be the IUPD of the path"]
    with_iuv = position("R-2")
    with_iuv["payment_options"][0]["iuv"] = "01000000000000199"
    status, answer = await env.api("PUT", GPD + "/positions/R-2", "gpd", with_iuv, "x6")
    assert status == 422 and "iuv" in answer["errors"][0]
    old = position("R-2")
    old["payment_options"][0]["due_date"] = "2020-01-01T00:00:00+00:00"
    status, answer = await env.api("PUT", GPD + "/positions/R-2", "gpd", old, "x7")
    assert status == 422 and answer["errors"] == ["payment_options.0.due_date: is in the past"]
    assert len(await env.jobs()) == before


async def test_lost_invalidate_answer_is_verified_and_done(env: Env) -> None:
    await env.api("POST", GPD + "/positions", "gpd", position("LOST-1"), "c1")
    await env.drain()
    assert (await env.held("LOST-1"))["status"] == "VALID"
    # GPD invalidates, then every answer of the client's attempts is lost (502), and the
    # read-back fails too: the job is retried, meets GPD's 409, reads back INVALID: done
    for fault in (
        {"mode": "lose", "count": 4, "operations": ["invalidatePosition"]},
        {"mode": "fail", "count": 4, "operations": ["getOrganizationDebtPositionByIUPD"]},
    ):
        await env.gpd("POST", "/__sandbox/faults", fault)
    status, answer = await env.api("POST", GPD + "/positions/LOST-1/invalidate", "gpd", None, "i1")
    assert status == 200 and answer["status"] == "INVALID"
    await env.drain()
    (job,) = await env.jobs("pagopa.gpd.invalidate")
    assert job.status == "done", job.last_error
    async with env.app[ENGINE].connect() as conn:
        outcomes = (
            await conn.execute(
                select(ledger.c.attempt, ledger.c.outcome)
                .where(ledger.c.outbox_id == job.id)
                .order_by(ledger.c.id)
            )
        ).all()
    assert [tuple(o) for o in outcomes] == [(1, "retry"), (2, "ok")], outcomes
    assert await env.calls("invalidatePosition") == [502, 502, 502, 502, 409]
    assert (await env.held("LOST-1"))["status"] == "INVALID"

    # a lost answer that the read-back resolves at once: no retry at all
    await env.api("POST", GPD + "/positions", "gpd", position("LOST-2"), "c2")
    await env.drain()
    lose = {"mode": "lose", "count": 4, "operations": ["invalidatePosition"]}
    await env.gpd("POST", "/__sandbox/faults", lose)
    await env.api("POST", GPD + "/positions/LOST-2/invalidate", "gpd", None, "i2")
    await env.drain()
    (_, job) = await env.jobs("pagopa.gpd.invalidate")
    assert job.status == "done" and job.attempts == 1, job.last_error
    assert (await env.held("LOST-2"))["status"] == "INVALID"


async def test_changes_of_one_iupd_reach_gpd_in_order(env: Env) -> None:
    # create, update and invalidate queued before any worker runs
    status, _ = await env.api("POST", GPD + "/positions", "gpd", position("O-1"), "c1")
    assert status == 201
    status, _ = await env.api("PUT", GPD + "/positions/O-1", "gpd", position("O-1", 7000), "u1")
    assert status == 200
    status, _ = await env.api("POST", GPD + "/positions/O-1/invalidate", "gpd", None, "i1")
    assert status == 200
    await env.drain()
    held = await env.held("O-1")
    assert held["status"] == "INVALID" and held["options"][0]["body"]["amount"] == 7000
    stored = await env.store.get_position("comune", "O-1")
    # the create job's answer (VALID) did not overwrite the later invalidation
    assert stored is not None and stored.status == "INVALID"
    assert {j.status for j in await env.jobs()} == {"done"}

    # an update GPD fails first (503 on each of the client's attempts) holds back the
    # invalidation queued after it, which would otherwise make the update illegal
    await env.api("POST", GPD + "/positions", "gpd", position("O-2"), "c2")
    await env.drain()
    await env.gpd(
        "POST",
        "/__sandbox/faults",
        {"mode": "fail", "count": 4, "status": 503, "operations": ["updatePosition"]},
    )
    await env.api("PUT", GPD + "/positions/O-2", "gpd", position("O-2", 6000), "u2")
    await env.api("POST", GPD + "/positions/O-2/invalidate", "gpd", None, "i2")
    await env.drain()
    jobs = {j.kind: j for j in await env.jobs() if json.loads(j.payload)["iupd"] == "O-2"}
    assert jobs["pagopa.gpd.update"].status == "done", jobs["pagopa.gpd.update"].last_error
    assert jobs["pagopa.gpd.update"].attempts == 2
    assert jobs["pagopa.gpd.invalidate"].status == "done"
    held = await env.held("O-2")
    assert held["status"] == "INVALID" and held["options"][0]["body"]["amount"] == 6000
    calls = (await env.gpd("GET", "/__sandbox/calls"))["calls"]
    o2 = [
        (c["operation"], c["status"])
        for c in calls
        if "/O-2" in c["path"] and c["operation"] != "getOrganizationDebtPositionByIUPD"
    ]
    assert o2 == [("updatePosition", 503)] * 4 + [
        ("updatePosition", 200),
        ("invalidatePosition", 200),
    ], o2


async def test_changes_queued_behind_a_bulk_upload_wait_for_it(env: Env) -> None:
    # three positions stored with ONE bulk upload job; a change of two of them queued
    # before any worker runs: GPD must have the position before it can change it
    items = [(n, position(f"B-{n}")) for n in range(3)]
    stored = await create_positions_bulk(env.store, "comune", items)
    assert all(not isinstance(s, Exception) for _, s in stored)
    (bulk,) = await env.jobs("pagopa.gpd.bulk")
    assert bulk.lock == gpd_lock("comune", "B-0")
    async with env.app[ENGINE].connect() as conn:
        held = (await conn.execute(select(outbox_locks))).all()
    # the upload holds each position's key; the create jobs it replaced left none behind
    assert sorted((h.lock_key, h.outbox_id) for h in held) == [
        (gpd_lock("comune", f"B-{n}"), bulk.id) for n in range(3)
    ]
    status, _ = await env.api("PUT", GPD + "/positions/B-1", "gpd", position("B-1", 7000), "u1")
    assert status == 200
    status, _ = await env.api("POST", GPD + "/positions/B-2/invalidate", "gpd", None, "i1")
    assert status == 200
    # the upload is refused (503) on each of the client's attempts: the job is retried later
    upload = "create-debt-positions-by-file-upload"
    fault = {"mode": "fail", "count": 4, "status": 503, "operations": [upload]}
    await env.gpd("POST", "/__sandbox/faults", fault)
    await env.drain()
    jobs = await env.jobs()
    assert [(j.kind, j.status) for j in jobs] == [
        ("pagopa.gpd.bulk", "done"),
        ("pagopa.gpd.update", "done"),
        ("pagopa.gpd.invalidate", "done"),
    ], [(j.kind, j.status, j.last_error) for j in jobs]
    assert [j.attempts for j in jobs] == [2, 1, 1]  # no change met a position GPD lacked
    assert (await env.held("B-1"))["options"][0]["body"]["amount"] == 7000
    assert (await env.held("B-2"))["status"] == "INVALID"
    assert (await env.held("B-0"))["status"] == "VALID"


def test_the_lock_key_of_a_long_iupd_fits_the_column() -> None:
    longest = "A" * 256  # an IUPD is 1 to 256 characters
    key = gpd_lock("t" * 40, longest)
    assert len(key) <= 200 and key != gpd_lock("t" * 40, longest[:-1] + "B")
    assert gpd_lock("comune", "O-1") == "pagopa.gpd:comune:O-1"


async def test_station_mode_invalidated_notice_is_annullato(env: Env) -> None:
    status, created = await env.api("POST", STN + "/positions", "stn", position("S-1", ec=EC), "c1")
    assert status == 201, created
    nav = created["payment_options"][0]["notice_number"]
    assert await env.station(nav) == ("OK", None)
    # an update in station mode: stored, nothing queued; the station serves the new content
    status, answer = await env.api(
        "PUT", STN + "/positions/S-1", "stn", position("S-1", 4200, ec=EC), "u1"
    )
    assert status == 200 and answer["payment_options"][0]["amount"] == 4200
    assert answer["payment_options"][0]["notice_number"] == nav
    assert await env.station(nav) == ("OK", None)
    status, answer = await env.api("POST", STN + "/positions/S-1/invalidate", "stn", None, "i1")
    assert status == 200 and answer["status"] == "INVALID"
    assert await env.station(nav) == ("KO", "PAA_PAGAMENTO_ANNULLATO")
    # a DRAFT published: payable from then on
    draft = await env.store.create_position("stazione", position("S-2", ec=EC), to_publish=False)
    draft_nav = draft.options[0].nav
    assert await env.station(draft_nav) == ("KO", "PAA_PAGAMENTO_SCONOSCIUTO")
    status, answer = await env.api("POST", STN + "/positions/S-2/publish", "stn", None, "p1")
    assert status == 200 and answer["status"] == "VALID"
    assert await env.station(draft_nav) == ("OK", None)
    async with env.app[ENGINE].connect() as conn:
        queued = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert queued == 0


async def test_cli_publish_and_invalidate(env: Env) -> None:
    await env.store.create_position("comune", position("CLI-1"), to_publish=False)
    assert await change_position(env.config, "comune", "CLI-1", "publish") == (
        "CLI-1: VALID; queued for GPD (outbox)"
    )
    assert await change_position(env.config, "comune", "CLI-1", "publish") == (
        "CLI-1: already VALID, nothing to do"
    )
    assert await change_position(env.config, "comune", "CLI-1", "invalidate") == (
        "CLI-1: INVALID; queued for GPD (outbox)"
    )
    with pytest.raises(OperationError, match="cannot publish position CLI-1"):
        await change_position(env.config, "comune", "CLI-1", "publish")
    with pytest.raises(OperationError, match="no debt position NOPE"):
        await change_position(env.config, "comune", "NOPE", "invalidate")
    await env.drain()
    assert (await env.held("CLI-1"))["status"] == "INVALID"
    assert {j.status for j in await env.jobs()} == {"done"}

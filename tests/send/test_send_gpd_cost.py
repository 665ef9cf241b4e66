"""The pagoPA cost link in GPD mode (SEND's ``pagoPaIntMode: ASYNC``), end to end on SQLite
and PostgreSQL: the hub, the SEND twin and the pagoPA sandbox's GPD as separate servers (the
SEND twin writes into GPD over HTTP, as the real SEND does).

- a GPD-mode tenant sends a fine with ``applyCost`` and a position made by the hub: the
  request says ``pagoPaIntMode: ASYNC`` with ``paFee`` and ``vat``; the upload waits for the
  position's creation in GPD (a GPD failure first: still accepted, never PAYMENT_NOT_VALID);
- SEND writes its cost into GPD (``notificationFee``) when it accepts the notification and
  again when the registered letter raises it: GPD's amount is the fine plus SEND's current
  price, on the creditor's transfer, the transfers still summing to the amount;
- GPD is paid: the receipt read back (``receipts-sync``) closes the hub's position and tells
  SEND, whose notification becomes PAID with the amount paid;
- without paFee the hub refuses (400 naming it) before anything is queued; the twin
  refuses a notice GPD has not (PAYMENT_NOT_VALID); GPD keeps SEND's fee over an update,
  refuses to change a paid option (422) and an unknown NAV (404).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from factories import drain_outbox
from send_stack import Stack
from test_send_pagopa import CF, DEMO_EC, IBAN, PDF, Hub, tenant, twin_notification
from test_send_sandbox import call, headers

from sportello import apikeys
from sportello.app import ENGINE, SERVICES, create_app
from sportello.config import parse_config
from sportello.platforms.pagopa.notices import created_iupd
from sportello.platforms.pagopa.receipts import ReceiptSync
from sportello.platforms.pagopa.tables import payment_options
from sportello.platforms.send.payments import PAYMENT_KIND
from sportello.platforms.send.service import SEND_STREAMS
from sportello.sandbox.pagopa.app import DEFAULT_GPD_API_KEY
from sportello.sandbox.pagopa.app import create_app as create_pagopa
from sportello.sandbox.pagopa.gpd_app import GPD_PREFIX
from sportello.sandbox.send.app import ANALOG_COST, SEND_FEE, SEND_STATE
from sportello.schema import outbox

FINE = 8700  # cents
PA_FEE, VAT = 100, 22


class GpdHub(Hub):
    gpd_url: str

    async def gpd(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.stack.session.request(method, self.gpd_url + path, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def fine(self, protocol: str, **changes: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "pa_protocol_number": protocol,
            "subject": "Verbale di accertamento violazione codice della strada",
            "taxonomy_code": "010101P",
            "pa_fee": PA_FEE,
            "vat": VAT,
            "recipients": [
                {
                    "recipientType": "PF",
                    "taxId": CF,
                    "denomination": "Mario Rossi",
                    # no digital domicile: a registered letter, SEND's cost grows
                    "physicalAddress": {
                        "address": "Via Roma 1",
                        "municipality": "Roma",
                        "zip": "00100",
                    },
                }
            ],
            "documents": [{"title": "Verbale", "content_base64": base64.b64encode(PDF).decode()}],
            "position": {
                "amount": FINE,
                "due_date": (date.today() + timedelta(days=60)).isoformat(),
                "description": "Verbale codice della strada",
                "iban": IBAN,
                "transfer_category": "9/0101108TS/",
                "apply_cost": True,
            },
            **changes,
        }
        r = await self.client.post(
            "/api/v1/tenants/demo/send/notifications",
            json={k: v for k, v in body.items() if v is not None},
            headers={"Authorization": f"Bearer {self.keys['demo']}", "Idempotency-Key": protocol},
        )
        return r.status, await r.json()


@pytest.fixture
async def gpd_hub(tmp_path: Path, db_url: str, stack: Stack) -> AsyncIterator[GpdHub]:
    pagopa = TestServer(create_pagopa(processing_delay=0.0), host="127.0.0.1")
    await pagopa.start_server()
    base = str(pagopa.make_url("")).rstrip("/")
    # the SEND twin writes ASYNC costs into this GPD, over HTTP
    send_state = stack.send_app[SEND_STATE]
    send_state.gpd_url, send_state.gpd_retry_delay = base + GPD_PREFIX, 0.05
    send_state.gpd_api_key = DEFAULT_GPD_API_KEY
    (tmp_path / "gpd.key").write_text(DEFAULT_GPD_API_KEY)
    demo = tenant("demo", DEMO_EC, "sandbox-send-demo-key", stack, tmp_path)
    demo["pagopa"] = {
        "ec_fiscal_code": DEMO_EC,
        "broker_id": "15376371009",
        "station_id": "15376371009_01",
        "segregation_code": "01",
        "mode": "gpd",
        "base_url": base + GPD_PREFIX,
        "api_key": {"file": str(tmp_path / "gpd.key")},
    }
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {
                "workers": False,
                "poll_interval": 0.02,
                "backoff_base": 0.05,
                "backoff_cap": 0.2,
            },
            "tenants": [demo],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True, run_workers=False)
    try:
        async with TestClient(TestServer(app)) as client:
            async with app[ENGINE].begin() as conn:
                key = await apikeys.create(
                    conn,
                    tenant_id="demo",
                    name="send",
                    scopes=["read", "write", "personal_data"],
                    now=app[SERVICES].clock.now(),
                )
            hub = GpdHub(client, {"demo": key}, stack)
            hub.gpd_url = base
            yield hub
    finally:
        await pagopa.close()


async def settle(hub: GpdHub, until: Any, timeout: float = 20.0) -> None:
    """Drain the outbox and let the twins move (the SEND twin's timeline advances on each
    call; its GPD writes run in the background) until ``until()`` holds."""
    async with asyncio.timeout(timeout):
        while True:
            await drain_outbox(hub.app)
            await hub.app[SEND_STREAMS].read("demo")
            if until():
                return
            await asyncio.sleep(0.05)


async def test_a_gpd_fine_with_apply_cost_end_to_end(gpd_hub: GpdHub) -> None:
    hub = gpd_hub
    status, fees = await hub.gpd("GET", "/__sandbox/notification-fees")
    assert (status, fees) == (200, [])
    # GPD fails the position's creation (past the client's own retries): the SEND upload
    # waits for the outbox's next attempt, so SEND never looks for a position GPD has not
    status, _ = await hub.gpd(
        "POST",
        "/__sandbox/faults",
        json={"count": 8, "status": 503, "operations": ["createPosition"]},
    )
    assert status in (200, 201)
    await hub.app[SEND_STREAMS].read("demo")  # the tenant's stream exists before the send
    status, queued = await hub.fine("GPD-FINE-1")
    assert status == 202, queued
    send = hub.stack.send_app[SEND_STATE]

    def letter_cost_written() -> bool:
        return any(
            e["notificationFee"] > SEND_FEE + PA_FEE and e["status"] == 200 for e in send.gpd_log
        )

    await settle(hub, letter_cost_written)
    notification = twin_notification(hub, "GPD-FINE-1")
    assert notification.state == "ACCEPTED", notification.errors
    body = notification.body
    assert (body["pagoPaIntMode"], body["paFee"], body["vat"]) == ("ASYNC", PA_FEE, VAT)
    [payment] = body["recipients"][0]["payments"]
    pago = payment["pagoPa"]
    assert pago["applyCost"] is True and pago["attachment"]["contentType"] == "application/pdf"
    # GPD's position: the fine plus SEND's price now, on the creditor's transfer
    price = await hub.stack.send().price(DEMO_EC, pago["noticeCode"])
    letter = ANALOG_COST["AR_REGISTERED_LETTER"]
    assert price.totalPrice == SEND_FEE + PA_FEE + letter + letter * VAT // 100
    status, fees = await hub.gpd("GET", "/__sandbox/notification-fees")
    assert [f["notificationFee"] for f in fees] == [SEND_FEE + PA_FEE, price.totalPrice]
    status, position = await hub.gpd(
        "GET",
        f"{GPD_PREFIX}/organizations/{DEMO_EC}/debtpositions/{created_iupd('GPD-FINE-1')}",
        headers={"Ocp-Apim-Subscription-Key": DEFAULT_GPD_API_KEY},
    )
    assert status == 200, position
    [option] = position["paymentOption"]
    assert option["nav"] == pago["noticeCode"]
    assert option["notificationFee"] == price.totalPrice
    assert option["amount"] == FINE + price.totalPrice
    assert sum(t["amount"] for t in option["transfer"]) == option["amount"]
    # the citizen pays in GPD; the receipt read back closes the hub's position and SEND's
    iuv = option["iuv"]
    status, paid = await hub.gpd("POST", f"/__sandbox/pay/{DEMO_EC}/{iuv}")
    assert status == 200, paid
    services = hub.app[SERVICES]
    sync = ReceiptSync(
        services.engine, services.config, services.clock, services.session, services.plugins
    )
    report = await sync.sync("demo", since=date.today() - timedelta(days=1))
    assert report.stored == 1, report
    await settle(hub, lambda: twin_notification(hub, "GPD-FINE-1").status == "PAID")
    [event] = [e for e in notification.timeline if e["category"] == "PAYMENT"]
    assert event["details"]["amount"] == FINE + price.totalPrice
    assert event["details"]["noticeCode"] == pago["noticeCode"]
    async with hub.app[ENGINE].connect() as conn:
        [row] = (await conn.execute(payment_options.select())).all()
        assert (row.status, row.nav) == ("paid", pago["noticeCode"])
        created = (
            await conn.execute(outbox.select().where(outbox.c.kind == "pagopa.gpd.create"))
        ).one()
        assert created.status == "done" and created.attempts >= 2  # GPD failed it first
        jobs = (await conn.execute(outbox.select().where(outbox.c.kind == PAYMENT_KIND))).all()
        assert [j.status for j in jobs] == ["done"]
    # a second read of the receipts tells SEND nothing twice
    again = await sync.sync("demo", since=date.today() - timedelta(days=1))
    assert again.stored == 0
    async with hub.app[ENGINE].connect() as conn:
        jobs = (await conn.execute(outbox.select().where(outbox.c.kind == PAYMENT_KIND))).all()
        assert len(jobs) == 1
    # GPD will not change a paid option's fee any more
    status, answer = await hub.gpd(
        "PUT",
        f"{GPD_PREFIX}/organizations/{DEMO_EC}/paymentoptions/{pago['noticeCode']}/notificationfee",
        json={"notificationFee": 1},
        headers={"Ocp-Apim-Subscription-Key": DEFAULT_GPD_API_KEY},
    )
    assert status == 422, answer


async def test_async_mode_needs_pa_fee_and_vat(gpd_hub: GpdHub) -> None:
    status, answer = await gpd_hub.fine("GPD-NOFEE", pa_fee=None)
    assert status == 400
    assert answer["detail"].startswith("paFee: required")
    status, answer = await gpd_hub.fine("GPD-NOVAT", vat=None)
    assert status == 400 and answer["detail"].startswith("vat: required")
    async with gpd_hub.app[ENGINE].connect() as conn:
        assert (await conn.execute(outbox.select())).first() is None


async def test_the_twins_side_of_async_mode(gpd_hub: GpdHub) -> None:
    """SEND refuses an ASYNC notice GPD has not; GPD keeps SEND's fee over the creditor's
    update of the position and answers 404 for an unknown NAV."""
    hub, stack = gpd_hub, gpd_hub.stack
    from test_send_f24 import outcome, uploaded
    from test_send_sandbox import PDF as TWIN_PDF
    from test_send_sandbox import request_body

    act = await uploaded(stack, TWIN_PDF, "application/pdf")
    body = request_body()
    body["documents"][0]["ref"] = act
    body.update(pagoPaIntMode="ASYNC", notificationFeePolicy="DELIVERY_MODE")
    body["recipients"][0]["payments"] = [
        {
            "pagoPa": {
                "noticeCode": "301000000000000099",
                "creditorTaxId": DEMO_EC,
                "applyCost": True,
            }
        }
    ]
    hdrs = await headers(stack)
    status, answer, _ = await call(stack, "POST", "/delivery/v2.6/requests", hdrs=hdrs, json=body)
    assert status == 400, answer  # paFee and vat are required in ASYNC mode
    assert sorted(e["element"] for e in answer["errors"]) == ["paFee", "vat"]
    body.update(paFee=PA_FEE, vat=VAT)
    refused: dict[str, Any] = {}
    async with asyncio.timeout(10):
        while refused.get("notificationRequestStatus") in (None, "WAITING"):
            refused = await outcome(stack, body) if not refused else await _status(stack, refused)
            await asyncio.sleep(0.05)
    assert refused["notificationRequestStatus"] == "REFUSED", refused
    assert [(e["code"], e["element"]) for e in refused["errors"]] == [
        ("PAYMENT_NOT_VALID", "recipients[0].payments[0].pagoPa")
    ]
    # GPD: a position, SEND's fee written, then the creditor updates the position
    key = {"Ocp-Apim-Subscription-Key": DEFAULT_GPD_API_KEY}
    due = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    position = {
        "iupd": "IUPD-FEE-1",
        "type": "F",
        "fiscalCode": CF,
        "fullName": "Mario Rossi",
        "companyName": "Comune",
        "switchToExpired": False,
        "paymentOption": [
            {
                "iuv": "01000000000000077",
                "description": "verbale",
                "amount": 1000,
                "dueDate": due,
                "isPartialPayment": False,
                "transfer": [
                    {
                        "idTransfer": "1",
                        "amount": 1000,
                        "remittanceInformation": "verbale",
                        "category": "9/0101108TS/",
                        "iban": IBAN,
                    }
                ],
            }
        ],
    }
    orgs = f"{GPD_PREFIX}/organizations/{DEMO_EC}"
    status, made = await hub.gpd(
        "POST", f"{orgs}/debtpositions?toPublish=true", json=position, headers=key
    )
    assert status == 201, made
    fee_url = f"{orgs}/paymentoptions/301000000000000077/notificationfee"
    status, option = await hub.gpd("PUT", fee_url, json={"notificationFee": 250}, headers=key)
    assert status == 200, option
    assert (option["amount"], option["notificationFee"]) == (1250, 250)
    assert option["transfer"][0]["amount"] == 1250
    status, option = await hub.gpd("PUT", fee_url, json={"notificationFee": 300}, headers=key)
    assert (option["amount"], option["notificationFee"]) == (1300, 300)
    position["paymentOption"][0]["description"] = "changed"
    status, updated = await hub.gpd(
        "PUT", f"{orgs}/debtpositions/IUPD-FEE-1?toPublish=true", json=position, headers=key
    )
    assert status == 200, updated
    [option] = updated["paymentOption"]
    assert (option["amount"], option["notificationFee"]) == (1300, 300)
    assert option["transfer"][0]["amount"] == 1300
    for bad in ({"notificationFee": -1}, {"notificationFee": "1"}, {}):
        status, answer = await hub.gpd("PUT", fee_url, json=bad, headers=key)
        assert status == 400, (bad, answer)
    status, answer = await hub.gpd(
        "PUT",
        f"{orgs}/paymentoptions/301000000000000078/notificationfee",
        json={"notificationFee": 1},
        headers=key,
    )
    assert status == 404 and answer["title"] == "Not found the payment option"
    status, answer = await hub.gpd("PUT", fee_url, json={"notificationFee": 1})
    assert status == 401  # the API gateway's key


async def _status(stack: Stack, previous: dict[str, Any]) -> dict[str, Any]:
    rid = previous["notificationRequestId"]
    status, answer, _ = await call(
        stack,
        "GET",
        f"/delivery/v2.6/requests?notificationRequestId={rid}",
        hdrs=await headers(stack),
    )
    assert status == 200
    result: dict[str, Any] = answer
    return result

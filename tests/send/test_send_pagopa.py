"""SEND and pagoPA together (SQLite and PostgreSQL), the hub against the SEND twin over real
sockets and the Node speaking to the hub's EC station:

- a fine's notification naming a notice of the tenant's positions gets the notice PDF
  attached (``pagoPa.attachment``: preloaded, uploaded, its SHA-256 the PDF's), SEND accepts
  it, and with ``applyCost`` the request says ``pagoPaIntMode: SYNC``;
- the Node's paVerifyPaymentNotice and paGetPayment[V2] then get the amount plus SEND's
  ``totalPrice`` for the notice, added to the creditor's first transfer (GPD's rule) so the
  transfers still sum to the amount; without ``applyCost``, or before SEND accepted the
  notification, the amount alone;
- SEND's price API down: PAA_SYSTEM_ERROR (the PSP retries), never a wrong amount;
- the price is reused for a short time only (one call to SEND for verify + getPayment, a new
  one after the cache expired, with SEND's new cost);
- the receipt with the higher amount closes the position;
- another tenant's notice with the same number gets no surcharge;
- a notice of another debtor, a paid notice, or one another live notification carries is
  refused before anything is queued (the field named).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from factories import drain_outbox
from lxml import etree
from pagopa_node import RT, XSD_DIR, get_payment, outcome, payload_of, send_rt, verify
from send_stack import Stack
from sqlalchemy import select

from sportello import apikeys
from sportello.app import ENGINE, SERVICES, create_app
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import payment_options, positions, receipts
from sportello.platforms.send.payments import SEND_SURCHARGES
from sportello.platforms.send.service import SEND_STREAMS
from sportello.platforms.send.tables import send_documents
from sportello.sandbox.send.app import DEMO_API_KEY, OTHER_API_KEY, SEND_STATE
from sportello.schema import audit_log, outbox

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
DEMO_EC, OTHER_EC = "00000000999", "00000000998"  # the SEND twin's two senders
BROKER, CF = "15376371009", "RSSMRA80A01H501U"
IBAN = "IT60X0542811101000000123456"
PROVINCE_CF = "80000000001"


def _iban(abi: str, account: str) -> str:
    """A valid Italian IBAN (ISO 13616 check digits computed here)."""
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


PROVINCE_IBAN = _iban("05428", "000000654321")
HAVE_XSD = (XSD_DIR / "paForNode.xsd").is_file()
FINE, TO_PROVINCE = 8000, 400  # cents: the comune's part and a secondary beneficiary's


def tenant(tenant_id: str, ec: str, api_key: str, stack: Stack, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / f"{tenant_id}.key").write_text(api_key)
    return {
        "id": tenant_id,
        "name": f"Comune {tenant_id}",
        "ipa_code": f"c_{tenant_id}",
        "fiscal_code": ec,
        "cadastral_code": "Z999",
        "pdnd": stack.pdnd_section(tmp_path / "pdnd.pem"),
        "send": {
            "base_url": stack.send_url,
            "api_key": {"file": str(tmp_path / f"{tenant_id}.key")},
            "purpose_id": stack.send_purpose,
            "acceptance_poll_seconds": 0.05,
        },
        "pagopa": {
            "ec_fiscal_code": ec,
            "broker_id": BROKER,
            "station_id": f"{BROKER}_01",
            "segregation_code": "01",
            "mode": "station",
        },
    }


@dataclass
class Hub:
    client: TestClient[Any, Any]
    keys: dict[str, str]
    stack: Stack

    @property
    def app(self) -> Any:
        return self.client.app

    async def position(self, tenant_id: str, iupd: str, *, debtor: str = CF) -> str:
        """A fine of 84 euro (80 to the comune, 4 to a secondary beneficiary); its notice."""
        services = self.app[SERVICES]
        ec = services.config.tenant(tenant_id).fiscal_code
        spec = {
            "iupd": iupd,
            "type": "F",
            "fiscal_code": debtor,
            "full_name": "Mario Rossi",
            "company_name": f"Comune {tenant_id}",
            "payment_options": [
                {
                    "amount": FINE + TO_PROVINCE,
                    "description": "Verbale codice della strada",
                    "due_date": datetime.now(UTC) + timedelta(days=60),
                    "transfers": [
                        {
                            "id_transfer": 1,
                            "amount": TO_PROVINCE,
                            "organization_fiscal_code": PROVINCE_CF,
                            "remittance_information": "quota provincia",
                            "category": "9/0201102IM/",
                            "iban": PROVINCE_IBAN,
                        },
                        {
                            "id_transfer": 2,
                            "amount": FINE,
                            "organization_fiscal_code": ec,
                            "remittance_information": "verbale",
                            "category": "9/0101108TS/",
                            "iban": IBAN,
                        },
                    ],
                }
            ],
        }
        stored = await PagopaStore(
            services.engine, services.config, services.clock
        ).create_position(tenant_id, spec)
        return str(stored.options[0].nav)

    async def notify(
        self,
        protocol: str,
        nav: str,
        *,
        apply_cost: bool = True,
        tenant_id: str = "demo",
        creditor: str = DEMO_EC,
        tax_id: str = CF,
        digital: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        recipient: dict[str, Any] = {
            "recipientType": "PF",
            "taxId": tax_id,
            "denomination": "Mario Rossi",
            "physicalAddress": {"address": "Via Roma 1", "municipality": "Roma", "zip": "00100"},
            "payments": [
                {"pagoPa": {"noticeCode": nav, "creditorTaxId": creditor, "applyCost": apply_cost}}
            ],
        }
        if digital:
            recipient["digitalDomicile"] = {"type": "PEC", "address": "mario.rossi@pec.example.it"}
        body = {
            "pa_protocol_number": protocol,
            "subject": "Verbale di accertamento violazione codice della strada",
            "taxonomy_code": "010101P",
            "pa_fee": 100,
            "vat": 22,
            "recipients": [recipient],
            "documents": [{"title": "Verbale", "content_base64": base64.b64encode(PDF).decode()}],
        }
        r = await self.client.post(
            f"/api/v1/tenants/{tenant_id}/send/notifications",
            json=body,
            headers={
                "Authorization": f"Bearer {self.keys[tenant_id]}",
                "Idempotency-Key": protocol,
            },
        )
        return r.status, await r.json()

    async def node(self, body: bytes, tenant_id: str = "demo") -> bytes:
        r = await self.client.post(
            f"/t/{tenant_id}/pagopa/station",
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        assert r.status == 200, r.status
        return await r.read()

    async def price_calls(self) -> int:
        return sum(
            1
            for c in self.stack.send_app[SEND_STATE].calls
            if c["operation"] == "retrieveNotificationPriceV23"
        )

    async def faults(self, payload: dict[str, Any] | None) -> None:
        url = self.stack.send_url + "/__sandbox/faults"
        method = self.stack.session.post if payload else self.stack.session.delete
        async with method(url, json=payload) as r:
            assert r.status in (200, 201, 204), await r.text()


def caller(ec: str) -> dict[str, str]:
    return {"id_pa": ec, "broker": BROKER, "station": f"{BROKER}_01", "fiscal_code": ec}


def assert_valid(answer: bytes) -> None:
    """The station's answer validates against paForNode.xsd (when the spec is available)."""
    if HAVE_XSD:
        schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "paForNode.xsd")))
        assert schema.validate(payload_of(answer)), schema.error_log


def amount_of(answer: bytes) -> int:
    p = payload_of(answer)
    text = p.findtext("paymentList/paymentOptionDescription/amount") or p.findtext(
        "data/paymentAmount"
    )
    assert text is not None
    euros, cents = text.split(".")
    return int(euros) * 100 + int(cents)


def transfers_of(answer: bytes) -> list[tuple[int, str, int]]:
    out = []
    for t in payload_of(answer).iterfind("data/transferList/transfer"):
        euros, cents = (t.findtext("transferAmount") or "").split(".")
        out.append(
            (
                int(t.findtext("idTransfer") or 0),
                t.findtext("fiscalCodePA") or "",
                int(euros) * 100 + int(cents),
            )
        )
    return out


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, stack: Stack) -> AsyncIterator[Hub]:
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {
                "workers": False,
                "poll_interval": 0.02,
                "backoff_base": 0.05,
                "backoff_cap": 0.2,
            },
            "tenants": [
                tenant("demo", DEMO_EC, DEMO_API_KEY, stack, tmp_path),
                tenant("other", OTHER_EC, OTHER_API_KEY, stack, tmp_path),
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True, run_workers=False)
    if HAVE_XSD:
        app[XSD_KEY] = XSD_DIR
    async with TestClient(TestServer(app)) as client:
        keys = {}
        async with app[ENGINE].begin() as conn:
            for t in ("demo", "other"):
                keys[t] = await apikeys.create(
                    conn,
                    tenant_id=t,
                    name="send",
                    scopes=["read", "write", "personal_data"],
                    now=app[SERVICES].clock.now(),
                )
        yield Hub(client, keys, stack)


async def drain(hub: Hub) -> None:
    await drain_outbox(hub.app)


def twin_notification(hub: Hub, protocol: str) -> Any:
    [found] = [
        n
        for n in hub.stack.send_app[SEND_STATE].notifications.values()
        if n.body["paProtocolNumber"] == protocol
    ]
    return found


def twin_body(hub: Hub, protocol: str) -> dict[str, Any]:
    [found] = [
        n
        for n in hub.stack.send_app[SEND_STATE].notifications.values()
        if n.body["paProtocolNumber"] == protocol
    ]
    assert found.state == "ACCEPTED", found.errors
    return found.body


async def test_notice_attached_cost_added_and_receipt_closes(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-1")
    # before SEND accepted a notification, the notice costs its amount only
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE
    hub.app[SEND_SURCHARGES]._cache.clear()
    await hub.app[SEND_STREAMS].read("demo")  # the tenant's stream exists before the send
    status, queued = await hub.notify("VERB-1", nav)
    assert status == 202, queued
    await drain(hub)
    body = twin_body(hub, "VERB-1")
    assert body["pagoPaIntMode"] == "SYNC"
    pago = body["recipients"][0]["payments"][0]["pagoPa"]
    attachment = pago["attachment"]
    key = attachment["ref"]["key"].removeprefix("safestorage://")
    uploaded = hub.stack.send_app[SEND_STATE].uploads[key].body
    assert uploaded is not None and uploaded.startswith(b"%PDF-")  # the notice, not the act
    assert uploaded != PDF
    assert (
        attachment["digests"]["sha256"]
        == base64.b64encode(hashlib.sha256(uploaded).digest()).decode()
    )
    # the notice PDF's read is on the audit log (it carries the debtor's data)
    async with hub.app[ENGINE].connect() as conn:
        actions = (
            (await conn.execute(select(audit_log.c.action).where(audit_log.c.subject == CF)))
            .scalars()
            .all()
        )
    assert "pagopa.notice.pdf" in actions

    cost = 100 + 100  # the twin's SEND fee + the sender's paFee, digital: no postal cost
    calls = await hub.price_calls()
    v = await hub.node(verify(nav, **caller(DEMO_EC)))
    assert outcome(v) == ("OK", None) and amount_of(v) == FINE + TO_PROVINCE + cost
    assert_valid(v)
    for version in (1, 2):
        g = await hub.node(get_payment(nav, version=version, **caller(DEMO_EC)))
        assert outcome(g) == ("OK", None)
        assert_valid(g)
        assert amount_of(g) == FINE + TO_PROVINCE + cost
        # on the creditor's own first transfer; the beneficiary's untouched; the sum holds
        assert transfers_of(g) == [(1, PROVINCE_CF, TO_PROVINCE), (2, DEMO_EC, FINE + cost)]
    assert await hub.price_calls() == calls + 1  # verify and both getPayments: one SEND call

    iuv = nav[1:]
    rt = RT(
        "rcpt-1",
        nav,
        iuv,
        FINE + TO_PROVINCE + cost,
        transfers=[(TO_PROVINCE, PROVINCE_CF, PROVINCE_IBAN), (FINE + cost, DEMO_EC, IBAN)],
        fiscal_code=DEMO_EC,
    )
    answer = await hub.node(send_rt(rt, id_pa=DEMO_EC, broker=BROKER, station=f"{BROKER}_01"))
    assert outcome(answer) == ("OK", None)
    async with hub.app[ENGINE].connect() as conn:
        option = (
            await conn.execute(select(payment_options).where(payment_options.c.nav == nav))
        ).one()
        position = (
            await conn.execute(
                select(positions.c.status).where(positions.c.id == option.position_id)
            )
        ).scalar_one()
        receipt = (
            await conn.execute(select(receipts).where(receipts.c.receipt_id == "rcpt-1"))
        ).one()
    assert option.status == "paid" and position == "PAID"
    assert receipt.amount == FINE + TO_PROVINCE + cost and str(cost) in (receipt.note or "")
    # paid: the Node is told so, SEND is not asked again
    assert outcome(await hub.node(verify(nav, **caller(DEMO_EC)))) == (
        "KO",
        "PAA_PAGAMENTO_DUPLICATO",
    )
    # the receipt closes the notification too: SEND is told once (a redelivered receipt
    # queues nothing more), and its stream brings PAYMENT and the PAID status
    again = await hub.node(send_rt(rt, id_pa=DEMO_EC, broker=BROKER, station=f"{BROKER}_01"))
    assert outcome(again) == ("OK", None)
    await drain(hub)
    twin = twin_notification(hub, "VERB-1")
    paid = [e for e in twin.timeline if e["category"] == "PAYMENT"]
    assert twin.status == "PAID" and len(paid) == 1
    assert paid[0]["details"]["amount"] == FINE + TO_PROVINCE + cost
    assert paid[0]["details"]["noticeCode"] == nav
    events = [
        c
        for c in hub.stack.send_app[SEND_STATE].calls
        if c["operation"] == "paymentEventsRequestPagoPa"
    ]
    assert [c["status"] for c in events] == [204]
    await hub.app[SEND_STREAMS].read("demo")
    r = await hub.client.get(
        f"/api/v1/tenants/demo/send/notifications/{queued['id']}",
        headers={"Authorization": f"Bearer {hub.keys['demo']}"},
    )
    detail = await r.json()
    assert detail["send_status"] == "PAID"
    assert "PAYMENT" in [e["category"] for e in detail["timeline"]]


async def test_without_apply_cost_the_amount_alone(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-2")
    status, _ = await hub.notify("VERB-2", nav, apply_cost=False)
    assert status == 202
    await drain(hub)
    body = twin_body(hub, "VERB-2")
    assert "pagoPaIntMode" not in body
    assert body["recipients"][0]["payments"][0]["pagoPa"]["attachment"]  # attached all the same
    calls = await hub.price_calls()
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE
    g = await hub.node(get_payment(nav, version=2, **caller(DEMO_EC)))
    assert transfers_of(g) == [(1, PROVINCE_CF, TO_PROVINCE), (2, DEMO_EC, FINE)]
    assert await hub.price_calls() == calls  # SEND not asked


async def test_price_api_down_answers_system_error_never_a_wrong_amount(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-3")
    assert (await hub.notify("VERB-3", nav))[0] == 202
    await drain(hub)
    hub.app[SEND_SURCHARGES].timeout = 0.5  # the price API's budget (3 s), short here
    await hub.faults(
        {
            "count": 1000,
            "mode": "fail",
            "status": 503,
            "operations": ["retrieveNotificationPriceV23"],
        }
    )
    for body in (verify(nav, **caller(DEMO_EC)), get_payment(nav, version=2, **caller(DEMO_EC))):
        assert outcome(await hub.node(body)) == ("KO", "PAA_SYSTEM_ERROR")
    async with hub.app[ENGINE].connect() as conn:
        activated = (
            await conn.execute(
                select(payment_options.c.activated_at).where(payment_options.c.nav == nav)
            )
        ).scalar_one()
    assert activated is None  # no payment started on a refused getPayment
    # SEND back: the PSP's retry gets the right amount (the failure was not cached)
    await hub.faults(None)
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 200
    # SEND answering 404 for an accepted notification's notice: unknown cost, not 0
    hub.app[SEND_SURCHARGES]._cache.clear()
    state = hub.stack.send_app[SEND_STATE]
    state.by_notice.pop((DEMO_EC, nav))
    assert outcome(await hub.node(verify(nav, **caller(DEMO_EC)))) == ("KO", "PAA_SYSTEM_ERROR")


async def test_the_price_is_cached_briefly(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-4")
    assert (await hub.notify("VERB-4", nav))[0] == 202
    await drain(hub)
    surcharges = hub.app[SEND_SURCHARGES]
    surcharges.clock = clock = FakeClock()  # the cache's time, moved by the test
    calls = await hub.price_calls()
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 200
    # SEND's cost changes (here: the sender's fee, as a second letter would)
    twin_body(hub, "VERB-4")["paFee"] = 50
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 200
    assert await hub.price_calls() == calls + 1
    clock.advance(59)
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 200
    clock.advance(2)  # 61 seconds: expired
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 150
    assert await hub.price_calls() == calls + 2
    # PSPs asking at once for one notice share one call to SEND
    surcharges._cache.clear()
    twin_body(hub, "VERB-4")["paFee"] = 10
    answers = await asyncio.gather(*(hub.node(verify(nav, **caller(DEMO_EC))) for _ in range(8)))
    assert {amount_of(a) for a in answers} == {FINE + TO_PROVINCE + 110}
    assert await hub.price_calls() == calls + 3


async def test_analog_cost_grows_with_the_letter(hub: Hub) -> None:
    """No digital domicile: SEND's cost includes the registered letter and its VAT."""
    nav = await hub.position("demo", "FINE-5")
    assert (await hub.notify("VERB-5", nav, digital=False))[0] == 202
    await drain(hub)
    g = await hub.node(get_payment(nav, version=2, **caller(DEMO_EC)))
    letter = 545 + 545 * 22 // 100  # AR registered letter + VAT (the twin's tariff)
    assert amount_of(g) == FINE + TO_PROVINCE + 200 + letter
    assert sum(a for _, _, a in transfers_of(g)) == amount_of(g)


async def test_another_tenants_notice_gets_no_surcharge(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-6")
    same = await hub.position("other", "FINE-6")
    assert same == nav  # both comuni numbered their first notice alike
    assert (await hub.notify("VERB-6", nav))[0] == 202
    await drain(hub)
    assert amount_of(await hub.node(verify(nav, **caller(DEMO_EC)))) == FINE + TO_PROVINCE + 200
    calls = await hub.price_calls()
    other = await hub.node(verify(nav, **caller(OTHER_EC)), tenant_id="other")
    assert outcome(other) == ("OK", None) and amount_of(other) == FINE + TO_PROVINCE
    # the demo tenant's station refuses the other comune's creditor code outright
    crossed = await hub.node(verify(nav, **caller(OTHER_EC)), tenant_id="demo")
    assert outcome(crossed) == ("KO", "PAA_ID_DOMINIO_ERRATO")
    assert await hub.price_calls() == calls


async def test_payments_checked_before_anything_is_queued(hub: Hub) -> None:
    nav = await hub.position("demo", "FINE-7")
    theirs = await hub.position("demo", "FINE-8", debtor="VRDLGU80A01H501Q")
    status, problem = await hub.notify("VERB-7a", theirs)
    assert status == 400 and "recipients.0.payments.0.pagoPa.noticeCode" in problem["detail"]
    status, problem = await hub.notify("VERB-7b", nav, creditor=OTHER_EC)
    assert status == 400 and "pagoPa.creditorTaxId" in problem["detail"]
    cancelled = await hub.position("demo", "FINE-9")
    services = hub.app[SERVICES]
    await PagopaStore(services.engine, services.config, services.clock).invalidate_position(
        "demo", "FINE-9"
    )
    status, problem = await hub.notify("VERB-7e", cancelled)
    assert status == 409 and "not payable" in problem["detail"]
    assert (await hub.notify("VERB-7c", nav))[0] == 202
    status, problem = await hub.notify("VERB-7d", nav)  # the same notice again
    assert status == 409 and "already carries this notice" in problem["detail"]
    async with hub.app[ENGINE].connect() as conn:
        count = len(
            (await conn.execute(select(outbox.c.id).where(outbox.c.kind == "send.upload"))).all()
        )
    assert count == 1  # only VERB-7c was queued
    # another comune naming this comune's notice gets no PDF of it (nothing read, nothing
    # attached): the notice is sent as given, and SEND would bill nobody through our station
    mine = await hub.position("demo", "FINE-11")
    status, queued = await hub.notify("VERB-7f", mine, tenant_id="other", creditor=DEMO_EC)
    assert status == 202
    async with hub.app[ENGINE].connect() as conn:
        docs = (
            (
                await conn.execute(
                    select(send_documents.c.idx).where(
                        send_documents.c.notification_id == queued["id"]
                    )
                )
            )
            .scalars()
            .all()
        )
        reads = (
            await conn.execute(
                select(audit_log.c.id).where(
                    audit_log.c.tenant_id == "other", audit_log.c.action == "pagopa.notice.pdf"
                )
            )
        ).all()
    assert docs == [0] and reads == []


async def test_a_payment_before_acceptance_is_told_once_accepted(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sportello.platforms.send.service.PAYMENT_WAIT_SECONDS", 0.05)
    nav = await hub.position("demo", "FINE-10")
    assert (await hub.notify("VERB-10", nav))[0] == 202  # queued, not yet at SEND
    # the citizen pays with the printed notice: no SEND cost yet (none accepted)
    g = await hub.node(get_payment(nav, version=2, **caller(DEMO_EC)))
    assert amount_of(g) == FINE + TO_PROVINCE
    rt = RT(
        "rcpt-10",
        nav,
        nav[1:],
        FINE + TO_PROVINCE,
        fiscal_code=DEMO_EC,
        transfers=[(TO_PROVINCE, PROVINCE_CF, PROVINCE_IBAN), (FINE, DEMO_EC, IBAN)],
    )
    assert outcome(
        await hub.node(send_rt(rt, id_pa=DEMO_EC, broker=BROKER, station=f"{BROKER}_01"))
    ) == ("OK", None)
    await drain(hub)  # upload, request, acceptance; then the payment event
    twin = twin_notification(hub, "VERB-10")
    assert twin.state == "ACCEPTED" and twin.status == "PAID"
    assert [e["details"]["amount"] for e in twin.timeline if e["category"] == "PAYMENT"] == [
        FINE + TO_PROVINCE
    ]

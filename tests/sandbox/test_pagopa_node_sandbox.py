"""The pagoPA sandbox's Node, Checkout and FdR over real sockets, against a fake EC station.

The fake station (an aiohttp app in this file, answers built with lxml) validates every
message the Node sends against PagoPA's ``paForNode.xsd``; the Node validates what the
station answers. Checkout requests and FdR answers are checked against ``checkout_v1.json``
and ``fdr_organization.json``, the legacy flow against ``FlussoRiversamento_1_0_4.xsd``.
The specs live in ``../shared/specs/pagopa`` (not part of the repo): without them the
module is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from sportello.clock import FakeClock
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.sandbox.pagopa.app import create_app
from sportello.sandbox.pagopa.checkout import DEFAULT_CHECKOUT_API_KEY
from sportello.sandbox.pagopa.fdr_routes import DEFAULT_FDR_API_KEY, FDR_PREFIX
from sportello.sandbox.pagopa.gpd_demo import demo_iuv, demo_position
from sportello.sandbox.pagopa.gpd_spec import GpdSpecChecker
from sportello.sandbox.pagopa.node import NodeSettings

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagopa"
XSD_DIR = SPECS / "wsdl" / "xsd"
NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EC = "77777777777"
SECOND_EC = "88888888888"
BROKER = "77777777777"
STATION_ID = "77777777777_01"
IBAN = "IT60X0542811101000000123456"
KEY = "Ocp-Apim-Subscription-Key"
START = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    not (XSD_DIR / "paForNode.xsd").is_file(),
    reason=f"pagoPA specs not found in {SPECS} (shared/specs is not part of the repo)",
)


@functools.cache
def xsd() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(XSD_DIR / "paForNode.xsd"), parser))


@functools.cache
def openapi(name: str) -> GpdSpecChecker:
    return GpdSpecChecker.from_paths(SPECS / "openapi" / name)


def nav(n: int) -> str:
    return "3" + iuv_for(n, segregation_code="01")


# -- the fake EC station --------------------------------------------------------------------


@dataclass
class Notice:
    """How the fake station answers for one notice number."""

    amount: int = 10_000
    transfers: list[tuple[str, int]] | None = None  # (fiscalCodePA, cents); default one
    verify_fault: str | None = None
    verify_delay: float = 0.0
    rt_failures: int = 0  # paSendRT answered KO PAA_SYSTEM_ERROR this many times
    bad_sum: bool = False
    bad_amount_format: bool = False


@dataclass
class FakeStation:
    notices: dict[str, Notice] = field(default_factory=dict)
    received: list[tuple[str, etree._Element]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    receipts: dict[str, int] = field(default_factory=dict)  # receiptId → times received

    def sent(self, operation: str) -> list[etree._Element]:
        return [el for op, el in self.received if op == operation]


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def _euro(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _answer(element: etree._Element, status: int = 200) -> web.Response:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP})
    etree.SubElement(env, f"{{{SOAP}}}Body").append(element)
    return web.Response(
        body=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
        status=status,
        content_type="text/xml",
    )


def _response(name: str, fault: str | None = None) -> etree._Element:
    root = etree.Element(f"{{{NS}}}{name}", nsmap={"pafn": NS})
    _add(root, "outcome", "KO" if fault else "OK")
    if fault:
        node = _add(root, "fault")
        _add(node, "faultCode", fault)
        _add(node, "faultString", f"fake station says {fault}")
        _add(node, "id", EC)
        _add(node, "description", f"description of {fault}")
    return root


def station_app(station: FakeStation) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        action = request.headers.get("SOAPAction", "").strip('"')
        root = etree.fromstring(await request.read())
        payload = root.find(f"{{{SOAP}}}Body")[0]
        if not xsd().validate(etree.ElementTree(payload)):
            station.invalid.append(f"{action}: {xsd().error_log}")
        station.received.append((action, payload))
        notice_number = payload.findtext("qrCode/noticeNumber") or payload.findtext(
            "receipt/noticeNumber"
        )
        notice = station.notices.get(notice_number or "", Notice())
        if action == "paVerifyPaymentNotice":
            await asyncio.sleep(notice.verify_delay)
            answer = _response("paVerifyPaymentNoticeRes", notice.verify_fault)
            if notice.verify_fault is None:
                option = _add(_add(answer, "paymentList"), "paymentOptionDescription")
                amount = "100.5" if notice.bad_amount_format else _euro(notice.amount)
                _add(option, "amount", amount)
                _add(option, "options", "EQ")
                _add(option, "dueDate", "2026-12-31")
                _add(option, "allCCP", "false")
                _add(answer, "paymentDescription", "TARI 2026")
                _add(answer, "fiscalCodePA", EC)
                _add(answer, "companyName", "Comune di Prova")
            return _answer(answer)
        if action == "paGetPaymentV2":
            answer = _response("paGetPaymentV2Response")
            data = _add(answer, "data")
            _add(data, "creditorReferenceId", (notice_number or "")[1:])
            _add(data, "paymentAmount", _euro(notice.amount))
            _add(data, "dueDate", "2026-12-31")
            _add(data, "description", "TARI 2026")
            _add(data, "companyName", "Comune di Prova")
            debtor = _add(data, "debtor")
            unique = _add(debtor, "uniqueIdentifier")
            _add(unique, "entityUniqueIdentifierType", "F")
            _add(unique, "entityUniqueIdentifierValue", "RSSMRA80A01H501U")
            _add(debtor, "fullName", "Mario Rossi")
            transfers = _add(data, "transferList")
            parts = notice.transfers or [(EC, notice.amount)]
            for i, (cf, cents) in enumerate(parts, start=1):
                t = _add(transfers, "transfer")
                _add(t, "idTransfer", str(i))
                _add(t, "transferAmount", _euro(cents + (1 if notice.bad_sum else 0)))
                _add(t, "fiscalCodePA", cf)
                _add(t, "IBAN", IBAN)
                _add(t, "remittanceInformation", f"quota {i}")
                _add(t, "transferCategory", "9/0101101IM/")
            return _answer(answer)
        if action == "paSendRTV2":
            receipt_id = payload.findtext("receipt/receiptId") or ""
            if notice.rt_failures > 0:
                notice.rt_failures -= 1
                return _answer(_response("paSendRTV2Response", "PAA_SYSTEM_ERROR"))
            if receipt_id in station.receipts:
                station.receipts[receipt_id] += 1
                return _answer(_response("paSendRTV2Response", "PAA_RECEIPT_DUPLICATA"))
            station.receipts[receipt_id] = 1
            return _answer(_response("paSendRTV2Response"))
        return web.Response(status=500, text="unknown SOAPAction")

    app = web.Application()
    app.router.add_post("/paForNode", handle)
    return app


# -- harness -------------------------------------------------------------------------------


class Harness:
    def __init__(self, sandbox: TestServer, station: FakeStation, session: aiohttp.ClientSession):
        self.sandbox = sandbox
        self.station = station
        self.session = session
        self.clock = FakeClock(START)

    def url(self, path: str) -> str:
        return str(self.sandbox.make_url(path))

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(self.url(path), json=body, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(self.url(path), **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def pay(self, notice_number: str, **extra: Any) -> dict[str, Any]:
        status, body = await self.post(
            "/psp/pay", {"fiscalCode": EC, "noticeNumber": notice_number, **extra}
        )
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def settings(self, **values: Any) -> None:
        status, body = await self.post("/__sandbox/node", values)
        assert status == 200, body

    async def receipts(self) -> list[dict[str, Any]]:
        _, body = await self.get("/__sandbox/receipts")
        return body["receipts"]  # type: ignore[no-any-return]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    fake = FakeStation()
    station_server = TestServer(station_app(fake))
    await station_server.start_server()
    clock = FakeClock(START)
    app = create_app(
        processing_delay=0,
        clock=clock,
        xsd_dir=XSD_DIR,
        stations={
            EC: {
                "url": str(station_server.make_url("/paForNode")),
                "broker_id": BROKER,
                "station_id": STATION_ID,
            }
        },
        node_settings=NodeSettings(retry_interval=0.05, max_attempts=5),
    )
    sandbox = TestServer(app)
    await sandbox.start_server()
    session = aiohttp.ClientSession()
    h = Harness(sandbox, fake, session)
    h.clock = clock
    yield h
    await session.close()
    await sandbox.close()
    await station_server.close()
    assert fake.invalid == [], "the Node sent messages its XSD refuses"


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- Node -------------------------------------------------------------------------------------


async def test_modello3_flow_valid_both_ways(harness: Harness) -> None:
    harness.station.notices[nav(1)] = Notice(
        amount=12_345, transfers=[(EC, 10_000), (SECOND_EC, 2_345)]
    )
    result = await harness.pay(
        nav(1), payer={"fiscalCode": "RSSMRA80A01H501U", "fullName": "Mario Rossi"}
    )
    assert result["outcome"] == "OK", result
    assert [s["operation"] for s in result["steps"]] == [
        "paVerifyPaymentNotice",
        "paGetPaymentV2",
        "paSendRTV2",
    ]
    assert result["amountCents"] == 12_345
    assert result["receipt"] == {
        "delivered": True,
        "status": "delivered",
        "attempts": 1,
        "lastError": None,
    }
    receipt = harness.station.sent("paSendRTV2")[0]
    assert receipt.findtext("receipt/receiptId") == result["receiptId"]
    assert receipt.findtext("receipt/creditorReferenceId") == nav(1)[1:]
    assert receipt.findtext("receipt/paymentAmount") == "123.45"
    assert receipt.findtext("receipt/standIn") == "false"
    assert receipt.findtext("idStation") == STATION_ID
    assert [t.findtext("transferAmount") for t in receipt.iter("transfer")] == ["100.00", "23.45"]
    assert harness.station.sent("paVerifyPaymentNotice")[0].findtext("idBrokerPA") == BROKER
    # the Node's own check: the same notice cannot be paid twice
    again = await harness.pay(nav(1))
    assert again["outcome"] == "KO" and again["faultCode"] == "PPT_PAGAMENTO_DUPLICATO"
    assert len(harness.station.sent("paVerifyPaymentNotice")) == 1


async def test_ko_fault_is_wrapped(harness: Harness) -> None:
    harness.station.notices[nav(2)] = Notice(verify_fault="PAA_PAGAMENTO_SCADUTO")
    result = await harness.pay(nav(2))
    assert result["outcome"] == "KO"
    assert result["faultCode"] == "PPT_ERRORE_EMESSO_DA_PAA"
    assert result["originalFaultCode"] == "PAA_PAGAMENTO_SCADUTO"
    assert result["originalDescription"] == "description of PAA_PAGAMENTO_SCADUTO"
    assert "receiptId" not in result
    assert harness.station.sent("paGetPaymentV2") == []


async def test_station_timeout(harness: Harness) -> None:
    await harness.settings(verify_timeout=0.2)
    harness.station.notices[nav(3)] = Notice(verify_delay=1.0)
    result = await harness.pay(nav(3))
    assert result["faultCode"] == "PPT_STAZIONE_INT_PA_TIMEOUT", result
    assert result["steps"][0]["operation"] == "paVerifyPaymentNotice"


async def test_unreachable_unknown_and_bad_answers(harness: Harness) -> None:
    status, _ = await harness.post(
        "/__sandbox/stations",
        {SECOND_EC: {"url": "http://127.0.0.1:9/x", "broker_id": BROKER, "station_id": "s"}},
    )
    assert status == 200
    unreachable = await harness.post("/psp/pay", {"fiscalCode": SECOND_EC, "noticeNumber": nav(4)})
    assert unreachable[1]["faultCode"] == "PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE"
    unknown = await harness.post("/psp/pay", {"fiscalCode": "12345678901", "noticeNumber": nav(4)})
    assert unknown[1]["faultCode"] == "PPT_DOMINIO_SCONOSCIUTO"
    harness.station.notices[nav(5)] = Notice(bad_amount_format=True)  # XSD-invalid answer
    harness.station.notices[nav(6)] = Notice(bad_sum=True)  # transfers ≠ paymentAmount
    for n in (5, 6):
        result = await harness.pay(nav(n))
        assert result["faultCode"] == "PPT_STAZIONE_INT_PA_ERRORE_RESPONSE", result
    _, violations = await harness.get("/__sandbox/node/violations")
    problems = " ".join(v["problem"] for v in violations["violations"])
    assert "paForNode.xsd" in problems and "add up to" in problems
    assert (await harness.post("/psp/pay", {"fiscalCode": EC, "noticeNumber": "12"}))[0] == 400


async def test_failed_receipt_is_redelivered(harness: Harness) -> None:
    harness.station.notices[nav(7)] = Notice(rt_failures=2)
    result = await harness.pay(nav(7))
    assert result["outcome"] == "OK"
    assert result["receipt"]["delivered"] is False
    assert result["receipt"]["lastError"].startswith("PAA_SYSTEM_ERROR")

    async def delivered() -> bool:
        return any(r["delivered"] for r in await harness.receipts())

    await wait_for(delivered)
    (receipt,) = await harness.receipts()
    assert receipt["attempts"] == 3 and receipt["status"] == "delivered"
    bodies = {etree.tostring(e) for e in harness.station.sent("paSendRTV2")}
    assert len(harness.station.sent("paSendRTV2")) == 3 and len(bodies) == 1  # same message


async def test_receipt_gives_up_after_max_attempts(harness: Harness) -> None:
    await harness.settings(max_attempts=3)
    harness.station.notices[nav(8)] = Notice(rt_failures=10)
    await harness.pay(nav(8))

    async def failed() -> bool:
        return any(r["status"] == "failed" for r in await harness.receipts())

    await wait_for(failed)
    await asyncio.sleep(0.2)
    assert len(harness.station.sent("paSendRTV2")) == 3


async def test_duplicate_receipts(harness: Harness) -> None:
    await harness.settings(duplicate_receipts=True)
    result = await harness.pay(nav(9))
    assert result["receipt"]["delivered"] is True and result["receipt"]["attempts"] == 2
    assert harness.station.receipts == {result["receiptId"]: 2}
    assert result["steps"][-1]["originalFaultCode"] == "PAA_RECEIPT_DUPLICATA"


async def test_stand_in_receipt_without_verify(harness: Harness) -> None:
    result = await harness.pay(nav(10), standIn=True, amountCents=4_200)
    assert result["outcome"] == "OK" and result["standIn"] is True
    assert [s["operation"] for s in result["steps"]] == ["paSendRTV2"]
    (receipt,) = harness.station.sent("paSendRTV2")
    assert receipt.findtext("receipt/standIn") == "true"
    assert receipt.findtext("receipt/paymentAmount") == "42.00"


async def test_pay_batch(harness: Harness) -> None:
    payments = [{"fiscalCode": EC, "noticeNumber": nav(100 + i)} for i in range(20)]
    status, body = await harness.post("/psp/pay-batch", {"payments": payments, "concurrency": 4})
    assert status == 200 and body["ok"] == 20
    assert len(harness.station.receipts) == 20
    bad = await harness.post("/psp/pay-batch", {"payments": payments, "concurrency": 99})
    assert bad[0] == 400


# -- Checkout ----------------------------------------------------------------------------------

RETURN_URLS = {
    "returnOkUrl": "https://comune.example/ok",
    "returnCancelUrl": "https://comune.example/cancel",
    "returnErrorUrl": "https://comune.example/error",
}


def cart(*numbers: str, **extra: Any) -> dict[str, Any]:
    return {
        "paymentNotices": [
            {
                "noticeNumber": n,
                "fiscalCode": EC,
                "amount": 10_000,
                "companyName": "Comune di Prova",
                "description": "TARI 2026",
            }
            for n in numbers
        ],
        "returnUrls": RETURN_URLS,
        **extra,
    }


async def post_cart(
    h: Harness, body: Any, key: str | None = DEFAULT_CHECKOUT_API_KEY
) -> aiohttp.ClientResponse:
    headers = {KEY: key} if key else {}
    async with h.session.post(
        h.url("/checkout/ec/v1/carts"), json=body, headers=headers, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp


async def test_checkout_validation(harness: Harness) -> None:
    checker = openapi("checkout_v1.json")
    invalid = [
        {"paymentNotices": cart(nav(20))["paymentNotices"]},  # no returnUrls
        cart(*(nav(20 + i) for i in range(6))),  # six notices
        cart(),  # none
        cart(nav(20)) | {"emailNotice": "not-an-email"},
        {**cart(nav(20)), "paymentNotices": [{**cart(nav(20))["paymentNotices"][0], "amount": 0}]},
        {
            **cart(nav(20)),
            "paymentNotices": [{**cart(nav(20))["paymentNotices"][0], "fiscalCode": "1"}],
        },
    ]
    for body in invalid:
        assert checker.request_errors("PostCarts", body), body  # the spec refuses it too
        resp = await post_cart(harness, body)
        assert resp.status == 400, body
        async with harness.session.post(
            harness.url("/checkout/ec/v1/carts"), json=body, headers={KEY: DEFAULT_CHECKOUT_API_KEY}
        ) as r:
            problem = await r.json()
        assert problem == {
            "title": "Request validation error",
            "status": 400,
            "detail": "The input request is invalid",
        }
        assert not checker.response_errors("PostCarts", 400, problem)
    assert (await post_cart(harness, cart(nav(20)), key=None)).status == 401
    duplicate = await post_cart(harness, cart(nav(20), nav(20)))
    assert duplicate.status == 422
    unknown = cart(nav(21))
    unknown["paymentNotices"][0]["fiscalCode"] = "12345678901"
    assert (await post_cart(harness, unknown)).status == 422
    good = cart(nav(20), nav(21), emailNotice="a@b.it", idCart="c1", allCCP=False)
    assert checker.request_errors("PostCarts", good) == []
    resp = await post_cart(harness, good)
    assert resp.status == 302
    assert "/checkout/p/" in resp.headers["Location"]


async def test_checkout_pay_sends_receipts(harness: Harness) -> None:
    resp = await post_cart(harness, cart(nav(30), nav(31)))
    location = resp.headers["Location"]
    async with harness.session.get(location) as page:
        text = await page.text()
    assert page.status == 200 and "Paga" in text and "Annulla" in text and "<script" not in text
    assert harness.station.received == []  # nothing happens before "Paga"
    async with harness.session.post(location + "/pay", allow_redirects=False) as paid:
        assert paid.status == 303
        assert paid.headers["Location"] == RETURN_URLS["returnOkUrl"]
    assert len(harness.station.receipts) == 2
    receipts = await harness.receipts()
    assert {r["noticeNumber"] for r in receipts} == {nav(30), nav(31)}
    async with harness.session.post(location + "/pay", allow_redirects=False) as again:
        assert again.status == 409


async def test_checkout_cancel_and_error(harness: Harness) -> None:
    resp = await post_cart(harness, cart(nav(40)))
    async with harness.session.post(
        resp.headers["Location"] + "/cancel", allow_redirects=False
    ) as r:
        assert r.status == 303 and r.headers["Location"] == RETURN_URLS["returnCancelUrl"]
    assert harness.station.received == [] and await harness.receipts() == []
    harness.station.notices[nav(42)] = Notice(verify_fault="PAA_PAGAMENTO_DUPLICATO")
    resp = await post_cart(harness, cart(nav(41), nav(42)))
    async with harness.session.post(resp.headers["Location"] + "/pay", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == RETURN_URLS["returnErrorUrl"]
    assert harness.station.sent("paSendRTV2") == [] and await harness.receipts() == []


# -- FdR ---------------------------------------------------------------------------------------


async def fdr_get(h: Harness, path: str) -> tuple[int, Any]:
    return await h.get(FDR_PREFIX + path, headers={KEY: DEFAULT_FDR_API_KEY})


async def test_fdr_published_next_day_and_revised(harness: Harness) -> None:
    checker = openapi("fdr_organization.json")
    harness.station.notices[nav(50)] = Notice(amount=10_000)
    harness.station.notices[nav(51)] = Notice(
        amount=5_050, transfers=[(EC, 5_000), (SECOND_EC, 50)]
    )
    harness.station.notices[nav(52)] = Notice(rt_failures=99)  # paid, receipt never delivered
    for n in (50, 51, 52):
        assert (await harness.pay(nav(n)))["outcome"] == "OK"
    await harness.pay(nav(53), psp="SNDPITMM")
    status, listing = await fdr_get(harness, f"/organizations/{EC}/fdrs")
    assert status == 200 and listing["data"] == []  # nothing published the same day
    assert (await harness.get(f"{FDR_PREFIX}/organizations/{EC}/fdrs"))[0] == 401

    status, advanced = await harness.post("/__sandbox/clock", {"days": 1})
    assert status == 200 and len(advanced["published"]) == 3  # 2 PSPs for EC, 1 for SECOND_EC
    status, listing = await fdr_get(harness, f"/organizations/{EC}/fdrs")
    assert status == 200 and not checker.response_errors(
        "IOrganizationsController_getAllPublishedFlows", 200, listing
    )
    flows = {f["pspId"]: f for f in listing["data"]}
    assert set(flows) == {"SNDBITMM", "SNDPITMM"}
    flow = flows["SNDBITMM"]
    assert flow["fdr"].startswith("2026-03-10SNDBITMM-") and flow["revision"] == 1
    one = f"/organizations/{EC}/fdrs/{flow['fdr']}/revisions/1/psps/SNDBITMM"
    status, detail = await fdr_get(harness, one)
    assert status == 200 and not checker.response_errors(
        "IOrganizationsController_getSinglePublishedFlow", 200, detail
    )
    assert detail["totPayments"] == 3 and detail["sumPayments"] == 100 + 50 + 100
    assert detail["regulationDate"] == "2026-03-11"
    status, payments = await fdr_get(harness, one + "/payments")
    assert status == 200 and not checker.response_errors(
        "IOrganizationsController_getPaymentsFromPublishedFlow", 200, payments
    )
    assert sum(p["pay"] for p in payments["data"]) == detail["sumPayments"]
    assert {p["payStatus"] for p in payments["data"]} == {"EXECUTED"}
    assert {p["iuv"] for p in payments["data"]} == {nav(50)[1:], nav(51)[1:], nav(52)[1:]}
    status, other = await fdr_get(harness, f"/organizations/{SECOND_EC}/fdrs")
    assert [f["pspId"] for f in other["data"]] == ["SNDBITMM"]

    # legacy XML of the same flow
    async with harness.session.get(harness.url(f"/__sandbox/fdr/{EC}/{flow['fdr']}/xml")) as r:
        xml = await r.read()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    flusso = etree.XMLSchema(
        etree.parse(str(SPECS / "xsd-common" / "FlussoRiversamento_1_0_4.xsd"), parser)
    )
    assert flusso.validate(etree.fromstring(xml)), flusso.error_log

    # a revision replaces the flow in the list; both revisions stay readable
    status, revised = await harness.post(
        "/__sandbox/fdr/revise", {"organizationId": EC, "fdr": flow["fdr"], "revoke": [3]}
    )
    assert status == 200 and revised["revision"] == 2
    _, listing = await fdr_get(harness, f"/organizations/{EC}/fdrs?pspId=SNDBITMM")
    assert [(f["fdr"], f["revision"]) for f in listing["data"]] == [(flow["fdr"], 2)]
    _, payments = await fdr_get(
        harness, one.replace("/revisions/1/", "/revisions/2/") + "/payments"
    )
    assert [p["payStatus"] for p in payments["data"]].count("REVOKED") == 1
    assert (await fdr_get(harness, one))[0] == 200

    status, missing = await fdr_get(harness, one.replace("/revisions/1/", "/revisions/9/"))
    assert status == 404 and missing["appErrorCode"] == "FDR-3001"
    assert not checker.response_errors(
        "IOrganizationsController_getSinglePublishedFlow", 404, missing
    )
    status, bad = await fdr_get(harness, f"/organizations/{EC}/fdrs?size=5000")
    assert status == 400 and not checker.response_errors(
        "IOrganizationsController_getAllPublishedFlows", 400, bad
    )


async def test_fdr_stand_in_and_explicit_publish(harness: Harness) -> None:
    await harness.pay(nav(60), standIn=True, amountCents=700)
    status, body = await harness.post("/__sandbox/fdr/publish?date=2026-03-10")
    assert status == 200 and len(body["published"]) == 1
    fdr = body["published"][0]["fdr"]
    _, payments = await fdr_get(
        harness, f"/organizations/{EC}/fdrs/{fdr}/revisions/1/psps/SNDBITMM/payments"
    )
    assert [(p["payStatus"], p["pay"]) for p in payments["data"]] == [("STAND_IN", 7.0)]
    # reset clears receipts and flows, keeps the stations
    assert (await harness.post("/__sandbox/reset"))[0] == 200
    assert await harness.receipts() == []
    assert (await harness.pay(nav(60)))["outcome"] == "OK"


def test_mbd_attachment_is_base64() -> None:
    from sportello.sandbox.pagopa.node_soap import Stamp, _mbd_attachment

    assert base64.b64decode(_mbd_attachment(Stamp("aGFzaA==", "01", "RM"))).startswith(b"MBD:")


NODE_FOR_PA = "http://ws.pagamenti.telematici.gov/"


@functools.cache
def node_for_pa_xsd() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(XSD_DIR / "nodeForPa.xsd"), parser))


async def nodo_per_pa(h: Harness, operation: str, **fields: str) -> etree._Element:
    request = etree.Element(f"{{{NODE_FOR_PA}}}{operation}", nsmap={"ppt": NODE_FOR_PA})
    _add(request, "identificativoIntermediarioPA", BROKER)
    _add(request, "identificativoStazioneIntermediarioPA", fields.pop("station", STATION_ID))
    _add(request, "password", "password01")
    for name, value in fields.items():
        _add(request, name, value)
    assert node_for_pa_xsd().validate(etree.ElementTree(request)), node_for_pa_xsd().error_log
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP})
    etree.SubElement(env, f"{{{SOAP}}}Body").append(request)
    async with h.session.post(
        h.url("/nodo/nodo-per-pa/v1"),
        data=etree.tostring(env),
        headers={"SOAPAction": f'"{operation}"', "Content-Type": "text/xml"},
    ) as resp:
        assert resp.status == 200
        answer = etree.fromstring(await resp.read()).find(f"{{{SOAP}}}Body")[0]
    schema = node_for_pa_xsd()
    assert schema.validate(etree.ElementTree(answer)), schema.error_log
    return answer


async def test_fdr_legacy_soap(harness: Harness) -> None:
    await harness.pay(nav(70))
    await harness.post("/__sandbox/clock", {"days": 1})
    listing = await nodo_per_pa(
        harness, "nodoChiediElencoFlussiRendicontazione", identificativoDominio=EC
    )
    assert listing.findtext("elencoFlussiRendicontazione/totRestituiti") == "1"
    fdr = listing.findtext("elencoFlussiRendicontazione/idRendicontazione/identificativoFlusso")
    assert fdr is not None
    flow = await nodo_per_pa(
        harness,
        "nodoChiediFlussoRendicontazione",
        identificativoDominio=EC,
        identificativoFlusso=fdr,
    )
    xml = base64.b64decode(flow.findtext("xmlRendicontazione") or "")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    flusso = etree.XMLSchema(
        etree.parse(str(SPECS / "xsd-common" / "FlussoRiversamento_1_0_4.xsd"), parser)
    )
    document = etree.fromstring(xml)
    assert flusso.validate(document), flusso.error_log
    assert (
        document.findtext(
            f"{{{'http://www.digitpa.gov.it/schemas/2011/Pagamenti/'}}}importoTotalePagamenti"
        )
        == "100.00"
    )
    unknown = await nodo_per_pa(
        harness, "nodoChiediFlussoRendicontazione", identificativoFlusso="2026-01-01X-1"
    )
    assert unknown.findtext("fault/faultCode") == "PPT_ID_FLUSSO_SCONOSCIUTO"
    stranger = await nodo_per_pa(harness, "nodoChiediElencoFlussiRendicontazione", station="x_01")
    assert stranger.findtext("fault/faultCode") == "PPT_STAZIONE_INT_PA_SCONOSCIUTA"


async def test_stand_in_uses_gpd_positions(harness: Harness) -> None:
    position = demo_position(8, now=START, amount=3_000, description="Canone").to_gpd()
    iuv = demo_iuv(800)
    async with harness.session.post(
        harness.url(
            f"/gpd/debt-positions-service/v1/organizations/{EC}/debtpositions?toPublish=true"
        ),
        json=position,
        headers={KEY: "sandbox-gpd-key"},
    ) as resp:
        assert resp.status == 201, await resp.text()
    result = await harness.pay("3" + iuv, standIn=True)
    assert result["outcome"] == "OK" and result["amountCents"] == 3_000, result
    (receipt,) = harness.station.sent("paSendRTV2")
    assert receipt.findtext("receipt/debtor/fullName") == "Mario Rossi"
    assert receipt.findtext("receipt/transferList/transfer/remittanceInformation") == "Canone"
    unknown = await harness.pay(nav(81), standIn=True)
    assert unknown["faultCode"] == "PPT_PAGAMENTO_SCONOSCIUTO"


def test_node_refuses_to_send_an_invalid_message() -> None:
    from sportello.sandbox.pagopa.node import Node, SandboxBug

    node = Node(clock=FakeClock(START), xsd=xsd())
    message = etree.Element(f"{{{NS}}}paVerifyPaymentNoticeReq")
    _add(message, "idPA", EC)  # idBrokerPA, idStation and qrCode missing
    with pytest.raises(SandboxBug):
        node._check_outgoing("paVerifyPaymentNotice", message)

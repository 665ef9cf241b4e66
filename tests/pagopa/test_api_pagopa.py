"""The pagoPA REST API over real sockets, on SQLite and PostgreSQL: positions (IUVs
allocated, idempotent, 409, 422 naming fields and never values), listing and reading with
scopes and audit, notices as PDF, Checkout carts against the pagoPA sandbox (a cart never
pays: the receipt the Node sends through the station does), receipts, tenant isolation."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_contract import Contract
from factories import iban_with
from pagopa_api import BROKER, CF, EC, NAME, STATION, position
from pagopa_node import XSD_DIR
from pypdf import PdfReader

from sportello import apikeys, audit
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.errors import AuthError, Unprocessable
from sportello.connectors.pagopa.checkout import (
    CartRequest,
    CheckoutClient,
    CheckoutNotice,
    ReturnUrls,
)
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.sandbox.pagopa.app import create_app as create_sandbox
from sportello.sandbox.pagopa.checkout import DEFAULT_CHECKOUT_API_KEY

OTHER_EC = "00000000888"
KEY_ENV = "SPORTELLO_TEST_CHECKOUT_KEY"
BASE = "/api/v1/tenants/demo/pagopa"
RETURN = {
    "ok": "https://comune.example/ok",
    "cancel": "https://comune.example/cancel",
    "error": "https://comune.example/error",
}
HAVE_XSD = (XSD_DIR / "paForNode.xsd").is_file()


POSTAL_ACCOUNT = "12345678"
POSTAL_IBAN = iban_with("07601", POSTAL_ACCOUNT.zfill(12))


@dataclass
class Env:
    client: TestClient[Any, Any]
    sandbox: TestServer
    keys: dict[str, str]
    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        key: str,
        body: Any = None,
        idem: str | None = None,
        **params: str,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        if idem is not None:
            headers["Idempotency-Key"] = idem
        data = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) or body is None else body
        r = await self.client.request(
            method, path, headers=headers, json=payload, data=data, params=params
        )
        raw = await r.read()
        parsed = json.loads(raw) if r.content_type.endswith("json") else raw
        return r.status, parsed, r

    async def carts(self) -> list[dict[str, Any]]:
        async with self.session.get(self.sandbox.make_url("/__sandbox/carts")) as r:
            return (await r.json())["carts"]  # type: ignore[no-any-return]

    async def audit_actions(self) -> list[tuple[str, str]]:
        async with self.client.app[ENGINE].connect() as conn:
            rows = await audit.query(conn, tenant_id="demo")
        return [(r["action"], r["subject"]) for r in rows]


@pytest.fixture
async def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_CHECKOUT_API_KEY)
    sandbox = TestServer(create_sandbox(processing_delay=0))
    await sandbox.start_server()
    checkout_url = str(sandbox.make_url("/checkout/ec/v1"))
    tenants = [
        {
            "id": "demo",
            "name": "Comune di Esempio",
            "ipa_code": "c_z999",
            "fiscal_code": EC,
            "cadastral_code": "Z999",
            "pagopa": {
                "ec_fiscal_code": EC,
                "broker_id": BROKER,
                "station_id": STATION,
                "mode": "station",
                "checkout_url": checkout_url,
                "checkout_api_key": {"env": KEY_ENV},
                "postal": {
                    "account": POSTAL_ACCOUNT,
                    "holder": "Comune di Esempio - Servizio Tesoreria",
                    "authorization": "AUT/2026/0042",
                },
            },
        },
        {
            "id": "altro",
            "name": "Comune Altro",
            "ipa_code": "c_z888",
            "fiscal_code": OTHER_EC,
            "cadastral_code": "Z888",
            "pagopa": {
                "ec_fiscal_code": OTHER_EC,
                "broker_id": OTHER_EC,
                "station_id": OTHER_EC + "_01",
                "mode": "station",
            },
        },
        {
            "id": "spento",
            "name": "Comune Spento",
            "ipa_code": "c_z777",
            "fiscal_code": "00000000777",
            "cadastral_code": "Z777",
            "pagopa": {
                "ec_fiscal_code": "00000000777",
                "broker_id": "00000000777",
                "station_id": "00000000777_01",
                "mode": "gpd",
                "checkout_url": "http://127.0.0.1:9/checkout/ec/v1",
                "checkout_api_key": {"env": KEY_ENV},
            },
        },
    ]
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": tenants}
    )
    app = create_app(config, apply_migrations=True)
    if HAVE_XSD:
        app[XSD_KEY] = XSD_DIR
    session = aiohttp.ClientSession()
    try:
        async with TestClient(TestServer(app)) as client:
            station = str(client.make_url("/t/demo/pagopa/station"))
            async with session.post(
                sandbox.make_url("/__sandbox/stations"),
                json={EC: {"url": station, "broker_id": BROKER, "station_id": STATION}},
            ) as r:
                assert r.status == 200, await r.text()
            engine, now = app[ENGINE], app[CLOCK].now()
            keys: dict[str, str] = {}
            async with engine.begin() as conn:
                for name, tenant, scopes in (
                    ("read", "demo", ["read"]),
                    ("write", "demo", ["write"]),
                    ("pd", "demo", ["read", "personal_data"]),
                    ("all", "demo", ["read", "write", "personal_data"]),
                    ("altro", "altro", ["read", "write", "personal_data"]),
                    ("spento", "spento", ["read", "write", "personal_data"]),
                ):
                    keys[name] = await apikeys.create(
                        conn, tenant_id=tenant, name=name, scopes=scopes, now=now
                    )
            yield Env(client, sandbox, keys, session)
    finally:
        await session.close()
        await sandbox.close()


async def create(env: Env, body: dict[str, Any], idem: str, key: str = "write") -> Any:
    tenant = "demo" if key in ("write", "all") else key
    path = f"/api/v1/tenants/{tenant}/pagopa/positions"
    status, answer, _ = await env.call("POST", path, key, body, idem)
    assert status == 201, answer
    return answer


async def test_positions_get_hub_iuvs_and_are_idempotent(env: Env) -> None:
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", position("T-1"))
    assert status == 400 and "Idempotency-Key" in answer["detail"]
    status, _, _ = await env.call("POST", BASE + "/positions", "read", position("T-1"), "k1")
    assert status == 403

    status, first, r = await env.call("POST", BASE + "/positions", "write", position("T-1"), "k1")
    assert status == 201, first
    assert first["iupd"] == "T-1" and first["status"] == "VALID" and first["mode"] == "station"
    assert first["company_name"] == "Comune di Esempio"  # defaulted to the tenant's name
    (option,) = first["payment_options"]
    assert option["notice_number"] == "3" + option["iuv"] and option["iuv"].startswith("01")
    assert option["status"] == "open" and option["amount"] == 8400
    assert option["transfers"][0]["organization_fiscal_code"] == EC  # defaulted
    text = json.dumps(first)
    assert CF not in text and NAME not in text and "debtor" not in first  # write scope only

    # the same key: the stored answer; the same key for another body: 422
    status, again, r = await env.call("POST", BASE + "/positions", "write", position("T-1"), "k1")
    assert status == 201 and again == first and r.headers["Idempotent-Replay"] == "true"
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", position("T-2"), "k1")
    assert status == 422 and "different request" in answer["detail"]
    # the same IUPD and content under another key: 200 with the stored position
    status, same, _ = await env.call("POST", BASE + "/positions", "write", position("T-1"), "k2")
    assert status == 200 and same["payment_options"] == first["payment_options"]
    # the same IUPD with other content: 409 naming the fields, not the values
    other = position("T-1", full_name="Giuseppe Verdi")
    status, conflict, _ = await env.call("POST", BASE + "/positions", "write", other, "k3")
    assert status == 409 and "full_name" in conflict["detail"]
    assert "Verdi" not in json.dumps(conflict) and NAME not in json.dumps(conflict)

    # IUVs come from a counter: the next position gets the next one
    second = await create(env, position("T-2", instalments=2), "k4")
    navs = [o["notice_number"] for o in second["payment_options"]]
    assert len(set(navs)) == 3 and option["notice_number"] not in navs
    assert [o["installment_number"] for o in second["payment_options"]] == [None, 1, 2]


async def test_invalid_positions_get_422_with_field_paths_and_no_values(env: Env) -> None:
    secret_cf, bad_iban = "RSSMRA80A01H501", "IT00X0542803200000000123456"
    body = position("T-BAD", fiscal_code=secret_cf)
    body["payment_options"][0]["transfers"][0]["iban"] = bad_iban
    body["payment_options"][0]["transfers"][0]["amount"] = 100
    status, answer, r = await env.call("POST", BASE + "/positions", "write", body, "b1")
    assert status == 422 and r.content_type == "application/problem+json", answer
    fields = {e.split(":")[0] for e in answer["errors"]}
    assert {"fiscal_code", "payment_options.0.transfers.0.iban"} <= fields, answer["errors"]
    text = json.dumps(answer)
    assert secret_cf not in text and bad_iban not in text and NAME not in text

    with_iuv = position("T-BAD")
    with_iuv["payment_options"][0]["iuv"] = "01000000000000199"
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", with_iuv, "b2")
    assert status == 422 and answer["errors"] == [
        "payment_options.0.iuv: allocated by the hub, do not send it"
    ]
    for raw in (b"not json", b"[1, 2]"):
        status, answer, _ = await env.call("POST", BASE + "/positions", "write", raw, "b3")
        assert status == 400, answer
    status, answer, _ = await env.call(
        "POST", BASE + "/positions", "write", {"iupd": "X", "payment_options": "x"}, "b4"
    )
    assert status == 422 and answer["errors"] == ["payment_options: a list of objects"]
    # nothing was stored, and no IUV was used up
    status, listing, _ = await env.call("GET", BASE + "/positions", "read")
    assert status == 200 and listing["items"] == []
    stored = await create(env, position("T-OK"), "b5")
    assert stored["payment_options"][0]["iuv"].startswith("010000000000001")


async def test_gpd_mode_refuses_past_due_dates(env: Env) -> None:
    body = position("T-OLD")
    body["payment_options"][0]["due_date"] = "2020-01-01T00:00:00+00:00"
    status, answer, _ = await env.call(
        "POST", "/api/v1/tenants/spento/pagopa/positions", "spento", body, "o1"
    )
    assert status == 422 and answer["errors"] == ["payment_options.0.due_date: is in the past"]


async def test_listing_reading_scopes_and_audit(env: Env) -> None:
    contract = Contract(await (await env.client.get("/api/v1/openapi.json")).json())
    for n in range(3):
        await create(env, position(f"L-{n}"), f"l{n}")
    await create(env, position("L-G", type="G", fiscal_code="12345678903", full_name="Ditta"), "lg")
    status, first, r = await env.call("GET", BASE + "/positions", "read", limit="2")
    assert status == 200 and len(first["items"]) == 2 and first["next"]
    contract.check("/api/v1/tenants/{tenant}/pagopa/positions", 200, first, r.content_type)
    assert CF not in json.dumps(first) and "debtor" not in first["items"][0]
    status, rest, _ = await env.call(
        "GET", BASE + "/positions", "read", limit="2", after=first["next"]
    )
    assert [i["iupd"] for i in rest["items"]] == ["L-2", "L-G"]
    status, end, _ = await env.call("GET", BASE + "/positions", "read", after=rest["next"])
    assert end == {"items": [], "next": None}
    status, valid, _ = await env.call("GET", BASE + "/positions", "read", status="VALID")
    assert len(valid["items"]) == 4
    status, paid, _ = await env.call("GET", BASE + "/positions", "read", status="PAID")
    assert paid["items"] == []
    status, bad, _ = await env.call("GET", BASE + "/positions", "read", status="nope")
    assert status == 400

    # the debtor filter is a personal-data query: scope, then audit
    status, denied, _ = await env.call("GET", BASE + "/positions", "read", debtor=CF)
    assert status == 403 and "personal_data" in denied["detail"]
    assert await env.audit_actions() == []
    status, mine, _ = await env.call("GET", BASE + "/positions", "pd", debtor=CF.lower())
    assert status == 200 and [i["iupd"] for i in mine["items"]] == ["L-0", "L-1", "L-2"]
    status, bad, _ = await env.call("GET", BASE + "/positions", "pd", debtor="x")
    assert status == 400 and bad["detail"].startswith("debtor:")
    assert await env.audit_actions() == [("pagopa.positions.search", CF)]

    # one position: personal_data, audited, with the debtor
    status, _, _ = await env.call("GET", BASE + "/positions/L-0", "read")
    assert status == 403
    status, one, r = await env.call("GET", BASE + "/positions/L-0", "pd", purpose="PROT.9")
    assert status == 200
    contract.check("/api/v1/tenants/{tenant}/pagopa/positions/{iupd}", 200, one, r.content_type)
    assert one["debtor"]["fiscal_code"] == CF and one["debtor"]["full_name"] == NAME
    status, missing, _ = await env.call("GET", BASE + "/positions/NOPE", "pd")
    assert status == 404 and "NOPE" not in missing["detail"]
    async with env.client.app[ENGINE].connect() as conn:
        last = (await audit.query(conn, tenant_id="demo"))[-1]
    assert (last["action"], last["subject"], last["purpose"]) == (
        "pagopa.position.read",
        CF,
        "PROT.9",
    )
    # another tenant's key sees none of it, and its own list is empty
    status, _, _ = await env.call("GET", BASE + "/positions", "altro")
    assert status == 404
    status, theirs, _ = await env.call("GET", "/api/v1/tenants/altro/pagopa/positions", "altro")
    assert status == 200 and theirs["items"] == []
    status, _, _ = await env.call("GET", "/api/v1/tenants/altro/pagopa/positions/L-0", "altro")
    assert status == 404


async def test_notice_pdf(env: Env) -> None:
    single = await create(env, position("N-1"), "n1")
    plan = await create(env, position("N-2", instalments=3), "n2")
    nav = single["payment_options"][0]["notice_number"]
    status, _, _ = await env.call("GET", f"{BASE}/notices/{nav}.pdf", "read")
    assert status == 403
    status, pdf, r = await env.call("GET", f"{BASE}/notices/{nav}.pdf", "pd")
    assert status == 200 and r.content_type == "application/pdf" and pdf.startswith(b"%PDF")
    assert f'filename="{nav}.pdf"' in r.headers["Content-Disposition"]
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Comune di Esempio" in text
    # any notice number of an instalment plan gives the plan's whole notice
    rata = plan["payment_options"][2]["notice_number"]
    status, many, _ = await env.call("GET", f"{BASE}/notices/{rata}.pdf", "pd")
    assert status == 200 and len(PdfReader(io.BytesIO(many)).pages) > 1
    for unknown in ("3" + "0" * 17, "abc"):
        status, answer, _ = await env.call("GET", f"{BASE}/notices/{unknown}.pdf", "pd")
        assert status == 404 and unknown not in answer["detail"], unknown
    assert [a for a, _ in await env.audit_actions()] == ["pagopa.notice.pdf"] * 2
    status, _, _ = await env.call("GET", f"/api/v1/tenants/altro/pagopa/notices/{nav}.pdf", "altro")
    assert status == 404


async def test_notice_pdf_has_the_postal_slip_for_a_postal_iban(env: Env) -> None:
    """[tenants.pagopa.postal]: the Bollettino Postale PA (c/c, holder, Poste's
    authorisation, Data Matrix) on the notices of positions payable to that account."""
    body = position("P-1")
    body["payment_options"][0]["transfers"][0]["postal_iban"] = POSTAL_IBAN
    postal = await create(env, body, "p1")
    plain = await create(env, position("P-2"), "p2")
    pages = {}
    for name, made in (("postal", postal), ("plain", plain)):
        nav = made["payment_options"][0]["notice_number"]
        status, data, _ = await env.call("GET", f"{BASE}/notices/{nav}.pdf", "pd")
        assert status == 200
        page = PdfReader(io.BytesIO(data)).pages[0]
        blocks = page.get_contents().get_data().count(b"q 0 g ")  # 2D codes drawn
        pages[name] = (page.extract_text(), blocks)
    text, codes = pages["postal"]
    assert "BOLLETTINO POSTALE PA" in text and POSTAL_ACCOUNT in text
    assert "Comune di Esempio - Servizio Tesoreria" in text and "AUT/2026/0042" in text
    assert codes == 2  # the QR code and Poste's Data Matrix
    text, codes = pages["plain"]
    assert "BOLLETTINO POSTALE PA" not in text and POSTAL_ACCOUNT not in text
    assert codes == 1


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\ufffe"])
async def test_text_xml_cannot_carry_gets_422_naming_the_field_and_nothing_stored(
    env: Env, bad: str
) -> None:
    """paGetPaymentV2 is XML: a debtor name with NUL/BEL would make the position unpayable."""
    for n, body in enumerate(
        (
            position("X-1", full_name=f"Mario{bad}Rossi"),
            position("X-1", street_name=f"Via{bad}Roma"),
        )
    ):
        status, answer, r = await env.call("POST", BASE + "/positions", "write", body, f"x{n}")
        assert status == 422 and r.content_type == "application/problem+json", answer
        field = "full_name" if n == 0 else "street_name"
        assert any(
            e.startswith(f"{field}: contains a character XML 1.0 cannot carry")
            for e in answer["errors"]
        ), answer
        assert "Mario" not in json.dumps(answer)
    body = position("X-1")
    body["payment_options"][0]["description"] = f"TARI{bad}"
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", body, "x9")
    assert status == 422 and answer["errors"][0].startswith("payment_options.0.description: ")
    status, _, _ = await env.call("GET", BASE + "/positions/X-1", "pd")
    assert status == 404  # nothing stored


async def test_lone_surrogate_in_json_gets_422(env: Env) -> None:
    raw = json.dumps(position("X-2")).replace(NAME, "Mario \\ud800Rossi").encode()
    assert b"\\ud800" in raw
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", raw, "s1")
    assert status == 422 and answer["errors"][0].startswith("full_name: "), answer


@pytest.mark.parametrize(
    ("debtor", "code"),
    [
        ("F", "RSSMRA80A01H501A"),  # check letter U
        ("F", "RSSMRA80A01H5LMU"),  # omocodia letters change the check letter
        ("F", "RSSMRA80A41H501U"),  # the day of a woman changes it too
        ("G", "12345678901"),  # check digit 3
        ("G", "RSSMRA80A01H501A"),
    ],
)
async def test_fiscal_code_with_a_wrong_check_character_gets_422(
    env: Env, debtor: str, code: str
) -> None:
    body = position("CF-1", type=debtor, fiscal_code=code)
    status, answer, _ = await env.call("POST", BASE + "/positions", "write", body, "cf")
    assert status == 422, answer
    assert answer["errors"][0].startswith("fiscal_code: "), answer
    assert code not in json.dumps(answer)
    status, answer, _ = await env.call("GET", BASE + "/positions", "pd", debtor=code)
    assert status == 400 and answer["detail"].startswith("debtor: "), answer


async def test_cart_redirects_and_only_the_receipt_pays(env: Env) -> None:
    contract = Contract(await (await env.client.get("/api/v1/openapi.json")).json())
    stored = await create(env, position("C-1"), "c1")
    nav = stored["payment_options"][0]["notice_number"]
    cart = {"notice_numbers": [nav], "return_urls": RETURN}
    status, _, _ = await env.call("POST", BASE + "/carts", "read", cart, "cart-1")
    assert status == 403
    status, answer, _ = await env.call("POST", BASE + "/carts", "write", cart, "cart-1")
    assert status == 201, answer
    assert "/checkout/p/" in answer["redirect_url"] and answer["amount"] == 8400
    (made,) = await env.carts()
    assert made["paymentNotices"] == [
        {
            "noticeNumber": nav,
            "fiscalCode": EC,
            "amount": 8400,
            "companyName": "Comune di Esempio",
            "description": "TARI 2026",
        }
    ]
    assert made["returnUrls"]["returnOkUrl"] == RETURN["ok"]
    # a repeat with the same key: the same answer, no second cart
    status, again, r = await env.call("POST", BASE + "/carts", "write", cart, "cart-1")
    assert status == 201 and again == answer and r.headers["Idempotent-Replay"] == "true"
    assert len(await env.carts()) == 1

    # the cart changed nothing
    status, one, _ = await env.call("GET", BASE + "/positions/C-1", "pd")
    assert one["status"] == "VALID" and one["payment_options"][0]["status"] == "open"
    status, listing, _ = await env.call("GET", BASE + "/receipts", "read")
    assert listing["items"] == []

    # the payer pays on Checkout's page: the Node sends the receipt to the station
    async with env.session.post(answer["redirect_url"] + "/pay", allow_redirects=False) as paid:
        assert paid.status == 303 and paid.headers["Location"] == RETURN["ok"]
    for _ in range(100):
        status, one, _ = await env.call("GET", BASE + "/positions/C-1", "pd")
        if one["status"] == "PAID":
            break
        await asyncio.sleep(0.05)
    assert one["status"] == "PAID" and one["payment_options"][0]["status"] == "paid"

    status, listing, r = await env.call("GET", BASE + "/receipts", "read")
    contract.check("/api/v1/tenants/{tenant}/pagopa/receipts", 200, listing, r.content_type)
    (item,) = listing["items"]
    assert item["notice_number"] == nav and item["iupd"] == "C-1" and item["outcome"] == "OK"
    assert item["amount"] == 8400 and "data" not in item and CF not in json.dumps(listing)
    assert one["payment_options"][0]["receipt_id"] == item["receipt_id"]
    path = f"{BASE}/receipts/{item['receipt_id']}"
    status, brief, _ = await env.call("GET", path, "read")
    assert status == 200 and "data" not in brief and CF not in json.dumps(brief)
    before = len(await env.audit_actions())
    status, full, r = await env.call("GET", path, "pd")
    contract.check(
        "/api/v1/tenants/{tenant}/pagopa/receipts/{receipt_id}", 200, full, r.content_type
    )
    assert full["data"]["debtor"]["fiscal_code"] == CF
    actions = await env.audit_actions()
    assert len(actions) == before + 1 and actions[-1] == ("pagopa.receipt.read", CF)
    status, _, _ = await env.call("GET", f"{BASE}/receipts/nope", "read")
    assert status == 404

    # time filters
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    status, later, _ = await env.call("GET", BASE + "/receipts", "read", since=future)
    assert status == 200 and later["items"] == []
    status, earlier, _ = await env.call("GET", BASE + "/receipts", "read", until=future)
    assert len(earlier["items"]) == 1
    status, bad, _ = await env.call("GET", BASE + "/receipts", "read", since="ieri")
    assert status == 400 and bad["detail"].startswith("since")

    # a paid notice cannot go into a new cart
    status, refused, _ = await env.call("POST", BASE + "/carts", "write", cart, "cart-2")
    assert status == 422 and refused["errors"] == ["notice_numbers.0: not payable: already paid"]
    # and another tenant sees neither receipts nor carts
    for method, path in (("GET", BASE + "/receipts"), ("POST", BASE + "/carts")):
        status, _, _ = await env.call(method, path, "altro", cart, "x")
        assert status == 404


async def test_cart_refusals(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    navs = [
        (await create(env, position(f"R-{n}"), f"r{n}"))["payment_options"][0]["notice_number"]
        for n in range(2)
    ]

    async def cart(body: dict[str, Any], idem: str, tenant: str = "demo") -> tuple[int, Any]:
        key = "write" if tenant == "demo" else tenant
        path = f"/api/v1/tenants/{tenant}/pagopa/carts"
        status, answer, _ = await env.call("POST", path, key, body, idem)
        return status, answer

    ok = {"notice_numbers": navs, "return_urls": RETURN}
    cases = [
        ({**ok, "notice_numbers": []}, "notice_numbers"),
        ({**ok, "notice_numbers": navs * 3}, "notice_numbers"),
        ({**ok, "notice_numbers": [navs[0], navs[0]]}, "notice_numbers"),
        ({**ok, "notice_numbers": ["123"]}, "notice_numbers.0"),
        ({**ok, "return_urls": {**RETURN, "ok": "javascript:alert(1)"}}, "return_urls.ok"),
        ({**ok, "email_notice": "nope"}, "email_notice"),
        ({**ok, "extra": 1}, "extra"),
        ({**ok, "notice_numbers": [navs[0], "3" + "0" * 17]}, "notice_numbers.1"),
    ]
    for n, (body, field) in enumerate(cases):
        status, answer = await cart(body, f"bad-{n}")
        assert status == 422, (body, answer)
        assert any(e.startswith(field + ":") for e in answer["errors"]), answer
    status, answer = await cart(b"{", "bad-json")  # type: ignore[arg-type]
    assert status == 400
    assert await env.carts() == []

    # a tenant without a Checkout key, Checkout unreachable, a wrong key
    status, answer = await cart(ok, "t1", tenant="spento")
    assert status == 422 and len(answer["errors"]) == 2  # the notices are not spento's
    other = await create(env, position("A-1"), "a1", key="altro")
    body = {"notice_numbers": [other["payment_options"][0]["notice_number"]], "return_urls": RETURN}
    status, answer = await cart(body, "t2", tenant="altro")
    assert status == 409 and "checkout_api_key" in answer["detail"]
    spento = await create(env, position("S-1"), "s1", key="spento")
    nav = spento["payment_options"][0]["notice_number"]
    status, answer = await cart(
        {"notice_numbers": [nav], "return_urls": RETURN}, "t3", tenant="spento"
    )
    assert status == 502, answer
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    status, answer = await cart(ok, "t4")
    assert status == 502 and "subscription key" in answer["detail"]
    monkeypatch.delenv(KEY_ENV)
    status, answer = await cart(ok, "t5")
    assert status == 409 and "cannot be read" in answer["detail"]
    monkeypatch.setenv(KEY_ENV, DEFAULT_CHECKOUT_API_KEY)
    status, answer = await cart(ok, "t6")
    assert status == 201 and answer["amount"] == 2 * 8400


async def test_every_route_is_404_for_another_tenants_key(env: Env) -> None:
    stored = await create(env, position("I-1"), "i1")
    nav = stored["payment_options"][0]["notice_number"]
    doc = await (await env.client.get("/api/v1/openapi.json")).json()
    routes = [(m, p) for p, ops in doc["paths"].items() if "/pagopa/" in p for m in ops]
    assert len(routes) == 10
    for method, template in routes:
        path = (
            template.replace("{tenant}", "demo")
            .replace("{iupd}", "I-1")
            .replace("{nav}", nav)
            .replace("{receipt_id}", "R-1")
        )
        status, answer, _ = await env.call(method.upper(), path, "altro", {}, "iso")
        assert status == 404 and answer["detail"] == "tenant 'demo' not found", path


async def test_checkout_client_against_the_sandbox(env: Env) -> None:
    stored = await create(env, position("K-1"), "kk")
    nav = stored["payment_options"][0]["notice_number"]
    notice = CheckoutNotice(nav, EC, 8400, "Comune di Esempio", "TARI 2026")
    urls = ReturnUrls(RETURN["ok"], RETURN["cancel"], RETURN["error"])
    base = str(env.sandbox.make_url("/checkout/ec/v1"))
    client = CheckoutClient(env.session, base, api_key=lambda: DEFAULT_CHECKOUT_API_KEY)
    location = await client.create_cart(CartRequest((notice,), urls, email_notice="a@b.it"))
    assert "/checkout/p/" in location
    (made,) = await env.carts()
    assert made["emailNotice"] == "a@b.it"
    with pytest.raises(AuthError):
        await CheckoutClient(env.session, base, api_key=lambda: "nope").create_cart(
            CartRequest((notice,), urls)
        )
    unknown = CheckoutNotice("3" + "0" * 17, "12345678901", 100, "X", "Y")
    with pytest.raises(Unprocessable, match="Invalid payment notice data"):
        await client.create_cart(CartRequest((unknown,), urls))
    for bad in (
        lambda: CheckoutNotice("1", EC, 1, "X", "Y"),
        lambda: CheckoutNotice(nav, EC, 0, "X", "Y"),
        lambda: CheckoutNotice(nav, EC, 1, "", "Y"),
        lambda: ReturnUrls("ftp://x", RETURN["cancel"], RETURN["error"]),
        lambda: CartRequest((), urls),
        lambda: CartRequest((notice, notice), urls),
        lambda: CartRequest((notice,), urls, email_notice="x"),
    ):
        with pytest.raises(ValueError):
            bad()

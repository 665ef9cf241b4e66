"""The GPD sandbox over real sockets, with plain HTTP calls (no client library).

With the official specs available (``../shared/specs/pagopa/openapi``), every JSON body
the sandbox accepts or sends is checked against them (teardown fails on a violation), and
the sandbox's own request checks are compared with the spec's schemas field by field.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sportello.clock import FakeClock
from sportello.connectors.pagopa.models import (
    DebtorType,
    DebtPosition,
    PaymentOption,
    Stamp,
    Transfer,
)
from sportello.sandbox.pagopa.gpd_app import DEFAULT_API_KEY, GPD_PREFIX, create_app
from sportello.sandbox.pagopa.gpd_demo import (
    DEMO_IBAN,
    DEMO_ORGANIZATION,
    demo_iuv,
    demo_position,
)
from sportello.sandbox.pagopa.gpd_spec import GpdSpecChecker
from sportello.sandbox.pagopa.gpd_validation import check_position, semantic_problem

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagopa" / "openapi"
GPD_SPEC = SPECS / "gpd.json"
MASSIVE_SPEC = SPECS / "gpd_massive_v2.json"
KEY = "Ocp-Apim-Subscription-Key"
ORG = DEMO_ORGANIZATION
NOW = datetime.now(UTC).replace(microsecond=0)
POSITIONS = f"/organizations/{ORG}/debtpositions"


@functools.cache
def _load_spec() -> GpdSpecChecker:
    return GpdSpecChecker.from_paths(GPD_SPEC, MASSIVE_SPEC)


def spec_or_none() -> GpdSpecChecker | None:
    return _load_spec() if GPD_SPEC.exists() and MASSIVE_SPEC.exists() else None


def require_spec() -> GpdSpecChecker:
    checker = spec_or_none()
    if checker is None:
        pytest.skip(f"GPD specs not found in {SPECS} (shared/specs is not part of the repo)")
    return checker


class Sandbox:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = DEFAULT_API_KEY,
        json: Any = None,
        headers: dict[str, str] | None = None,
        prefix: str = GPD_PREFIX,
    ) -> tuple[int, Any, Any]:
        sent = dict(headers or {})
        if key is not None:
            sent[KEY] = key
        async with self.session.request(
            method, self.url(prefix + path), headers=sent, json=json
        ) as resp:
            body = await resp.json(content_type=None) if await resp.read() else None
            return resp.status, body, resp.headers

    async def create(self, body: dict[str, Any], to_publish: bool = False) -> Any:
        status, answer, _ = await self.call(
            "POST", f"{POSITIONS}?toPublish={str(to_publish).lower()}", json=body
        )
        assert status == 201, answer
        return answer

    async def admin(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.url(f"/__sandbox/{path}"), json=json) as resp:
            return resp.status, await resp.json()


MakeSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []
    checker = spec_or_none()

    async def make(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("spec_checker", checker)
        server = TestServer(create_app(**kwargs))
        await server.start_server()
        session = aiohttp.ClientSession()
        started.append((server, session))
        return Sandbox(server, session)

    yield make
    for server, session in started:
        async with session.get(server.make_url("/__sandbox/spec-violations")) as resp:
            violations = (await resp.json())["violations"]
        await session.close()
        await server.close()
        assert violations == [], violations


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    return await make_sandbox()


def body(n: int = 1, **kwargs: Any) -> dict[str, Any]:
    return demo_position(n, now=NOW, **kwargs).to_gpd()


def iban_with(abi: str) -> str:
    bban = "X" + abi + "03200" + "000012345678"
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


def full_body() -> dict[str, Any]:
    """A position with every optional field GPD accepts, two transfers (IBAN + postal
    IBAN, and a stamp), metadata everywhere."""
    position = DebtPosition(
        iupd="FULL-1",
        type=DebtorType.LEGAL_ENTITY,
        fiscal_code="01234567897",
        full_name="Rossi S.r.l.",
        street_name="Via Roma",
        civic_number="1",
        postal_code="90100",
        city="Palermo",
        province="PA",
        region="Sicilia",
        country="IT",
        email="amministrazione@rossi-srl.it",
        company_name="Comune di Prova",
        office_name="Ufficio Tributi",
        switch_to_expired=True,
        validity_date=NOW + timedelta(days=1),
        pay_stand_in=False,
        payment_options=(
            PaymentOption(
                iuv=demo_iuv(1),
                amount=10_016,
                description="TARI 2026",
                due_date=NOW + timedelta(days=30),
                retention_date=NOW + timedelta(days=300),
                metadata={"capitolo": "1010"},
                transfers=(
                    Transfer(
                        id_transfer=1,
                        amount=10_000,
                        organization_fiscal_code=ORG,
                        remittance_information="TARI 2026",
                        category="9/0101101IM/",
                        iban=DEMO_IBAN,
                        postal_iban=iban_with("07601"),
                        company_name="Comune di Prova",
                        metadata={"accertamento": "2026/1"},
                    ),
                    Transfer(
                        id_transfer=2,
                        amount=16,
                        organization_fiscal_code=ORG,
                        remittance_information="Marca da bollo",
                        category="9/0101101IM/",
                        stamp=Stamp(hash_document="YWJjZA==", provincial_residence="PA"),
                    ),
                ),
            ),
        ),
    )
    return position.to_gpd()


# -- gateway -------------------------------------------------------------------------------


async def test_subscription_key(sandbox: Sandbox) -> None:
    status, answer, headers = await sandbox.call("GET", f"{POSITIONS}/X", key=None)
    assert status == 401
    assert answer["statusCode"] == 401
    assert "missing subscription key" in answer["message"]
    assert "AzureApiManagementKey" in headers["WWW-Authenticate"]
    status, answer, _ = await sandbox.call("GET", f"{POSITIONS}/X", key="wrong")
    assert status == 401
    assert "invalid subscription key" in answer["message"]
    status, _, _ = await sandbox.call(
        "GET", f"{POSITIONS}/X?subscription-key={DEFAULT_API_KEY}", key=None
    )
    assert status == 404  # the query parameter works too: the position does not exist


async def test_request_id_and_unknown_routes(sandbox: Sandbox) -> None:
    status, answer, headers = await sandbox.call(
        "GET", f"{POSITIONS}/X", headers={"X-Request-Id": "abc-123"}
    )
    assert status == 404
    assert headers["X-Request-Id"] == "abc-123"
    assert answer == {
        "title": "Not found the debt position",
        "status": 404,
        "detail": f"Not found a debt position for Organization Fiscal Code {ORG} and IUPD X",
    }
    status, answer, _ = await sandbox.call("GET", "/nothing/here")
    assert (status, answer) == (404, {"statusCode": 404, "message": "Resource not found"})


async def test_organizations_the_key_is_not_enabled_for(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(organizations={ORG})
    status, answer, _ = await sandbox.call("GET", "/organizations/00000000000/debtpositions/X")
    assert status == 403
    assert answer["statusCode"] == 403


# -- validation ----------------------------------------------------------------------------


async def test_400_names_the_fields(sandbox: Sandbox) -> None:
    bad = body()
    del bad["iupd"]
    bad["country"] = "it"
    bad["paymentOption"][0]["amount"] = 0
    bad["paymentOption"][0]["transfer"][0]["remittanceInformation"] = "x" * 141
    status, answer, _ = await sandbox.call("POST", POSITIONS, json=bad)
    assert status == 400
    assert answer["title"] == "BAD REQUEST"
    assert answer["detail"].split(", ") == [
        "iupd: iupd is required",
        "country: The country must be reported with two capital letters (example: IT)",
        "paymentOption[0].amount: must be greater than or equal to 1",
        "paymentOption[0].transfer[0].remittanceInformation: size must be between 0 and 140",
    ]
    status, answer, _ = await sandbox.call("POST", POSITIONS, json=[1, 2])
    assert status == 400
    status, answer, _ = await sandbox.call("POST", f"{POSITIONS}?toPublish=maybe", json=body())
    assert (status, answer["detail"]) == (400, "Invalid value maybe for property toPublish")


async def test_gpd_semantic_checks(sandbox: Sandbox) -> None:
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (
            lambda b: b["paymentOption"][0].update(amount=999),
            "Amounts congruence error: payment option amount must coincide with the total of "
            "the transfers amount [payment_option_amount(in cent)=999; "
            "total_tranfers_amount(in cent)=10000]",
        ),
        (
            lambda b: b["paymentOption"][0]["transfer"][0].update(idTransfer="7"),
            "Transfer ID congruence error",
        ),
        (
            lambda b: b["paymentOption"][0]["transfer"][0].update(
                stamp={"hashDocument": "YWJjZA==", "stampType": "01", "provincialResidence": "RM"}
            ),
            "The Iban may be present (optionally combined with the Postal Iban) or the Stamp",
        ),
        (
            lambda b: b.update(validityDate="2020-01-01T00:00:00.000Z"),
            "Dates congruence error: validity_date must be >= current_date",
        ),
        (
            lambda b: b["paymentOption"][0].update(retentionDate="2020-01-01T00:00:00Z"),
            "Dates congruence error: retention_date must be >= due_date",
        ),
    ]
    for mutate, expected in cases:
        sent = body()
        mutate(sent)
        status, answer, _ = await sandbox.call("POST", POSITIONS, json=sent)
        assert status == 400, answer
        assert answer["title"] == "Error in the debt position request data"
        assert answer["detail"].startswith(expected), answer["detail"]


def _schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])


_WRONG_TYPE = {"string": 12345, "integer": "12", "boolean": "true", "array": {}, "object": "x"}


def _mutations(
    spec: dict[str, Any], schema: dict[str, Any], doc: dict[str, Any], where: str
) -> Iterator[tuple[str, Callable[[dict[str, Any]], None]]]:
    """(label, mutate) for every constraint of ``schema`` on the object at ``doc``."""
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        prop = _schema(spec, raw)
        if prop.get("readOnly") or raw.get("readOnly"):
            continue  # GPD ignores read-only properties in requests

        def setter(value: Any, key: str = name) -> Callable[[dict[str, Any]], None]:
            return lambda target: target.__setitem__(key, copy.deepcopy(value))

        label = f"{where}{name}"
        if name in required:
            yield f"{label}: missing", lambda target, key=name: target.pop(key, None)
        kind = prop.get("type", "object")
        yield f"{label}: wrong type", setter(_WRONG_TYPE[kind])
        if "enum" in prop:
            yield f"{label}: not in enum", setter("ZZ")
        if "maxLength" in prop:
            yield f"{label}: too long", setter("A" * (prop["maxLength"] + 1))
        if prop.get("minLength"):
            yield f"{label}: too short", setter("A" * (prop["minLength"] - 1))
        if "pattern" in prop:
            yield f"{label}: pattern", setter("!!")
        if "minimum" in prop:
            yield f"{label}: below minimum", setter(prop["minimum"] - 1)
        if prop.get("format") == "date-time":
            yield f"{label}: not a date-time", setter("31/12/2026")
        if "maxItems" in prop:
            item = {"key": "k", "value": "v"}
            yield f"{label}: too many items", setter([item] * (prop["maxItems"] + 1))
        value = doc.get(name)
        if kind == "array" and isinstance(value, list) and value:
            items = _schema(spec, prop.get("items", {}))
            for index, element in enumerate(value):
                for sub_label, mutate in _mutations(spec, items, element, f"{label}[{index}]."):
                    yield sub_label, (lambda target, m=mutate, k=name, i=index: m(target[k][i]))
        elif isinstance(value, dict) and "properties" in prop:
            for sub_label, mutate in _mutations(spec, prop, value, f"{label}."):
                yield sub_label, lambda target, m=mutate, k=name: m(target[k])


def test_the_sandbox_refuses_whatever_the_spec_refuses() -> None:
    checker = require_spec()
    import json

    spec = json.loads(GPD_SPEC.read_text(encoding="utf-8"))
    base = full_body()
    assert checker.schema_errors("PaymentPositionModel", base) == []
    assert check_position(base) == []
    assert semantic_problem(base, NOW, action="create") is None
    root = spec["components"]["schemas"]["PaymentPositionModel"]
    tried = 0
    for label, mutate in _mutations(spec, root, base, ""):
        sent = copy.deepcopy(base)
        mutate(sent)
        if not checker.schema_errors("PaymentPositionModel", sent):
            continue  # e.g. a pattern the spec does not anchor
        tried += 1
        problems = check_position(sent)
        refused = bool(problems) or semantic_problem(sent, NOW, action="create") is not None
        assert refused, f"{label}: the spec refuses it, the sandbox accepted it"
    assert tried > 60


# -- uniqueness ----------------------------------------------------------------------------


async def test_duplicate_iupd_and_iuv(sandbox: Sandbox) -> None:
    await sandbox.create(body(1))
    conflict = {
        "title": "The debt position violated constraints of uniqueness",
        "status": 409,
        "detail": f"Already exists a debt position for the Organization Fiscal Code {ORG} or "
        "one of its payment options is not unique",
    }
    status, answer, _ = await sandbox.call("POST", POSITIONS, json=body(1, amount=5_000))
    assert (status, answer) == (409, conflict)
    same_iuv = body(1)
    same_iuv["iupd"] = "ANOTHER"
    status, answer, _ = await sandbox.call("POST", POSITIONS, json=same_iuv)
    assert (status, answer) == (409, conflict)
    twice = body(2)
    twice["paymentOption"].append(copy.deepcopy(twice["paymentOption"][0]))
    status, _, _ = await sandbox.call("POST", POSITIONS, json=twice)
    assert status == 409
    # the same IUPD in another organization is another position
    status, _, _ = await sandbox.call(
        "POST", "/organizations/00000000001/debtpositions", json=body(1)
    )
    assert status == 201


# -- state machine -------------------------------------------------------------------------


async def test_transitions_refused_as_gpd_does(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock(NOW)
    sandbox = await make_sandbox(clock=clock)
    one = f"{POSITIONS}/SPORTELLO-00000001"
    await sandbox.create(body(1, validity_date=NOW + timedelta(hours=1)))
    status, answer, _ = await sandbox.call("POST", f"{one}/invalidate")
    assert status == 409
    assert answer["title"] == "Existing related payment found or not in invalidable state"
    status, answer = await sandbox.admin("POST", f"pay/{ORG}/{demo_iuv(100)}")
    assert (status, answer["title"]) == (422, "Not in payable state")

    clock.advance(2 * 3600)  # the validity date is now in the past
    status, answer, _ = await sandbox.call("POST", f"{one}/publish")
    assert (status, answer["title"]) == (
        409,
        "Publish request occurred after the validity date began",
    )
    status, answer, _ = await sandbox.call("PUT", f"{one}?toPublish=true", json=body(1))
    assert (status, answer["status"]) == (200, "VALID")
    status, answer, _ = await sandbox.call("POST", f"{one}/publish")
    assert status == 409
    assert answer["title"] == "Existing related payment found or not in publishable state"

    status, answer = await sandbox.admin("POST", f"pay/{ORG}/{demo_iuv(100)}")
    assert (status, answer["status"]) == (200, "PAID")
    status, answer = await sandbox.admin("POST", f"pay/{ORG}/{demo_iuv(100)}")
    assert status == 409
    for method, path in (("DELETE", one), ("POST", f"{one}/invalidate")):
        status, answer, _ = await sandbox.call(method, path)
        assert status == 409, (method, path)
    status, answer, _ = await sandbox.call("PUT", one, json=body(1))
    assert (status, answer["title"]) == (
        409,
        "Existing related payment found or not in updatable state",
    )
    status, answer, _ = await sandbox.call("GET", one)
    assert answer["status"] == "PAID"
    assert answer["paymentDate"]
    assert answer["paymentOption"][0]["status"] == "PO_PAID"


async def test_expired_positions_can_be_revived_by_an_update(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock(NOW)
    sandbox = await make_sandbox(clock=clock)
    one = f"{POSITIONS}/SPORTELLO-00000001"
    await sandbox.create(body(1, switch_to_expired=True, due_in=timedelta(days=1)), True)
    clock.advance(2 * 86_400)
    status, answer, _ = await sandbox.call("GET", one)
    assert answer["status"] == "EXPIRED"
    status, answer = await sandbox.admin("POST", f"pay/{ORG}/{demo_iuv(100)}")
    assert status == 422
    later = demo_position(1, now=clock.now(), switch_to_expired=True).to_gpd()
    status, answer, _ = await sandbox.call("PUT", f"{one}?toPublish=true", json=later)
    assert (status, answer["status"]) == (200, "VALID")
    # an update with a past due date and switchToExpired is refused, like a create
    stale = body(1, switch_to_expired=True, due_in=timedelta(days=1))
    status, answer, _ = await sandbox.call("PUT", one, json=stale)
    assert status == 400
    assert "due_date must be >= " in answer["detail"]


async def test_list_filters_and_limits(sandbox: Sandbox) -> None:
    for n in range(1, 4):
        await sandbox.create(body(n), to_publish=n == 2)
    status, answer, _ = await sandbox.call("GET", f"{POSITIONS}?status=VALID")
    assert [p["iupd"] for p in answer["payment_position_list"]] == ["SPORTELLO-00000002"]
    status, answer, _ = await sandbox.call("GET", f"{POSITIONS}?limit=51")
    assert status == 400
    status, answer, _ = await sandbox.call(
        "GET", f"{POSITIONS}?due_date_from=2026-01-01&due_date_to=2026-03-01"
    )
    assert (status, answer["title"]) == (400, "The debt positions cannot be recovered")


# -- test-only routes ------------------------------------------------------------------------


async def test_sandbox_routes(sandbox: Sandbox) -> None:
    await sandbox.create(body(1))
    status, answer = await sandbox.admin("GET", "positions")
    assert answer["count"] == 1
    stored = answer["positions"][0]
    assert stored["request"]["fiscalCode"] == "RSSMRA80A01H501U"  # everything stored
    assert stored["options"][0]["nav"] == "3" + demo_iuv(100)
    status, answer = await sandbox.admin("POST", "faults", {"mode": "explode"})
    assert status == 400
    status, answer = await sandbox.admin("POST", "faults", {"count": 2, "status": 503})
    assert answer["faults"][0]["remaining"] == 2
    assert (await sandbox.call("GET", f"{POSITIONS}/SPORTELLO-00000001"))[0] == 503
    status, answer = await sandbox.admin("POST", "reset")
    assert (await sandbox.admin("GET", "positions"))[1]["count"] == 0
    assert (await sandbox.admin("GET", "faults"))[1]["faults"] == []
    status, answer = await sandbox.admin("POST", f"pay/{ORG}/{demo_iuv(100)}")
    assert status == 404

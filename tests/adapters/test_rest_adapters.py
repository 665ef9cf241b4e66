"""The REST reference adapters pass the kit's contracts against a fake of the documented REST
API (a real aiohttp server in a thread, which checks the token, the paths, the paging, the
Idempotency-Key and the bodies), and report errors as typed errors without the token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import sportello.adapters.plugin as adapters_plugin
from sportello.adapter_kit import AdapterFactory
from sportello.adapter_kit.accounting_contract import (
    BAD_FISCAL_CODE,
    AccountingFactory,
    ReceiptReader,
    ReconciliationReader,
    canonical_positions,
    receipt_for,
)
from sportello.adapter_kit.pytest_plugin import AccountingContractTests, RegistryContractTests
from sportello.adapters.accounting.rest_adapter import RestAccountingAdapter
from sportello.adapters.registry.base import RegistryRecord
from sportello.adapters.registry.rest_adapter import RestRegistryAdapter
from sportello.connectors.errors import (
    AuthError,
    ConnectorTimeout,
    ServerError,
    TransportError,
)

TOKEN_ENV = "SPORTELLO_TEST_REST_TOKEN"
TOKEN = "rest-token-4f1c9a7e2b"
PAGE_SIZE = 2
RECEIPT_KEYS = {
    "tenant_id": str,
    "receipt_id": str,
    "notice_number": str,
    "iuv": str,
    "amount": int,
    "outcome": str,
    "id_psp": str,
    "psp_company_name": str,
    "stand_in": bool,
    "received_at": str,
    "transfers": list,
}
RESULT_KEYS = {"tenant_id": str, "flow_id": str, "iuv": str, "amount": int, "status": str}


@dataclass
class Comune:
    """What one fake service holds."""

    residents: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reconciliations: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: int | None = None  # answer every request with this status
    delay: float = 0.0


COMUNE = web.RequestKey("comune", Comune)


def _check(body: Any, keys: dict[str, type]) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for key, kind in keys.items():
        if not isinstance(body.get(key), kind):
            return f"{key} must be a {kind.__name__}"
    for key, value in body.items():
        if key.endswith(("_at", "_time")) and value is not None:
            try:
                if datetime.fromisoformat(value).tzinfo is None:
                    return f"{key} must carry an offset"
            except (TypeError, ValueError):
                return f"{key} must be an ISO 8601 datetime"
    return None


class FakeService:
    """The documented REST API of registry and accounting, for several comuni (/c/{id})."""

    def __init__(self) -> None:
        self.comuni: dict[str, Comune] = {}
        self.by_workdir: dict[Path, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.app = web.Application(middlewares=[self._guard])
        self.app.add_routes(
            [
                web.get("/c/{c}/residents/{cf}", self._resident),
                web.get("/c/{c}/residents/{cf}/household", self._household),
                web.get("/c/{c}/positions", self._positions),
                web.post("/c/{c}/receipts", self._receipt),
                web.post("/c/{c}/reconciliations", self._reconciliation),
            ]
        )
        self.url = ""

    def comune(self, workdir: Path) -> tuple[str, Comune]:
        """The fake comune of a contract check's workdir (the same one when asked again)."""
        cid = self.by_workdir.setdefault(workdir, f"c{len(self.by_workdir) + 1}")
        return f"{self.url}/c/{cid}", self.comuni.setdefault(cid, Comune())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        comune = self.comuni.get(request.match_info.get("c", ""))
        if comune is None:
            return web.json_response({"detail": "no such comune"}, status=404)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"detail": "bad token"}, status=401)
        if comune.delay:
            await asyncio.sleep(comune.delay)
        if comune.fail:
            return web.json_response({"detail": "down"}, status=comune.fail)
        request[COMUNE] = comune
        return await handler(request)

    async def _resident(self, request: web.Request) -> web.Response:
        cf = request.match_info["cf"]
        if cf != cf.upper():
            return web.json_response({"detail": "fiscal codes are upper case"}, status=400)
        found = request[COMUNE].residents.get(cf)
        if found is None:
            return web.json_response({"detail": "not found"}, status=404)
        return web.json_response(found)

    async def _household(self, request: web.Request) -> web.Response:
        residents = request[COMUNE].residents
        me = residents.get(request.match_info["cf"])
        if me is None:
            return web.json_response({"detail": "not found"}, status=404)
        if me.get("family_id") is None:
            return web.json_response([me])
        return web.json_response(
            [r for r in residents.values() if r.get("family_id") == me["family_id"]]
        )

    async def _positions(self, request: web.Request) -> web.Response:
        unknown = set(request.query) - {"since", "cursor"}
        if unknown:
            return web.json_response({"detail": f"unknown parameters {unknown}"}, status=400)
        if "since" in request.query:
            try:
                datetime.fromisoformat(request.query["since"])
            except ValueError:
                return web.json_response({"detail": "since: not a datetime"}, status=400)
        cursor = request.query.get("cursor", "0")
        if not cursor.isdigit():
            return web.json_response({"detail": "bad cursor"}, status=400)
        start = int(cursor)
        positions = request[COMUNE].positions
        page = positions[start : start + PAGE_SIZE]
        more = start + PAGE_SIZE < len(positions)
        body = {"positions": page, "next_cursor": str(start + PAGE_SIZE) if more else None}
        return web.Response(text=json.dumps(body, default=str), content_type="application/json")

    async def _stored(
        self, request: web.Request, store: dict[str, dict[str, Any]], keys: dict[str, type]
    ) -> web.Response:
        if request.content_type != "application/json":
            return web.json_response({"detail": "send JSON"}, status=415)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"detail": "Idempotency-Key is required"}, status=400)
        body = await request.json()
        problem = _check(body, keys)
        if problem:
            return web.json_response({"detail": problem}, status=422)
        if key in store:
            if store[key] != body:
                return web.json_response({"detail": "key reused for another body"}, status=422)
            return web.json_response(store[key], status=200)
        store[key] = body
        return web.json_response(body, status=201)

    async def _receipt(self, request: web.Request) -> web.Response:
        if request.headers.get("Idempotency-Key") != (await request.json()).get("receipt_id"):
            return web.json_response({"detail": "Idempotency-Key must be receipt_id"}, status=400)
        return await self._stored(request, request[COMUNE].receipts, RECEIPT_KEYS)

    async def _reconciliation(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Idempotency-Key") != _digest(json.loads(body)):
            return web.json_response({"detail": "Idempotency-Key must be the digest"}, status=400)
        return await self._stored(request, request[COMUNE].reconciliations, RESULT_KEYS)


def _digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeService]:
    """The fake service, served from a thread (any event loop can call it)."""
    service = FakeService()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(service.app)
    ready = threading.Event()

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        service.url = f"http://127.0.0.1:{port}"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    ready.wait(10)
    try:
        yield service
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


OPTIONS = {"token": {"env": TOKEN_ENV}, "timeout": 5}


# --- registry --------------------------------------------------------------------------------
class TestRestRegistryContract(RegistryContractTests):
    @pytest.fixture
    def adapter_factory(self, fake: FakeService) -> AdapterFactory:
        async def factory(records: list[RegistryRecord], workdir: Path) -> RestRegistryAdapter:
            base, comune = fake.comune(workdir)
            comune.residents = {r.fiscal_code: r.model_dump(mode="json") for r in records}
            return RestRegistryAdapter({**OPTIONS, "base_url": base}, base_dir=workdir)

        return factory

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin


# --- accounting ------------------------------------------------------------------------------
class TestRestAccountingContract(AccountingContractTests):
    @pytest.fixture
    def accounting_factory(self, fake: FakeService) -> AccountingFactory:
        async def factory(positions: list[dict[str, Any]], workdir: Path) -> Any:
            base, comune = fake.comune(workdir)
            comune.positions = json.loads(json.dumps(positions, default=str))
            return RestAccountingAdapter({**OPTIONS, "base_url": base}, base_dir=workdir)

        return factory

    @pytest.fixture
    def read_receipts(self, fake: FakeService) -> ReceiptReader:
        async def read(workdir: Path) -> list[str]:
            return [r["receipt_id"] for r in fake.comune(workdir)[1].receipts.values()]

        return read

    @pytest.fixture
    def read_reconciliations(self, fake: FakeService) -> ReconciliationReader:
        async def read(workdir: Path) -> list[tuple[str, str]]:
            held = fake.comune(workdir)[1].reconciliations.values()
            return [(r["flow_id"], r["iuv"]) for r in held]

        return read

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin


async def test_positions_are_paged_and_errors_name_the_field(
    fake: FakeService, tmp_path: Path
) -> None:
    base, comune = fake.comune(tmp_path)
    comune.positions = json.loads(json.dumps(canonical_positions(), default=str))
    comune.positions[3]["payment_options"][0]["due_date"] = "next week"
    options = {**OPTIONS, "base_url": base, "since": "2026-01-01T00:00:00+01:00"}
    adapter = RestAccountingAdapter(options, base_dir=tmp_path)
    fake.requests.clear()
    items = [item async for item in adapter.pull_positions()]
    await adapter.close()
    assert [q for _, q in fake.requests] == [
        f"/c/{base.rsplit('/', 1)[1]}/positions?since=2026-01-01T00:00:00%2B01:00",
        f"/c/{base.rsplit('/', 1)[1]}/positions?since=2026-01-01T00:00:00%2B01:00&cursor=2",
    ]
    errors = [(e.row, e.field) for e in items if not hasattr(e, "position")]
    assert errors == [(3, "fiscal_code"), (4, "payment_options[0].due_date")]
    assert BAD_FISCAL_CODE not in str(items)  # positions' personal data are not in reprs


async def test_errors_are_typed_and_never_hold_the_token(
    fake: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, comune = fake.comune(tmp_path)
    registry = RestRegistryAdapter({**OPTIONS, "base_url": base}, base_dir=tmp_path)
    accounting = RestAccountingAdapter({**OPTIONS, "base_url": base}, base_dir=tmp_path)
    assert TOKEN not in repr(registry.client)
    caught: list[Exception] = []
    try:
        comune.fail = 503
        with pytest.raises(ServerError) as server:
            await registry.lookup("RSSMRA80A01H501U")
        assert server.value.retryable
        caught.append(server.value)
        comune.fail = None
        comune.residents["RSSMRA80A01H501U"] = {"fiscal_code": "RSSMRA80A01H501U", "sex": "X"}
        assert await registry.lookup("rssmra80a01h501u") is None
        assert [(p.row, p.field) for p in registry.problems()] == [(1, "sex")]
        monkeypatch.setenv(TOKEN_ENV, "wrong-token")
        with pytest.raises(AuthError) as auth:
            await accounting.push_receipt(receipt_for(canonical_positions()[0], "rcpt-x"))
        assert not auth.value.retryable
        caught.append(auth.value)
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        comune.delay = 0.5
        slow = RestRegistryAdapter({**OPTIONS, "base_url": base, "timeout": 0.1}, base_dir=tmp_path)
        with pytest.raises(ConnectorTimeout) as timeout:
            await slow.lookup("RSSMRA80A01H501U")
        await slow.close()
        caught.append(timeout.value)
        comune.delay = 0
        gone = RestRegistryAdapter({**OPTIONS, "base_url": "http://127.0.0.1:9"}, base_dir=tmp_path)
        with pytest.raises(TransportError) as refused:
            await gone.lookup("RSSMRA80A01H501U")
        await gone.close()
        caught.append(refused.value)
    finally:
        await registry.close()
        await accounting.close()
    for error in caught:
        assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"options\.base_url"):
        RestRegistryAdapter({}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="secrets must be references"):
        RestAccountingAdapter({"base_url": "http://x", "token": TOKEN}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout must be positive"):
        RestRegistryAdapter({"base_url": "http://x", "timeout": 0}, base_dir=tmp_path)

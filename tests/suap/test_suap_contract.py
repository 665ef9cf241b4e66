"""The SUAP adapter contract: the JSON reference adapter passes it; a broken one does not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import sportello.adapters.plugin as adapters_plugin
from sportello.adapter_kit.contract import ContractViolation
from sportello.adapter_kit.pytest_plugin import SuapContractTests
from sportello.adapter_kit.suap_contract import SuapContract, SuapFactory, run_suap_contract
from sportello.adapters.suap.base import Practice
from sportello.adapters.suap.json_adapter import JsonSuapAdapter
from sportello.adapters.suap.rest_adapter import RestSuapAdapter


async def json_suap(practices: list[dict[str, Any]], workdir: Path) -> JsonSuapAdapter:
    text = json.dumps({"practices": practices}, default=lambda d: d.isoformat())
    (workdir / "suap.json").write_text(text, encoding="utf-8")
    return JsonSuapAdapter({"path": "suap.json"}, base_dir=workdir)


class TestJsonSuapContract(SuapContractTests):
    @pytest.fixture
    def suap_factory(self) -> SuapFactory:
        return json_suap

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin


class OldestFirst(JsonSuapAdapter):
    async def practices(self, applicant_fiscal_code: str) -> list[Practice]:
        return list(reversed(await super().practices(applicant_fiscal_code)))


async def test_the_contract_without_pytest_and_a_broken_adapter(tmp_path: Path) -> None:
    outcome = await run_suap_contract(json_suap, tmp_path / "ok", plugin=adapters_plugin)
    assert set(outcome) == set(SuapContract.CHECKS) and set(outcome.values()) == {"passed"}

    async def broken(practices: list[dict[str, Any]], workdir: Path) -> OldestFirst:
        good = await json_suap(practices, workdir)
        return OldestFirst({"path": good.path}, base_dir=workdir)

    with pytest.raises(ContractViolation, match="1 SUAP contract check"):
        await run_suap_contract(broken, tmp_path / "broken")


# --- the REST reference adapter, against a fake of its documented API --------------------
class FakeSuap:
    """The SUAP REST API of the rest adapter's docstring, over canonical practices; it checks
    the token and the query parameters (nothing is accepted blindly)."""

    TOKEN = "suap-token-93b1"

    def __init__(self, practices: list[dict[str, Any]]) -> None:
        self.practices = {p["id"]: p for p in json.loads(json.dumps(practices, default=str))}
        self.app = web.Application(middlewares=[self._guard])
        self.app.add_routes(
            [
                web.get("/practices", self._list),
                web.get("/practices/{id}", self._one),
                web.get("/practices/{id}/events", self._events),
                web.get("/practices/{id}/documents", self._documents),
                web.get("/events", self._changes),
            ]
        )

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return web.json_response({"detail": "bad token"}, status=401)
        return await handler(request)

    def _view(self, p: dict[str, Any]) -> dict[str, Any]:
        last = max(p["events"], key=lambda e: e["at"])
        keep = ("id", "applicant_fiscal_code", "applicant_name", "title", "kind", "submitted_at")
        return {**{k: p[k] for k in keep}, "status": last["status"], "updated_at": last["at"]}

    def _events_of(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"practice_id": p["id"], **e} for e in reversed(p["events"])]  # any order

    async def _list(self, request: web.Request) -> web.Response:
        applicant = request.query.get("applicant", "")
        if not applicant or applicant != applicant.upper():
            return web.json_response({"detail": "applicant: upper-case fiscal code"}, status=400)
        found = [self._view(p) for p in self.practices.values()]
        return web.json_response([p for p in found if p["applicant_fiscal_code"] == applicant])

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        return self.practices.get(request.match_info["id"])

    async def _one(self, request: web.Request) -> web.Response:
        p = self._find(request)
        return web.json_response(self._view(p)) if p else web.json_response({}, status=404)

    async def _events(self, request: web.Request) -> web.Response:
        p = self._find(request)
        return web.json_response(self._events_of(p)) if p else web.json_response({}, status=404)

    async def _documents(self, request: web.Request) -> web.Response:
        p = self._find(request)
        return web.json_response(p["documents"]) if p else web.json_response({}, status=404)

    async def _changes(self, request: web.Request) -> web.Response:
        try:
            since = datetime.fromisoformat(request.query["since"])
        except (KeyError, ValueError):
            return web.json_response({"detail": "since: an ISO datetime"}, status=400)
        events = [e for p in self.practices.values() for e in self._events_of(p)]
        return web.json_response([e for e in events if datetime.fromisoformat(e["at"]) > since])


class TestRestSuapContract(SuapContractTests):
    @pytest.fixture
    async def suap_factory(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SuapFactory]:
        monkeypatch.setenv("SPORTELLO_TEST_SUAP_TOKEN", FakeSuap.TOKEN)
        servers: list[TestServer] = []

        async def factory(practices: list[dict[str, Any]], workdir: Path) -> RestSuapAdapter:
            server = TestServer(FakeSuap(practices).app, host="127.0.0.1")
            await server.start_server()
            servers.append(server)
            options = {
                "base_url": str(server.make_url("")).rstrip("/"),
                "token": {"env": "SPORTELLO_TEST_SUAP_TOKEN"},
            }
            return RestSuapAdapter(options, base_dir=workdir)

        yield factory
        for server in servers:
            await server.close()

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin

"""The SUAP adapter contract: the JSON reference adapter passes it; a broken one does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import sportello.adapters.plugin as adapters_plugin
from sportello.adapter_kit.contract import ContractViolation
from sportello.adapter_kit.pytest_plugin import SuapContractTests
from sportello.adapter_kit.suap_contract import SuapContract, SuapFactory, run_suap_contract
from sportello.adapters.suap.base import Practice
from sportello.adapters.suap.json_adapter import JsonSuapAdapter


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

"""The adapter kit: the reference registry adapters pass the contract, a broken adapter does
not, and a scaffolded adapter project passes its own tests without being installed."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Column, Date, MetaData, String, Table
from sqlalchemy.ext.asyncio import create_async_engine

import sportello.adapters.plugin as adapters_plugin
from sportello.adapter_kit import (
    AdapterFactory,
    ContractViolation,
    RegistryContract,
    ScaffoldError,
    canonical_dataset,
    plugins_with,
    run_registry_contract,
    scaffold,
)
from sportello.adapter_kit.cli import adapter_group
from sportello.adapter_kit.pytest_plugin import RegistryContractTests
from sportello.adapters.registry.base import FIELDS, RegistryRecord
from sportello.adapters.registry.csv_adapter import CsvRegistryAdapter
from sportello.adapters.registry.sql_adapter import SqlRegistryAdapter
from sportello.hookspecs import hookimpl
from sportello.plugins import Plugins

ITALIAN = {
    "fiscal_code": "codice_fiscale",
    "family_name": "cognome",
    "given_name": "nome",
    "sex": "sesso",
    "birth_date": "data_nascita",
    "birth_place": "luogo_nascita",
    "address": "indirizzo",
    "municipality_istat": "codice_istat",
    "family_id": "famiglia",
    "relationship": "parentela",
    "email": "email",
    "phone": "telefono",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


async def csv_adapter(records: list[RegistryRecord], tmp_path: Path) -> CsvRegistryAdapter:
    """The records as an Italian-headed, ``;``-separated export (the csv adapter's default)."""
    with (tmp_path / "anagrafe.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow([ITALIAN[f] for f in FIELDS])
        for record in records:
            writer.writerow([_cell(getattr(record, f)) for f in FIELDS])
    return CsvRegistryAdapter({"path": "anagrafe.csv", "columns": ITALIAN}, base_dir=tmp_path)


async def sqlite_adapter(records: list[RegistryRecord], tmp_path: Path) -> SqlRegistryAdapter:
    """The records in a SQLite table (field names as columns, a real DATE column)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'anagrafe.db'}")
    meta = MetaData()
    table = Table(
        "residenti",
        meta,
        *(Column(f, Date() if f == "birth_date" else String(80)) for f in FIELDS),
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(table.insert(), [r.model_dump() for r in records])
    finally:
        await engine.dispose()
    options = {"url": "sqlite+aiosqlite:///anagrafe.db", "table": "residenti"}
    return SqlRegistryAdapter(options, base_dir=tmp_path)


class TestCsvAdapterContract(RegistryContractTests):
    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return csv_adapter

    @pytest.fixture
    def sportello_plugin(self) -> object:
        return adapters_plugin


@pytest.mark.sportello_plugin(adapters_plugin, name="adapters")
class TestSqliteAdapterContract(RegistryContractTests):
    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        return sqlite_adapter


def test_the_canonical_dataset_has_what_the_checks_need() -> None:
    records = canonical_dataset()
    families: dict[str | None, int] = {}
    for r in records:
        families[r.family_id] = families.get(r.family_id, 0) + 1
    assert len(records) >= 5 and len({r.fiscal_code for r in records}) == len(records)
    assert sorted(n for f, n in families.items() if f is not None) == [1, 2, 3]
    assert families[None] == 1  # someone without a family id
    assert any(all(getattr(r, f) is not None for f in FIELDS) for r in records)
    assert canonical_dataset() is not canonical_dataset()


class CaseSensitiveLonerCsv(CsvRegistryAdapter):
    """Breaks the contract twice: case-sensitive look-ups and a household of one."""

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        return (await self._records()).get(fiscal_code)

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        me = await self.lookup(fiscal_code)
        return [] if me is None else [me]


async def test_the_contract_catches_a_broken_adapter(tmp_path: Path) -> None:
    async def broken(records: list[RegistryRecord], workdir: Path) -> CsvRegistryAdapter:
        good = await csv_adapter(records, workdir)
        return CaseSensitiveLonerCsv({"path": good.path, "columns": ITALIAN}, base_dir=workdir)

    with pytest.raises(ContractViolation) as caught:
        await run_registry_contract(broken, tmp_path)
    message = str(caught.value)
    assert message.startswith("2 registry contract check(s) failed:")
    assert "lookup_ignores_case: lookup('rssmra75c12z999l') returned None" in message
    assert "household_is_the_family: household('RSSMRA75C12Z999L') returned" in message


async def test_run_registry_contract_without_pytest(tmp_path: Path) -> None:
    outcome = await run_registry_contract(csv_adapter, tmp_path, plugin=adapters_plugin)
    assert set(outcome) == set(RegistryContract.CHECKS)
    assert set(outcome.values()) == {"passed"}
    outcome = await run_registry_contract(sqlite_adapter, tmp_path / "sql")
    assert outcome["registered_through_the_hook"].startswith("skipped: no plugin given")


async def test_a_field_that_does_not_round_trip_is_named(tmp_path: Path) -> None:
    async def loses_email(records: list[RegistryRecord], workdir: Path) -> CsvRegistryAdapter:
        columns = {**ITALIAN, "email": "posta_elettronica"}  # not a column of the export
        adapter = await csv_adapter(records, workdir)
        return CsvRegistryAdapter({"path": adapter.path, "columns": columns}, base_dir=workdir)

    contract = RegistryContract(loses_email)
    with pytest.raises(ContractViolation, match=r"field email is None, expected 'mario\.rossi@"):
        await contract.run("lookup_returns_every_field", tmp_path)


async def test_an_adapter_under_a_taken_name_fails_the_hook_check(tmp_path: Path) -> None:
    class Impostor(CsvRegistryAdapter):
        pass

    class ImpostorPlugin:
        @hookimpl
        def hub_registry_adapters(self) -> dict[str, type[Any]]:
            return {"csv": Impostor}

    async def factory(records: list[RegistryRecord], workdir: Path) -> Impostor:
        await csv_adapter(records, workdir)
        return Impostor({"path": "anagrafe.csv", "columns": ITALIAN}, base_dir=workdir)

    contract = RegistryContract(factory, plugins=plugins_with(ImpostorPlugin(), "impostor"))
    with pytest.raises(ContractViolation, match="two plugins provide the registry adapter 'csv'"):
        await contract.run("registered_through_the_hook", tmp_path)


# --- the scaffold ------------------------------------------------------------------------------
def test_scaffold_refuses_bad_names_and_existing_projects(tmp_path: Path) -> None:
    for bad in ("", "Acme", "1acme", "acme json", "acme--json", "acme-", "a" * 25, "../x"):
        with pytest.raises(ScaffoldError, match="invalid adapter name"):
            scaffold(bad, tmp_path)
    for taken in ("csv", "sql", "adapters", "sandbox", "connectors"):
        with pytest.raises(ScaffoldError, match="taken by a built-in"):
            scaffold(taken, tmp_path)
    assert list(tmp_path.iterdir()) == []
    project = scaffold("acme-json", tmp_path / "new" / "folder")
    assert project == tmp_path / "new" / "folder" / "sportello-adapter-acme-json"
    with pytest.raises(ScaffoldError, match=r"sportello-adapter-acme-json already exists"):
        scaffold("acme-json", tmp_path / "new" / "folder")
    assert [p.name for p in project.parent.iterdir()] == [project.name]  # no half-made leftovers


def test_the_cli_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(adapter_group, ["new", "acme-csv", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"Created {tmp_path / 'sportello-adapter-acme-csv'}" in result.output
    assert "python -m pytest" in result.output
    assert (tmp_path / "sportello-adapter-acme-csv" / "pyproject.toml").is_file()
    again = runner.invoke(adapter_group, ["new", "acme-csv", "--dest", str(tmp_path)])
    assert again.exit_code == 2
    assert "sportello: error: " in again.output and "already exists" in again.output
    bad = runner.invoke(adapter_group, ["new", "Acme CSV", "--dest", str(tmp_path)])
    assert bad.exit_code == 2 and "invalid adapter name 'Acme CSV'" in bad.output


def test_a_scaffolded_adapter_passes_its_own_tests_uninstalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = scaffold("kit-check", tmp_path)
    src = project / "src"
    package = src / "sportello_adapter_kit_check"
    expected = {"__init__.py", "adapter.py", "plugin.py", "py.typed"}
    assert {p.name for p in package.iterdir()} == expected
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert '"kit-check" = "sportello_adapter_kit_check.plugin"' in pyproject
    assert "[project.entry-points.sportello]" in pyproject and '"sportello>=0.1,<0.2"' in pyproject

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "sportello.adapter_kit.pytest_plugin",
            "-p",
            "no:cacheprovider",
            str(project / "tests"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed" in run.stdout, run.stdout

    monkeypatch.syspath_prepend(str(src))
    plugin = importlib.import_module("sportello_adapter_kit_check.plugin")
    plugins = Plugins()
    plugins.register(plugin, name="kit-check")
    adapters = plugins.registry_adapters()
    assert adapters["kit-check"].__name__ == "KitCheckRegistry"
    assert {"csv", "sql", "kit-check"} <= set(adapters)
    assert any(p["name"] == "kit-check" for p in plugins.listing())


def test_a_scaffolded_accounting_adapter_passes_its_own_tests_uninstalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = scaffold("kit-ledger", tmp_path, kind="accounting")
    src = project / "src"
    package = src / "sportello_adapter_kit_ledger"
    expected = {"__init__.py", "adapter.py", "plugin.py", "py.typed"}
    assert {p.name for p in package.iterdir()} == expected
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert '"kit-ledger" = "sportello_adapter_kit_ledger.plugin"' in pyproject
    assert 'description = "The kit-ledger accounting (ragioneria) adapter' in pyproject
    assert "kinds" not in {p.name for p in project.rglob("*")}
    assert "AccountingContractTests" in (project / "tests" / "test_contract.py").read_text()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "sportello.adapter_kit.pytest_plugin",
            "-p",
            "no:cacheprovider",
            str(project / "tests"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "9 passed" in run.stdout, run.stdout

    monkeypatch.syspath_prepend(str(src))
    plugin = importlib.import_module("sportello_adapter_kit_ledger.plugin")
    plugins = Plugins()
    plugins.register(plugin, name="kit-ledger")
    adapters = plugins.accounting_adapters()
    assert adapters["kit-ledger"].__name__ == "KitLedgerAccounting"
    assert {"csv", "rest", "kit-ledger"} <= set(adapters)


def test_the_cli_command_with_a_kind(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        adapter_group, ["new", "acme-ledger", "--kind", "accounting", "--dest", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "accounting adapter 'acme-ledger': class AcmeLedgerAccounting" in result.output
    assert "[tenants.adapters.accounting]" in result.output
    taken = runner.invoke(adapter_group, ["new", "rest", "--kind", "accounting"])
    assert taken.exit_code == 2 and "taken by a built-in" in taken.output
    bad = runner.invoke(adapter_group, ["new", "x-y", "--kind", "ledger"])
    assert bad.exit_code == 2 and "Invalid value for '--kind'" in bad.output
    with pytest.raises(ScaffoldError, match="unknown adapter kind 'ledger'"):
        scaffold("acme-x", tmp_path, kind="ledger")

"""Reference registry adapters (CSV, SQL on SQLite and PostgreSQL): the same contract, bad
rows reported with file, row and field while the good rows are served."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Date, MetaData, String, Table
from sqlalchemy.ext.asyncio import create_async_engine

from sportello.adapters.registry.csv_adapter import CsvRegistryAdapter
from sportello.adapters.registry.rest_adapter import RestRegistryAdapter
from sportello.adapters.registry.sql_adapter import SqlRegistryAdapter
from sportello.plugins import Plugins

HEADER = "codice_fiscale;cognome;nome;sesso;data_nascita;indirizzo;famiglia;parentela\n"
ROWS = [
    "RSSMRA80A01Z999Y;Rossi;Mario;M;1980-01-01;Via Roma 1;F1;intestatario",
    "BNCLRA82B42Z999N;Bianchi;Laura;F;1982-02-02;Via Roma 1;F1;coniuge",
    "RSSLCU10C03Z999G;Rossi;Luca;M;2010-03-03;Via Roma 1;F1;figlio",
    "VRDGNN70D04Z999A;Verdi;Giovanni;M;1970-04-04;Via Po 2;F2;intestatario",
]
COLUMNS = {
    "fiscal_code": "codice_fiscale",
    "family_name": "cognome",
    "given_name": "nome",
    "sex": "sesso",
    "birth_date": "data_nascita",
    "address": "indirizzo",
    "family_id": "famiglia",
    "relationship": "parentela",
}


async def check_contract(adapter: Any) -> None:
    """What every registry adapter must do (also run against third-party adapters)."""
    mario = await adapter.lookup("rssmra80a01z999y")
    assert mario is not None and mario.given_name == "Mario"
    assert mario.birth_date == date(1980, 1, 1) and mario.sex == "M"
    assert await adapter.lookup("XXXXXX00X00X000X") is None
    family = await adapter.household("RSSMRA80A01Z999Y")
    assert sorted(r.given_name for r in family) == ["Laura", "Luca", "Mario"]
    assert [r.given_name for r in await adapter.household("VRDGNN70D04Z999A")] == ["Giovanni"]
    assert await adapter.household("XXXXXX00X00X000X") == []
    await adapter.close()


async def test_csv_adapter(tmp_path: Path) -> None:
    (tmp_path / "anagrafe.csv").write_text(HEADER + "\n".join(ROWS) + "\n")
    adapter = CsvRegistryAdapter({"path": "anagrafe.csv", "columns": COLUMNS}, base_dir=tmp_path)
    await check_contract(adapter)
    assert adapter.problems() == []


async def test_csv_bad_rows_are_named_and_skipped(tmp_path: Path) -> None:
    bad = [
        *ROWS,
        "SHORT;Neri;Anna;F;1990-01-01;Via Po 3;F3;intestatario",
        "NREANN90A41Z999Z;Neri;Anna;X;1990-01-01;Via Po 3;F3;intestatario",
        "NREPLA91A01Z999I;Neri;Paolo;M;31/02/1991;Via Po 3;F3;figlio",
        "RSSMRA80A01Z999Y;Rossi;Mario;M;1980-01-01;Via Roma 1;F1;intestatario",
    ]
    path = tmp_path / "anagrafe.csv"
    path.write_text(HEADER + "\n".join(bad) + "\n")
    adapter = CsvRegistryAdapter({"path": str(path), "columns": COLUMNS}, base_dir=tmp_path)
    assert (await adapter.lookup("VRDGNN70D04Z999A")) is not None  # the good rows are served
    messages = [str(p) for p in adapter.problems()]
    assert len(messages) == 4
    assert messages[0].startswith(f"{path}: row 6: codice_fiscale: String should match pattern")
    assert messages[1].startswith(f"{path}: row 7: sesso: String should match pattern")
    assert messages[2].startswith(f"{path}: row 8: data_nascita: Input should be a valid date")
    assert messages[3] == f"{path}: row 9: codice_fiscale: fiscal code appears twice"


async def test_csv_without_the_fiscal_code_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("cf;nome\nX;Y\n")
    adapter = CsvRegistryAdapter({"path": "a.csv"}, base_dir=tmp_path)
    with pytest.raises(Exception, match=r"a\.csv: row 1: fiscal_code: the header has no fiscal"):
        await adapter.lookup("RSSMRA80A01Z999Y")


async def test_sql_adapter_on_both_backends(db_url: str) -> None:
    engine = create_async_engine(db_url)
    meta = MetaData()
    table = Table(
        "anagrafe_residenti",
        meta,
        *(Column(c, String(60)) for c in COLUMNS.values() if c != "data_nascita"),
        Column("data_nascita", Date()),
    )
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
        rows = []
        for line in ROWS:
            values = dict(zip(HEADER.strip().split(";"), line.split(";"), strict=True))
            values["data_nascita"] = date.fromisoformat(values["data_nascita"])
            rows.append(values)
        await conn.execute(table.insert(), rows)
    await engine.dispose()
    adapter = SqlRegistryAdapter(
        {"url": db_url, "table": "anagrafe_residenti", "columns": COLUMNS}, base_dir=Path(".")
    )
    await check_contract(adapter)


def test_reference_adapters_register_through_the_hook() -> None:
    adapters = Plugins().registry_adapters()
    assert adapters == {
        "csv": CsvRegistryAdapter,
        "sql": SqlRegistryAdapter,
        "rest": RestRegistryAdapter,
    }

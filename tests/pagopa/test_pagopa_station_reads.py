"""The EC station's read path (``OptionReader``) and the grouped ``activated_at`` writes, on
SQLite and PostgreSQL: the same answers as ``PagopaStore.find_option``, one at a time and
concurrently (grouped on PostgreSQL), commits seen at once, SQLite's fallback to the pool."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.clock import SystemClock
from sportello.config import HubConfig, parse_config
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.platforms.pagopa.store import OptionReader, PagopaStore, position_from_json
from sportello.platforms.pagopa.tables import PAID, payment_options

EC = "77777777777"
IBAN = "IT60X0542811101000000123456"


def config(db_url: str) -> HubConfig:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                {
                    "id": tenant,
                    "name": "Comune di Prova",
                    "ipa_code": f"c_{tenant}",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": EC,
                        "station_id": f"{EC}_01",
                        "segregation_code": "01",
                        "mode": "station",
                    },
                }
                for tenant in ("prova", "altro")
            ],
        }
    )


def position(iupd: str, options: int = 1) -> dict[str, Any]:
    due = datetime.now(UTC) + timedelta(days=30)
    return {
        "iupd": iupd,
        "type": "F",
        "fiscal_code": "RSSMRA80A01H501U",
        "full_name": "Mario Rossi",
        "company_name": "Comune di Prova",
        "payment_options": [
            {
                "amount": 1000 * (n + 1),
                "description": f"TARI rata {n + 1}",
                "due_date": due + timedelta(days=30 * n),
                "is_partial_payment": options > 1,
                "installment_number": n + 1 if options > 1 else None,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 1000 * (n + 1),
                        "organization_fiscal_code": EC,
                        "remittance_information": "TARI",
                        "category": "9/0101101IM/",
                        "iban": IBAN,
                    }
                ],
            }
            for n in range(options)
        ],
    }


@pytest.fixture
async def store(engine: AsyncEngine, db_url: str) -> PagopaStore:
    return PagopaStore(engine, config(db_url), SystemClock())


async def test_reader_answers_like_the_store(engine: AsyncEngine, store: PagopaStore) -> None:
    one = await store.create_position("prova", position("R-1"))
    rates = await store.create_position("prova", position("R-2", options=3))
    other = await store.create_position("altro", position("R-3"))
    paid_at = datetime(2026, 11, 20, 10, 30, 15, 123456, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(
            update(payment_options)
            .where(payment_options.c.nav == rates.options[1].nav)
            .values(status=PAID, receipt_id="R-42", paid_at=paid_at)
        )
    reader = OptionReader(engine)
    try:
        keys = [
            ("prova", one.options[0].nav),
            *(("prova", o.nav) for o in rates.options),
            ("altro", other.options[0].nav),
            ("prova", other.options[0].nav),  # another tenant's notice
            ("prova", "3" + "9" * 17),  # unknown
        ]
        for tenant, nav in keys:
            assert await reader.find_option(tenant, nav) == await store.find_option(tenant, nav)
        # concurrently: grouped into one query on PostgreSQL, answers still per caller
        got = await asyncio.gather(*(reader.find_option(t, n) for t, n in keys * 3))
        want = [await store.find_option(t, n) for t, n in keys * 3]
        assert got == want
        paid = await reader.find_option("prova", rates.options[1].nav)
        assert paid is not None
        assert paid.option.status == PAID and paid.option.receipt_id == "R-42"
        assert paid.option.paid_at == paid_at
        assert paid.option.due_date.tzinfo is not None and paid.option.is_partial_payment
    finally:
        reader.close()


async def test_reader_sees_commits_at_once(engine: AsyncEngine, store: PagopaStore) -> None:
    stored = await store.create_position("prova", position("R-1"))
    nav = stored.options[0].nav
    reader = OptionReader(engine)
    try:
        before = await reader.find_option("prova", nav)
        assert before is not None and before.option.status == "open"
        await store.set_status("prova", "R-1", "INVALID")
        async with engine.begin() as conn:
            await conn.execute(
                update(payment_options).where(payment_options.c.nav == nav).values(status=PAID)
            )
        after = await reader.find_option("prova", nav)
        assert after is not None and after.option.status == PAID and after.status == "INVALID"
        assert after.position is before.position  # the same JSON: parsed once
    finally:
        reader.close()


async def test_sqlite_falls_back_to_the_pool(
    engine: AsyncEngine, store: PagopaStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    stored = await store.create_position("prova", position("R-1"))
    nav = stored.options[0].nav
    reader = OptionReader(engine)

    def busy(*_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(reader, "_sqlite_row", busy)
    assert await reader.find_option("prova", nav) == await store.find_option("prova", nav)
    assert await reader.find_option("prova", "3" + "9" * 17) is None
    monkeypatch.undo()
    assert await reader.find_option("prova", nav) == await store.find_option("prova", nav)
    reader.close()


async def test_reader_never_creates_a_sqlite_file(tmp_path: Any) -> None:
    from sportello.config import DatabaseSettings
    from sportello.db import create_engine

    path = tmp_path / "missing.sqlite"
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    reader = OptionReader(engine)
    with pytest.raises(sqlite3.Error):
        reader._sqlite_row("prova", "3" + "0" * 17)
    assert not path.exists()
    await engine.dispose()


async def test_mark_activated_many(engine: AsyncEngine, store: PagopaStore) -> None:
    a = await store.create_position("prova", position("R-1", options=2))
    b = await store.create_position("altro", position("R-2"))
    navs = [o.nav for o in a.options]
    result = await store.mark_activated_many(
        [("prova", navs[0]), ("altro", b.options[0].nav), ("prova", navs[0]), ("prova", "3" * 18)]
    )
    assert result == [None] * 4
    async with engine.connect() as conn:
        result = await conn.execute(select(payment_options.c.nav, payment_options.c.activated_at))
        rows = {nav: at for nav, at in result}
    for nav in (navs[0], b.options[0].nav):
        assert abs(rows[nav] - datetime.now(UTC)) < timedelta(minutes=1)
    assert rows[navs[1]] is None


def test_position_cache_is_keyed_by_content() -> None:
    from sportello.connectors.pagopa.models import DebtPosition

    raw = position("C-1")
    raw["payment_options"][0]["iuv"] = iuv_for(1, segregation_code="01")
    model = DebtPosition.model_validate(raw)
    text = model.model_dump_json()
    assert position_from_json(text) is position_from_json(str(text))
    changed = model.model_copy(update={"full_name": "Maria Rossi"}).model_dump_json()
    assert position_from_json(changed).full_name == "Maria Rossi"
    assert position_from_json(text).full_name == "Mario Rossi"

"""The pagoPA end-to-end runs' shared parts: an accounting CSV of TARI positions
(``write_positions``), the hub's configuration in station mode (``make_config``) and in GPD
mode against the sandbox (``gpd_config``), an outbox drain and a row count."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from factories import POSITION_COLUMNS, SECOND_TRANSFER_COLUMNS, drain_outbox
from sqlalchemy import func, select

from sportello.config import HubConfig, parse_config
from sportello.sandbox.pagopa.fdr_routes import FDR_PREFIX
from sportello.sandbox.pagopa.gpd_app import GPD_PREFIX

EC = "77777777777"
BROKER = "77777777777"
STATION = "77777777777_01"
PROVINCE = "80000000001"
TENANT = "prova"
POSITIONS = 1000
PAID = 300
# The sandbox's clock: every payment is made on this day (Italian time).
PAY_DAY = date(2026, 3, 10)
SANDBOX_START = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def iban_with(abi: str, account: str) -> str:
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


IBAN = iban_with("05428", "000000123456")
PROVINCE_IBAN = iban_with("05428", "000000654321")


def write_positions(path: Path, count: int) -> None:
    """``count`` TARI positions, 2 instalments each (TARI + TEFA to the province)."""
    due = datetime.now(UTC).date() + timedelta(days=60)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow([*POSITION_COLUMNS, *SECOND_TRANSFER_COLUMNS])
        for i in range(count):
            tari = 9_000 + (i % 50) * 100  # cents, per instalment
            tefa = tari * 5 // 100
            for n in (1, 2):
                out.writerow(
                    [
                        f"TARI2026-{i:05d}",
                        "RSSMRA80A01H501U",
                        f"Contribuente {i}",
                        f"TARI 2026 - rata {n}",
                        str(n),
                        (due + timedelta(days=90 * (n - 1))).isoformat(),
                        f"{tari // 100},{tari % 100:02d}",
                        IBAN,
                        "9/0101101IM/",
                        f"{tefa // 100},{tefa % 100:02d}",
                        PROVINCE,
                        PROVINCE_IBAN,
                        "9/0201102IM/",
                    ]
                )


def make_config(db_url: str, tmp_path: Path, fdr_url: str) -> HubConfig:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False, "poll_interval": 0.02, "concurrency": 16},
            "tenants": [
                {
                    "id": TENANT,
                    "name": "Comune di Prova",
                    "ipa_code": "c_prova",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "segregation_code": "01",
                        "mode": "station",
                        "fdr_base_url": fdr_url,
                        "fdr_api_key": {"env": "SPORTELLO_E2E_FDR_KEY"},
                    },
                    "adapters": {
                        "accounting": {
                            "plugin": "csv",
                            "options": {
                                "path": str(tmp_path / "positions.csv"),
                                "receipts_path": str(tmp_path / "receipts.csv"),
                                "company_name": "Comune di Prova",
                                "fiscal_code": EC,
                            },
                        }
                    },
                }
            ],
        }
    )


async def drain(app: Any, config: HubConfig) -> None:
    """Run one outbox worker until nothing is pending or running."""
    await drain_outbox(app, outbox=config.outbox)


async def count(engine: Any, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(table)
        for w in where:
            stmt = stmt.where(w)
        return int((await conn.execute(stmt)).scalar_one())


def gpd_config(db_url: str, tmp_path: Path, sandbox: TestServer) -> HubConfig:
    """The station-mode test's configuration, in GPD mode against the sandbox's GPD."""
    tenant = make_config(db_url, tmp_path, str(sandbox.make_url(FDR_PREFIX))).tenants[0]
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False, "poll_interval": 0.02, "concurrency": 16},
            "tenants": [
                {
                    "id": TENANT,
                    "name": tenant.name,
                    "ipa_code": tenant.ipa_code,
                    "fiscal_code": EC,
                    "cadastral_code": tenant.cadastral_code,
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "segregation_code": "01",
                        "mode": "gpd",
                        "base_url": str(sandbox.make_url(GPD_PREFIX)),
                        "api_key": {"env": "SPORTELLO_E2E_GPD_KEY"},
                        "bulk_threshold": 100,
                        "fdr_base_url": str(sandbox.make_url(FDR_PREFIX)),
                        "fdr_api_key": {"env": "SPORTELLO_E2E_FDR_KEY"},
                    },
                    "adapters": {
                        "accounting": {
                            "plugin": "csv",
                            "options": dict(tenant.adapters["accounting"].options),
                        }
                    },
                }
            ],
        }
    )

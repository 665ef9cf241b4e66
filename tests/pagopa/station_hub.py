"""The pagoPA EC station under test: a hub on a test client (``Hub``), its configuration
(``make_config``) and TARI debt positions (``spec``, ``instalments``), shared by the station
tests; the ``hub`` fixture that builds it lives in this folder's conftest.py."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from factories import drain_outbox
from pagopa_node import BROKER, EC, STATION, XSD_DIR
from sqlalchemy import func, select

from sportello.app import CLOCK, ENGINE
from sportello.config import HubConfig, parse_config
from sportello.platforms.pagopa.store import PagopaStore

HAVE_XSD = (XSD_DIR / "paForNode.xsd").is_file()


def iban_with(abi: str, account: str) -> str:
    """A valid Italian IBAN (check digits computed here)."""
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


IBAN = "IT60X0542811101000000123456"
POSTAL_IBAN = iban_with("07601", "000012345678")
PROVINCE_CF = "80000000001"
PROVINCE_IBAN = iban_with("05428", "000000654321")
CF = "RSSMRA80A01H501U"
DUE = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)


def spec(iupd: str, *, due: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A TARI position: 80 € to the comune (bank + postal IBAN), 4 € TEFA to the province."""
    due = due or DUE
    option = {
        "amount": 8400,
        "description": "TARI 2026",
        "due_date": due,
        "transfers": [
            {
                "id_transfer": 1,
                "amount": 8000,
                "organization_fiscal_code": EC,
                "remittance_information": "TARI 2026",
                "category": "9/0101101IM/",
                "iban": IBAN,
                "postal_iban": POSTAL_IBAN,
            },
            {
                "id_transfer": 2,
                "amount": 400,
                "organization_fiscal_code": PROVINCE_CF,
                "remittance_information": "TEFA 2026",
                "category": "9/0201102IM/",
                "iban": PROVINCE_IBAN,
                "company_name": "Provincia di Prova",
            },
        ],
    }
    base: dict[str, Any] = {
        "iupd": iupd,
        "type": "F",
        "fiscal_code": CF,
        "full_name": "Mario Rossi",
        "company_name": "Comune di Prova",
        "payment_options": [option],
    }
    base.update(extra)
    return base


def instalments(iupd: str) -> dict[str, Any]:
    due = datetime.now(UTC) + timedelta(days=30)

    def option(n: int | None, amount: int) -> dict[str, Any]:
        return {
            "amount": amount,
            "description": f"TARI 2026 rata {n}" if n else "TARI 2026",
            "due_date": due + timedelta(days=30 * (n or 0)),
            "is_partial_payment": n is not None,
            "installment_number": n,
            "transfers": [
                {
                    "id_transfer": 1,
                    "amount": amount,
                    "organization_fiscal_code": EC,
                    "remittance_information": "TARI 2026",
                    "category": "9/0101101IM/",
                    "iban": IBAN,
                }
            ],
        }

    result = spec(iupd)
    result["payment_options"] = [option(None, 10000), option(1, 5000), option(2, 5000)]
    return result


def make_config(db_url: str, tmp_path: Path, sink_url: str, mode: str = "station") -> HubConfig:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False, "poll_interval": 0.05},
            "tenants": [
                {
                    "id": "prova",
                    "name": "Comune di Prova",
                    "ipa_code": "c_prova",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "segregation_code": "01",
                        "mode": mode,
                    },
                    "adapters": {
                        "accounting": {
                            "plugin": "csv",
                            "options": {"receipts_path": str(tmp_path / "receipts.csv")},
                        }
                    },
                    "webhooks": [{"url": sink_url, "events": ["pagopa.*"]}],
                },
                {
                    "id": "altro",
                    "name": "Comune Altro",
                    "ipa_code": "c_altro",
                    "fiscal_code": "00000000888",
                    "cadastral_code": "Z888",
                },
            ],
        }
    )


class Hub:
    def __init__(
        self, client: TestClient[Any, Any], app: Any, config: HubConfig, tmp_path: Path
    ) -> None:
        self.client, self.app, self.config, self.tmp_path = client, app, config, tmp_path
        self.engine = app[ENGINE]
        self.store = PagopaStore(self.engine, config, app[CLOCK])

    async def post(self, body: bytes, action: str | None = None, tenant: str = "prova") -> bytes:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if action:
            headers["SOAPAction"] = f'"{action}"'
        resp = await self.client.post(f"/t/{tenant}/pagopa/station", data=body, headers=headers)
        assert resp.status in (200, 500), resp.status
        assert resp.content_type == "text/xml"
        return await resp.read()

    async def count(self, table: Any, *where: Any) -> int:
        async with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(table)
            for w in where:
                stmt = stmt.where(w)
            return int((await conn.execute(stmt)).scalar_one())

    async def drain(self) -> None:
        """Run one outbox worker until nothing is pending or running."""
        await drain_outbox(self.app, outbox=self.config.outbox)

    def receipts_csv(self) -> list[dict[str, str]]:
        path = self.tmp_path / "receipts.csv"
        if not path.exists():
            return []
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter=";"))

"""A pagoPA debt position in the REST API's shape (``POST /api/v1/tenants/{t}/pagopa/positions``)
and the creditor it belongs to; shared by the pagoPA and App IO API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from factories import iban_with

EC = "77777777777"
BROKER = "77777777777"
STATION = "77777777777_01"
CF = "RSSMRA80A01H501U"
NAME = "Mario Rossi"
IBAN = iban_with("05428", "000000123456")
DUE = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)


def position(iupd: str, *, instalments: int = 0, **extra: Any) -> dict[str, Any]:
    due = DUE

    def option(n: int | None, amount: int) -> dict[str, Any]:
        return {
            "amount": amount,
            "description": f"TARI 2026 rata {n}" if n else "TARI 2026",
            "due_date": (due + timedelta(days=30 * (n or 0))).isoformat(),
            "is_partial_payment": n is not None,
            "installment_number": n,
            "transfers": [
                {
                    "id_transfer": 1,
                    "amount": amount,
                    "remittance_information": "TARI 2026",
                    "category": "9/0101101IM/",
                    "iban": IBAN,
                }
            ],
        }

    options = [option(None, 8400)]
    options += [option(n, 8400 // instalments) for n in range(1, instalments + 1)]
    return {
        "iupd": iupd,
        "type": "F",
        "fiscal_code": CF,
        "full_name": NAME,
        "payment_options": options,
        **extra,
    }

"""pagoPA payment notice PDFs: notices per second on one core.

    .venv/bin/python bench/pagopa/notice_pdf.py [--notices 500] [--rounds 3]

Renders --notices single-payment notices (A4, one QR code each) with ``render_notice``,
one after the other in this process (one core), --rounds times, and prints the median
rate. Baseline in the same run: reportlab writing a bare one-page PDF per notice with
only the same text (the lines pypdf extracts from the real notice, drawn one under the
other: no QR code, no layout, same fonts, same invariant mode and compression). The
notice rate is also given as a ratio to the baseline: the cost of the layout and the code.

Also printed, for context: the same notices with the postal section (QR + Data Matrix),
``render_bulk`` into a streamed ZIP, and the QR code alone (this package's mask choice vs
segno's own, which give the same symbol).

Goal from the issue: at least 200 single-payment notices a second per core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import reportlab
import segno
from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from sportello.connectors.pagopa import DebtPosition, iuv_for
from sportello.connectors.pagopa.notice_layout import qr_modules
from sportello.connectors.pagopa.notice_pdf import (
    Creditor,
    qr_payload,
    render_bulk,
    render_notice,
)

ROME = ZoneInfo("Europe/Rome")
GOAL = 200.0
CREDITOR = Creditor(
    name="Comune di Roccasecca dei Volsci",
    fiscal_code="80016350821",
    sector="Settore Tributi",
    contact_info="Piazza del Municipio 1, 04010 Roccasecca dei Volsci (LT)\n0773 000000",
    cbill="A0EDT",
)
POSTAL = Creditor(
    name="Comune di Roccasecca dei Volsci",
    fiscal_code="80016350821",
    sector="Settore Tributi",
    cbill="A0EDT",
    postal_account="12345678",
)
NAMES = ("Mario Rossi", "Giulia Bianchi", "Francesca Esposito", "Luca Romano", "Sara Colombo")


def positions(count: int) -> list[DebtPosition]:
    result = []
    for n in range(1, count + 1):
        amount = 1_000 + (n * 7_919) % 500_000
        result.append(
            DebtPosition.model_validate(
                {
                    "iupd": f"TARI-2026-{n:07d}",
                    "type": "F",
                    "fiscal_code": "RSSMRA80A01H501U",
                    "full_name": f"{NAMES[n % len(NAMES)]} {n}",
                    "street_name": "Via Roma",
                    "civic_number": str(n % 200 + 1),
                    "postal_code": "04010",
                    "city": "Roccasecca dei Volsci",
                    "province": "LT",
                    "company_name": CREDITOR.name,
                    "payment_options": [
                        {
                            "iuv": iuv_for(n, segregation_code="01"),
                            "amount": amount,
                            "description": "TARI 2026 - rata unica",
                            "due_date": datetime(2026, 5, 31, 23, 59, tzinfo=ROME),
                            "transfers": [
                                {
                                    "id_transfer": 1,
                                    "amount": amount,
                                    "organization_fiscal_code": CREDITOR.fiscal_code,
                                    "remittance_information": "TARI 2026 - Tassa sui rifiuti",
                                    "category": "9/0101002IM/",
                                    "iban": "IT60X0542811101000000123456",
                                }
                            ],
                        }
                    ],
                }
            )
        )
    return result


def bare_pdf(lines: list[str]) -> bytes:
    """The baseline: one A4 page with ``lines`` drawn one under the other."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
    canvas.setFont("Helvetica", 9)
    y = A4[1] - 40
    for line in lines:
        canvas.drawString(40, y, line)
        y -= 11
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def rate(work: Callable[[], Any], count: int, rounds: int) -> tuple[float, list[float]]:
    """Median items/s over ``rounds`` runs of ``work`` (which handles ``count`` items)."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notices", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    args = parser.parse_args()
    count, rounds = args.notices, args.rounds

    batch = positions(count)
    # the text of each real notice, for the baseline (outside the timings)
    texts = [
        PdfReader(io.BytesIO(render_notice(p, creditor=CREDITOR))).pages[0].extract_text()
        for p in batch
    ]
    text_lines = [[line for line in text.splitlines() if line.strip()] for text in texts]
    payloads = [qr_payload(p.payment_options[0], CREDITOR) for p in batch]
    render_notice(batch[0], creditor=POSTAL)  # warm-up: fonts, caches

    def notices() -> None:
        for position in batch:
            render_notice(position, creditor=CREDITOR)

    def baseline() -> None:
        for lines in text_lines:
            bare_pdf(lines)

    def postal() -> None:
        for position in batch:
            render_notice(position, creditor=POSTAL)

    def bulk() -> None:
        render_bulk(batch, CREDITOR, out=_Null())  # type: ignore[arg-type]

    def qr_fast() -> None:
        for payload in payloads:
            qr_modules(payload)

    def qr_segno() -> None:
        for payload in payloads:
            segno.make_qr(payload, version=4, error="M", boost_error=False)

    print(
        f"Python {platform.python_version()}, reportlab {reportlab.Version}, segno "
        f"{segno.__version__}, {os.cpu_count()} cores; one process (one core); "
        f"{count} notices x {rounds} rounds, median"
    )
    size = len(render_notice(batch[0], creditor=CREDITOR))
    lines_per_page = statistics.mean(len(lines) for lines in text_lines)
    notice_rate, notice_all = rate(notices, count, rounds)
    base_rate, base_all = rate(baseline, count, rounds)
    postal_rate, _ = rate(postal, count, rounds)
    bulk_rate, _ = rate(bulk, count, rounds)
    fast_rate, _ = rate(qr_fast, count, rounds)
    segno_rate, _ = rate(qr_segno, count, rounds)
    rows = [
        ("single-payment notice (render_notice)", notice_rate, f"{size / 1024:.1f} KiB each"),
        ("baseline: bare text page (reportlab)", base_rate, f"{lines_per_page:.0f} lines"),
        ("notice with Bollettino Postale PA", postal_rate, "QR + Data Matrix"),
        ("render_bulk into a streamed ZIP", bulk_rate, "single-payment"),
        ("QR code alone, qr_modules", fast_rate, "ISO mask choice"),
        ("QR code alone, segno.make_qr", segno_rate, "same symbol"),
    ]
    for label, value, note in rows:
        print(f"  {label:<40} {value:8.0f} /s   {note}")
    print(
        f"notices/s per core: {notice_rate:.0f} (rounds: "
        + ", ".join(f"{r:.0f}" for r in notice_all)
        + f"); baseline {base_rate:.0f} (rounds: "
        + ", ".join(f"{r:.0f}" for r in base_all)
        + f"); ratio to baseline {notice_rate / base_rate:.2f}x"
    )
    verdict = "met" if notice_rate >= GOAL else "NOT met"
    print(f"goal >= {GOAL:.0f} notices/s per core: {verdict}")
    if args.json:
        base = {"baseline": base_rate, "baseline_name": "bare text page (reportlab)"}
        figures = [
            {
                "name": "single-payment notices",
                "value": notice_rate,
                "unit": "/s",
                **base,
                "goal": f">= {GOAL:.0f}/s per core",
                "met": notice_rate >= GOAL,
            },
            {"name": "notices with the Poste slip", "value": postal_rate, "unit": "/s", **base},
            {"name": "render_bulk into a ZIP", "value": bulk_rate, "unit": "/s", **base},
        ]
        args.json.write_text(
            json.dumps(
                {
                    "bench": "pagopa/notice_pdf",
                    "params": f"{count} notices, median of {rounds} rounds, one core",
                    "figures": figures,
                }
            )
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

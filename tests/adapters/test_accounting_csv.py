"""The reference accounting adapter: positions from CSV (bad rows named, the rest goes on),
receipts appended once per receipt id; registered through the plugin hook."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sportello.adapters.accounting.base import (
    AccountingReceipt,
    PositionRow,
    ReceiptTransferLine,
    RowError,
)
from sportello.adapters.accounting.csv_adapter import RECEIPT_COLUMNS, CsvAccountingAdapter
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import DebtPosition
from sportello.plugins import Plugins

EC = "77777777777"
IBAN = "IT60X0542811101000000123456"
HEADER = (
    "iupd;debtor_type;debtor_fiscal_code;debtor_name;debtor_email;description;installment;"
    "due_date;amount;transfer1_amount;transfer1_iban;transfer1_category;transfer2_amount;"
    "transfer2_fiscal_code;transfer2_iban;transfer2_category"
)
GOOD = [
    f"T-1;F;RSSMRA80A01H501U;Mario Rossi;;TARI 2026;;2026-12-31;126,00;120,00;{IBAN};"
    f"9/0101101IM/;6,00;80000000001;{IBAN};9/0201102IM/",
    f"T-2;F;VRDLGU70B02F205V;Luigi Verdi;luigi@example.org;TARI 2026 rata 1;1;31/10/2026;;50;"
    f"{IBAN};9/0101101IM/;;;;",
    f"T-2;F;VRDLGU70B02F205V;Luigi Verdi;;TARI 2026 rata 2;2;31/12/2026;;50.5;{IBAN};"
    "9/0101101IM/;;;;",
]


def adapter(tmp_path: Path, rows: list[str]) -> CsvAccountingAdapter:
    (tmp_path / "positions.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return CsvAccountingAdapter(
        {
            "path": "positions.csv",
            "receipts_path": "out/receipts.csv",
            "company_name": "Comune di Prova",
            "fiscal_code": EC,
        },
        base_dir=tmp_path,
    )


async def pulled(a: CsvAccountingAdapter) -> list[PositionRow | RowError]:
    return [item async for item in a.pull_positions()]


async def test_positions_are_read_one_per_iupd(tmp_path: Path) -> None:
    items = await pulled(adapter(tmp_path, GOOD))
    assert all(isinstance(i, PositionRow) for i in items), items
    rows = [i for i in items if isinstance(i, PositionRow)]
    assert [(r.iupd, r.row) for r in rows] == [("T-1", 2), ("T-2", 3)]
    tari = rows[0].position
    option = tari["payment_options"][0]
    assert option["amount"] == 12600 and not option["is_partial_payment"]
    assert [t["amount"] for t in option["transfers"]] == [12000, 600]
    assert option["transfers"][1]["organization_fiscal_code"] == "80000000001"
    assert option["due_date"].isoformat() == "2026-12-31T23:59:59+01:00"
    plan = rows[1].position["payment_options"]
    assert [(o["installment_number"], o["amount"]) for o in plan] == [(1, 5000), (2, 5050)]
    # what the store will do: allocate IUVs, then it is a valid DebtPosition
    for n, o in enumerate(plan, start=1):
        o["iuv"] = iuv_for(n, segregation_code="01")
    DebtPosition.model_validate(rows[1].position)


async def test_a_bad_row_names_file_row_and_column_and_the_rest_goes_on(tmp_path: Path) -> None:
    bad = [
        GOOD[0].replace("T-1;", "B-1;").replace("126,00", "127,00"),  # amount ≠ sum
        GOOD[0].replace("T-1;", "B-2;").replace("2026-12-31", "31 dicembre"),
        GOOD[0].replace("T-1;", "B-3;").replace("RSSMRA80A01H501U", "NOTACF"),
        GOOD[0].replace("T-1;", "B-4;").replace(f"6,00;80000000001;{IBAN}", "6,00;;x"),
        GOOD[0].replace("T-1;", "B-5;").replace(f"120,00;{IBAN}", "120,00;IT00X1"),
        GOOD[0].replace("T-1;", "B-6;").replace("120,00", "dieci"),
        # a character XML cannot carry (paGetPaymentV2) and a wrong check letter
        GOOD[0].replace("T-1;", "B-7;").replace("Mario Rossi", "Mario\x07Rossi"),
        GOOD[0].replace("T-1;", "B-8;").replace("RSSMRA80A01H501U", "RSSMRA80A01H501A"),
        GOOD[0].replace("T-1;", "B-9;").replace("TARI 2026", "TARI\x00"),
        *GOOD,
    ]
    items = await pulled(adapter(tmp_path, bad))
    errors = [i for i in items if isinstance(i, RowError)]
    got = [(e.row, e.field) for e in errors]
    assert got == [
        (2, "amount"),
        (3, "due_date"),
        (4, "debtor_fiscal_code"),
        (5, "transfer2_fiscal_code"),
        (6, "transfer1_iban"),
        (7, "transfer1_amount"),
        (8, "debtor_name"),
        (9, "debtor_fiscal_code"),
        (10, "description"),
    ]
    assert "XML 1.0" in str(errors[6]) and "check character" in str(errors[7])
    assert str(errors[0]).startswith(f"{tmp_path / 'positions.csv'}: row 2: amount:")
    assert "NOTACF" not in " ".join(str(e) for e in errors)  # values are not echoed
    assert [i.iupd for i in items if isinstance(i, PositionRow)] == ["T-1", "T-2"]


async def test_missing_column_and_repeated_iupd(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("iupd;debtor_name\nX;Y\n", encoding="utf-8")
    a = adapter(tmp_path, GOOD)
    assert [str(e) for e in a.read_positions(tmp_path / "p.csv")] == [
        f"{tmp_path / 'p.csv'}: row 1: debtor_fiscal_code: column missing from the header"
    ]
    items = await pulled(adapter(tmp_path, [GOOD[0], GOOD[1], GOOD[0]]))
    assert isinstance(items[-1], RowError) and items[-1].field == "iupd"


def receipt(receipt_id: str) -> AccountingReceipt:
    return AccountingReceipt(
        tenant_id="prova",
        receipt_id=receipt_id,
        notice_number="301000000000000144",
        iuv="01000000000000144",
        iupd="T-1",
        amount=12600,
        outcome="OK",
        id_psp="BCITITMM",
        psp_company_name="Banca",
        payment_date_time=datetime(2026, 3, 1, 10, tzinfo=UTC),
        stand_in=False,
        received_at=datetime(2026, 3, 1, 10, 1, tzinfo=UTC),
        debtor_fiscal_code="RSSMRA80A01H501U",
        transfers=(ReceiptTransferLine(1, 12600, EC, IBAN, "9/0101101IM/", "TARI"),),
    )


async def test_receipts_are_appended_once(tmp_path: Path) -> None:
    a = adapter(tmp_path, GOOD)
    await a.push_receipt(receipt("r-1"))
    await a.push_receipt(receipt("r-1"))
    await a.push_receipt(receipt("r-2"))
    # a second adapter (another worker process) sees what the first wrote
    b = adapter(tmp_path, GOOD)
    await b.push_receipt(receipt("r-1"))
    await a.push_receipt(receipt("r-2"))
    lines = (tmp_path / "out" / "receipts.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == ";".join(RECEIPT_COLUMNS)
    assert [line.split(";")[0] for line in lines[1:]] == ["r-1", "r-2"]
    assert ";126.00;" in lines[1] and "1:126.00:77777777777:" in lines[1]
    await a.push_reconciliation(None)  # type: ignore[arg-type]
    await a.close()


def test_registered_as_the_csv_accounting_adapter() -> None:
    assert Plugins(entry_points=False).accounting_adapters()["csv"] is CsvAccountingAdapter


def test_cli_imports_positions_once(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sportello.cli.main import main

    db = tmp_path / "hub.sqlite"
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{db}"

[[tenants]]
id = "prova"
name = "Comune di Prova"
ipa_code = "c_prova"
fiscal_code = "{EC}"
cadastral_code = "Z999"

[tenants.pagopa]
ec_fiscal_code = "{EC}"
broker_id = "{EC}"
station_id = "{EC}_01"
mode = "station"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    bad = GOOD[0].replace("T-1;", "B-1;").replace("2026-12-31", "x")
    csv_file = tmp_path / "positions.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD, bad]) + "\n", encoding="utf-8")
    args = ["pagopa", "import", "--config", str(config), "--tenant", "prova", str(csv_file)]
    first = runner.invoke(main, args)
    assert first.exit_code == 1, first.output
    assert "2 created, 0 already present, 1 rejected" in first.output
    assert "row 5: due_date" in first.output
    second = runner.invoke(main, args)
    assert "0 created, 2 already present, 1 rejected" in second.output


def test_cli_writes_every_notice_into_one_zip_and_audits_each(tmp_path: Path) -> None:
    import sqlite3
    import zipfile

    from click.testing import CliRunner

    from sportello.cli.main import main

    db = tmp_path / "hub.sqlite"
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{db}"

[[tenants]]
id = "prova"
name = "Comune di Prova"
ipa_code = "c_prova"
fiscal_code = "{EC}"
cadastral_code = "Z999"

[tenants.pagopa]
ec_fiscal_code = "{EC}"
broker_id = "{EC}"
station_id = "{EC}_01"
mode = "station"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    csv_file = tmp_path / "positions.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD]) + "\n", encoding="utf-8")
    base = ["--config", str(config), "--tenant", "prova"]
    assert runner.invoke(main, ["pagopa", "import", *base, str(csv_file)]).exit_code == 0
    out = tmp_path / "avvisi.zip"
    result = runner.invoke(main, ["pagopa", "notices", *base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 notices written" in result.output
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert len(names) == 2 and all(n.endswith(".pdf") and len(n) == 22 for n in names)
        assert all(zf.read(n).startswith(b"%PDF") for n in names)
    with sqlite3.connect(db) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log")]
    assert actions == ["pagopa.notice.pdf", "pagopa.notice.pdf"]
    assert not out.with_name("avvisi.zip.part").exists()


def test_cli_notices_carry_the_postal_slip_for_positions_with_a_postal_iban(
    tmp_path: Path,
) -> None:
    """``sportello pagopa notices`` uses [tenants.pagopa.postal] for the positions whose
    transfer names the tenant's postal account (transfer1_postal_iban), and only those."""
    import io
    import zipfile

    from click.testing import CliRunner
    from pypdf import PdfReader

    from sportello.cli.main import main

    account = "1234567"
    bban = "X07601" + "01600" + account.zfill(12)
    postal_iban = f"IT{98 - int(''.join(str(int(c, 36)) for c in bban + 'IT00')) % 97:02d}{bban}"
    db = tmp_path / "hub.sqlite"
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{db}"

[[tenants]]
id = "prova"
name = "Comune di Prova"
ipa_code = "c_prova"
fiscal_code = "{EC}"
cadastral_code = "Z999"

[tenants.pagopa]
ec_fiscal_code = "{EC}"
broker_id = "{EC}"
station_id = "{EC}_01"
mode = "station"

[tenants.pagopa.postal]
account = "{account}"
holder = "Comune di Prova - Tesoreria"
authorization = "AUT/2026/77"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    csv_file = tmp_path / "positions.csv"
    rows = [GOOD[0] + f";{postal_iban}", *(r + ";" for r in GOOD[1:])]
    csv_file.write_text(
        "\n".join([HEADER + ";transfer1_postal_iban", *rows]) + "\n", encoding="utf-8"
    )
    base = ["--config", str(config), "--tenant", "prova"]
    imported = runner.invoke(main, ["pagopa", "import", *base, str(csv_file)])
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "avvisi.zip"
    result = runner.invoke(main, ["pagopa", "notices", *base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        texts = [
            "".join(p.extract_text() for p in PdfReader(io.BytesIO(zf.read(n))).pages)
            for n in zf.namelist()
        ]
    slips = [t for t in texts if "BOLLETTINO POSTALE PA" in t]
    assert len(texts) == 2 and len(slips) == 1
    assert account in slips[0] and "Comune di Prova - Tesoreria" in slips[0]
    assert "AUT/2026/77" in slips[0] and "Mario Rossi" in slips[0]

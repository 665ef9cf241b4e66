"""A bulk import of fines naming notices of the tenant's own pagoPA positions (SQLite and
PostgreSQL, the SEND twin over real sockets): each notice PDF is attached as the API would
(``payments.notice_attachments``), SEND accepts it, and a notice of another debtor stops the
whole import before anything is queued (row and column named)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from sqlalchemy import func, select
from test_send_import import fine, write
from test_send_pagopa import CF, DEMO_EC, Hub, drain, hub, twin_body  # noqa: F401

from sportello.adapters.notifications.csv_source import CsvNotificationSource
from sportello.app import SERVICES
from sportello.platforms.send.imports import import_notifications
from sportello.platforms.send.tables import send_notifications
from sportello.sandbox.send.app import SEND_STATE


async def test_imported_fines_get_their_notice_pdf(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    navs = [await hub.position("demo", f"IMP-{n}") for n in (1, 2)]
    rows = [
        fine(n + 1, taxId=CF, noticeCode=nav, creditorTaxId=DEMO_EC, amount="84,00")
        for n, nav in enumerate(navs)
    ]
    path = write(tmp_path / "in", rows)
    source = CsvNotificationSource({"path": str(path)}, base_dir=path.parent)
    result = await import_notifications(
        hub.app[SERVICES], "demo", source.rows(), documents=path.parent, source="fines.csv"
    )
    assert result.ok, result.problems
    assert len(result.queued) == 2
    await drain(hub)
    for row in rows:
        body = twin_body(hub, row["paProtocolNumber"])
        pago = body["recipients"][0]["payments"][0]["pagoPa"]
        key = pago["attachment"]["ref"]["key"].removeprefix("safestorage://")
        pdf = hub.stack.send_app[SEND_STATE].uploads[key].body
        assert pdf.startswith(b"%PDF-")
        digest = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
        assert pago["attachment"]["digests"]["sha256"] == digest
    # a notice whose debtor is not the row's recipient: nothing of the file is queued
    nav = await hub.position("demo", "IMP-3")
    bad = [
        fine(10, taxId=CF, noticeCode="302000000000000010"),
        fine(11, noticeCode=nav, creditorTaxId=DEMO_EC, amount="84,00"),
    ]
    path = write(tmp_path / "bad", bad)
    source = CsvNotificationSource({"path": str(path)}, base_dir=path.parent)
    result = await import_notifications(
        hub.app[SERVICES], "demo", source.rows(), documents=path.parent, source="fines.csv"
    )
    assert result.problems == [
        "fines.csv: row 3: noticeCode: the notice's debtor is not this recipient"
    ]
    async with hub.app[SERVICES].engine.connect() as c:
        count = (await c.execute(select(func.count()).select_from(send_notifications))).scalar()
    assert count == 2

"""Fines whose pagoPA debt position the hub creates (SQLite and PostgreSQL, the SEND twin over
real sockets): a row with an amount, a due date and no noticeCode gets its position from the
pagoPA platform (the ``hub_create_notice`` kernel hook, in the transaction that queues the
notification), its notice code in the SEND payment and the notice PDF attached. A position
that cannot be made stops the whole import with nothing queued and no position left; a re-run
makes no second position; the columns are checked first."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from test_send_import import fine, write
from test_send_pagopa import CF, DEMO_EC, IBAN, PDF, Hub, drain, hub, twin_body  # noqa: F401

from sportello.adapters.notifications.csv_source import CsvNotificationSource
from sportello.app import SERVICES
from sportello.platforms.pagopa.notices import created_iupd
from sportello.platforms.pagopa.tables import payment_options, positions
from sportello.platforms.send.imports import ImportResult, import_notifications
from sportello.platforms.send.tables import send_notifications, send_payments
from sportello.sandbox.send.app import SEND_STATE


def created(n: int, **changes: str) -> dict[str, str]:
    """A fine whose position the hub creates: amount, due date, IBAN, no notice code."""
    row = fine(
        n,
        taxId=CF,
        noticeCode="",
        creditorTaxId="",
        amount="84,00",
        paymentExpirationDate="2027-03-31",
        iban=IBAN,
        transferCategory="9/0101108TS/",
        description=f"Verbale n. {n}",
        notificationFeePolicy="",
    )
    row.update(changes)
    return row


async def run(hub: Hub, path: Path, **kw: object) -> ImportResult:  # noqa: F811
    source = CsvNotificationSource({"path": str(path)}, base_dir=path.parent)
    return await import_notifications(
        hub.app[SERVICES],
        "demo",
        source.rows(),
        documents=path.parent,
        source="fines.csv",
        **kw,  # type: ignore[arg-type]
    )


async def count(hub: Hub, table: object) -> int:  # noqa: F811
    async with hub.app[SERVICES].engine.connect() as c:
        return int((await c.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_the_hub_creates_the_position_and_attaches_its_notice(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
) -> None:
    rows = [created(1), created(2, applyCost="false", amount="41,50")]
    path = write(tmp_path / "in", rows)
    assert (await run(hub, path, dry_run=True)).ok
    assert await count(hub, positions) == 0  # a dry run makes nothing
    result = await run(hub, path)
    assert result.ok, result.problems
    assert len(result.queued) == 2
    async with hub.app[SERVICES].engine.connect() as c:
        found = (
            await c.execute(
                select(
                    positions.c.iupd,
                    positions.c.debtor_fiscal_code,
                    payment_options.c.nav,
                    payment_options.c.amount,
                )
                .join(payment_options, payment_options.c.position_id == positions.c.id)
                .order_by(positions.c.id)
            )
        ).all()
        recorded = {
            r.notice_code: r.apply_cost
            for r in await c.execute(
                select(send_payments.c.notice_code, send_payments.c.apply_cost)
            )
        }
    assert [(r.iupd, r.debtor_fiscal_code, r.amount) for r in found] == [
        (created_iupd("VERB-2026-00001"), CF, 8400),
        (created_iupd("VERB-2026-00002"), CF, 4150),
    ]
    assert recorded == {found[0].nav: True, found[1].nav: False}
    await drain(hub)
    for row, position in zip(rows, found, strict=True):
        body = twin_body(hub, row["paProtocolNumber"])
        pago = body["recipients"][0]["payments"][0]["pagoPa"]
        assert pago["noticeCode"] == position.nav
        assert pago["creditorTaxId"] == DEMO_EC
        key = pago["attachment"]["ref"]["key"].removeprefix("safestorage://")
        pdf = hub.stack.send_app[SEND_STATE].uploads[key].body
        assert pdf.startswith(b"%PDF-")
        assert (
            pago["attachment"]["digests"]["sha256"]
            == base64.b64encode(hashlib.sha256(pdf).digest()).decode()
        )
    # applyCost on a notice the hub's station answers: SEND's synchronous mode
    assert twin_body(hub, "VERB-2026-00001").get("pagoPaIntMode") == "SYNC"
    # the same file again: the same notifications, no second position
    again = await run(hub, path)
    assert again.ok, again.problems
    assert (again.queued, sorted(again.already)) == ([], sorted(result.queued))
    assert await count(hub, positions) == 2
    # the same protocol number with another amount is another act: refused
    changed = write(tmp_path / "changed", [created(1, amount="99,00")])
    refused = await run(hub, changed)
    assert len(refused.problems) == 1 and "other content" in refused.problems[0]
    assert await count(hub, positions) == 2


async def test_a_position_that_cannot_be_made_leaves_nothing(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
) -> None:
    # another position already holds row 3's reference with other content
    await hub.position("demo", created_iupd("VERB-2026-00003"))
    path = write(tmp_path / "in", [created(1), created(2), created(3)])
    result = await run(hub, path)
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith(
        "fines.csv: row 4: amount: the pagoPA position could not be created: a position for "
        "this reference exists with other content"
    )
    assert result.problems[0].endswith("nothing queued")
    assert result.queued == []
    assert await count(hub, send_notifications) == 0
    assert await count(hub, send_payments) == 0
    assert await count(hub, positions) == 1  # rows 1 and 2's positions rolled back


async def test_the_columns_are_checked_first(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    rows = [
        created(1, iban="IT00"),
        created(2, transferCategory="fines"),
        created(3, paymentExpirationDate=""),
        created(4, creditorTaxId="00000000999"),
        created(5, description="x" * 141),
        fine(6, taxId=CF, iban=IBAN),  # a notice code given: no position to make
        created(7, amount="0"),
        created(8, applyCost="true", notificationFeePolicy="FLAT_RATE"),
    ]
    result = await run(hub, write(tmp_path / "in", rows))
    assert result.problems == [
        "fines.csv: row 2: iban: required with amount and no noticeCode: the Italian IBAN the "
        "fine is paid to (27 characters)",
        "fines.csv: row 3: transferCategory: required with amount and no noticeCode: the "
        "pagoPA taxonomy code of the payment (such as 9/0301109AP/)",
        "fines.csv: row 4: paymentExpirationDate: required with amount and no noticeCode (the "
        "due date of the position the hub creates)",
        "fines.csv: row 5: creditorTaxId: only with noticeCode (a position the hub creates is "
        "the tenant's)",
        "fines.csv: row 6: description: at most 140 characters, one line",
        "fines.csv: row 7: iban: only with amount and no noticeCode (a position the hub creates)",
        "fines.csv: row 8: amount: more than zero",
        "fines.csv: row 9: applyCost: SEND adds its cost only with notificationFeePolicy "
        "DELIVERY_MODE",
    ]
    assert await count(hub, positions) == 0
    assert await count(hub, send_notifications) == 0


async def post(hub: Hub, protocol: str, **changes: object) -> tuple[int, Any]:  # noqa: F811
    position = {
        "amount": 8400,
        "due_date": "2030-12-31",
        "description": "Verbale n. 7",
        "iban": IBAN,
        "transfer_category": "9/0101108TS/",
        "apply_cost": True,
        **changes,
    }
    body = {
        "pa_protocol_number": protocol,
        "subject": "Verbale di accertamento",
        "taxonomy_code": "010101P",
        "recipients": [
            {
                "recipientType": "PF",
                "taxId": CF,
                "denomination": "Mario Rossi",
                "physicalAddress": {
                    "address": "Via Roma 1",
                    "municipality": "Roma",
                    "zip": "00100",
                },
            }
        ],
        "documents": [{"title": "Verbale", "content_base64": base64.b64encode(PDF).decode()}],
        "position": position,
    }
    r = await hub.client.post(
        "/api/v1/tenants/demo/send/notifications",
        json=body,
        headers={"Authorization": f"Bearer {hub.keys['demo']}", "Idempotency-Key": protocol},
    )
    return r.status, await r.json()


async def test_the_api_creates_the_position_too(hub: Hub) -> None:  # noqa: F811
    status, answer = await post(hub, "API-POS-1")
    assert status == 202, answer
    assert await post(hub, "API-POS-1") == (202, answer)  # a replay: no second position
    assert await count(hub, positions) == 1
    await drain(hub)
    body = twin_body(hub, "API-POS-1")
    pago = body["recipients"][0]["payments"][0]["pagoPa"]
    async with hub.app[SERVICES].engine.connect() as c:
        nav = (await c.execute(select(payment_options.c.nav))).scalar_one()
    assert (pago["noticeCode"], pago["creditorTaxId"], pago["applyCost"]) == (nav, DEMO_EC, True)
    assert pago["attachment"]["contentType"] == "application/pdf"
    assert (body["amount"], body["paymentExpirationDate"]) == (8400, "2030-12-31")
    assert body["pagoPaIntMode"] == "SYNC"
    # a position that cannot be made: 409, nothing stored
    await hub.position("demo", created_iupd("API-POS-2"))
    status, problem = await post(hub, "API-POS-2")
    assert status == 409 and problem["detail"].startswith(
        "position: the pagoPA position could not be created"
    ), problem
    assert await count(hub, send_notifications) == 1
    assert await count(hub, positions) == 2
    for changes, field in [
        ({"iban": "IT00"}, "position.iban"),
        ({"amount": 0}, "position.amount"),
        ({"transfer_category": "x"}, "position.transfer_category"),
        ({"recipient": 2}, "position.recipient"),
    ]:
        status, problem = await post(hub, f"API-POS-BAD-{field}", **changes)
        assert status == 400 and problem["detail"].startswith(field), problem
    assert await count(hub, positions) == 2

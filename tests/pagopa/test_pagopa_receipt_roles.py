"""Whose money a receipt is, on SQLite and PostgreSQL.

A notice number identifies a payment only with its creditor (``receipt/fiscalCode``). The
Node sends the ``paSendRTV2`` of a multi-beneficiary payment to every EC in its transfer
list (pagoPA SANP, "paSendRT" broadcast): a comune that is only a secondary beneficiary gets
another creditor's receipt, whose notice number may well equal one of its own open notices.
Such a receipt must never mark the comune's position paid.
"""

from __future__ import annotations

import json
from typing import Any

from pagopa_node import EC, RT, outcome, send_rt
from station_hub import IBAN, Hub, spec

from sportello.platforms.pagopa.store import RECEIPT_FORWARD_KIND
from sportello.schema import outbox

OTHER_EC = "80016350821"  # another creditor (a Regione) that collects for both
OTHER_IBAN = "IT96R0123412345000000012345"


def _receipt_events(sink: Any) -> list[dict[str, Any]]:
    found = []
    for r in sink.received:
        if b"pagopa.receipt" in r["raw"]:
            found.append(json.loads(r["raw"]))
    return found


async def test_another_creditors_broadcast_never_pays_our_notice(hub: Hub, sink: Any) -> None:
    ours = await hub.store.create_position("prova", spec("TARI-B1"))
    option = ours.options[0]
    # the other creditor's receipt, same notice number as our open notice; we get 30.00 of it
    rt = RT(
        "rcpt-broadcast-1",
        option.nav,
        option.iuv,
        10000,
        fiscal_code=OTHER_EC,
        transfers=[(7000, OTHER_EC, OTHER_IBAN), (3000, EC, IBAN)],
    )
    assert outcome(await hub.post(send_rt(rt), "paSendRTV2")) == ("OK", None)

    position = await hub.store.get_position("prova", "TARI-B1")
    assert position is not None and position.status == "VALID"
    assert position.options[0].status == "open" and position.options[0].receipt_id is None
    kept = await hub.store.get_receipt("prova", "rcpt-broadcast-1")
    assert kept is not None and kept.role == "beneficiary" and kept.iupd is None
    assert kept.note is not None and OTHER_EC in kept.note

    # forwarded to accounting with our transfer only, and announced as a beneficiary's
    assert await hub.count(outbox, outbox.c.kind == RECEIPT_FORWARD_KIND) == 1
    await hub.drain()
    rows = hub.receipts_csv()
    assert [r["receipt_id"] for r in rows] == ["rcpt-broadcast-1"]
    assert rows[0]["amount"] == "30.00"
    assert rows[0]["transfers"].startswith("2:30.00:" + EC)
    assert OTHER_EC not in rows[0]["transfers"]
    events = _receipt_events(sink)
    assert len(events) == 1
    data = events[0].get("data", events[0])
    assert data["role"] == "beneficiary" and data["matched"] is False
    assert data["creditor_fiscal_code"] == OTHER_EC

    # our own receipt for that notice still pays it
    mine = RT("rcpt-own-1", option.nav, option.iuv, 8400)
    assert outcome(await hub.post(send_rt(mine), "paSendRTV2")) == ("OK", None)
    position = await hub.store.get_position("prova", "TARI-B1")
    assert position is not None and position.status == "PAID"
    assert position.options[0].receipt_id == "rcpt-own-1"


async def test_a_receipt_that_is_nobodys_here_is_kept_but_never_applied(
    hub: Hub, sink: Any
) -> None:
    ours = await hub.store.create_position("prova", spec("TARI-B2"))
    option = ours.options[0]
    rt = RT(
        "rcpt-stray-1",
        option.nav,
        option.iuv,
        8400,
        fiscal_code=OTHER_EC,
        transfers=[(8400, OTHER_EC, OTHER_IBAN)],
    )
    # answered OK: a KO only makes the Node redeliver it, and cannot undo the payment
    assert outcome(await hub.post(send_rt(rt), "paSendRTV2")) == ("OK", None)
    position = await hub.store.get_position("prova", "TARI-B2")
    assert position is not None and position.status == "VALID"
    kept = await hub.store.get_receipt("prova", "rcpt-stray-1")
    assert kept is not None and kept.role == "unrelated"
    assert kept.forward_status == "not_ours"
    assert kept.note is not None and "not ours" in kept.note
    assert await hub.count(outbox, outbox.c.kind == RECEIPT_FORWARD_KIND) == 0
    await hub.drain()
    assert hub.receipts_csv() == []
    assert _receipt_events(sink) == []
    # redelivered: still one row, still nothing applied
    assert outcome(await hub.post(send_rt(rt), "paSendRTV2")) == ("OK", None)
    position = await hub.store.get_position("prova", "TARI-B2")
    assert position is not None and position.status == "VALID"


async def test_receipts_api_says_whose_receipt_it_is(hub: Hub) -> None:
    ours = await hub.store.create_position("prova", spec("TARI-B3"))
    option = ours.options[0]
    broadcast = RT(
        "rcpt-broadcast-3",
        option.nav,
        option.iuv,
        10000,
        fiscal_code=OTHER_EC,
        transfers=[(7000, OTHER_EC, OTHER_IBAN), (3000, EC, IBAN)],
    )
    await hub.post(send_rt(broadcast), "paSendRTV2")
    await hub.post(send_rt(RT("rcpt-own-3", option.nav, option.iuv, 8400)), "paSendRTV2")
    by_id = {}
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(hub.store.receipts_query("prova"))).all()
    for row in rows:
        by_id[row.receipt_id] = row.role
    assert by_id == {"rcpt-broadcast-3": "beneficiary", "rcpt-own-3": "creditor"}

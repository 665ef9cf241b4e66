"""The EC station over real sockets, on SQLite and PostgreSQL: verify, getPayment[V2],
sendRT[V2], every fault, receipts stored once (redelivered, concurrent), Stand-In, receipts
committed before the answer, forwarded once to the accounting CSV; the store's positions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree
from pagopa_node import (
    EC,
    RT,
    XSD_DIR,
    get_payment,
    outcome,
    payload_of,
    send_rt,
    verify,
)
from sqlalchemy import update
from station_hub import (
    CF,
    HAVE_XSD,
    IBAN,
    POSTAL_IBAN,
    PROVINCE_CF,
    PROVINCE_IBAN,
    Hub,
    instalments,
    make_config,
    spec,
)

from sportello.app import create_app
from sportello.platforms.pagopa.store import (
    GPD_CREATE_KIND,
    RECEIPT_FORWARD_KIND,
    PagopaStore,
    PositionConflict,
)
from sportello.platforms.pagopa.tables import payment_options, positions, receipts
from sportello.schema import outbox


def assert_valid(response: bytes) -> None:
    """The answer validates against paForNode.xsd (when the spec is available)."""
    if not HAVE_XSD:
        return
    schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "paForNode.xsd")))
    payload = payload_of(response)
    assert schema.validate(payload), schema.error_log


async def test_unknown_tenant_or_tenant_without_pagopa_is_404(hub: Hub) -> None:
    for tenant in ("nessuno", "altro"):
        resp = await hub.client.post(f"/t/{tenant}/pagopa/station", data=verify("3" + "0" * 17))
        assert resp.status == 404


async def test_verify_get_payment_send_rt_round_trip(hub: Hub, sink: Any) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-1"))
    assert stored.created and stored.status == "VALID"
    option = stored.options[0]
    assert option.nav == "3" + option.iuv and option.iuv.startswith("01")

    answer = await hub.post(verify(option.nav), "paVerifyPaymentNotice")
    assert outcome(answer) == ("OK", None)
    assert_valid(answer)
    p = payload_of(answer)
    assert p.findtext("paymentList/paymentOptionDescription/amount") == "84.00"
    assert p.findtext("paymentList/paymentOptionDescription/allCCP") == "false"
    assert p.findtext("fiscalCodePA") == EC

    v1 = await hub.post(get_payment(option.nav), "paGetPayment")
    assert outcome(v1) == ("OK", None)
    assert_valid(v1)
    data = payload_of(v1).find("data")
    assert data is not None
    assert data.findtext("creditorReferenceId") == option.iuv
    assert data.findtext("paymentAmount") == "84.00"
    assert [t.findtext("IBAN") for t in data.iterfind("transferList/transfer")] == [
        IBAN,
        PROVINCE_IBAN,
    ]
    assert data.findtext("debtor/uniqueIdentifier/entityUniqueIdentifierValue") == CF

    v2 = await hub.post(get_payment(option.nav, version=2, transfer_type="POSTAL"))
    assert outcome(v2) == ("OK", None)
    assert_valid(v2)
    data2 = payload_of(v2).find("data")
    assert data2 is not None
    assert data2.findtext("companyName") == "Comune di Prova"
    transfers = list(data2.iterfind("transferList/transfer"))
    assert [t.findtext("IBAN") for t in transfers] == [POSTAL_IBAN, PROVINCE_IBAN]
    assert transfers[1].findtext("companyName") == "Provincia di Prova"

    rt = RT(
        "rcpt-1",
        option.nav,
        option.iuv,
        8400,
        transfers=[(8000, EC, IBAN), (400, PROVINCE_CF, PROVINCE_IBAN)],
    )
    ok = await hub.post(send_rt(rt), "paSendRTV2")
    assert outcome(ok) == ("OK", None)
    assert_valid(ok)
    # committed before the answer: another connection sees it right away
    assert await hub.count(receipts, receipts.c.receipt_id == "rcpt-1") == 1
    position = await hub.store.get_position("prova", "TARI-1")
    assert position is not None and position.status == "PAID"
    assert position.options[0].status == "paid" and position.options[0].receipt_id == "rcpt-1"

    again = await hub.post(verify(option.nav), "paVerifyPaymentNotice")
    assert outcome(again) == ("KO", "PAA_PAGAMENTO_DUPLICATO")
    assert_valid(again)

    await hub.drain()
    rows = hub.receipts_csv()
    assert [r["receipt_id"] for r in rows] == ["rcpt-1"]
    assert rows[0]["amount"] == "84.00" and rows[0]["iupd"] == "TARI-1"
    stored_rt = await hub.store.get_receipt("prova", "rcpt-1")
    assert stored_rt is not None and stored_rt.forward_status == "forwarded"
    events = [r for r in sink.received if b"pagopa.receipt" in r["raw"]]
    assert len(events) == 1


async def test_redelivered_receipt_is_stored_once_and_forwarded_once(hub: Hub) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-2"))
    option = stored.options[0]
    rt = RT("rcpt-2", option.nav, option.iuv, 8400)
    for version in (2, 2, 1):
        answer = await hub.post(send_rt(rt, version=version))
        assert outcome(answer) == ("OK", None)
        assert_valid(answer)
    assert await hub.count(receipts) == 1
    assert await hub.count(outbox, outbox.c.kind == RECEIPT_FORWARD_KIND) == 1
    await hub.drain()
    assert await hub.post(send_rt(rt)) and True
    await hub.drain()
    assert [r["receipt_id"] for r in hub.receipts_csv()] == ["rcpt-2"]


async def test_concurrent_duplicate_receipts_are_stored_once(hub: Hub) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-3"))
    option = stored.options[0]
    body = send_rt(RT("rcpt-3", option.nav, option.iuv, 8400))
    answers = await asyncio.gather(*(hub.post(body, "paSendRTV2") for _ in range(8)))
    assert all(outcome(a) == ("OK", None) for a in answers)
    assert await hub.count(receipts) == 1
    assert await hub.count(outbox, outbox.c.kind == RECEIPT_FORWARD_KIND) == 1
    # two different receipts for the same notice at once: both kept, one marks it paid
    twins = [send_rt(RT(f"rcpt-3{x}", option.nav, option.iuv, 8400)) for x in "ab"]
    await asyncio.gather(*(hub.post(b) for b in twins))
    assert await hub.count(receipts) == 3


async def test_stand_in_receipt_without_verify_and_another_amount(hub: Hub) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-4"))
    option = stored.options[0]
    rt = RT("rcpt-4", option.nav, option.iuv, 9000, stand_in=True)
    answer = await hub.post(send_rt(rt, version=1), "paSendRT")
    assert outcome(answer) == ("OK", None)
    kept = await hub.store.get_receipt("prova", "rcpt-4")
    assert kept is not None and kept.stand_in and kept.amount == 9000
    assert kept.note is not None and "Stand-In" in kept.note and "differs" in kept.note
    position = await hub.store.get_position("prova", "TARI-4")
    assert position is not None and position.status == "PAID"


async def test_receipt_for_an_unknown_notice_is_kept(hub: Hub) -> None:
    rt = RT("rcpt-5", "301999999999999999", "01999999999999999", 100, stand_in=True)
    assert outcome(await hub.post(send_rt(rt))) == ("OK", None)
    kept = await hub.store.get_receipt("prova", "rcpt-5")
    assert kept is not None and kept.iupd is None
    assert kept.note and "no payment option" in kept.note
    raw = await hub.store.raw_receipt("prova", "rcpt-5")
    assert raw is not None and "rcpt-5" in raw


async def test_instalments_move_the_position_along(hub: Hub) -> None:
    stored = await hub.store.create_position("prova", instalments("TARI-6"))
    full, first, second = stored.options
    assert [o.installment_number for o in stored.options] == [None, 1, 2]
    await hub.post(send_rt(RT("r6-1", first.nav, first.iuv, 5000)))
    position = await hub.store.get_position("prova", "TARI-6")
    assert position is not None and position.status == "PARTIALLY_PAID"
    answer = await hub.post(verify(full.nav))
    assert outcome(answer) == ("KO", "PAA_PAGAMENTO_DUPLICATO")
    assert outcome(await hub.post(verify(second.nav))) == ("OK", None)
    await hub.post(send_rt(RT("r6-2", second.nav, second.iuv, 5000)))
    position = await hub.store.get_position("prova", "TARI-6")
    assert position is not None and position.status == "PAID"


@pytest.mark.parametrize(
    ("kwargs", "fault"),
    [
        ({"id_pa": "00000000001"}, "PAA_ID_DOMINIO_ERRATO"),
        ({"broker": "00000000001"}, "PAA_ID_INTERMEDIARIO_ERRATO"),
        ({"station": "77777777777_99"}, "PAA_STAZIONE_INT_ERRATA"),
    ],
)
async def test_caller_faults(hub: Hub, kwargs: dict[str, Any], fault: str) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-7"))
    nav = stored.options[0].nav
    for body in (
        verify(nav, **kwargs),
        get_payment(nav, **kwargs),
        send_rt(RT("r7", nav, stored.options[0].iuv, 8400), **kwargs),
    ):
        answer = await hub.post(body)
        assert outcome(answer) == ("KO", fault)
        assert_valid(answer)
    assert await hub.count(receipts) == 0


async def test_state_faults(hub: Hub) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    draft = await hub.store.create_position("prova", spec("D"), to_publish=False)
    expired = await hub.store.create_position("prova", spec("E", due=past, switch_to_expired=True))
    invalid = await hub.store.create_position("prova", spec("I"))
    async with hub.engine.begin() as conn:
        await conn.execute(
            update(positions).where(positions.c.iupd == "I").values(status="INVALID")
        )
    cases = [
        ("3" + "01" + "0" * 15, "PAA_PAGAMENTO_SCONOSCIUTO"),
        (draft.options[0].nav, "PAA_PAGAMENTO_SCONOSCIUTO"),
        (expired.options[0].nav, "PAA_PAGAMENTO_SCADUTO"),
        (invalid.options[0].nav, "PAA_PAGAMENTO_ANNULLATO"),
    ]
    for nav, fault in cases:
        for body in (verify(nav), get_payment(nav), get_payment(nav, version=2)):
            answer = await hub.post(body)
            assert outcome(answer) == ("KO", fault), nav
            assert_valid(answer)
    # a notice of another creditor is unknown here
    answer = await hub.post(verify(invalid.options[0].nav, fiscal_code="00000000001"))
    assert outcome(answer) == ("KO", "PAA_PAGAMENTO_SCONOSCIUTO")


async def test_syntax_faults(hub: Hub) -> None:
    bad_nav = verify("12345")
    answer = await hub.post(bad_nav, "paVerifyPaymentNotice")
    assert outcome(answer) == ("KO", "PAA_SINTASSI_XSD")
    assert_valid(answer)
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'
    answer = await hub.post(dtd, "paGetPayment")
    assert outcome(answer) == ("KO", "PAA_SINTASSI_XSD")
    assert payload_of(answer).tag.endswith("paGetPaymentRes")
    resp = await hub.client.post("/t/prova/pagopa/station", data=b"not xml")
    assert resp.status == 500 and b"Fault" in await resp.read()
    mismatch = await hub.post(verify("3" + "0" * 17), "paSendRT")
    assert outcome(mismatch) == ("KO", "PAA_SINTASSI_XSD")


async def test_database_error_answers_system_error(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-8"))
    option = stored.options[0]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database gone")

    monkeypatch.setattr(PagopaStore, "store_receipt", broken)
    answer = await hub.post(send_rt(RT("r8", option.nav, option.iuv, 8400)))
    assert outcome(answer) == ("KO", "PAA_SYSTEM_ERROR")
    assert_valid(answer)
    monkeypatch.undo()
    # the Node redelivers: now it is stored
    answer = await hub.post(send_rt(RT("r8", option.nav, option.iuv, 8400)))
    assert outcome(answer) == ("OK", None)
    assert await hub.count(receipts) == 1


async def test_get_payment_records_activation_for_recovery(hub: Hub) -> None:
    stored = await hub.store.create_position("prova", spec("TARI-9"))
    option = stored.options[0]
    assert outcome(await hub.post(get_payment(option.nav))) == ("OK", None)
    later = datetime.now(UTC) + timedelta(hours=1)
    pending = await hub.store.receipts_for_recovery("prova", activated_before=later)
    assert [m.option.nav for m in pending] == [option.nav]
    await hub.post(send_rt(RT("r9", option.nav, option.iuv, 8400)))
    assert await hub.store.receipts_for_recovery("prova", activated_before=later) == []


async def test_create_position_is_idempotent_by_iupd(hub: Hub) -> None:
    first = await hub.store.create_position("prova", spec("P-1"))
    again = await hub.store.create_position("prova", spec("P-1"))
    assert not again.created and again.id == first.id
    assert [o.iuv for o in again.options] == [o.iuv for o in first.options]
    with pytest.raises(PositionConflict) as conflict:
        await hub.store.create_position("prova", spec("P-1", full_name="Maria Rossi"))
    assert conflict.value.differences == ["full_name"]
    assert "Maria" not in str(conflict.value)
    second = await hub.store.create_position("prova", spec("P-2"))
    assert int(second.options[0].iuv[2:15]) == int(first.options[0].iuv[2:15]) + 1
    listed = await hub.store.list_positions("prova", debtor=CF.lower())
    assert [p.iupd for p in listed] == ["P-1", "P-2"]
    page = await hub.store.list_positions("prova", after=listed[0].id, limit=1)
    assert [p.iupd for p in page] == ["P-2"]
    found = await hub.store.find_option("prova", second.options[0].nav)
    assert found is not None and found.iupd == "P-2"
    assert await hub.count(payment_options) == 2
    assert await hub.count(outbox, outbox.c.kind == GPD_CREATE_KIND) == 0  # station mode


async def test_gpd_mode_queues_the_creation(db_url: str, tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path, "http://127.0.0.1:9/hook", mode="gpd")
    app = create_app(config, apply_migrations=True, run_workers=False)
    async with TestClient(TestServer(app)) as client:
        hub = Hub(client, app, config, tmp_path)
        await hub.store.create_position("prova", spec("G-1"))
        await hub.store.create_position("prova", spec("G-1"))
        assert await hub.count(outbox, outbox.c.kind == GPD_CREATE_KIND) == 1

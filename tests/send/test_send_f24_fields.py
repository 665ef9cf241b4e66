"""Every field of the F24 metadata checked (the bundle's ``F24Standard``, ``F24Simplified``,
``F24Excise``, ``F24Elid``), and F24 payments told to SEND (``POST /delivery/events/payment/
f24``), on SQLite and PostgreSQL:

- the hub (connector models) and the twin (its own schema tables) take the same good files
  and refuse the same bad ones, each naming the field (``f24Standard.localTax.records[0].
  municipality``); the API answers 400 naming it, the import names row, column and field,
  the twin refuses with F24_METADATA_NOT_VALID naming it;
- an F24 payment recorded through the API (Idempotency-Key) is queued, told to SEND once the
  notification is accepted, and SEND's timeline gets one ``PAYMENT`` (``idF24``, amount)
  and the status PAID; a repeated call or event adds nothing; the twin refuses unknown
  IUNs and recipients (404) and bad bodies (400) naming the field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from send_stack import Stack
from test_send_f24 import METADATA, f24_request, outcome, post, run, with_f24
from test_send_import import write
from test_send_pagopa import CF, Hub, drain, hub, twin_notification  # noqa: F401
from test_send_sandbox import call, headers

from sportello.app import ENGINE
from sportello.connectors.send.f24 import f24_metadata_problems
from sportello.platforms.send.f24_payments import F24_PAYMENT_KIND
from sportello.sandbox.send.app import OTHER_API_KEY, SEND_STATE
from sportello.sandbox.send.validation import F24_KINDS_SCHEMAS, check
from sportello.schema import outbox

#: An IMU assessment on the standard F24: the taxpayer, the local tax section (the comune's
#: cadastral code, the tributo code, the year) and one line to the Erario.
IMU: dict[str, Any] = {
    "f24Standard": {
        "taxPayer": {
            "taxCode": CF,
            "isNotTaxYear": False,
            "person": {
                "personalData": {
                    "surname": "ROSSI",
                    "name": "MARIO",
                    "birthDate": "01-01-1980",
                    "sex": "M",
                    "birthPlace": "ROMA",
                    "birthProvince": "RM",
                },
                "taxAddress": {"municipality": "ROMA", "province": "RM", "address": "VIA ROMA 1"},
            },
        },
        "treasury": {
            "records": [{"taxType": "1989", "year": "2025", "debit": "1500", "applyCost": False}]
        },
        "localTax": {
            "operationId": "ABCDEFGHIJ12345678",
            "records": [
                {
                    "municipality": "H501",
                    "taxType": "3918",
                    "installment": "0101",
                    "year": "2025",
                    "numberOfProperties": "002",
                    "fullPayment": True,
                    "debit": "43200",
                    "applyCost": True,
                }
            ],
        },
    }
}


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``path`` (dots, ``[i]``) set to ``value`` (None: removed)."""
    out = copy.deepcopy(doc)
    parts = path.replace("[", ".").replace("]", "").split(".")
    node: Any = out
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


BAD = [
    ("f24Standard.localTax.records[0].municipality", "h501"),
    ("f24Standard.localTax.records[0].municipality", None),
    ("f24Standard.localTax.records[0].taxType", "39A8"),
    ("f24Standard.localTax.records[0].taxType", None),
    ("f24Standard.localTax.records[0].applyCost", None),
    ("f24Standard.localTax.records[0].applyCost", "true"),
    ("f24Standard.localTax.records[0].debit", 43200),
    ("f24Standard.localTax.records[0].debit", "12"),
    ("f24Standard.localTax.records[0].year", "3025"),
    ("f24Standard.localTax.operationId", "SHORT"),
    ("f24Standard.treasury.records[0].taxType", "19"),
    ("f24Standard.taxPayer.person.personalData.birthProvince", "Roma"),
    ("f24Standard.taxPayer.person.taxAddress.address", "via roma 1"),
    ("f24Standard.taxPayer.isNotTaxYear", "no"),
    ("f24Standard.localTax.records", {"municipality": "H501"}),
]


def _twin_problems(data: dict[str, Any]) -> list[str]:
    [kind] = list(data)
    return [where for _, where, _ in check(F24_KINDS_SCHEMAS[kind], data[kind], kind)]


def test_the_hub_and_the_twin_agree_field_by_field() -> None:
    assert f24_metadata_problems(IMU) == [] and _twin_problems(IMU) == []
    assert f24_metadata_problems(METADATA) == [] and _twin_problems(METADATA) == []
    for path, value in BAD:
        bad = _set(IMU, path, value)
        hub_fields = [field for field, _ in f24_metadata_problems(bad)]
        assert hub_fields == [path], (path, value, hub_fields)
        assert _twin_problems(bad) == [path], (path, value)
    # the simplified F24 needs each record's section; the excise one its records' applyCost
    simplified = _set(METADATA, "f24Simplified.payments.records[0].section", None)
    assert [f for f, _ in f24_metadata_problems(simplified)] == [
        "f24Simplified.payments.records[0].section"
    ]
    assert _twin_problems(simplified) == ["f24Simplified.payments.records[0].section"]
    excise = {"f24Excise": {"excise": {"records": [{"institution": "AB", "month": "21"}]}}}
    expected = ["f24Excise.excise.records[0].applyCost", "f24Excise.excise.records[0].month"]
    assert sorted(f for f, _ in f24_metadata_problems(excise)) == expected
    assert sorted(_twin_problems(excise)) == expected
    elid = {"f24Elid": {"treasury": {"records": [{"type": "F", "applyCost": False}]}}}
    assert f24_metadata_problems(elid) == [] and _twin_problems(elid) == []


async def test_the_api_names_the_bad_field(hub: Hub) -> None:  # noqa: F811
    good = {"title": "F24 IMU 2025", "apply_cost": True, "metadata": IMU}
    status, answer = await post(hub, "API-F24-IMU", [good])
    assert status == 202, answer
    bad = _set(IMU, "f24Standard.localTax.records[0].municipality", "h501")
    status, answer = await post(hub, "API-F24-BAD", [{**good, "metadata": bad}])
    assert status == 400
    assert answer["detail"] == (
        "f24.0.metadata: f24Standard.localTax.records[0].municipality: must match ^[0-9A-Z]{4}$"
    )
    await drain(hub)
    assert twin_notification(hub, "API-F24-IMU").state == "ACCEPTED"


async def test_the_import_names_row_column_and_field(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "imu.json").write_text(json.dumps(IMU))
    (folder / "bad.json").write_text(
        json.dumps(_set(IMU, "f24Standard.localTax.records[0].taxType", None))
    )
    rows = [with_f24(1, "imu.json"), with_f24(2, "bad.json")]
    result = await run(hub, write(folder, rows))
    assert result.problems == [
        "fines.csv: row 3: f24Metadata: f24Standard.localTax.records[0].taxType: required"
    ]


async def test_the_twin_names_the_bad_field(stack: Stack) -> None:
    bad = _set(IMU, "f24Standard.localTax.records[0].debit", "12")
    answer = await outcome(stack, await f24_request(stack, json.dumps(bad).encode()))
    assert answer["notificationRequestStatus"] == "REFUSED", answer
    [error] = answer["errors"]
    assert error["code"] == "F24_METADATA_NOT_VALID"
    assert error["detail"] == 'f24Standard.localTax.records[0].debit: must match "^[0-9]{3,15}$"'
    good = await outcome(stack, await f24_request(stack, json.dumps(IMU).encode()))
    assert good["notificationRequestStatus"] == "ACCEPTED", good


# -- F24 payment events ------------------------------------------------------------------


async def pay(hub: Hub, nid: int, key: str, **body: Any) -> tuple[int, Any]:  # noqa: F811
    r = await hub.client.post(
        f"/api/v1/tenants/demo/send/notifications/{nid}/f24-payments",
        json={"recipient": 0, "amount": 43300, "paid_at": "2026-03-02T10:15:00+01:00", **body},
        headers={"Authorization": f"Bearer {hub.keys['demo']}", "Idempotency-Key": key},
    )
    return r.status, await r.json()


def payments(hub: Hub, protocol: str) -> list[dict[str, Any]]:  # noqa: F811
    n = twin_notification(hub, protocol)
    return [e["details"] for e in n.timeline if e["category"] == "PAYMENT"]


async def jobs(hub: Hub) -> int:  # noqa: F811
    async with hub.app[ENGINE].connect() as c:
        rows = await c.execute(outbox.select().where(outbox.c.kind == F24_PAYMENT_KIND))
        return len(rows.all())


async def test_an_f24_payment_reaches_send_once(hub: Hub) -> None:  # noqa: F811
    f24 = {"title": "F24 IMU 2025", "apply_cost": False, "metadata": IMU}
    status, queued = await post(hub, "F24-PAID-1", [f24])
    assert status == 202, queued
    nid = queued["id"]
    # recorded before SEND accepted the notification: told once it is
    status, answer = await pay(hub, nid, "pay-1")
    assert status == 202, answer
    assert answer == {
        "id": nid,
        "recipient": 0,
        "amount": 43300,
        "paid_at": "2026-03-02T09:15:00Z",
        "status": "queued",
    }
    again = await pay(hub, nid, "pay-1")
    assert again == (202, answer)  # the same key: the stored answer, nothing queued twice
    assert await jobs(hub) == 1
    await drain(hub)
    [paid] = payments(hub, "F24-PAID-1")
    assert paid["amount"] == 43300 and paid["recIndex"] == 0 and paid["idF24"]
    assert paid["paymentSourceChannel"] == "PA"
    assert paid["eventTimestamp"].startswith("2026-03-02T09:15:00")
    assert twin_notification(hub, "F24-PAID-1").status == "PAID"
    # the same event told again (a lost answer retried): SEND keeps one PAYMENT
    iun = twin_notification(hub, "F24-PAID-1").iun
    event = {
        "iun": iun,
        "paymentDate": "2026-03-02T09:15:00Z",
        "recipientTaxId": CF,
        "recipientType": "PF",
        "amount": 43300,
    }
    hdrs = await headers(hub.stack)
    status, _, _ = await call(
        hub.stack, "POST", "/delivery/events/payment/f24", hdrs=hdrs, json={"events": [event]}
    )
    assert status == 204
    assert len(payments(hub, "F24-PAID-1")) == 1
    # a second instalment paid another day: a second PAYMENT
    status, _ = await pay(hub, nid, "pay-2", paid_at="2026-04-02T10:00:00Z", amount=100)
    assert status == 202
    await drain(hub)
    assert [p["amount"] for p in payments(hub, "F24-PAID-1")] == [43300, 100]


async def test_f24_payments_refused_naming_the_field(hub: Hub) -> None:  # noqa: F811
    f24 = {"title": "F24 IMU 2025", "apply_cost": False, "metadata": IMU}
    status, queued = await post(hub, "F24-PAID-2", [f24])
    assert status == 202
    nid = queued["id"]
    cases = [
        ({"recipient": 4}, 400, "recipient: no such recipient"),
        ({"amount": 0}, 400, "amount: "),
        ({"paid_at": "2026-03-02T10:15:00"}, 400, "paid_at: "),
        ({"paid_at": "2999-01-01T00:00:00Z"}, 400, "paid_at: in the future"),
        ({"extra": 1}, 400, "extra: "),
    ]
    for n, (change, code, detail) in enumerate(cases):
        status, answer = await pay(hub, nid, f"bad-{n}", **change)
        assert (status, answer["detail"][: len(detail)]) == (code, detail), (change, answer)
    r = await hub.client.post(
        f"/api/v1/tenants/other/send/notifications/{nid}/f24-payments",
        json={"recipient": 0, "amount": 1, "paid_at": "2026-03-02T10:15:00Z"},
        headers={"Authorization": f"Bearer {hub.keys['other']}", "Idempotency-Key": "x"},
    )
    assert r.status == 404  # another tenant's notification
    assert await jobs(hub) == 0


async def test_a_recipient_without_f24_gets_409(hub: Hub) -> None:  # noqa: F811
    nav = await hub.position("demo", "F24-NONE")
    status, queued = await hub.notify("F24-NONE-1", nav, apply_cost=False)
    assert status == 202, queued
    status, answer = await pay(hub, queued["id"], "none-1")
    assert status == 409 and answer["detail"].startswith("recipient: this recipient has no F24")


EVENT_CASES: list[tuple[dict[str, Any], int, str, str]] = [
    ({"iun": "AAAA-AAAA-AAAA-202601-A-1"}, 404, "PN_GENERIC_NOT_FOUND", "events[0].iun"),
    (
        {"recipientTaxId": "VRDGPP80A01H501X"},
        404,
        "PN_GENERIC_NOT_FOUND",
        "events[0].recipientTaxId",
    ),
    ({"recipientType": "PG"}, 404, "PN_GENERIC_NOT_FOUND", "events[0].recipientTaxId"),
    (
        {"recipientType": "XX"},
        400,
        "PN_GENERIC_INVALIDPARAMETER_PATTERN",
        "events[0].recipientType",
    ),
    ({"iun": "nope"}, 400, "PN_GENERIC_INVALIDPARAMETER_SIZE", "events[0].iun"),
    ({"paymentDate": "2026-03-02"}, 400, "PN_GENERIC_INVALIDPARAMETER", "events[0].paymentDate"),
    ({"amount": "1"}, 400, "PN_GENERIC_INVALIDPARAMETER", "events[0].amount"),
    ({"amount": None}, 400, "PN_GENERIC_INVALIDPARAMETER_REQUIRED", "events[0].amount"),
]


async def test_the_twin_checks_f24_payment_events(stack: Stack) -> None:
    answer = await outcome(stack, await f24_request(stack, json.dumps(IMU).encode()))
    assert answer["notificationRequestStatus"] == "ACCEPTED", answer
    base = {
        "iun": answer["iun"],
        "paymentDate": "2026-03-02T09:15:00Z",
        "recipientTaxId": CF,
        "recipientType": "PF",
        "amount": 43300,
    }
    hdrs = await headers(stack)
    notification = stack.send_app[SEND_STATE].by_iun[answer["iun"]]
    for change, status, code, element in EVENT_CASES:
        event = {**base, **change}
        got, body, _ = await call(
            stack, "POST", "/delivery/events/payment/f24", hdrs=hdrs, json={"events": [event]}
        )
        assert got == status, (change, body)
        assert (body["errors"][0]["code"], body["errors"][0]["element"]) == (code, element)
        assert not [e for e in notification.timeline if e["category"] == "PAYMENT"]
    # another sender cannot tell SEND of this notification's payments
    other = await headers(stack, OTHER_API_KEY)
    got, body, _ = await call(
        stack, "POST", "/delivery/events/payment/f24", hdrs=other, json={"events": [base]}
    )
    assert got == 404 and body["errors"][0]["element"] == "events[0].iun"
    got, _, _ = await call(
        stack, "POST", "/delivery/events/payment/f24", hdrs=hdrs, json={"events": [base]}
    )
    assert got == 204
    assert notification.status == "PAID"

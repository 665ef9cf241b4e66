"""An attacker's review of ``POST /api/v1/tenants/{t}/send/notifications/{id}/f24-payments``
(SQLite and PostgreSQL): hostile bodies (instants at the ends of the calendar, invalid UTF-8,
deep nesting, arrays, duplicate keys, huge numbers, NUL bytes, no content type, a body in
many TCP writes), odd path parameters, no key or another tenant's key, and the same request
20 times at once (one job; the key reused with another body: 422, no second effect)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_send_f24 import post
from test_send_f24_fields import IMU, jobs
from test_send_pagopa import Hub, hub  # noqa: F401  (the fixture)

from sportello.platforms.send.f24 import f24_problem

URL = "/api/v1/tenants/demo/send/notifications/{nid}/f24-payments"
GOOD = b'{"recipient": 0, "amount": 43300, "paid_at": "2026-03-02T10:15:00+01:00"}'


async def _notification(hub: Hub, protocol: str) -> int:  # noqa: F811
    f24 = {"title": "F24 IMU 2025", "apply_cost": False, "metadata": IMU}
    status, queued = await post(hub, protocol, [f24])
    assert status == 202, queued
    return int(queued["id"])


def _auth(hub: Hub, key: str, tenant: str = "demo") -> dict[str, str]:  # noqa: F811
    return {"Authorization": f"Bearer {hub.keys[tenant]}", "Idempotency-Key": key}


HOSTILE: list[tuple[bytes, str]] = [
    (b'{"recipient": 0, "amount": 1, "paid_at": "0001-01-01T00:00:00+01:00"}', "paid_at"),
    (b'{"recipient": 0, "amount": 1, "paid_at": "0001-01-01T00:30:00+23:59"}', "paid_at"),
    (b'{"recipient": 0, "amount": 1, "paid_at": "9999-12-31T23:59:59-14:00"}', "paid_at"),
    (b'{"recipient": 0, "amount": 1, "paid_at": "2026-03-02T10:15:00+01:00\\u0000"}', "paid_at"),
    (b'{"recipient": 1e400, "amount": 1, "paid_at": "2026-03-02T10:15:00Z"}', "recipient"),
    (
        b'{"recipient": 0, "amount": 99999999999999999999999, "paid_at": "2026-03-02T10:15:00Z"}',
        "amount",
    ),
    (b'{"recipient": "0", "amount": [1], "paid_at": "2026-03-02T10:15:00Z"}', "amount"),
    (b'{"recipient": {}, "amount": 1, "paid_at": "2026-03-02T10:15:00Z"}', "recipient"),
    (b"[" * 5000 + b"]" * 5000, "body"),
    (b'{"a":' * 3000 + b"1" + b"}" * 3000, ""),
    (b"[1, 2, 3]", "body"),
    (b"\xff\xfe\x00{}", ""),
    (
        b'{"recipient": 0, "recipient": "x", "amount": 1, "paid_at": "2026-03-02T10:15:00Z"}',
        "recipient",
    ),
    (b"null", "body"),
    (b'"\x00"', "body"),
]


@pytest.mark.parametrize(("raw", "field"), HOSTILE)
async def test_hostile_f24_payment_bodies_are_400_naming_the_field(
    hub: Hub,  # noqa: F811
    raw: bytes,
    field: str,
) -> None:
    nid = await _notification(hub, "F24-ATTACK")
    r = await hub.client.post(
        URL.format(nid=nid),
        data=raw,
        headers={**_auth(hub, "hostile"), "Content-Type": "application/json"},
    )
    assert r.status == 400, (raw[:80], r.status, await r.text())
    assert r.content_type == "application/problem+json"
    assert (await r.json())["detail"].startswith(field), await r.text()
    assert await jobs(hub) == 0


async def test_no_content_type_and_a_body_in_many_writes(hub: Hub) -> None:  # noqa: F811
    nid = await _notification(hub, "F24-SPLIT")

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(GOOD), 3):
            yield GOOD[i : i + 3]
            await asyncio.sleep(0)

    r = await hub.client.post(URL.format(nid=nid), data=pieces(), headers=_auth(hub, "split"))
    assert r.status == 202, await r.text()
    r = await hub.client.post(
        URL.format(nid=nid), data=GOOD, headers={**_auth(hub, "plain"), "Content-Type": ""}
    )
    assert r.status == 202, await r.text()
    assert await jobs(hub) == 2


@pytest.mark.parametrize("nid", ["x", "%C2%B2", "1" * 40, "-1", "..", "%2e%2e", "%00", "1.0", "９"])
async def test_odd_notification_ids_are_404(hub: Hub, nid: str) -> None:  # noqa: F811
    r = await hub.client.post(URL.format(nid=nid), data=GOOD, headers=_auth(hub, f"odd-{nid}"))
    assert r.status == 404, (nid, r.status, await r.text())
    assert r.content_type == "application/problem+json"


async def test_no_key_and_another_tenants_key(hub: Hub) -> None:  # noqa: F811
    nid = await _notification(hub, "F24-TENANT")
    r = await hub.client.post(URL.format(nid=nid), data=GOOD, headers={"Idempotency-Key": "a"})
    assert r.status == 401 and r.content_type == "application/problem+json"
    # the other tenant's key on demo's path, and on its own path with demo's notification
    r = await hub.client.post(URL.format(nid=nid), data=GOOD, headers=_auth(hub, "b", "other"))
    assert r.status == 404, r.status
    other = f"/api/v1/tenants/other/send/notifications/{nid}/f24-payments"
    r = await hub.client.post(other, data=GOOD, headers=_auth(hub, "c", "other"))
    assert r.status == 404
    assert await jobs(hub) == 0


async def test_twenty_identical_payments_at_once_queue_one_job(hub: Hub) -> None:  # noqa: F811
    nid = await _notification(hub, "F24-TWENTY")
    answers = await asyncio.gather(
        *(
            hub.client.post(URL.format(nid=nid), data=GOOD, headers=_auth(hub, "twenty"))
            for _ in range(20)
        )
    )
    statuses = [r.status for r in answers]
    assert set(statuses) <= {202, 409}, statuses
    bodies: list[Any] = [await r.json() for r in answers if r.status == 202]
    assert bodies and all(b == bodies[0] for b in bodies)
    assert await jobs(hub) == 1
    # the same key with another amount: refused, nothing queued
    other = GOOD.replace(b"43300", b"100")
    r = await hub.client.post(URL.format(nid=nid), data=other, headers=_auth(hub, "twenty"))
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert await jobs(hub) == 1


def _deep(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(n):
        out = {"a": out}
    return out


@pytest.mark.parametrize(
    "metadata",
    [
        _deep(60),
        {"f24Standard": {"taxPayer": {"taxCode": "\x00" * 16}}},
        {"f24Standard": {"treasury": {"records": [{"debit": 10**40}]}}},
        {"f24Standard": {"treasury": {"records": "x" * 1000}}},
        {"f24Standard": None},
        {"f24Standard": {}, "f24Simplified": {}},
        {"": {"": {"": 1e308}}},
    ],
)
async def test_hostile_f24_metadata_is_400_never_500(hub: Hub, metadata: Any) -> None:  # noqa: F811
    f24 = {"title": "F24", "apply_cost": False, "metadata": metadata}
    status, answer = await post(hub, "F24-HOSTILE", [f24])
    assert status == 400, (status, answer)
    assert answer["detail"].startswith("f24.0"), answer


@pytest.mark.parametrize(
    "content", [b"[" * 100_000, b'{"f24Standard":' * 15_000, b"\xff\xfe", b"1e999", b"[]"]
)
def test_an_f24_file_nested_past_the_stack_is_refused_not_raised(content: bytes) -> None:
    # an imported F24 metadata file (the import reads it from the documents folder)
    problem = f24_problem(content)
    assert problem is not None and ("JSON" in problem), problem


def _notification_body(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pa_protocol_number": "NUL-1",
        "subject": "Avviso di accertamento IMU 2026",
        "taxonomy_code": "010101P",
        "recipients": [
            {
                "recipientType": "PF",
                "taxId": "RSSMRA80A01H501U",
                "denomination": "Mario Rossi",
                "physicalAddress": {"address": "Via Roma 1", "municipality": "Roma"},
            }
        ],
        "documents": [{"title": "Avviso", "content_base64": "JVBERi0xLjQK"}],
    }
    body.update(change)
    return body


@pytest.mark.parametrize(
    "change",
    [
        {"pa_protocol_number": "NUL\x00"},
        {"subject": "a\x00b"},
        {"abstract": "\x00"},
        {"documents": [{"title": "A\x00", "content_base64": "JVBERi0xLjQK"}]},
        {"f24": [{"title": "F\x00", "apply_cost": False, "metadata": IMU}]},
    ],
)
async def test_nul_bytes_in_a_notification_are_400_naming_the_field(hub: Hub, change: Any) -> None:  # noqa: F811
    r = await hub.client.post(
        "/api/v1/tenants/demo/send/notifications",
        json=_notification_body(**change),
        headers={"Authorization": f"Bearer {hub.keys['demo']}", "Idempotency-Key": "nul"},
    )
    assert r.status == 400, (change, r.status, await r.text())
    assert r.content_type == "application/problem+json"


@pytest.mark.parametrize("key", [b"\xff\xfe", "chiave-è".encode(), b"k\x80y"])
async def test_an_idempotency_key_of_odd_bytes_is_never_500(hub: Hub, key: bytes) -> None:  # noqa: F811
    nid = await _notification(hub, "F24-KEY")
    host, port = hub.client.server.host, hub.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {URL.format(nid=nid)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {hub.keys['demo']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(GOOD)}\r\nConnection: close\r\n"
    ).encode()
    writer.write(head + b"Idempotency-Key: " + key + b"\r\n\r\n")
    await writer.drain()
    writer.write(GOOD[:10])  # and the body in two writes
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(GOOD[10:])
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    status = int(status_line.split()[1])
    assert status in (202, 400), status_line

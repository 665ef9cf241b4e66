"""One live SEND notification per pagoPA notice, enforced by the database (SQLite and
PostgreSQL): 20 simultaneous API requests naming the same notice (different protocol numbers
and Idempotency-Keys) queue exactly one notification; the 19 others get 409 problem+json
naming the field, and nothing of theirs is stored. Once the notification is no longer live
(failed, refused, cancelled) the notice may be sent in a new one."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from test_send_pagopa import Hub, hub  # noqa: F401

from sportello.app import SERVICES
from sportello.platforms.send.service import FAILED, _set
from sportello.platforms.send.tables import send_documents, send_notifications, send_payments
from sportello.schema import outbox

FIELD = "recipients.0.payments.0.pagoPa.noticeCode"


async def test_twenty_simultaneous_requests_for_one_notice_queue_one(
    hub: Hub,  # noqa: F811
) -> None:
    nav = await hub.position("demo", "RACE-1")
    answers = await asyncio.gather(*(hub.notify(f"RACE-{n:02d}", nav) for n in range(20)))
    accepted = [body for status, body in answers if status == 202]
    refused = [body for status, body in answers if status != 202]
    assert len(accepted) == 1, answers
    assert {status for status, _ in answers} == {202, 409}
    for body in refused:
        assert body["status"] == 409 and body["title"] == "Conflict"
        assert body["detail"].startswith(f"{FIELD}: notification {accepted[0]['id']} ")
    engine = hub.app[SERVICES].engine
    async with engine.connect() as c:
        rows = (await c.execute(select(send_notifications.c.id))).scalars().all()
        live = (await c.execute(select(send_payments.c.live_notice))).scalars().all()
        documents = (await c.execute(select(func.count()).select_from(send_documents))).scalar_one()
        jobs = (await c.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert rows == [accepted[0]["id"]]
    assert live == [nav]
    assert documents == 2  # the act and the notice PDF of the one notification
    assert jobs == 1  # its send.upload
    # a problem+json answer, as every refusal of the API
    status, again = await hub.notify("RACE-99", nav)
    assert status == 409 and again["type"] and again["detail"].startswith(FIELD)
    # the notification fails: the notice is free again
    async with engine.begin() as c:
        assert await _set(c, accepted[0]["id"], hub.app[SERVICES].clock.now(), status=FAILED)
    status, body = await hub.notify("RACE-100", nav)
    assert status == 202, body
    async with engine.connect() as c:
        live = (
            await c.execute(
                select(send_payments.c.notification_id, send_payments.c.live_notice).order_by(
                    send_payments.c.id
                )
            )
        ).all()
    assert [tuple(r) for r in live] == [(accepted[0]["id"], None), (body["id"], nav)]

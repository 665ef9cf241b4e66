"""F24 payments told to SEND (``POST /delivery/events/payment/f24``).

An F24 is paid at a bank, a post office or by home banking: pagoPA never sees it, and SEND
learns of it only from the sender (SEND B2B bundle, ``paymentEventsRequestF24``: "eventi di
chiusura di una o più posizioni debitorie di tipo F24"). When the comune's accounting learns
that a recipient paid the F24 of a notification, it records it through the API,
``POST /api/v1/tenants/{tenant}/send/notifications/{id}/f24-payments`` with an
``Idempotency-Key`` (``{"recipient": 0, "amount": 12345, "paid_at": "..."}``): the hub
checks that the recipient has an F24 payment in the notification and queues a
``send.f24_payment`` job in the same transaction (its outbox idempotency key made from the
API's key, so a repeated call queues nothing twice). The job waits for SEND's acceptance
(the IUN), then tells SEND (``PaymentEventF24``: IUN, the recipient's tax id and type, the
instant, the amount); SEND adds ``PAYMENT`` to the recipient's timeline and the
notification becomes PAID (the progress stream brings it back). Nothing is told for a
notification refused, failed or cancelled.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from sportello.api.bodies import read_body
from sportello.api.core import (
    PREFIX,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    path_id,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, operation
from sportello.appkeys import CLOCK, CONFIG
from sportello.connectors.send import PaymentEventF24
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob, enqueue_many
from sportello.services import HubServices

from .tables import send_notifications

__all__ = ["F24_PAYMENT_KIND", "F24PaymentIn", "f24_payment_handler", "routes"]

#: The outbox kind that tells SEND an F24 was paid.
F24_PAYMENT_KIND = "send.f24_payment"
#: How long an F24 payment event waits for its notification's acceptance: 1,000 tries 30 s
#: apart (as the pagoPA payment events).
F24_WAIT_SECONDS, F24_ATTEMPTS = 30.0, 1000
_OVER = ("refused", "failed", "cancelled")
_TOLD = ("accepted", "cancelling")


class F24PaymentIn(BaseModel):
    """An F24 of the notification paid by one of its recipients."""

    model_config = ConfigDict(extra="forbid")

    recipient: int = Field(ge=0, description="the recipient's index in the notification")
    amount: int = Field(gt=0, le=2**31 - 1, description="euro cents paid")
    paid_at: AwareDatetime = Field(description="when it was paid (with its UTC offset)")


class F24PaymentQueued(BaseModel):
    id: int = Field(description="the notification")
    recipient: int
    amount: int
    paid_at: str
    status: str = Field(description="queued: told to SEND once the notification is accepted")


def _where(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{field}: {error['msg']}"


@operation(
    "recordSendF24Payment",
    "Tell SEND that a recipient paid an F24 of the notification (scope write), through the "
    "outbox (POST /delivery/events/payment/f24 once the notification is accepted)",
    path={"notification_id": int},
    body=F24PaymentIn,
    idempotent=True,
    responses={
        202: Answer(F24PaymentQueued, "Payment event queued"),
        409: "The notification is refused, failed or cancelled, or the recipient has no F24",
        422: "An Idempotency-Key reused for another request",
    },
    scope="write",
)
@handles_problems
async def record_f24_payment(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    key = idempotency_key(request)
    notification_id = path_id(request, "notification_id", "notification")
    raw = await read_body(request)
    try:
        body = F24PaymentIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _Problem(400, "Bad Request", _where(exc)) from None
    now = request.app[CLOCK].now()
    try:
        paid_at = body.paid_at.astimezone(UTC)
    except OverflowError:  # year 1 at +01:00, year 9999 at -14:00: no such instant in UTC
        raise _Problem(400, "Bad Request", "paid_at: out of range") from None
    if paid_at > now:
        raise _Problem(400, "Bad Request", "paid_at: in the future")

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        row = (
            await conn.execute(
                select(send_notifications.c.status, send_notifications.c.request).where(
                    send_notifications.c.id == notification_id,
                    send_notifications.c.tenant_id == tenant_id,
                )
            )
        ).first()
        if row is None:
            raise _Problem(404, "Not Found", f"notification {notification_id} not found")
        if row.status in _OVER:
            raise _Problem(
                409, "Conflict", f"status: the notification is {row.status}: nothing to tell SEND"
            )
        recipients = json.loads(row.request).get("recipients") or []
        if body.recipient >= len(recipients):
            raise _Problem(400, "Bad Request", "recipient: no such recipient")
        payments = recipients[body.recipient].get("payments") or []
        if not any(p.get("f24") for p in payments):
            raise _Problem(
                409, "Conflict", "recipient: this recipient has no F24 payment in the notification"
            )
        stamp = paid_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        await enqueue_many(
            conn,
            [
                NewJob(
                    tenant_id,
                    F24_PAYMENT_KIND,
                    {
                        "notification_id": notification_id,
                        "rec_index": body.recipient,
                        "amount": body.amount,
                        "paid_at": stamp,
                    },
                    idempotency_key=f"{F24_PAYMENT_KIND}:{tenant_id}:{notification_id}:{key}",
                    max_attempts=F24_ATTEMPTS,
                )
            ],
            now=now,
            default_max_attempts=request.app[CONFIG].outbox.max_attempts,
        )
        return 202, F24PaymentQueued(
            id=notification_id,
            recipient=body.recipient,
            amount=body.amount,
            paid_at=stamp,
            status="queued",
        ).model_dump()

    return await idempotent(request, tenant_id, raw, produce)


def f24_payment_handler(services: HubServices) -> Handler:
    """``send.f24_payment``: tell SEND an F24 of the notification was paid; waits for the
    acceptance, nothing to tell once it is refused, failed or cancelled."""
    from .service import SendClients, StillWaiting

    clients = SendClients(services)

    async def handle(job: Job) -> Delivery:
        p = job.payload
        async with services.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        send_notifications.c.status,
                        send_notifications.c.iun,
                        send_notifications.c.request,
                    ).where(
                        send_notifications.c.id == int(p["notification_id"]),
                        send_notifications.c.tenant_id == job.tenant_id,
                    )
                )
            ).first()
        if row is None or row.status in _OVER:
            return Delivery()
        if row.status not in _TOLD or not row.iun:
            raise StillWaiting(
                f"notification {row.status}: the F24 payment is told once it is accepted",
                platform="send",
                retry_after=F24_WAIT_SECONDS,
            )
        recipient = json.loads(row.request)["recipients"][int(p["rec_index"])]
        event = PaymentEventF24(
            iun=row.iun,
            paymentDate=datetime.fromisoformat(str(p["paid_at"]).replace("Z", "+00:00")),
            recipientTaxId=recipient["taxId"],
            recipientType=recipient["recipientType"],
            amount=int(p["amount"]),
        )
        await clients.get(job.tenant_id).payment_events_f24([event])
        return Delivery(remote_id=row.iun)

    return handle


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/send/notifications"
    return [web.post(base + "/{notification_id}/f24-payments", record_f24_payment)]

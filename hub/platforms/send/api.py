"""REST API routes for SEND notifications (``/api/v1/tenants/{tenant}/send/...``)."""

from __future__ import annotations

import binascii
import copy
import json
import math
import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pybase64
from aiohttp import web
from pydantic import Field, ValidationError
from sqlalchemy import select

from sportello import audit
from sportello.api import models
from sportello.api.bodies import read_body
from sportello.api.core import (
    PAGING,
    PREFIX,
    _clean,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    page,
    page_params,
    path_id,
    problem,
    request_digest,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, Query, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SERVICES
from sportello.connectors import fiscal_code as fiscal_codes
from sportello.connectors.send import sha256_b64
from sportello.db import reading
from sportello.hookspecs import NoticeRefused, NoticeRequest
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.send.api_models import (
    CancelQueued,
    Domicile,
    NotificationDetail,
    NotificationIn,
    NotificationQueued,
    NotificationSummary,
)
from sportello.platforms.send.f24 import f24_payment, f24_problem
from sportello.platforms.send.inad import (
    INAD_DOMICILES,
    InadFailed,
    InadNotConfigured,
    Requester,
)
from sportello.platforms.send.payments import (
    NoticeAttachment,
    PaymentProblem,
    check_async_fees,
    link_mode,
    notice_attachments,
)
from sportello.platforms.send.service import (
    ACCEPTED,
    CANCEL_KIND,
    CANCELLING,
    QUEUED,
    SEND_QUEUE,
    ProtocolTaken,
    QueuedRequest,
    check_request,
    queue_notification,
    sender_fields,
)
from sportello.platforms.send.settings import send_settings
from sportello.platforms.send.tables import send_events, send_notifications
from sportello.schema import idempotency_keys

_TITLES = {400: "Bad Request", 409: "Conflict"}
#: A position the hub creates is due at the end of its day, Rome time.
_ROME = ZoneInfo("Europe/Rome")


async def _answered(request: web.Request, tenant_id: str) -> bool:
    """Whether this Idempotency-Key already has a stored answer."""
    async with reading(request.app[ENGINE]) as conn:
        row = (
            await conn.execute(
                select(idempotency_keys.c.key).where(
                    idempotency_keys.c.tenant_id == tenant_id,
                    idempotency_keys.c.key == idempotency_key(request),
                )
            )
        ).first()
    return row is not None


def _where(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _prepare(
    request: web.Request, tenant_id: str, raw: bytes
) -> tuple[NotificationIn, dict[str, Any], list[bytes], list[bytes], list[str]]:
    """The body checked as SEND would check it (before anything is queued), the request to
    store (without documents), the documents' bytes, the F24 metadata files (JSON) and the
    documents' SHA-256 (base64); else a 400 naming the field."""
    tenant = request.app[CONFIG].tenant(tenant_id)
    if tenant is None or send_settings(tenant) is None:
        raise _Problem(409, "Conflict", "SEND is not configured for this tenant ([tenants.send])")
    try:
        body = NotificationIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _Problem(400, "Bad Request", _where(exc)) from None
    contents: list[bytes] = []
    for i, doc in enumerate(body.documents):
        try:
            # only the alphabet and the padding where it belongs, as base64.b64decode(...,
            # validate=True), with SIMD: 100 KB in microseconds (the stdlib's: a millisecond)
            contents.append(pybase64.b64decode(doc.content_base64, validate=True))
        except (binascii.Error, ValueError):
            raise _Problem(
                400, "Bad Request", f"documents.{i}.content_base64: not valid base64"
            ) from None
    recipients = [r.wire() for r in body.recipients]
    f24_files: list[bytes] = []
    for k, f24 in enumerate(body.f24):
        where = f"f24.{k}"
        if f24.recipient >= len(recipients):
            raise _Problem(400, "Bad Request", f"{where}.recipient: no such recipient")
        content = json.dumps(f24.metadata, separators=(",", ":"), ensure_ascii=False).encode()
        problem = f24_problem(content)
        if problem is not None:
            raise _Problem(400, "Bad Request", f"{where}.metadata: {problem}")
        if f24.apply_cost and body.notification_fee_policy != "DELIVERY_MODE":
            raise _Problem(
                400,
                "Bad Request",
                f"{where}.apply_cost: SEND adds its cost only with notification_fee_policy "
                "DELIVERY_MODE",
            )
        payments = recipients[f24.recipient].setdefault("payments", [])
        payments.append(f24_payment(k, f24.title, f24.apply_cost, content))
        f24_files.append(content)
    wire: dict[str, Any] = {
        "paProtocolNumber": body.pa_protocol_number,
        "idempotenceToken": uuid.uuid4().hex,
        "subject": body.subject,
        "abstract": body.abstract,
        "recipients": recipients,
        "notificationFeePolicy": body.notification_fee_policy,
        "physicalCommunicationType": body.physical_communication_type,
        **sender_fields(tenant),
        "taxonomyCode": body.taxonomy_code,
        "paFee": body.pa_fee,
        "vat": body.vat,
    }
    wire = {k: v for k, v in wire.items() if v is not None}
    digests = [sha256_b64(c) for c in contents]
    try:  # what SEND would refuse with a 400 is refused here, before it is queued
        check_request(
            wire, [(d.title, sha) for d, sha in zip(body.documents, digests, strict=True)]
        )
    except ValidationError as exc:
        raise _Problem(400, "Bad Request", _where(exc)) from None
    return body, wire, contents, f24_files, digests


async def _create_position(
    request: web.Request,
    conn: Any,
    tenant_id: str,
    body: NotificationIn,
    wire: dict[str, Any],
    actor: str,
) -> NoticeAttachment:
    """``body.position`` created by the pagoPA platform (``hub_create_notice``) in ``conn``'s
    transaction; its notice added to the recipient's payments of ``wire``. 409 when it cannot
    be made (no pagoPA for the tenant, the reference taken by another position)."""
    spec = body.position
    assert spec is not None
    services = request.app[SERVICES]
    if spec.recipient >= len(wire["recipients"]):
        raise _Problem(400, "Bad Request", "position.recipient: no such recipient")
    recipient = wire["recipients"][spec.recipient]
    if spec.apply_cost and body.notification_fee_policy != "DELIVERY_MODE":
        raise _Problem(
            400,
            "Bad Request",
            "position.apply_cost: SEND adds its cost only with notification_fee_policy "
            "DELIVERY_MODE",
        )
    if services.plugins is None:
        raise _Problem(409, "Conflict", "position: the hub cannot create pagoPA positions here")
    try:
        created = await services.plugins.create_notice(
            conn,
            services,
            tenant_id,
            NoticeRequest(
                reference=body.pa_protocol_number,
                debtor=str(recipient["taxId"]).upper(),
                debtor_type="G" if recipient["recipientType"] == "PG" else "F",
                full_name=str(recipient["denomination"]),
                amount=spec.amount,
                due=datetime.combine(spec.due_date, time(23, 59, 59), _ROME),
                description=spec.description,
                iban=spec.iban,
                category=spec.transfer_category,
            ),
            actor,
        )
    except NoticeRefused as exc:
        raise _Problem(
            409, "Conflict", f"position: the pagoPA position could not be created: {exc.detail}"
        ) from None
    doc = created.document
    payments = recipient.setdefault("payments", [])
    payments.append(
        {
            "pagoPa": {
                "noticeCode": created.notice_number,
                "creditorTaxId": doc.creditor_tax_id,
                "applyCost": spec.apply_cost,
            }
        }
    )
    wire.setdefault("amount", spec.amount)
    wire.setdefault("paymentExpirationDate", spec.due_date.isoformat())
    link_mode(wire, doc.station, spec.apply_cost)
    try:
        check_async_fees(wire)
    except PaymentProblem as exc:
        raise _Problem(400, "Bad Request", str(exc)) from None
    return NoticeAttachment(
        spec.recipient, len(payments) - 1, created.notice_number, doc.pdf, lock=doc.lock
    )


@operation(
    "createSendNotification",
    "Queue a SEND notification (scope write): documents uploaded, the request sent once "
    "and its acceptance followed through the outbox. A pagoPA payment naming a notice of "
    "the tenant's positions (without attachment) gets the notice PDF attached; with "
    "applyCost the station adds SEND's notification cost when the notice is paid",
    body=NotificationIn,
    idempotent=True,
    responses={
        202: Answer(NotificationQueued, "Queued"),
        409: "A notification with this pa_protocol_number exists, another live notification "
        "carries one of its pagoPA notices, a notice is not payable, or the tenant has no "
        "[tenants.send]",
        422: "An Idempotency-Key reused for another request; nothing queued",
    },
    scope="write",
)
@handles_problems
async def create_notification(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "write")
    idempotency_key(request)
    raw = await read_body(request)
    body, wire, contents, f24_files, digests = _prepare(request, tenant_id, raw)
    notices: list[NoticeAttachment] = []
    pagopa = any(pay.get("pagoPa") for r in wire["recipients"] for pay in r.get("payments") or [])
    if pagopa and not await _answered(request, tenant_id):  # a replay gets the stored answer
        try:  # the notice PDFs of the tenant's positions, before the transaction
            notices = await notice_attachments(request.app[SERVICES], tenant_id, wire, p.actor)
        except PaymentProblem as exc:
            raise _Problem(exc.status, _TITLES[exc.status], str(exc)) from None
    now = request.app[CLOCK].now()
    if body.position is None and not any(r.get("payments") for r in wire["recipients"]):
        # no payment to record: stored with the POSTs that arrive with it (group commit)
        answer = await request.app[SEND_QUEUE].queue(
            QueuedRequest(
                tenant_id=tenant_id,
                key=idempotency_key(request),
                digest=request_digest(request, raw),
                wire=wire,
                documents=[(d.title, c) for d, c in zip(body.documents, contents, strict=True)],
                digests=digests,
                actor=p.actor,
                now=now,
            )
        )
        if answer is not None:
            return web.json_response(answer, status=202)
        # a replay, a protocol number taken, a conflict: this request alone, as any other

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        queued = copy.deepcopy(wire)  # a retry of this transaction starts from the request
        attached = list(notices)
        if body.position is not None:  # the pagoPA platform creates it in this transaction
            attached.append(await _create_position(request, conn, tenant_id, body, queued, p.actor))
        try:
            notification_id = await queue_notification(
                conn,
                tenant_id=tenant_id,
                wire=queued,
                documents=[(d.title, c) for d, c in zip(body.documents, contents, strict=True)],
                actor=p.actor,
                now=now,
                max_attempts=request.app[CONFIG].outbox.max_attempts,
                notices=attached,
                f24=f24_files,
            )
        except ProtocolTaken as exc:
            raise _Problem(409, "Conflict", str(exc)) from None
        except PaymentProblem as exc:
            raise _Problem(exc.status, _TITLES[exc.status], str(exc)) from None
        return 202, {
            "id": notification_id,
            "status": QUEUED,
            "pa_protocol_number": body.pa_protocol_number,
            "idempotence_token": wire["idempotenceToken"],
        }

    return await idempotent(request, tenant_id, raw, produce)


_SUMMARY = (
    send_notifications.c.id,
    send_notifications.c.pa_protocol_number,
    send_notifications.c.subject,
    send_notifications.c.status,
    send_notifications.c.iun,
    send_notifications.c.send_status,
    send_notifications.c.created_at,
    send_notifications.c.updated_at,
)


@operation(
    "listSendNotifications",
    "The tenant's SEND notifications, oldest first (scope read; no personal data)",
    query=PAGING,
    responses={200: models.page_of(NotificationSummary)},
    scope="read",
)
@handles_problems
async def list_notifications(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    limit, after = page_params(request)
    async with reading(request.app[ENGINE]) as conn:
        rows = await conn.execute(
            select(*_SUMMARY)
            .where(send_notifications.c.tenant_id == tenant_id, send_notifications.c.id > after)
            .order_by(send_notifications.c.id)
            .limit(limit)
        )
        items = [_clean(dict(r._mapping)) for r in rows]
    return web.json_response(page(items, limit))


@operation(
    "getSendNotification",
    "A SEND notification with its timeline (scope read; the recipients with personal_data, "
    "audited)",
    path={"notification_id": int},
    responses={200: NotificationDetail},
    scope="read",
)
@handles_problems
async def get_notification(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "read")
    notification_id = path_id(request, "notification_id", "notification")
    engine = request.app[ENGINE]
    async with reading(engine) as conn:
        row = (
            await conn.execute(
                select(send_notifications).where(
                    send_notifications.c.id == notification_id,
                    send_notifications.c.tenant_id == tenant_id,
                )
            )
        ).first()
        if row is None:
            raise _Problem(404, "Not Found", f"notification {notification_id} not found")
        events: Sequence[Any] = []
        if row.notification_request_id:
            events = (
                await conn.execute(
                    select(send_events)
                    .where(
                        send_events.c.tenant_id == tenant_id,
                        send_events.c.notification_request_id == row.notification_request_id,
                    )
                    .order_by(send_events.c.event_id)
                )
            ).all()
    view = _clean({c.name: row._mapping[c.name] for c in _SUMMARY})
    view.update(
        notification_request_id=row.notification_request_id,
        idempotence_token=row.idempotence_token,
        accepted_at=_clean({"a": row.accepted_at})["a"],
        errors=json.loads(row.errors) if row.errors else [],
        timeline=[
            _clean(
                {
                    "event_id": e.event_id,
                    "category": e.category,
                    "new_status": e.new_status,
                    "timestamp": json.loads(e.element).get("timestamp"),
                    "received_at": e.received_at,
                }
            )
            for e in events
        ],
    )
    if "personal_data" in p.scopes or "admin" in p.scopes:
        recipients = json.loads(row.recipients)
        async with engine.begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=p.actor,
                    action="send.notification.read",
                    subject=",".join(r["tax_id"] for r in recipients),
                    purpose="SEND notification status",
                    sources="hub",
                    outcome="ok",
                    detail=f"notification {notification_id}",
                ),
                at=request.app[CLOCK].now(),
            )
        view["recipients"] = recipients
    return web.json_response(view)


@operation(
    "cancelSendNotification",
    "Cancel an accepted SEND notification (scope write), through the outbox",
    path={"notification_id": int},
    idempotent=True,
    responses={
        202: Answer(CancelQueued, "Cancellation queued"),
        409: "The notification is not accepted (nothing to cancel yet, or already cancelled)",
        422: "An Idempotency-Key reused for another request",
    },
    scope="write",
)
@handles_problems
async def cancel_notification(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    notification_id = path_id(request, "notification_id", "notification")
    raw = await read_body(request)
    now = request.app[CLOCK].now()

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        row = (
            await conn.execute(
                select(send_notifications.c.status).where(
                    send_notifications.c.id == notification_id,
                    send_notifications.c.tenant_id == tenant_id,
                )
            )
        ).first()
        if row is None:
            raise _Problem(404, "Not Found", f"notification {notification_id} not found")
        if row.status != ACCEPTED:
            raise _Problem(
                409, "Conflict", f"status: the notification is {row.status}, not accepted"
            )
        await conn.execute(
            send_notifications.update()
            .where(send_notifications.c.id == notification_id)
            .values(status=CANCELLING, updated_at=now)
        )
        await enqueue_many(
            conn,
            [NewJob(tenant_id, CANCEL_KIND, {"notification_id": notification_id})],
            now=now,
            default_max_attempts=request.app[CONFIG].outbox.max_attempts,
        )
        return 202, {"id": notification_id, "status": CANCELLING}

    return await idempotent(request, tenant_id, raw, produce)


_PEC = re.compile(r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")


@operation(
    "getDigitalDomicile",
    "A fiscal code's digital domicile in INAD now, or with `date` and `address` whether the "
    "address was the domicile on that day (scope personal_data; every read audited)",
    query=[
        Query(
            "purpose",
            Annotated[str, Field(min_length=1)],
            "file or protocol reference (INAD practicalReference), on the audit log",
            required=True,
        ),
        Query("operator", str, "the person at the counter; default: the API key's name"),
        Query("date", date, "a past day (YYYY-MM-DD): ask INAD's verify instead of extract"),
        Query("address", str, "the PEC address to verify (required with `date`)"),
    ],
    responses={
        200: Answer(Domicile, "INAD's answer (with `date`: `was_domicile`)"),
        404: Answer(
            Domicile,
            "INAD has no digital domicile for this code (a Domicile with found false), or no "
            "such tenant (a Problem)",
            also={"application/problem+json": models.Problem},
        ),
        409: "The tenant has no [tenants.inad] (or no [tenants.pdnd])",
        502: "INAD (or PDND, for the voucher) failed: `platform` names it; whether the code "
        "has a domicile is unknown",
        503: "As 502, but INAD is rate limiting or unavailable: try later (Retry-After)",
    },
    scope="personal_data",
)
@handles_problems
async def get_domicile(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    purpose = request.query.get("purpose", "").strip()
    if not purpose or len(purpose) > 200 or not purpose.isprintable():
        raise _Problem(
            400,
            "Bad Request",
            "purpose is required: the file or protocol reference of the request (1 to 200 "
            "printable characters)",
        )
    fiscal_code = request.match_info["fiscal_code"].strip().upper()
    reason = fiscal_codes.problem(fiscal_code)
    if reason is not None:
        raise _Problem(400, "Bad Request", f"fiscal_code: {reason}")
    operator = request.query.get("operator")
    if operator is not None:
        operator = operator.strip()
        if not operator or len(operator) > 200 or not operator.isprintable():
            raise _Problem(
                400, "Bad Request", "operator: 1 to 200 printable characters (or leave it out)"
            )
    day: date | None = None
    address = request.query.get("address")
    if "date" in request.query:
        try:
            day = date.fromisoformat(request.query["date"])
        except ValueError:
            raise _Problem(400, "Bad Request", "date: expected YYYY-MM-DD") from None
        if day > request.app[CLOCK].now().date():
            raise _Problem(400, "Bad Request", "date: must not be in the future")
        if not address or not _PEC.match(address):
            raise _Problem(
                400, "Bad Request", "address: the PEC address to verify is required with date"
            )
    elif address is not None:
        raise _Problem(400, "Bad Request", "address: only with date (INAD's verify)")
    who = Requester(actor=p.actor, operator=operator or p.name, purpose=purpose)
    domiciles = request.app[INAD_DOMICILES]
    try:
        if day is not None and address is not None:
            return web.json_response(await domiciles.on(tenant_id, fiscal_code, address, day, who))
        result = await domiciles.now(tenant_id, fiscal_code, who)
    except InadNotConfigured as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    except InadFailed as exc:
        response = problem(
            exc.status,
            "Service Unavailable" if exc.status == 503 else "Bad Gateway",
            exc.detail,
            platform=exc.platform,
        )
        if exc.status == 503 and exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    return web.json_response(result, status=200 if result["found"] else 404)


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/send/notifications"
    return [
        web.get(PREFIX + "/tenants/{tenant}/inad/{fiscal_code}", get_domicile),
        web.post(base, create_notification),
        web.get(base, list_notifications),
        web.get(base + "/{notification_id}", get_notification),
        web.post(base + "/{notification_id}/cancel", cancel_notification),
    ]

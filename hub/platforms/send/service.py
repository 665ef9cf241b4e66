"""SEND for the hub: one client per tenant, the outbox handlers that send a notification
(``send.upload``: the documents, then the request; ``send.acceptance``; ``send.cancel``;
``send.request``, the request alone, only for jobs queued by earlier versions), and the
reader of the tenant's progress stream.

Nothing is sent twice. The ``paProtocolNumber`` and ``idempotenceToken`` are stored when the
notification is queued, before any call. The upload commits ``requesting`` (with the
documents' keys) before the request is sent; an attempt that finds the row already
``requesting`` (the earlier one died, or its answer was lost) first asks SEND for the request
by protocol number and token, and only when SEND has none sends it again, with the same token
(SEND refuses a second request with that pair with 409, which the connector resolves by asking
too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.config import TenantConfig
from sportello.connectors.errors import PermanentError, ServerError
from sportello.connectors.pdnd.client import PdndClient
from sportello.connectors.pdnd.environments import assertion_audience_for
from sportello.connectors.pdnd.keys import kid_for_private_key
from sportello.connectors.send import (
    DuplicateNotification,
    NewNotificationRequest,
    NotificationDocument,
    SendClient,
    SendNotFound,
    StreamRequest,
    UploadedFile,
    sha256_b64,
)
from sportello.connectors.send.models import NotificationRequestStatus, PaymentEventPagoPa
from sportello.events import emit
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.send.f24 import resolve_f24
from sportello.platforms.send.payments import (
    PAYMENT_WAIT_SECONDS,
    NoticeAttachment,
    attach_to_request,
    record_payments,
    release_notices,
)
from sportello.platforms.send.settings import SendTenantSettings, send_settings
from sportello.platforms.send.tables import (
    F24_DOCUMENT_BASE,
    PAYMENT_DOCUMENT_BASE,
    send_documents,
    send_events,
    send_notifications,
    send_streams,
)
from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.send")

QUEUED, UPLOADED, REQUESTING, WAITING = "queued", "uploaded", "requesting", "waiting"
ACCEPTED, REFUSED, FAILED = "accepted", "refused", "failed"
CANCELLING, CANCELLED = "cancelling", "cancelled"

UPLOAD_KIND, REQUEST_KIND = "send.upload", "send.request"
ACCEPTANCE_KIND, CANCEL_KIND = "send.acceptance", "send.cancel"
STATUS_EVENT = "send.notification.status"

#: Pages read from the stream in one round at most (SEND answers retry-after 0 while more wait).
MAX_PAGES = 50


class SendNotConfigured(PermanentError):
    """The tenant has no ``[tenants.send]`` (or no ``[tenants.pdnd]`` for the voucher)."""


class StillWaiting(ServerError):
    """SEND has not decided yet: the outbox asks again after ``retry_after`` seconds."""


def _send_of(services: HubServices, tenant_id: str) -> SendTenantSettings | None:
    tenant = services.config.tenant(tenant_id)
    return send_settings(tenant) if tenant is not None else None


def settings(services: HubServices, tenant_id: str) -> tuple[TenantConfig, SendTenantSettings]:
    tenant = services.config.tenant(tenant_id)
    send = send_settings(tenant) if tenant is not None else None
    if tenant is None or send is None or tenant.pdnd is None:
        raise SendNotConfigured(
            f"tenant {tenant_id!r} has no [tenants.send] and [tenants.pdnd]", platform="send"
        )
    return tenant, send


class SendClients:
    """One ``SendClient`` per tenant, built on first use (the PDND client of the tenant)."""

    def __init__(self, services: HubServices) -> None:
        self.services = services
        self._clients: dict[str, SendClient] = {}

    def get(self, tenant_id: str) -> SendClient:
        if tenant_id not in self._clients:
            tenant, send = settings(self.services, tenant_id)
            pdnd = tenant.pdnd
            assert pdnd is not None
            key_ref, api_key = pdnd.key, send.api_key

            def private_key() -> bytes:
                return key_ref.reveal().encode()

            client = PdndClient(
                self.services.session,
                str(pdnd.token_url),
                client_id=pdnd.client_id,
                kid=pdnd.kid or kid_for_private_key(private_key()),
                private_key=private_key,
                assertion_audience=pdnd.assertion_audience
                or assertion_audience_for(str(pdnd.token_url)),
            )
            self._clients[tenant_id] = SendClient(
                self.services.session,
                str(send.base_url).rstrip("/"),
                api_key=lambda: api_key.reveal(),
                pdnd=client,
                purpose_id=send.purpose_id,
            )
        return self._clients[tenant_id]


SEND_CLIENTS = web.AppKey("send_clients", SendClients)


# -- queueing (the API and the bulk import) -----------------------------------------------


class ProtocolTaken(Exception):
    """The tenant already has a notification with this ``paProtocolNumber``."""

    def __init__(self, notification_id: int, pa_protocol_number: str) -> None:
        super().__init__(
            f"pa_protocol_number: notification {notification_id} already has {pa_protocol_number!r}"
        )
        self.notification_id = notification_id


def sender_fields(tenant: TenantConfig) -> dict[str, str]:
    """``senderDenomination`` and ``senderTaxId`` of the tenant's requests."""
    send = send_settings(tenant)
    assert send is not None
    return {
        "senderDenomination": (send.sender_denomination or tenant.name)[:88],
        "senderTaxId": send.sender_tax_id or tenant.fiscal_code,
    }


def check_request(wire: dict[str, Any], contents: Sequence[tuple[str, str]]) -> None:
    """Raise pydantic's ``ValidationError`` for what SEND would refuse with a 400: the request
    ``wire`` (no documents) with the documents ``(title, sha256)`` as placeholders."""
    placeholders = [
        NotificationDocument.of(
            UploadedFile(key="pending", version_token="pending", sha256=sha), title
        ).wire()
        for title, sha in contents
    ]
    NewNotificationRequest.model_validate({**wire, "documents": placeholders})


async def queue_notification(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    wire: dict[str, Any],
    documents: Sequence[tuple[str, bytes]],
    actor: str,
    now: datetime,
    max_attempts: int,
    notices: Sequence[NoticeAttachment] = (),
    f24: Sequence[bytes] = (),
) -> int:
    """Store a checked request (``wire``: its ``paProtocolNumber`` and ``idempotenceToken``
    set, no documents) with its documents ``(title, PDF bytes)`` and queue ``send.upload``,
    in the caller's transaction; the notification's id. ``ProtocolTaken`` when the tenant has
    the protocol number already (the unique constraint still guards against a race).
    Every pagoPA payment is recorded, with ``notices`` (``payments.notice_attachments``: the
    notice PDFs the hub attaches); ``PaymentProblem`` (409) when another live notification
    of the tenant carries one of its notices. ``f24``: the F24 metadata files (JSON) the
    request's ``f24`` payments refer to by placeholder (``f24.f24_payment``), in order."""
    protocol = str(wire["paProtocolNumber"])
    taken = (
        await conn.execute(
            select(send_notifications.c.id).where(
                send_notifications.c.tenant_id == tenant_id,
                send_notifications.c.pa_protocol_number == protocol,
            )
        )
    ).first()
    if taken is not None:
        raise ProtocolTaken(int(taken.id), protocol)
    result = await conn.execute(
        send_notifications.insert().values(
            tenant_id=tenant_id,
            pa_protocol_number=protocol,
            idempotence_token=wire["idempotenceToken"],
            subject=wire["subject"],
            request=json.dumps(wire),
            recipients=json.dumps(
                [
                    {"tax_id": r["taxId"], "denomination": r["denomination"]}
                    for r in wire["recipients"]
                ]
            ),
            status=QUEUED,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
    )
    primary_key = result.inserted_primary_key
    assert primary_key is not None
    notification_id = int(primary_key[0])
    await conn.execute(
        send_documents.insert(),
        [
            {
                "notification_id": notification_id,
                "idx": i,
                "title": title,
                "content": content,
                "sha256": sha256_b64(content),
            }
            for i, (title, content) in enumerate(documents)
        ]
        + [
            {
                "notification_id": notification_id,
                "idx": F24_DOCUMENT_BASE + k,
                "title": f"F24 metadata {k + 1}",
                "content": content,
                "sha256": sha256_b64(content),
            }
            for k, content in enumerate(f24)
        ],
    )
    await record_payments(
        conn, tenant_id=tenant_id, notification_id=notification_id, wire=wire, notices=notices
    )
    await enqueue_many(
        conn,
        [NewJob(tenant_id, UPLOAD_KIND, {"notification_id": notification_id})],
        now=now,
        default_max_attempts=max_attempts,
    )
    return notification_id


# -- rows ---------------------------------------------------------------------------------


async def _row(conn: AsyncConnection, notification_id: int) -> Any:
    return (
        await conn.execute(
            select(send_notifications).where(send_notifications.c.id == notification_id)
        )
    ).first()


async def _set(
    conn: AsyncConnection,
    notification_id: int,
    now: datetime,
    *,
    when: str | None = None,
    **values: Any,
) -> bool:
    """Update the row (only while its status is ``when``, if given); True if it changed."""
    stmt = update(send_notifications).where(send_notifications.c.id == notification_id)
    if when is not None:
        stmt = stmt.where(send_notifications.c.status == when)
    result = await conn.execute(stmt.values(updated_at=now, **values))
    changed = bool(result.rowcount)
    if changed and values.get("status") in (REFUSED, FAILED, CANCELLED):
        await release_notices(conn, notification_id)
    return changed


def status_event(row: Any, status: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """The ``send.notification.status`` webhook of a notification."""
    data = {
        "notification_id": int(row.id),
        "pa_protocol_number": row.pa_protocol_number,
        "status": status,
        "iun": extra.pop("iun", row.iun),
        **extra,
    }
    return (row.tenant_id, STATUS_EVENT, data)


# -- outbox handlers ----------------------------------------------------------------------


def upload_handler(services: HubServices) -> Handler:
    """``send.upload``: preload and upload the documents SEND does not have yet, then, in the
    same job, the notification request (:func:`_request`: committed ``requesting`` with the
    documents' keys before SEND is called, so a retry of this job asks SEND first)."""
    clients = SendClients(services)
    engine, clock = services.engine, services.clock

    async def handle(job: Job) -> Delivery:
        notification_id = int(job.payload["notification_id"])
        async with engine.connect() as conn:
            row = await _row(conn, notification_id)
            docs = (
                []
                if row is None or row.status != QUEUED
                else (
                    await conn.execute(
                        select(send_documents.c.id, send_documents.c.content, send_documents.c.idx)
                        .where(
                            send_documents.c.notification_id == notification_id,
                            send_documents.c.file_key.is_(None),
                        )
                        .order_by(send_documents.c.idx)
                    )
                ).all()
            )
        if row is not None and row.status in (UPLOADED, REQUESTING):  # an earlier attempt's
            return await _request(services, clients, notification_id)
        if row is None or row.status != QUEUED:
            return Delivery()
        client = clients.get(row.tenant_id)
        # Same bytes, same checksum: a retry of the whole step is safe (new slots, no notification).
        # PDFs (acts, notice PDFs), then the F24 metadata files (JSON)
        docs = [d for d in docs if d.idx < F24_DOCUMENT_BASE] + [
            d for d in docs if d.idx >= F24_DOCUMENT_BASE
        ]
        uploaded: list[UploadedFile] = []
        for kind, group in (
            ("application/pdf", [d for d in docs if d.idx < F24_DOCUMENT_BASE]),
            ("application/json", [d for d in docs if d.idx >= F24_DOCUMENT_BASE]),
        ):
            for start in range(0, len(group), 15):
                chunk = group[start : start + 15]
                uploaded += await client.upload_files(
                    [bytes(d.content) for d in chunk], content_type=kind
                )
        async with engine.begin() as conn:
            if uploaded:
                await conn.execute(
                    update(send_documents)
                    .where(send_documents.c.id == bindparam("b_id"))
                    .values(file_key=bindparam("b_key"), version_token=bindparam("b_version")),
                    [
                        {"b_id": doc_id, "b_key": file.key, "b_version": file.version_token}
                        for (doc_id, _, _), file in zip(docs, uploaded, strict=True)
                    ],
                )
            # committed before SEND is called: a retry of this job asks SEND first
            if not await _set(conn, notification_id, clock.now(), when=QUEUED, status=REQUESTING):
                return Delivery()
            request = await _request_of(conn, row)
        return await _request(services, clients, notification_id, row=row, request=request)

    return handle


async def _request_of(conn: AsyncConnection, row: Any) -> NewNotificationRequest:
    d = send_documents.c
    docs = (  # not the content: SEND has it by now (the bytes stay in the database)
        await conn.execute(
            select(d.idx, d.title, d.sha256, d.file_key, d.version_token)
            .where(d.notification_id == row.id)
            .order_by(d.idx)
        )
    ).all()
    body = json.loads(row.request)
    body["documents"] = [
        NotificationDocument.of(
            UploadedFile(key=d.file_key, version_token=d.version_token, sha256=d.sha256),
            d.title,
        ).wire()
        for d in docs
        if d.idx < PAYMENT_DOCUMENT_BASE
    ]
    if any(p.get("pagoPa") for r in body["recipients"] for p in r.get("payments") or []):
        await attach_to_request(conn, int(row.id), body, docs)  # the notice PDFs the hub attached
    resolve_f24(body, docs)  # the F24 metadata files' references
    return NewNotificationRequest.model_validate(body)


async def _request(
    services: HubServices,
    clients: SendClients,
    notification_id: int,
    *,
    row: Any = None,
    request: NewNotificationRequest | None = None,
) -> Delivery:
    """The notification request, sent once (module docstring). ``row`` and ``request``: the
    upload just committed the row ``requesting`` (SEND has not been called); without them the
    row is read, and one found ``requesting`` is resumed (SEND is asked first)."""
    engine, clock = services.engine, services.clock
    resuming = False
    if row is None or request is None:
        async with engine.begin() as conn:
            row = await _row(conn, notification_id)
            if row is None or row.status not in (UPLOADED, REQUESTING):
                return Delivery(remote_id=row.notification_request_id if row else None)
            request = await _request_of(conn, row)
            resuming = row.status == REQUESTING
            if not resuming:  # committed before SEND is called
                await _set(conn, notification_id, clock.now(), when=UPLOADED, status=REQUESTING)
    client = clients.get(row.tenant_id)
    found: NotificationRequestStatus | None = None
    if resuming:  # an earlier attempt may have reached SEND: ask, never guess
        found = await _find(client, row)
    request_id = found.notificationRequestId if found else None
    if request_id is None:
        try:
            answer = await client.send_notification(request)
            request_id = answer.notificationRequestId
        except DuplicateNotification:
            found = await _find(client, row)
            if found is None:
                raise
            request_id = found.notificationRequestId
        except PermanentError as exc:
            await _fail(services, row, str(exc))
            return Delivery()
    now = clock.now()
    send = _send_of(services, row.tenant_id)
    delay = send.acceptance_poll_seconds if send else 10.0
    attempts = send.acceptance_poll_attempts if send else 200
    async with engine.begin() as conn:
        if await _set(
            conn,
            notification_id,
            now,
            when=REQUESTING,
            status=WAITING,
            notification_request_id=request_id,
        ):
            await enqueue_many(
                conn,
                [
                    NewJob(
                        row.tenant_id,
                        ACCEPTANCE_KIND,
                        {  # what the check needs: it does not read the row
                            "notification_id": notification_id,
                            "request_id": request_id,
                            "pa_protocol_number": row.pa_protocol_number,
                        },
                        max_attempts=attempts,
                        not_before=now + timedelta(seconds=delay),
                    )
                ],
                now=now,
                default_max_attempts=attempts,
            )
    return Delivery(remote_id=request_id)


def request_handler(services: HubServices) -> Handler:
    """``send.request``: the request of a notification uploaded by a ``send.upload`` job of
    an earlier version (which queued the request as a job of its own)."""
    clients = SendClients(services)

    async def handle(job: Job) -> Delivery:
        return await _request(services, clients, int(job.payload["notification_id"]))

    return handle


async def _find(client: SendClient, row: Any) -> NotificationRequestStatus | None:
    try:
        return await client.request_status(
            pa_protocol_number=row.pa_protocol_number, idempotence_token=row.idempotence_token
        )
    except SendNotFound:
        return None


async def _fail(services: HubServices, row: Any, error: str) -> None:
    now = services.clock.now()
    async with services.engine.begin() as conn:
        if await _set(conn, int(row.id), now, status=FAILED, errors=json.dumps([error])):
            await emit(conn, services.config, [status_event(row, FAILED)], now=now)


def acceptance_handler(services: HubServices) -> Handler:
    """``send.acceptance``: ACCEPTED (the IUN) or REFUSED (the errors); else ask again."""
    clients = SendClients(services)
    engine, clock = services.engine, services.clock

    async def handle(job: Job) -> Delivery:
        notification_id = int(job.payload["notification_id"])
        row: Any
        if job.payload.get("request_id"):  # the status changes below only from WAITING
            row = SimpleNamespace(
                id=notification_id,
                tenant_id=job.tenant_id,
                pa_protocol_number=job.payload["pa_protocol_number"],
                iun=None,
                notification_request_id=job.payload["request_id"],
                status=WAITING,
            )
        else:  # a job queued by an earlier version
            async with engine.connect() as conn:
                row = await _row(conn, notification_id)
        if row is None or row.status != WAITING or not row.notification_request_id:
            return Delivery()
        client = clients.get(row.tenant_id)
        status = await client.request_status(row.notification_request_id)
        now = clock.now()
        if status.accepted:
            async with engine.begin() as conn:
                if await _set(
                    conn,
                    notification_id,
                    now,
                    when=WAITING,
                    status=ACCEPTED,
                    iun=status.iun,
                    accepted_at=now,
                ):
                    await emit(
                        conn,
                        services.config,
                        [status_event(row, ACCEPTED, iun=status.iun)],
                        now=now,
                    )
            return Delivery(remote_id=status.iun)
        if status.refused:
            errors = [e.model_dump(exclude_none=True) for e in status.errors]
            async with engine.begin() as conn:
                if await _set(
                    conn,
                    notification_id,
                    now,
                    when=WAITING,
                    status=REFUSED,
                    errors=json.dumps(errors),
                ):
                    await emit(
                        conn,
                        services.config,
                        [status_event(row, REFUSED, errors=[e["code"] for e in errors])],
                        now=now,
                    )
            return Delivery()
        send = _send_of(services, row.tenant_id)
        wait = float(status.retryAfter or 0) or (send.acceptance_poll_seconds if send else 10.0)
        raise StillWaiting(
            f"request {status.notificationRequestStatus}", platform="send", retry_after=wait
        )

    return handle


def payment_handler(services: HubServices) -> Handler:
    """``send.payment``: tell SEND a notice of the notification was paid (payments.py);
    waits for the acceptance, nothing to tell once it is refused or cancelled."""
    clients = SendClients(services)
    engine = services.engine

    async def handle(job: Job) -> Delivery:
        p = job.payload
        async with engine.connect() as conn:
            row = await _row(conn, int(p["notification_id"]))
        if row is None or row.status in (REFUSED, FAILED, CANCELLED):
            return Delivery()
        if row.status not in (ACCEPTED, CANCELLING):
            raise StillWaiting(
                f"notification {row.status}: the payment is told once it is accepted",
                platform="send",
                retry_after=PAYMENT_WAIT_SECONDS,
            )
        event = PaymentEventPagoPa(
            noticeCode=p["notice_code"],
            creditorTaxId=p["creditor_tax_id"],
            paymentDate=p["paid_at"],
            amount=int(p["amount"]),
        )
        await clients.get(row.tenant_id).payment_events([event])
        return Delivery(remote_id=row.iun)

    return handle


def cancel_handler(services: HubServices) -> Handler:
    """``send.cancel``: ask SEND to cancel (a second cancellation answers 'already')."""
    clients = SendClients(services)
    engine, clock = services.engine, services.clock

    async def handle(job: Job) -> Delivery:
        notification_id = int(job.payload["notification_id"])
        async with engine.connect() as conn:
            row = await _row(conn, notification_id)
        if row is None or row.status != CANCELLING or not row.iun:
            return Delivery()
        await clients.get(row.tenant_id).cancel(row.iun)
        now = clock.now()
        async with engine.begin() as conn:
            if await _set(conn, notification_id, now, when=CANCELLING, status=CANCELLED):
                await emit(conn, services.config, [status_event(row, CANCELLED)], now=now)
        return Delivery(remote_id=row.iun)

    return handle


# -- the progress stream ------------------------------------------------------------------


class StreamReader:
    """Reads a tenant's progress stream; every event stored once, the cursor moved by
    compare-and-set (two rounds at once, a replica and the CLI, store nothing twice)."""

    def __init__(self, services: HubServices, clients: SendClients) -> None:
        self.services, self.clients = services, clients

    async def _stream_id(self, tenant_id: str) -> str:
        engine = self.services.engine
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    select(send_streams.c.stream_id).where(send_streams.c.tenant_id == tenant_id)
                )
            ).scalar()
        if found:
            return str(found)
        client = self.clients.get(tenant_id)
        stream = await client.create_stream(
            StreamRequest(title=f"sportello {tenant_id}", eventType="TIMELINE")
        )
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    send_streams.insert().values(
                        tenant_id=tenant_id,
                        stream_id=stream.streamId,
                        last_event_id=None,
                        updated_at=self.services.clock.now(),
                    )
                )
        except Exception:  # another round created one first: keep theirs
            await client.delete_stream(stream.streamId)
            return await self._stream_id(tenant_id)
        return stream.streamId

    async def read(self, tenant_id: str) -> dict[str, int]:
        """One round: the events after the cursor, page by page."""
        stream_id = await self._stream_id(tenant_id)
        client = self.clients.get(tenant_id)
        engine, clock = self.services.engine, self.services.clock
        stored = emitted = 0
        for _ in range(MAX_PAGES):
            async with engine.connect() as conn:
                cursor = (
                    await conn.execute(
                        select(send_streams.c.last_event_id).where(
                            send_streams.c.tenant_id == tenant_id
                        )
                    )
                ).scalar()
            page = await client.stream_events(stream_id, cursor)
            if not page.events:
                break
            now = clock.now()
            async with engine.begin() as conn:
                moved = await conn.execute(
                    update(send_streams)
                    .where(
                        send_streams.c.tenant_id == tenant_id,
                        send_streams.c.last_event_id.is_not_distinct_from(cursor),
                    )
                    .values(last_event_id=page.last_event_id, updated_at=now)
                )
                if not moved.rowcount:
                    break  # another round read these events
                s, e = await self._store(conn, tenant_id, page.events, now)
            stored, emitted = stored + s, emitted + e
            if page.retry_after_ms:
                break
        return {"events": stored, "webhooks": emitted}

    async def _store(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Any], now: datetime
    ) -> tuple[int, int]:
        ids = [e.eventId for e in events]
        known = set(
            (
                await conn.execute(
                    select(send_events.c.event_id).where(
                        send_events.c.tenant_id == tenant_id, send_events.c.event_id.in_(ids)
                    )
                )
            ).scalars()
        )
        fresh = [e for e in events if e.eventId not in known]
        if not fresh:
            return 0, 0
        await conn.execute(
            send_events.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "event_id": e.eventId,
                    "notification_request_id": e.notificationRequestId,
                    "iun": e.iun,
                    "category": e.element.category,
                    "new_status": e.newStatus,
                    "element": e.element.model_dump_json(exclude_none=True),
                    "received_at": now,
                }
                for e in fresh
            ],
        )
        request_ids = {e.notificationRequestId for e in fresh if e.notificationRequestId}
        rows = {
            r.notification_request_id: r
            for r in await conn.execute(
                select(send_notifications).where(
                    send_notifications.c.tenant_id == tenant_id,
                    send_notifications.c.notification_request_id.in_(request_ids),
                )
            )
        }
        webhooks = []
        for e in fresh:
            row = rows.get(e.notificationRequestId)
            if row is None or not e.newStatus:
                continue
            await _set(conn, int(row.id), now, send_status=e.newStatus)
            webhooks.append(
                status_event(
                    row,
                    row.status,
                    iun=e.iun or row.iun,
                    send_status=e.newStatus,
                    category=e.element.category,
                    event_id=e.eventId,
                )
            )
        emitted = await emit(conn, self.services.config, webhooks, now=now) if webhooks else 0
        return len(fresh), emitted


SEND_STREAMS = web.AppKey("send_streams", StreamReader)

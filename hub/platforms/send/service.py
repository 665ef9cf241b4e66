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

Throughput (bench/send): the API's notifications without payments are stored in group commits
(``NotificationQueue``), the outbox jobs running at once read and change their rows in shared
transactions (``SendRows``, each change a compare-and-set on the status), the first acceptance
check is made by the job that sent the request when it is due within a second, and SEND's
calls go through the lean HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

from aiohttp import web
from sqlalchemy import and_, bindparam, case, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.config import TenantConfig
from sportello.connectors.errors import ConnectorError, PermanentError, ServerError
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
from sportello.db import reading
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
from sportello.schema import idempotency_keys
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


class _Revealed:
    """A secret read again at most every ``ttl`` seconds (a file, perhaps encrypted, was read
    and decrypted on each of SEND's calls): a key replaced in its file is used at most
    ``ttl`` seconds later."""

    def __init__(self, reveal: Callable[[], str], ttl: float = 5.0) -> None:
        self._reveal, self._ttl = reveal, ttl
        self._value, self._until = "", 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if now >= self._until:
            self._value, self._until = self._reveal(), now + self._ttl
        return self._value


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
                api_key=_Revealed(api_key.reveal),
                pdnd=client,
                purpose_id=send.purpose_id,
                transport=self.services.http if send.http_client == "lean" else None,
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
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = (
        await conn.execute(
            dialect.insert(send_notifications)
            .values(_notification_values(tenant_id, wire, actor, now))
            .on_conflict_do_nothing(index_elements=["tenant_id", "pa_protocol_number"])
            .returning(send_notifications.c.id)
        )
    ).scalar()
    if inserted is None:  # the tenant has this protocol number already
        taken = (
            await conn.execute(
                select(send_notifications.c.id).where(
                    send_notifications.c.tenant_id == tenant_id,
                    send_notifications.c.pa_protocol_number == protocol,
                )
            )
        ).scalar_one()
        raise ProtocolTaken(int(taken), protocol)
    notification_id = int(inserted)
    await conn.execute(send_documents.insert(), _document_rows(notification_id, documents, f24))
    await record_payments(
        conn, tenant_id=tenant_id, notification_id=notification_id, wire=wire, notices=notices
    )
    # GPD-mode notices: the upload (and request) waits for the positions' GPD jobs
    locks = sorted({n.lock for n in notices if n.lock})
    await enqueue_many(
        conn,
        [NewJob(tenant_id, UPLOAD_KIND, {"notification_id": notification_id}, lock=locks or None)],
        now=now,
        default_max_attempts=max_attempts,
    )
    return notification_id


def _notification_values(
    tenant_id: str, wire: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "pa_protocol_number": str(wire["paProtocolNumber"]),
        "idempotence_token": wire["idempotenceToken"],
        "subject": wire["subject"],
        "request": json.dumps(wire),
        "recipients": json.dumps(
            [{"tax_id": r["taxId"], "denomination": r["denomination"]} for r in wire["recipients"]]
        ),
        "status": QUEUED,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }


def _document_rows(
    notification_id: int,
    documents: Sequence[tuple[str, bytes]],
    f24: Sequence[bytes],
    digests: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The ``send_documents`` rows: the PDFs (``digests``: their SHA-256, when the caller
    has them), then the F24 metadata files."""
    return [
        {
            "notification_id": notification_id,
            "idx": i,
            "title": title,
            "content": content,
            "sha256": digests[i] if digests is not None else sha256_b64(content),
        }
        for i, (title, content) in enumerate(documents)
    ] + [
        {
            "notification_id": notification_id,
            "idx": F24_DOCUMENT_BASE + k,
            "title": f"F24 metadata {k + 1}",
            "content": content,
            "sha256": sha256_b64(content),
        }
        for k, content in enumerate(f24)
    ]


I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")


class HeldBatcher(Generic[I, R]):
    """Group commits as ``sportello.batching.Batcher`` (the callers that arrive together,
    one transaction, each answered after the commit), but the batch is taken once the
    connection is held: on SQLite the pool's only connection is often busy with the
    outbox, and what arrives while waiting for it joins this transaction instead of
    waiting for the next one. ``connect``: ``engine.begin`` (or ``reading``); ``work``
    writes the items in that connection, one result per item; ``conflict``: the results
    when the transaction meets a unique constraint (``IntegrityError``; without it the
    callers get the error)."""

    def __init__(
        self,
        connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[AsyncConnection, Sequence[I]], Awaitable[Sequence[R]]],
        *,
        conflict: Callable[[Sequence[I]], Sequence[R]] | None = None,
        max_items: int = 500,
    ) -> None:
        self._connect, self._work, self._conflict = connect, work, conflict
        self._max = max_items
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        await asyncio.sleep(0)  # let every caller ready in this tick join
        while self._pending:
            batch: list[tuple[I, asyncio.Future[R]]] = []
            results: Sequence[R]
            try:
                async with self._connect() as conn:
                    batch = self._pending[: self._max]
                    del self._pending[: len(batch)]
                    results = await self._work(conn, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} items")
            except IntegrityError as exc:
                if self._conflict is None:
                    self._fail(batch, exc)
                    continue
                results = self._conflict([item for item, _ in batch])
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):  # shutting down: nobody waits
                    stopped = ServerError("the group commit was cancelled", platform="send")
                    self._fail(batch + self._pending, stopped)
                    self._pending = []
                    raise
                if not batch:  # the connection failed: every waiting caller gets it
                    batch, self._pending = self._pending, []
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    @staticmethod
    def _fail(batch: Sequence[tuple[Any, asyncio.Future[Any]]], error: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """One ``POST .../send/notifications`` for :class:`NotificationQueue`: what
    :func:`queue_notification` stores, with the request's ``Idempotency-Key`` and digest
    (``sportello.api.core.request_digest``) and the answer to store under them."""

    tenant_id: str
    key: str
    digest: str
    wire: dict[str, Any]
    documents: Sequence[tuple[str, bytes]]
    digests: Sequence[str]  # the documents' SHA-256 (base64)
    actor: str
    now: datetime
    f24: Sequence[bytes] = ()


class NotificationQueue:
    """The API's notifications without payments (nothing for ``record_payments``), queued
    in group commits (as ``sportello.batching``, but the batch is taken once the connection
    is held, see ``_write``): the POSTs that arrive together are stored in one transaction
    (the notifications, their documents, their ``send.upload`` jobs and the stored answers
    of their Idempotency-Keys), and each is answered only after the commit.

    Only the plain case is written here: a request whose key already has an answer, whose
    protocol number the tenant already has (or another request of the same batch has the
    same key or protocol number), or a batch that meets a unique constraint (a concurrent
    request on another replica) gets ``None``, and the API runs that request alone through
    ``sportello.api.core.idempotent`` (the replay, the 409, the 422 as for any request)."""

    def __init__(self, services: HubServices) -> None:
        self.engine, self.clock, self.config = services.engine, services.clock, services.config
        self.queue = HeldBatcher(
            self.engine.begin, self._store, conflict=lambda items: [None] * len(items)
        )

    async def _queue_many(self, items: Sequence[QueuedRequest]) -> list[dict[str, Any] | None]:
        """``items`` in one transaction of their own (``_store``)."""
        try:
            async with self.engine.begin() as conn:
                return await self._store(conn, items)
        except IntegrityError:
            return [None] * len(items)

    async def _store(
        self, conn: AsyncConnection, items: Sequence[QueuedRequest]
    ) -> list[dict[str, Any] | None]:
        """Store the plain ones of ``items`` in ``conn``'s transaction; each one's answer or
        None. ``IntegrityError`` when a concurrent request took a key or a protocol number
        (roll back and answer None to all)."""
        n, k = send_notifications.c, idempotency_keys.c
        answers: dict[int, dict[str, Any]] = {}
        # the keys that have an answer and the protocol numbers taken, in one query
        protocols = {str(i.wire["paProtocolNumber"]) for i in items}
        found = union_all(
            select(literal("key").label("what"), k.tenant_id, k.key.label("value")).where(
                k.key.in_({i.key for i in items})
            ),
            select(literal("protocol"), n.tenant_id, n.pa_protocol_number).where(
                n.pa_protocol_number.in_(protocols)
            ),
        )
        answered: set[tuple[str, str]] = set()
        taken: set[tuple[str, str]] = set()
        for r in await conn.execute(found):
            (answered if r.what == "key" else taken).add((r.tenant_id, r.value))
        chosen: list[QueuedRequest] = []
        for item in items:
            key = (item.tenant_id, item.key)
            protocol = (item.tenant_id, str(item.wire["paProtocolNumber"]))
            if key in answered or protocol in taken:
                continue
            answered.add(key)
            taken.add(protocol)
            chosen.append(item)
        if not chosen:
            return [None] * len(items)
        ids = (
            await conn.execute(
                send_notifications.insert().returning(n.id, sort_by_parameter_order=True),
                [_notification_values(i.tenant_id, i.wire, i.actor, i.now) for i in chosen],
            )
        ).scalars()
        rows: list[dict[str, Any]] = []
        jobs: list[NewJob] = []
        for item, notification_id in zip(chosen, ids, strict=True):
            rows += _document_rows(notification_id, item.documents, item.f24, item.digests)
            jobs.append(NewJob(item.tenant_id, UPLOAD_KIND, {"notification_id": notification_id}))
            answers[id(item)] = {
                "id": notification_id,
                "status": QUEUED,
                "pa_protocol_number": item.wire["paProtocolNumber"],
                "idempotence_token": item.wire["idempotenceToken"],
            }
        await conn.execute(send_documents.insert(), rows)
        now = self.clock.now()
        await enqueue_many(
            conn, jobs, now=now, default_max_attempts=self.config.outbox.max_attempts
        )
        await conn.execute(
            idempotency_keys.insert(),
            [
                {
                    "tenant_id": i.tenant_id,
                    "key": i.key,
                    "request_sha256": i.digest,
                    "status": 202,
                    "body": json.dumps(answers[id(i)]),
                    "created_at": now,
                }
                for i in chosen
            ],
        )
        return [answers.get(id(i)) for i in items]


SEND_QUEUE = web.AppKey("send_queue", NotificationQueue)


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


#: A ``Change`` value that stands for the time of its commit.
_NOW: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One notification's state change (:class:`SendRows`): ``values`` on the row while its
    status is ``when``; with it, the documents' keys (``docs``: ``b_id``, ``b_key``,
    ``b_version``), a webhook and an outbox job, all only if the row changed."""

    notification_id: int
    when: str
    values: dict[str, Any]
    docs: Sequence[dict[str, Any]] = ()
    event: tuple[str, str, dict[str, Any]] | None = None
    job: NewJob | None = None


class SendRows:
    """The notifications' rows as the outbox handlers read and change them, in group commits
    (``HeldBatcher``): the rows and documents of every job ready at once in one read,
    their state changes in one transaction. A caller goes on only after the commit, so a
    row is ``requesting`` in the database before its request is sent."""

    def __init__(self, services: HubServices) -> None:
        self.engine, self.clock, self.config = services.engine, services.clock, services.config
        self.load = HeldBatcher(lambda: reading(self.engine), self._load)
        self.apply = HeldBatcher(self.engine.begin, self._apply)

    async def _load(self, conn: AsyncConnection, ids: Sequence[int]) -> list[tuple[Any, list[Any]]]:
        """Each notification's row (None when gone) and, while it is ``queued``, its
        documents (with their content), in one query."""
        n, d = send_notifications.c, send_documents.c
        joined = send_notifications.outerjoin(
            send_documents, and_(d.notification_id == n.id, n.status == QUEUED)
        )
        rows: dict[int, Any] = {}
        docs: dict[int, list[Any]] = {}
        result = await conn.execute(
            select(send_notifications, d.id.label("doc_id"), *_DOC_REFS, d.content)
            .select_from(joined)
            .where(n.id.in_(set(ids)))
            .order_by(n.id, d.idx)
        )
        for r in result:
            rows.setdefault(r.id, r)
            if r.doc_id is not None:
                docs.setdefault(r.id, []).append(
                    SimpleNamespace(
                        id=r.doc_id,
                        idx=r.idx,
                        title=r.title,
                        sha256=r.sha256,
                        file_key=r.file_key,
                        version_token=r.version_token,
                        content=r.content,
                    )
                )
        return [(rows.get(i), docs.get(i, [])) for i in ids]

    async def _apply(self, conn: AsyncConnection, changes: Sequence[Change]) -> list[bool]:
        """The changes in one transaction; for each, whether its row changed. Each group of
        changes from one status to the same columns is one ``UPDATE ... WHERE status =
        :when RETURNING id`` (the compare-and-set; a column whose values differ is a
        ``CASE`` on the id). A second change of one row in the same batch loses, as it
        would have lost the compare-and-set after the first."""
        n = send_notifications.c
        now = self.clock.now()
        first: dict[int, Change] = {}
        for c in changes:
            first.setdefault(c.notification_id, c)
        groups: dict[tuple[str, tuple[str, ...]], list[Change]] = {}
        for c in first.values():
            groups.setdefault((c.when, tuple(sorted(c.values))), []).append(c)
        winners: dict[int, Change] = {}
        for (when, names), group in groups.items():
            values: dict[str, Any] = {"updated_at": now}
            for name in names:
                given = [now if c.values[name] is _NOW else c.values[name] for c in group]
                if all(v == given[0] for v in given):
                    values[name] = given[0]
                else:
                    column = send_notifications.c[name]
                    values[name] = case(
                        {
                            c.notification_id: literal(v, column.type)
                            for c, v in zip(group, given, strict=True)
                        },
                        value=n.id,
                        else_=column,
                    )
            changed = set(
                (
                    await conn.execute(
                        update(send_notifications)
                        .where(n.id.in_([c.notification_id for c in group]), n.status == when)
                        .values(values)
                        .returning(n.id)
                    )
                ).scalars()
            )
            for c in group:
                if c.notification_id in changed:
                    winners[c.notification_id] = c
        docs = [doc for c in winners.values() for doc in c.docs]
        if docs:
            await conn.execute(
                update(send_documents)
                .where(send_documents.c.id == bindparam("b_id"))
                .values(file_key=bindparam("b_key"), version_token=bindparam("b_version")),
                docs,
            )
        for c in winners.values():
            if c.values.get("status") in (REFUSED, FAILED, CANCELLED):
                await release_notices(conn, c.notification_id)
        events = [c.event for c in winners.values() if c.event is not None]
        if events:
            await emit(conn, self.config, events, now=now)
        jobs = [c.job for c in winners.values() if c.job is not None]
        if jobs:
            await enqueue_many(
                conn, jobs, now=now, default_max_attempts=self.config.outbox.max_attempts
            )
        return [winners.get(c.notification_id) is c for c in changes]


# -- outbox handlers ----------------------------------------------------------------------


def upload_handler(services: HubServices) -> Handler:
    """``send.upload``: preload and upload the documents SEND does not have yet, then, in the
    same job, the notification request (:func:`_request`: committed ``requesting`` with the
    documents' keys before SEND is called, so a retry of this job asks SEND first). The
    rows are read and changed in group commits with the other jobs running (``SendRows``)."""
    clients = SendClients(services)
    rows = SendRows(services)

    async def handle(job: Job) -> Delivery:
        notification_id = int(job.payload["notification_id"])
        row, docs = await rows.load(notification_id)
        if row is not None and row.status in (UPLOADED, REQUESTING):  # an earlier attempt's
            return await _request(services, clients, rows, notification_id)
        if row is None or row.status != QUEUED:
            return Delivery()
        client = clients.get(row.tenant_id)
        # Same bytes, same checksum: a retry of the whole step is safe (new slots, no notification).
        # PDFs (acts, notice PDFs), then the F24 metadata files (JSON)
        pending = [d for d in docs if d.file_key is None]
        pending = [d for d in pending if d.idx < F24_DOCUMENT_BASE] + [
            d for d in pending if d.idx >= F24_DOCUMENT_BASE
        ]
        uploaded: list[UploadedFile] = []
        for kind, group in (
            ("application/pdf", [d for d in pending if d.idx < F24_DOCUMENT_BASE]),
            ("application/json", [d for d in pending if d.idx >= F24_DOCUMENT_BASE]),
        ):
            for start in range(0, len(group), 15):
                chunk = group[start : start + 15]
                uploaded += await client.upload_files(
                    [bytes(d.content) for d in chunk],
                    content_type=kind,
                    digests=[d.sha256 for d in chunk],  # stored with the bytes
                )
        keys = {d.id: file for d, file in zip(pending, uploaded, strict=True)}
        refs = [  # the documents as stored below, for the request (no second read)
            SimpleNamespace(
                idx=d.idx,
                title=d.title,
                sha256=d.sha256,
                file_key=keys[d.id].key if d.id in keys else d.file_key,
                version_token=keys[d.id].version_token if d.id in keys else d.version_token,
            )
            for d in docs
        ]
        if _pays_with_pagopa(row):  # the notice PDFs' references are read
            async with services.engine.connect() as conn:
                request = await _request_of(conn, row, refs)
        else:
            request = await _request_of(None, row, refs)
        # committed before SEND is called: a retry of this job asks SEND first
        marked = await rows.apply(
            Change(
                notification_id,
                QUEUED,
                {"status": REQUESTING},
                docs=[
                    {"b_id": doc_id, "b_key": file.key, "b_version": file.version_token}
                    for doc_id, file in keys.items()
                ],
            )
        )
        if not marked:
            return Delivery()
        return await _request(services, clients, rows, notification_id, row=row, request=request)

    return handle


def _pays_with_pagopa(row: Any) -> bool:
    return '"pagoPa"' in row.request and any(
        p.get("pagoPa")
        for r in json.loads(row.request)["recipients"]
        for p in r.get("payments") or []
    )


#: The columns of ``send_documents`` a request refers to (not the content).
_DOC_REFS = (
    send_documents.c.idx,
    send_documents.c.title,
    send_documents.c.sha256,
    send_documents.c.file_key,
    send_documents.c.version_token,
)


async def _request_of(
    conn: AsyncConnection | None, row: Any, docs: Sequence[Any] | None = None
) -> NewNotificationRequest:
    """The request of ``row`` with its uploaded documents (``docs``: their references, read
    here when not given; ``conn`` may be None only with ``docs``, for a request without
    pagoPA payments)."""
    if docs is None:
        assert (
            conn is not None
        )  # not the content: SEND has it by now (the bytes stay in the database)
        docs = (
            await conn.execute(
                select(*_DOC_REFS)
                .where(send_documents.c.notification_id == row.id)
                .order_by(send_documents.c.idx)
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
        assert conn is not None
        await attach_to_request(conn, int(row.id), body, docs)  # the notice PDFs the hub attached
    resolve_f24(body, docs)  # the F24 metadata files' references
    return NewNotificationRequest.model_validate(body)


#: The first acceptance check runs in the job that sent the request when it is due within
#: this many seconds (``acceptance_poll_seconds``); later ones in ``send.acceptance`` jobs.
INLINE_ACCEPTANCE_SECONDS = 1.0


async def _request(
    services: HubServices,
    clients: SendClients,
    rows: SendRows,
    notification_id: int,
    *,
    row: Any = None,
    request: NewNotificationRequest | None = None,
) -> Delivery:
    """The notification request, sent once (module docstring). ``row`` and ``request``: the
    upload just committed the row ``requesting`` (SEND has not been called); without them the
    row is read, and one found ``requesting`` is resumed (SEND is asked first).

    Then the acceptance: when the first check is due within ``INLINE_ACCEPTANCE_SECONDS``
    it is made here, and an answer (ACCEPTED, REFUSED) is committed with the request id in
    one transaction; else (or WAITING, or no answer) the row is committed ``waiting`` with a
    ``send.acceptance`` job for the next check. A crash before that commit leaves the row
    ``requesting``: the retry finds the request at SEND by protocol number and token."""
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
    send = _send_of(services, row.tenant_id)
    delay = send.acceptance_poll_seconds if send else 10.0
    attempts = send.acceptance_poll_attempts if send else 200
    status: NotificationRequestStatus | None = found if found and not found.waiting else None
    if status is None and delay <= INLINE_ACCEPTANCE_SECONDS:
        await asyncio.sleep(delay)
        try:
            status = await client.request_status(request_id)
        except (ConnectorError, ValueError) as exc:  # the acceptance job asks again
            log.info("send: first acceptance check of %s failed: %s", request_id, exc)
    if status is not None and not status.waiting:
        await rows.apply(_decision(row, status, REQUESTING, request_id=request_id))
        return Delivery(remote_id=request_id)
    if status is not None:  # WAITING: the next check when SEND says
        delay = float(status.retryAfter or 0) or delay
    await rows.apply(
        Change(
            notification_id,
            REQUESTING,
            {"status": WAITING, "notification_request_id": request_id},
            job=NewJob(
                row.tenant_id,
                ACCEPTANCE_KIND,
                {  # what the check needs: it does not read the row
                    "notification_id": notification_id,
                    "request_id": request_id,
                    "pa_protocol_number": row.pa_protocol_number,
                },
                max_attempts=attempts,
                not_before=clock.now() + timedelta(seconds=delay),
            ),
        )
    )
    return Delivery(remote_id=request_id)


def _decision(
    row: Any, status: NotificationRequestStatus, when: str, *, request_id: str | None = None
) -> Change:
    """SEND's answer ACCEPTED (the IUN) or REFUSED (the errors) for a row still ``when``,
    with its webhook (``request_id``: stored too, when the row has none yet)."""
    extra = {"notification_request_id": request_id} if request_id else {}
    if status.accepted:
        return Change(
            int(row.id),
            when,
            {"status": ACCEPTED, "iun": status.iun, "accepted_at": _NOW, **extra},
            event=status_event(row, ACCEPTED, iun=status.iun),
        )
    errors = [e.model_dump(exclude_none=True) for e in status.errors]
    return Change(
        int(row.id),
        when,
        {"status": REFUSED, "errors": json.dumps(errors), **extra},
        event=status_event(row, REFUSED, errors=[e["code"] for e in errors]),
    )


def request_handler(services: HubServices) -> Handler:
    """``send.request``: the request of a notification uploaded by a ``send.upload`` job of
    an earlier version (which queued the request as a job of its own)."""
    clients = SendClients(services)

    rows = SendRows(services)

    async def handle(job: Job) -> Delivery:
        return await _request(services, clients, rows, int(job.payload["notification_id"]))

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
    rows = SendRows(services)
    engine = services.engine

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
        if not status.waiting:
            await rows.apply(_decision(row, status, WAITING))
            return Delivery(remote_id=status.iun if status.accepted else None)
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

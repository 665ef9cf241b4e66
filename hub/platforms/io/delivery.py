"""Outbox handlers that deliver App IO messages (``io.message``) and follow their status
(``io.status``), with one ``IoClient`` per tenant service, paced by the database-shared
rate limiter so every replica together stays within App IO's limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from sportello.batching import Batcher
from sportello.connectors.errors import ConnectorError, PermanentError, ServerError
from sportello.connectors.io.client import IoClient
from sportello.connectors.io.errors import ProfileNotFound, outcome_unknown
from sportello.connectors.io.models import EncodedMessage
from sportello.events import emit
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.io.campaigns import (
    FAILED,
    NOT_ON_IO,
    PROCESSED,
    QUEUED,
    REJECTED,
    SEND_BATCH_KIND,
    SENDER_NOT_ALLOWED,
    SENDING,
    SENT,
    STATUS_KIND,
    UNKNOWN,
)
from sportello.platforms.io.settings import IoTenantSettings, io_settings
from sportello.platforms.io.tables import io_messages
from sportello.ratelimit import DbRateLimiter
from sportello.services import HubServices


def _io_of(services: HubServices, tenant_id: str) -> IoTenantSettings | None:
    tenant = services.config.tenant(tenant_id)
    return io_settings(tenant) if tenant is not None else None


class IoClients:
    """One client per (tenant, service), built on first use from the configuration."""

    def __init__(self, services: HubServices) -> None:
        self.services = services
        self._clients: dict[tuple[str, str], IoClient] = {}

    def get(self, tenant_id: str, service_id: str) -> IoClient:
        key = (tenant_id, service_id)
        if key not in self._clients:
            tenant = self.services.config.tenant(tenant_id)
            io = io_settings(tenant) if tenant else None
            svc = io.service(service_id) if io else None
            if io is None or svc is None:
                raise PermanentError(
                    f"tenant {tenant_id!r} has no App IO service {service_id!r} configured",
                    platform="io",
                )
            pacer = None
            if io.rate_limit:
                limiter = DbRateLimiter(
                    self.services.engine,
                    limit=io.rate_limit,
                    window=io.rate_window,
                    margin=io.rate_margin,
                )

                async def pacer(
                    slot: str, _l: DbRateLimiter = limiter, _s: str = svc.id
                ) -> Callable[[], Awaitable[None]]:
                    key = f"io:{_s}"  # both keys share one budget
                    logged_at = await _l.acquire(key)
                    # for IoClient.take_slot: the call is logged when it is really made
                    return lambda: _l.restamp(key, logged_at)

            secondary = svc.secondary_key
            self._clients[key] = IoClient(
                self.services.session,
                io.base_url,
                primary_key=svc.key.reveal,
                secondary_key=secondary.reveal if secondary else None,
                pacer=pacer,
                transport=self.services.http if io.http_client == "lean" else None,
            )
        return self._clients[key]


class _MessageStore:
    """The message-row reads and writes of the ``io.message`` handler, group-committed."""

    def __init__(self, services: HubServices) -> None:
        self.engine, self.clock = services.engine, services.clock
        self.config = services.config
        self.tenants_with_webhooks = {t.id for t in services.config.tenants if t.webhooks}
        self.load = Batcher(self.load_many)
        self.mark_sending = Batcher(self._mark_sending)
        self.settle = Batcher(self._settle)

    async def load_many(self, ids: Sequence[int]) -> list[Any]:
        """Rows by id; a row left ``sending`` by a dead attempt becomes ``unknown`` here."""
        async with self.engine.begin() as conn:
            rows = {
                r.id: r
                for r in await conn.execute(select(*_LOADED).where(io_messages.c.id.in_(ids)))
            }
            stale = [i for i in ids if rows[i].status == SENDING]
            if stale:
                await conn.execute(
                    update(io_messages)
                    .where(io_messages.c.id.in_(stale), io_messages.c.status == SENDING)
                    .values(status=UNKNOWN, updated_at=self.clock.now(), error=UNKNOWN_REASON)
                )
        return [rows[i] for i in ids]

    async def _mark_sending(self, ids: Sequence[int]) -> list[bool]:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(io_messages)
                .where(io_messages.c.id.in_(ids), io_messages.c.status == QUEUED)
                .values(
                    status=SENDING, attempts=io_messages.c.attempts + 1, updated_at=self.clock.now()
                )
                .returning(io_messages.c.id)
            )
            marked = {r[0] for r in result}
        return [i in marked for i in ids]

    async def _settle(
        self, changes: Sequence[tuple[int, dict[str, Any], NewJob | None]]
    ) -> list[None]:
        now = self.clock.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(io_messages)
                .where(io_messages.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    error=bindparam("b_error"),
                    io_message_id=bindparam("b_io_id"),
                    sent_at=bindparam("b_sent_at"),
                    updated_at=now,
                ),
                [
                    {
                        "b_id": message_id,
                        "b_status": values["status"],
                        "b_error": values.get("error"),
                        "b_io_id": values.get("io_message_id"),
                        "b_sent_at": values.get("sent_at"),
                    }
                    for message_id, values, _ in changes
                ],
            )
            jobs = [job for _, _, job in changes if job is not None]
            if jobs:
                await enqueue_many(conn, jobs, now=now, default_max_attempts=5)
            if self.tenants_with_webhooks:
                ids = [
                    message_id for message_id, values, _ in changes if values["status"] != QUEUED
                ]
                await self._emit_status(conn, ids, now)
        return [None] * len(changes)

    async def _emit_status(self, conn: Any, ids: Sequence[int], now: Any) -> None:
        """One ``io.message.status`` event per changed message, in the same transaction."""
        if not ids:
            return
        rows = await conn.execute(
            select(
                io_messages.c.id,
                io_messages.c.tenant_id,
                io_messages.c.campaign_id,
                io_messages.c.status,
                io_messages.c.io_message_id,
            ).where(io_messages.c.id.in_(ids))
        )
        await emit(
            conn,
            self.config,
            [
                (
                    r.tenant_id,
                    "io.message.status",
                    {
                        "message_id": r.id,
                        "campaign_id": r.campaign_id,
                        "status": r.status,
                        "io_message_id": r.io_message_id,
                    },
                )
                for r in rows
                if r.tenant_id in self.tenants_with_webhooks
            ],
            now=now,
        )


# What the ``io.message`` handler reads of a message (not the timestamps: no parsing).
_LOADED = (
    io_messages.c.id,
    io_messages.c.tenant_id,
    io_messages.c.service_id,
    io_messages.c.status,
    io_messages.c.fiscal_code,
    io_messages.c.content,
    io_messages.c.feature_level_type,
    io_messages.c.io_message_id,
)

UNKNOWN_REASON = (
    "outcome unknown: interrupted while App IO was being called; not resent (IO has no "
    "idempotency key). Resend on purpose with `sportello io resend-unknown`"
)


class _Sender:
    """Delivers one loaded message row: profile check, the submit's rate-limit slot,
    ``sending`` committed, the message, the outcome. Shared by the single-message and the
    chunk handlers."""

    def __init__(self, services: HubServices) -> None:
        self.services = services
        self.clients = IoClients(services)
        self.messages = _MessageStore(services)
        self.clock = services.clock

    async def finish(
        self, message_id: int, status: str, *, job: NewJob | None = None, **values: Any
    ) -> None:
        await self.messages.settle((message_id, {"status": status, **values}, job))

    async def deliver(self, row: Any) -> Delivery:
        """Send a loaded row. A retryable failure raises with the row back in ``queued``."""
        message_id, finish = int(row.id), self.finish
        if row.status != QUEUED:
            return Delivery(remote_id=row.io_message_id)  # settled, or unknown: never resent
        try:
            # The content was validated when the message was queued (campaigns.prepare):
            # the stored JSON is sent as it is, inside a checked envelope.
            message = EncodedMessage.from_stored(
                row.fiscal_code, row.content, row.feature_level_type
            )
        except ValueError as exc:
            await finish(message_id, FAILED, error=f"stored message unusable: {exc}")
            return Delivery()
        client = self.clients.get(row.tenant_id, row.service_id)
        try:
            # The profile check changes nothing on IO: a failure here is safe to retry.
            profile = await client.get_profile(message.fiscal_code)
        except ProfileNotFound:
            await finish(message_id, NOT_ON_IO, error="the citizen has no App IO profile")
            return Delivery()
        except ConnectorError as exc:
            if exc.retryable:
                raise
            await finish(message_id, FAILED, error=str(exc))
            return Delivery()
        if not profile.sender_allowed:
            await finish(message_id, SENDER_NOT_ALLOWED, error="the citizen blocked this service")
            return Delivery()
        # The rate-limit slot first: a crash while waiting leaves the message `queued`.
        await client.take_slot()
        # From here the call may reach IO: `sending` is committed first (module docstring).
        if not await self.messages.mark_sending(message_id):
            return Delivery()  # another attempt got there first
        try:
            io_id = await client.submit_message(message)
        except ConnectorError as exc:
            if outcome_unknown(exc):
                await finish(message_id, UNKNOWN, error=f"outcome unknown: {exc}")
                return Delivery()
            if exc.retryable:  # refused before IO stored anything (429, connection refused)
                await finish(message_id, QUEUED, error=str(exc))
                raise
            await finish(message_id, FAILED, error=str(exc))
            return Delivery()
        except BaseException as exc:
            await finish(message_id, UNKNOWN, error=f"outcome unknown: {type(exc).__name__}")
            raise
        now = self.clock.now()
        io = _io_of(self.services, row.tenant_id)
        poll = None
        if io is not None and io.status_poll_attempts:
            poll = NewJob(
                row.tenant_id,
                STATUS_KIND,
                {"message_id": message_id},
                max_attempts=io.status_poll_attempts,
                not_before=now + timedelta(seconds=io.status_poll_delay),
            )
        await finish(message_id, SENT, job=poll, io_message_id=io_id, sent_at=now)
        return Delivery(remote_id=io_id)


def io_message_handler(services: HubServices) -> Handler:
    """``io.message``: one message (a single message from the API or another connector)."""
    sender = _Sender(services)

    async def handle(job: Job) -> Delivery:
        row = await sender.messages.load(int(job.payload["message_id"]))
        return await sender.deliver(row)

    return handle


def io_messages_handler(services: HubServices) -> Handler:
    """``io.messages``: a chunk of a campaign's messages in one outbox job.

    One claim, one outcome and one ledger row per chunk instead of per message; the rows are
    loaded together and each message then goes through the same steps as ``io.message``,
    with at most ``outbox.concurrency`` messages of this process in flight. The job is
    idempotent: a retry (or a worker taking over after a crash) skips the settled rows and
    turns the ones left ``sending`` into ``unknown``. A retryable failure of any message
    leaves it queued and makes the whole job retry later (the others are settled and are
    skipped then). Messages not started within ``CHUNK_START_BUDGET`` s (a paced service
    with many chunks waiting) go to a new job, so no attempt outlives ``job_timeout``.
    """
    sender = _Sender(services)
    in_flight = asyncio.Semaphore(services.config.outbox.concurrency)
    budget = min(CHUNK_START_BUDGET, services.config.outbox.job_timeout / 4)

    async def handle(job: Job) -> Delivery:
        ids = [int(i) for i in job.payload["message_ids"]]
        rows = await sender.messages.load_many(ids)
        loop = asyncio.get_running_loop()
        last_start = loop.time() + budget
        errors: list[Exception] = []
        later: list[int] = []
        started = 0

        async def one(row: Any) -> None:
            nonlocal started
            async with in_flight:
                if started and loop.time() > last_start:  # each job moves at least one on
                    later.append(int(row.id))
                    return
                started += 1
                try:
                    await sender.deliver(row)
                except Exception as exc:  # the row is queued again; the job retries it
                    errors.append(exc)

        await asyncio.gather(*(one(r) for r in rows if r.status == QUEUED))
        if errors:
            raise max(errors, key=lambda e: getattr(e, "retry_after", None) or 0.0)
        if later:
            async with services.engine.begin() as conn:
                await enqueue_many(
                    conn,
                    [NewJob(job.tenant_id, SEND_BATCH_KIND, {"message_ids": sorted(later)})],
                    now=sender.clock.now(),
                    default_max_attempts=job.max_attempts,
                )
        return Delivery()

    return handle


#: Seconds after which a chunk stops starting messages and hands the rest to a new job.
CHUNK_START_BUDGET = 60.0


class StillAccepted(ServerError):
    """The message is not processed yet: poll again later (through the outbox's backoff)."""


def io_status_handler(services: HubServices) -> Handler:
    clients = IoClients(services)
    engine, clock = services.engine, services.clock

    async def handle(job: Job) -> Delivery:
        message_id = int(job.payload["message_id"])
        async with engine.connect() as conn:
            row = (
                await conn.execute(select(io_messages).where(io_messages.c.id == message_id))
            ).one()
        if row.status != SENT or row.io_message_id is None:
            return Delivery()
        client = clients.get(row.tenant_id, row.service_id)
        answer = await client.get_message(row.fiscal_code, row.io_message_id)
        status = str(getattr(answer.status, "value", answer.status) or "").upper()
        if status in ("PROCESSED", "REJECTED"):
            final = PROCESSED if status == "PROCESSED" else REJECTED
            async with engine.begin() as conn:
                await conn.execute(
                    update(io_messages)
                    .where(io_messages.c.id == message_id)
                    .values(status=final, updated_at=clock.now())
                )
                await emit(
                    conn,
                    services.config,
                    [
                        (
                            row.tenant_id,
                            "io.message.status",
                            {
                                "message_id": message_id,
                                "campaign_id": row.campaign_id,
                                "status": final,
                                "io_message_id": row.io_message_id,
                            },
                        )
                    ],
                    now=clock.now(),
                )
            return Delivery(remote_id=row.io_message_id)
        io = _io_of(services, row.tenant_id)
        raise StillAccepted(
            f"message still {status or 'unknown'}",
            platform="io",
            retry_after=io.status_poll_delay if io else 60.0,
        )

    return handle

"""SEND's pagoPA payments, linked to the positions the hub keeps (through kernel hooks: the
SEND platform never imports the pagoPA one).

The contract. A notification's recipient names the pagoPA notice of its fine in SEND's own
shape, ``payments: [{"pagoPa": {"noticeCode", "creditorTaxId", "applyCost"}}]``; the debt
position is created beforehand by the hub's pagoPA platform (its API, its bulk import or
its command line), which allocates the notice code. Before the notification is queued:

- a payment without ``attachment`` whose notice the hub keeps (``hub_notice_document``)
  gets the notice PDF attached, preloaded and uploaded like a document
  (``pagoPa.attachment`` with its SHA-256, ``NotificationPaymentAttachment``); the notice's
  creditor must be ``creditorTaxId``, its debtor the recipient, and it must be payable
  (else 400/409 naming the field); a notice the hub does not keep is sent as given;
- with ``applyCost`` on a notice the hub's station answers, the request says
  ``pagoPaIntMode: SYNC`` (unless the caller chose): SEND's "synchronous mode", where the
  creditor's own system adds SEND's cost when the Node asks for the amount (SEND knowledge
  base, "Pagamenti pagoPA", devportal-docs ``knowledge-base-di-piattaforma-notifiche/
  pagamenti-e-spese-di-notifica/pagamenti-pagopa.md``);
- with ``applyCost`` on a notice whose position the tenant keeps in GPD (the pagoPA
  platform's GPD mode: pagoPA answers the Node from GPD, the hub's station is not asked),
  the request says ``pagoPaIntMode: ASYNC``: SEND itself writes its cost into the position
  (GPD's ``notificationFee``, added to the option's amount and to its creditor's transfer)
  when it accepts the notification and again whenever the cost changes (a registered
  letter sent), and refuses the notification (``PAYMENT_NOT_VALID``) when GPD does not
  have the position. So the request needs ``paFee`` and ``vat`` (``PaFeeV21``/``VatV21``:
  required with DELIVERY_MODE in ASYNC mode; else 400 naming them), and its upload job
  holds the position's outbox lock (``NoticeDocument.lock``): it runs only after the
  pagoPA platform's pending GPD jobs of that position (its creation first), so SEND never
  looks for a position GPD does not have yet. A receipt read back from GPD
  (``receipts-sync``) tells SEND like one the station stores (below);
- a notice already in another live notification of the tenant is refused (409): SEND
  refuses the same notice twice too.

Every pagoPA payment is recorded in ``send_payments``. The receipt closes both: when the
station stores a receipt paying one of them (``hub_notice_paid``, in the receipt's
transaction), a ``send.payment`` job tells SEND (``POST /delivery/events/payment/pagopa``,
"eventi di chiusura di una o più posizioni debitorie"), once the notification is accepted,
and SEND moves it to PAID (the stream brings ``PAYMENT``). When the Node asks the station for a
notice of an ACCEPTED notification with ``applyCost`` (``hub_notice_surcharge``), the
station adds SEND's ``totalPrice`` for it (``GET /delivery/v2.3/price/{paTaxId}/
{noticeCode}``; the cost changes while the notification travels, e.g. a registered letter,
so it is read when the citizen pays and kept ``PRICE_CACHE_SECONDS`` only). When SEND cannot
say, :class:`NoticeSurchargeUnavailable`: the station answers PAA_SYSTEM_ERROR and the PSP
retries; never a wrong amount.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.connectors.errors import ConnectorError
from sportello.connectors.send import sha256_b64
from sportello.connectors.send.errors import SendNotFound
from sportello.hookspecs import NoticeSurchargeUnavailable
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.send.settings import send_settings
from sportello.platforms.send.tables import (
    PAYMENT_DOCUMENT_BASE,
    send_documents,
    send_notifications,
    send_payments,
)
from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.send")

#: How long SEND's price of a notice is reused (verify and getPayment of one payment come
#: seconds apart; the cost changes over days).
PRICE_CACHE_SECONDS = 60.0
#: The price call's budget: the Node waits 7 s for the station, which should answer in 2.
PRICE_TIMEOUT_SECONDS = 3.0

# Our notification statuses (service.py) by what they mean for a notice.
_LIVE = ("queued", "uploaded", "requesting", "waiting", "accepted", "cancelling")
_AT_SEND = ("accepted", "cancelling")  # SEND has the notification: its cost applies
_MAYBE_AT_SEND = ("requesting", "waiting")  # SEND may have it: ask, 404 means no cost yet


class PaymentProblem(Exception):
    """A payment of the request the hub refuses: ``field`` names it (``recipients.0.
    payments.0.pagoPa.noticeCode``), ``status`` is the HTTP status (400 or 409)."""

    def __init__(self, field: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.detail, self.status = field, detail, status


@dataclass(frozen=True, slots=True)
class NoticeAttachment:
    """The notice PDF the hub attaches to ``recipients[rec_index].payments[pay_index]``."""

    rec_index: int
    pay_index: int
    notice_code: str
    pdf: bytes
    #: the outbox lock of the position's pending work where the Node reads it (GPD mode):
    #: the notification's upload waits for it
    lock: str | None = None


def link_mode(wire: dict[str, Any], station: bool, apply_cost: bool) -> None:
    """``wire``'s ``pagoPaIntMode`` for a payment with ``apply_cost`` on a notice of the
    tenant: SYNC when the hub's station answers the Node for it (it adds SEND's cost), ASYNC
    when GPD does (SEND writes its cost into GPD); the caller's choice is kept."""
    if apply_cost and not wire.get("pagoPaIntMode"):
        wire["pagoPaIntMode"] = "SYNC" if station else "ASYNC"


def check_async_fees(wire: dict[str, Any]) -> None:
    """In ASYNC mode with DELIVERY_MODE SEND needs ``paFee`` and ``vat`` to compute the cost
    it writes into GPD (``PaFeeV21``, ``VatV21``): :class:`PaymentProblem` (400) naming the
    missing one."""
    if wire.get("pagoPaIntMode") != "ASYNC" or wire.get("notificationFeePolicy") != "DELIVERY_MODE":
        return
    for name, what in (("paFee", "the sender's cost in euro cents"), ("vat", "the VAT percent")):
        if wire.get(name) is None:
            raise PaymentProblem(
                name,
                f"required ({what}): with applyCost on a notice kept in GPD SEND writes its "
                "cost into the position (pagoPaIntMode ASYNC, DELIVERY_MODE)",
            )


def _pagopa_payments(wire: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    return [
        (i, j, payment["pagoPa"])
        for i, recipient in enumerate(wire.get("recipients") or [])
        for j, payment in enumerate(recipient.get("payments") or [])
        if payment.get("pagoPa")
    ]


async def notice_attachments(
    services: HubServices, tenant_id: str, wire: dict[str, Any], actor: str
) -> list[NoticeAttachment]:
    """The notice PDFs to attach to ``wire``'s pagoPA payments (module docstring); sets
    ``wire["pagoPaIntMode"]`` to SYNC when the station adds SEND's cost, to ASYNC when SEND
    writes it into GPD (:func:`link_mode`). Raises
    :class:`PaymentProblem`. Call it before the transaction that queues the notification
    (it renders PDFs)."""
    plugins = services.plugins
    out: list[NoticeAttachment] = []
    seen: dict[str, str] = {}
    for i, j, pago in _pagopa_payments(wire):
        where = f"recipients.{i}.payments.{j}.pagoPa"
        code = str(pago["noticeCode"])
        if code in seen:
            raise PaymentProblem(f"{where}.noticeCode", f"the same notice as {seen[code]}")
        seen[code] = where
        if pago.get("attachment") or plugins is None:
            continue
        doc = await plugins.notice_document(services, tenant_id, code, actor)
        if doc is None:
            continue  # not a notice the hub keeps: sent as given
        if doc.creditor_tax_id != pago["creditorTaxId"]:
            raise PaymentProblem(
                f"{where}.creditorTaxId",
                f"the notice is the tenant's: its creditor is {doc.creditor_tax_id}",
            )
        if doc.debtor != str(wire["recipients"][i]["taxId"]).upper():
            raise PaymentProblem(f"{where}.noticeCode", "the notice's debtor is not this recipient")
        if not doc.payable:
            raise PaymentProblem(
                f"{where}.noticeCode",
                "the notice is not payable (paid, expired, cancelled or not yet valid)",
                409,
            )
        link_mode(wire, doc.station, bool(pago["applyCost"]))
        out.append(NoticeAttachment(i, j, code, doc.pdf, lock=doc.lock))
    check_async_fees(wire)
    return out


async def record_payments(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    notification_id: int,
    wire: dict[str, Any],
    notices: Sequence[NoticeAttachment],
) -> None:
    """In the queueing transaction: refuse a notice another live notification of the tenant
    has (:class:`PaymentProblem`, 409), store the attached notice PDFs as documents to
    upload and record every pagoPA payment."""
    payments = _pagopa_payments(wire)
    if not payments:
        return
    codes = [str(p["noticeCode"]) for _, _, p in payments]
    taken = (
        await conn.execute(
            select(send_payments.c.notice_code, send_notifications.c.id)
            .join(send_notifications, send_notifications.c.id == send_payments.c.notification_id)
            .where(
                send_payments.c.tenant_id == tenant_id,
                send_payments.c.notice_code.in_(codes),
                send_notifications.c.status.in_(_LIVE),
                send_notifications.c.id != notification_id,
            )
        )
    ).first()
    if taken is not None:
        i, j, _ = payments[codes.index(taken.notice_code)]
        raise PaymentProblem(
            f"recipients.{i}.payments.{j}.pagoPa.noticeCode",
            f"notification {taken.id} already carries this notice",
            409,
        )
    attached: dict[tuple[int, int], int] = {}
    if notices:
        rows = []
        for k, notice in enumerate(notices):
            idx = PAYMENT_DOCUMENT_BASE + k
            attached[(notice.rec_index, notice.pay_index)] = idx
            rows.append(
                {
                    "notification_id": notification_id,
                    "idx": idx,
                    "title": f"Avviso di pagamento pagoPA {notice.notice_code}",
                    "content": notice.pdf,
                    "sha256": sha256_b64(notice.pdf),
                }
            )
        await conn.execute(send_documents.insert(), rows)
    await conn.execute(
        send_payments.insert(),
        [
            {
                "tenant_id": tenant_id,
                "notification_id": notification_id,
                "rec_index": i,
                "pay_index": j,
                "notice_code": str(pago["noticeCode"]),
                "creditor_tax_id": str(pago["creditorTaxId"]),
                "apply_cost": bool(pago["applyCost"]),
                "document_idx": attached.get((i, j)),
                # unique per tenant: a concurrent queueing of the same notice fails here
                # (IntegrityError, the transaction rolled back) even past the check above
                "live_notice": str(pago["noticeCode"]),
            }
            for i, j, pago in payments
        ],
    )


async def release_notices(conn: AsyncConnection, notification_id: int) -> None:
    """The notification is no longer live (refused, failed, cancelled): its notices may be
    sent again in another notification."""
    await conn.execute(
        send_payments.update()
        .where(send_payments.c.notification_id == notification_id)
        .values(live_notice=None)
    )


async def attach_to_request(
    conn: AsyncConnection, notification_id: int, body: dict[str, Any], docs: Sequence[Any]
) -> None:
    """Put each uploaded notice PDF (``docs``: the notification's ``send_documents`` rows)
    into ``body``'s payments as ``pagoPa.attachment``."""
    by_idx = {int(d.idx): d for d in docs}
    rows = await conn.execute(
        select(
            send_payments.c.rec_index, send_payments.c.pay_index, send_payments.c.document_idx
        ).where(
            send_payments.c.notification_id == notification_id,
            send_payments.c.document_idx.is_not(None),
        )
    )
    for row in rows:
        doc = by_idx[int(row.document_idx)]
        pago = body["recipients"][row.rec_index]["payments"][row.pay_index]["pagoPa"]
        pago["attachment"] = {
            "digests": {"sha256": doc.sha256},
            "contentType": "application/pdf",
            "ref": {"key": doc.file_key, "versionToken": doc.version_token},
        }


# -- the receipt closes both ----------------------------------------------------------------

#: The outbox kind that tells SEND a notice was paid (``POST /delivery/events/payment/pagopa``).
PAYMENT_KIND = "send.payment"
#: How long a payment event waits for its notification's acceptance: 1,000 tries 30 s apart.
PAYMENT_WAIT_SECONDS, PAYMENT_ATTEMPTS = 30.0, 1000


async def queue_payment_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    notice_number: str,
    creditor_tax_id: str,
    amount: int,
    paid_at: datetime,
    now: datetime,
) -> int:
    """In the receipt's transaction (``hub_notice_paid``): a ``send.payment`` job for each
    live notification of the tenant carrying the notice, once per notification and notice
    (the outbox's idempotency key); how many were queued."""
    rows = (
        await conn.execute(
            select(send_payments.c.notification_id)
            .join(send_notifications, send_notifications.c.id == send_payments.c.notification_id)
            .where(
                send_payments.c.tenant_id == tenant_id,
                send_payments.c.notice_code == notice_number,
                send_payments.c.creditor_tax_id == creditor_tax_id,
                send_notifications.c.status.in_(_LIVE),
            )
        )
    ).scalars()
    jobs = [
        NewJob(
            tenant_id,
            PAYMENT_KIND,
            {
                "notification_id": int(notification_id),
                "notice_code": notice_number,
                "creditor_tax_id": creditor_tax_id,
                "amount": amount,
                "paid_at": paid_at.astimezone(UTC)
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z"),
            },
            idempotency_key=f"send.payment:{tenant_id}:{notification_id}:{notice_number}",
            max_attempts=PAYMENT_ATTEMPTS,
        )
        for notification_id in sorted(set(rows))
    ]
    if jobs:
        await enqueue_many(conn, jobs, now=now, default_max_attempts=PAYMENT_ATTEMPTS)
    return len(jobs)


# -- the cost added at the station --------------------------------------------------------


class Surcharges:
    """SEND's current cost of the tenant's notices with ``applyCost`` (``hub_notice_surcharge``),
    each kept ``ttl`` seconds; concurrent asks for one notice share one call to SEND."""

    def __init__(
        self,
        services: HubServices,
        clients: Any,
        *,
        ttl: float = PRICE_CACHE_SECONDS,
        timeout: float = PRICE_TIMEOUT_SECONDS,
    ) -> None:
        self.services, self.clients = services, clients
        self.ttl, self.timeout = ttl, timeout
        self.clock = services.clock  # what the cache's expiry is measured with
        self._cache: dict[tuple[str, str], tuple[datetime, int | None]] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[int | None]] = {}

    async def __call__(self, tenant_id: str, notice_number: str) -> int | None:
        tenant = self.services.config.tenant(tenant_id)
        if tenant is None or send_settings(tenant) is None or tenant.pdnd is None:
            return None
        key = (tenant_id, notice_number)
        now = self.clock.now()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await self._read(tenant_id, notice_number)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(value)
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (now + timedelta(seconds=self.ttl), value)
            return value
        finally:
            del self._pending[key]

    async def _read(self, tenant_id: str, notice_number: str) -> int | None:
        async with self.services.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(send_payments.c.creditor_tax_id, send_notifications.c.status)
                    .join(
                        send_notifications,
                        send_notifications.c.id == send_payments.c.notification_id,
                    )
                    .where(
                        send_payments.c.tenant_id == tenant_id,
                        send_payments.c.notice_code == notice_number,
                        send_payments.c.apply_cost.is_(True),
                        send_notifications.c.status.in_(_AT_SEND + _MAYBE_AT_SEND),
                    )
                    .order_by(send_notifications.c.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None  # no notification with applyCost (or not sent yet, or cancelled)
        try:
            async with asyncio.timeout(self.timeout):
                price = await self.clients.get(tenant_id).price(row.creditor_tax_id, notice_number)
        except SendNotFound:
            if row.status in _MAYBE_AT_SEND:
                return None  # SEND has not accepted it yet: no cost
            raise NoticeSurchargeUnavailable(
                "SEND has no cost for an accepted notification's notice"
            ) from None
        except (ConnectorError, TimeoutError, ValueError) as exc:
            raise NoticeSurchargeUnavailable(
                f"SEND's price API failed: {type(exc).__name__}"
            ) from None
        if price.totalPrice is None or price.totalPrice < 0:
            raise NoticeSurchargeUnavailable("SEND's price answer has no totalPrice")
        log.info(
            "send: notification cost read",
            extra={"tenant": tenant_id, "notice_number": notice_number, "cents": price.totalPrice},
        )
        return int(price.totalPrice)


SEND_SURCHARGES = web.AppKey("send_surcharges", Surcharges)

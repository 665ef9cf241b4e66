"""Debt positions and receipts held by the hub (tables in ``pagopa_tables``).

- ``create_position`` allocates aux-3 IUVs from a per-tenant counter for options that have
  none, stores the position and its options, and (GPD mode) queues ``pagopa.gpd.create`` in
  the same transaction. Idempotent by IUPD: the same content again returns the stored
  position, different content raises :class:`PositionConflict`.
- ``update_position``, ``publish_position`` and ``invalidate_position`` change a stored
  position where GPD's state machine allows it (else :class:`IllegalPositionChange`), in
  one transaction with (GPD mode) a ``pagopa.gpd.update`` / ``.publish`` / ``.invalidate``
  job. Each change bumps the position's ``gpd_seq``; the job's idempotency key is derived
  from (tenant, IUPD, operation, sequence). Every GPD job of a position (its create, or the
  bulk upload holding it, and each change) holds the outbox lock :func:`gpd_lock`, so the
  outbox runs them one at a time in the order they were queued: the changes of one IUPD
  reach GPD in the order they were made (a failed or cancelled job does not hold back the
  later ones). The position's row lock (``_change`` updates it) orders the enqueues.
  Station mode: only the local state changes, and the station answers from it
  (INVALID → PAA_PAGAMENTO_ANNULLATO).
- ``store_receipt`` is the one place a receipt enters the hub: in ONE transaction it inserts
  the receipt (a receipt id already stored is a no-op reported as a duplicate), marks the
  option paid, moves the position along GPD's state machine, queues
  ``pagopa.receipt.forward`` (idempotency key from tenant and receipt id) and the
  ``pagopa.receipt`` webhook event. A receipt is always kept, even when it matches nothing
  (Stand-In, a broadcast, a double payment): what was odd is in its ``note``.
  A notice number identifies a payment only together with its creditor
  (``receipt/fiscalCode``), so a receipt touches the tenant's options only when its creditor
  is the tenant's EC (role ``creditor``). The Node broadcasts the ``paSendRT[V2]`` of a
  multi-beneficiary payment to every EC of its transfer list: when the tenant is only
  there (a ``transfer/fiscalCodePA``), the receipt is kept as ``beneficiary``, forwarded to
  accounting with the tenant's transfers only, and never touches a position. A receipt
  where the tenant is neither (misrouted, or forged) is kept as ``unrelated``, flagged,
  never forwarded nor announced; the station still answers OK (see ``_role``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sportello.batching import Batcher
from sportello.clock import Clock
from sportello.config import HubConfig
from sportello.connectors.pagopa.errors import IllegalTransition
from sportello.connectors.pagopa.identifiers import iuv_for, notice_number
from sportello.connectors.pagopa.models import DebtPosition, describe_validation_error
from sportello.connectors.pagopa.states import (
    UPDATABLE,
    DebtPositionStatus,
    Event,
    initial_state,
    next_state,
)
from sportello.connectors.pagopa.station import Receipt
from sportello.db import reading
from sportello.events import emit
from sportello.outbox.store import LOCK_KEY_MAX, NewJob, enqueue_many
from sportello.platforms.pagopa.settings import PagopaTenantSettings, pagopa_settings
from sportello.platforms.pagopa.tables import (
    FORWARD_PENDING,
    NOT_OURS,
    OPEN,
    PAID,
    ROLE_BENEFICIARY,
    ROLE_CREDITOR,
    ROLE_UNRELATED,
    iuv_counters,
    payment_options,
    positions,
    receipts,
)

if TYPE_CHECKING:
    from sportello.plugins import Plugins

__all__ = [
    "GPD_CHANGE_KINDS",
    "GPD_CREATE_KIND",
    "GPD_INVALIDATE_KIND",
    "GPD_PUBLISH_KIND",
    "GPD_UPDATE_KIND",
    "RECEIPT_EVENT",
    "RECEIPT_FORWARD_KIND",
    "IllegalPositionChange",
    "InvalidPosition",
    "IuvInUse",
    "OptionMatch",
    "OptionReader",
    "PagopaNotConfigured",
    "PagopaStore",
    "PagopaStoreError",
    "PositionConflict",
    "PositionNotFound",
    "ReceiptOutcome",
    "StoredOption",
    "StoredPosition",
    "StoredReceipt",
    "change_key",
    "effective_status",
    "forward_key",
    "gpd_lock",
    "position_from_json",
    "receipt_role",
]

RECEIPT_FORWARD_KIND = "pagopa.receipt.forward"
GPD_CREATE_KIND = "pagopa.gpd.create"
GPD_UPDATE_KIND = "pagopa.gpd.update"
GPD_PUBLISH_KIND = "pagopa.gpd.publish"
GPD_INVALIDATE_KIND = "pagopa.gpd.invalidate"
#: Operation → outbox kind of the changes made after creation.
GPD_CHANGE_KINDS: Mapping[str, str] = {
    "update": GPD_UPDATE_KIND,
    "publish": GPD_PUBLISH_KIND,
    "invalidate": GPD_INVALIDATE_KIND,
}
#: The outbox lock of a position's GPD jobs is ``pagopa.gpd:<tenant>:<iupd>`` (:func:`gpd_lock`).
GPD_LOCK_PREFIX = "pagopa.gpd"
RECEIPT_EVENT = "pagopa.receipt"

S = DebtPositionStatus


class PagopaStoreError(Exception):
    """Base of the store's errors; ``str()`` never holds personal data."""


class PagopaNotConfigured(PagopaStoreError):
    """The tenant does not exist or has no ``pagopa`` settings."""


class InvalidPosition(PagopaStoreError):
    """The position breaks a rule of ``DebtPosition`` (message names the fields)."""


class PositionConflict(PagopaStoreError):
    """The IUPD is stored with different content; ``differences`` lists the paths."""

    def __init__(self, iupd: str, differences: list[str]) -> None:
        self.iupd, self.differences = iupd, differences
        shown = ", ".join(differences[:10]) + (" ..." if len(differences) > 10 else "")
        super().__init__(f"position {iupd} already exists with different content: {shown}")


class IuvInUse(PagopaStoreError):
    """An IUV given by the caller belongs to another position of the tenant."""


class PositionNotFound(PagopaStoreError):
    """No position with this IUPD for the tenant."""


class IllegalPositionChange(PagopaStoreError):
    """GPD's state machine does not allow ``operation`` in the position's ``status``."""

    def __init__(self, iupd: str, operation: str, status: str, reason: str) -> None:
        self.iupd, self.operation, self.status, self.reason = iupd, operation, status, reason
        super().__init__(f"cannot {operation} position {iupd}, which is {status}: {reason}")


@dataclass(frozen=True, slots=True)
class StoredOption:
    iuv: str
    nav: str
    amount: int
    due_date: datetime
    is_partial_payment: bool
    installment_number: int | None
    status: str
    receipt_id: str | None
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredPosition:
    id: int
    tenant_id: str
    iupd: str
    status: str
    mode: str
    position: DebtPosition
    options: tuple[StoredOption, ...]
    created_at: datetime
    updated_at: datetime
    #: True when this call stored it (False: it was there already).
    created: bool = False
    #: True when this call changed it (update, publish, invalidate; False: nothing to do).
    changed: bool = False
    #: Changes made after creation (the sequence of the last one).
    gpd_seq: int = 0


@dataclass(frozen=True, slots=True)
class OptionMatch:
    """A payment option found by notice number, with its position."""

    position_id: int
    iupd: str
    status: str
    position: DebtPosition
    option: StoredOption


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    receipt_id: str
    duplicate: bool
    matched: bool
    note: str | None = None
    position_status: str | None = None
    #: What the tenant is in the receipt: ``creditor``, ``beneficiary`` or ``unrelated``.
    role: str = ROLE_CREDITOR


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    id: int
    tenant_id: str
    receipt_id: str
    nav: str
    iuv: str
    amount: int
    outcome: str
    id_psp: str
    psp_company_name: str
    payment_date_time: datetime | None
    stand_in: bool
    version: int
    note: str | None
    data: dict[str, Any]
    received_at: datetime
    forward_status: str
    forwarded_at: datetime | None
    iupd: str | None = None
    role: str = ROLE_CREDITOR


def receipt_role(receipt: Receipt, ec_fiscal_code: str) -> str:
    """What the EC ``ec_fiscal_code`` is in ``receipt``.

    ``creditor``: ``receipt/fiscalCode`` is the EC, the notice is one of its own.
    ``beneficiary``: another creditor's notice with at least one transfer credited to the EC
    (``transfer/fiscalCodePA``): the Node's broadcast of a multi-beneficiary payment.
    ``unrelated``: neither. The Node only sends a receipt to the ECs of its transfer list, so
    this is a misrouted or forged receipt; it is still answered OK (a KO makes the Node retry
    it for days, and refusing cannot undo a payment), kept as evidence and flagged, but it
    never pays an option, is never forwarded to accounting and raises no webhook event.
    """
    if receipt.fiscal_code == ec_fiscal_code:
        return ROLE_CREDITOR
    if any(t.fiscal_code_pa == ec_fiscal_code for t in receipt.transfers):
        return ROLE_BENEFICIARY
    return ROLE_UNRELATED


def forward_key(tenant_id: str, receipt_id: str) -> str:
    """The outbox idempotency key of a receipt's forwarding (fits the 100-character column)."""
    digest = hashlib.sha256(f"{tenant_id}\0{receipt_id}".encode()).hexdigest()
    return f"{RECEIPT_FORWARD_KIND}:{digest}"


def _gpd_key(tenant_id: str, iupd: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}\0{iupd}".encode()).hexdigest()
    return f"{GPD_CREATE_KIND}:{digest}"


def gpd_lock(tenant_id: str, iupd: str) -> str:
    """The outbox lock key of every GPD job of one position (readable; an IUPD too long
    for the column is hashed)."""
    key = f"{GPD_LOCK_PREFIX}:{tenant_id}:{iupd}"
    if len(key) <= LOCK_KEY_MAX:
        return key
    return f"{GPD_LOCK_PREFIX}:{tenant_id}:sha256:{hashlib.sha256(iupd.encode()).hexdigest()}"


def change_key(tenant_id: str, iupd: str, operation: str, seq: int) -> str:
    """The outbox idempotency key of change number ``seq`` of a position (at most 86
    characters): the same change retried is the same job."""
    digest = hashlib.sha256(f"{tenant_id}\0{iupd}\0{operation}\0{seq}".encode()).hexdigest()
    return f"{GPD_CHANGE_KINDS[operation]}:{digest}"


def update_date_problems(position: DebtPosition, now: datetime) -> list[str]:
    """What GPD refuses in an update at ``now``: a due date in the past when there is no
    validity date or ``switch_to_expired`` is set (GPD's ``DebtPositionValidation``)."""
    if position.validity_date is not None and not position.switch_to_expired:
        return []
    return [
        f"payment_options.{i}.due_date: is in the past"
        for i, o in enumerate(position.payment_options)
        if o.due_date < now
    ]


def publish_date_problems(position: DebtPosition, now: datetime) -> list[str]:
    """Why GPD refuses to publish at ``now``: the validity date began, a due date passed."""
    problems = []
    if position.validity_date is not None and position.validity_date < now:
        problems.append("validity_date: has begun")
    problems += [
        f"payment_options.{i}.due_date: is in the past"
        for i, o in enumerate(position.payment_options)
        if o.due_date < now
    ]
    return problems


def effective_status(status: str, position: DebtPosition, now: datetime) -> DebtPositionStatus:
    """The stored status with time applied: PUBLISHED → VALID at the validity date, VALID →
    EXPIRED after the last due date when ``switch_to_expired`` is set."""
    state = DebtPositionStatus(status)
    if state is S.PUBLISHED and position.validity_date is not None:
        if position.validity_date <= now:
            state = S.VALID
    if state is S.VALID and position.switch_to_expired:
        if max(o.due_date for o in position.payment_options) < now:
            state = S.EXPIRED
    return state


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}.{i}")
        ]
    return [] if a == b else [path or "(position)"]


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _option(row: Any) -> StoredOption:
    return StoredOption(
        iuv=row.iuv,
        nav=row.nav,
        amount=int(row.amount),
        due_date=row.due_date,
        is_partial_payment=bool(row.is_partial_payment),
        installment_number=row.installment_number,
        status=row.status,
        receipt_id=row.receipt_id,
        paid_at=row.paid_at,
    )


class PagopaStore:
    """The hub's pagoPA archive. ``config`` gives each tenant's settings and webhooks."""

    def __init__(
        self, engine: AsyncEngine, config: HubConfig, clock: Clock, plugins: Plugins | None = None
    ) -> None:
        self.engine, self.config, self.clock = engine, config, clock
        #: told of each notice a new receipt pays (``hub_notice_paid``): the station's store
        self.plugins = plugins

    def settings(self, tenant_id: str) -> PagopaTenantSettings:
        tenant = self.config.tenant(tenant_id)
        settings = pagopa_settings(tenant) if tenant is not None else None
        if settings is None:
            raise PagopaNotConfigured(f"tenant {tenant_id!r} has no pagoPA settings")
        return settings

    # -- positions ------------------------------------------------------------------------

    async def create_position(
        self, tenant_id: str, position: DebtPosition | Mapping[str, Any], *, to_publish: bool = True
    ) -> StoredPosition:
        """Store ``position`` (a model, or its fields with options lacking ``iuv``).

        IUVs missing from options are allocated from the tenant's counter for its
        segregation code. Same IUPD and same content: the stored one (``created=False``).
        """
        settings = self.settings(tenant_id)
        raw: dict[str, Any] = (
            position.model_dump() if isinstance(position, DebtPosition) else dict(position)
        )
        raw["payment_options"] = [dict(o) for o in raw.get("payment_options") or ()]
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    # a fresh copy each time: a failed attempt may have filled in IUVs
                    return await self.create_in(
                        conn, tenant_id, settings, copy.deepcopy(raw), to_publish
                    )
            except IntegrityError:
                # A concurrent create of the same IUPD (or IUV) won: look again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_in(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        settings: PagopaTenantSettings,
        raw: dict[str, Any],
        to_publish: bool,
    ) -> StoredPosition:
        """Store a position inside the caller's transaction (the API commits it together with
        its Idempotency-Key record); see :meth:`create_position`."""
        iupd = str(raw.get("iupd") or "")
        existing = (
            await conn.execute(
                select(positions).where(
                    positions.c.tenant_id == tenant_id, positions.c.iupd == iupd
                )
            )
        ).first()
        if existing is not None:
            stored = DebtPosition.from_stored(existing.content)
            for given, kept in zip(raw["payment_options"], stored.payment_options, strict=False):
                given.setdefault("iuv", kept.iuv)
            try:
                candidate = DebtPosition.model_validate(raw)
            except ValidationError:
                candidate = None
            if candidate != stored:
                theirs = candidate.model_dump(mode="json") if candidate else raw
                raise PositionConflict(
                    iupd, _differences(theirs, stored.model_dump(mode="json")) or ["(content)"]
                )
            return await self._load(conn, existing, created=False)

        missing = [o for o in raw["payment_options"] if not o.get("iuv")]
        if missing:
            first = await self._allocate(conn, tenant_id, settings.segregation_code, len(missing))
            for offset, option in enumerate(missing):
                option["iuv"] = iuv_for(first + offset, segregation_code=settings.segregation_code)
        try:
            model = DebtPosition.model_validate(raw)
        except ValidationError as exc:
            raise InvalidPosition(describe_validation_error(exc)) from None
        iuvs = [o.iuv for o in model.payment_options]
        taken = (
            (
                await conn.execute(
                    select(payment_options.c.iuv).where(
                        payment_options.c.tenant_id == tenant_id, payment_options.c.iuv.in_(iuvs)
                    )
                )
            )
            .scalars()
            .all()
        )
        if taken:
            raise IuvInUse(f"IUV {', '.join(sorted(taken))} already belongs to another position")

        now = self.clock.now()
        content = model.model_dump_json()
        status = initial_state(to_publish=to_publish, validity_date=model.validity_date)
        position_id = (
            await conn.execute(
                insert(positions)
                .values(
                    tenant_id=tenant_id,
                    iupd=model.iupd,
                    status=status.value,
                    mode=settings.mode,
                    debtor_fiscal_code=model.fiscal_code,
                    content=content,
                    content_sha256=hashlib.sha256(content.encode()).hexdigest(),
                    created_at=now,
                    updated_at=now,
                )
                .returning(positions.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(payment_options),
            [
                {
                    "tenant_id": tenant_id,
                    "position_id": position_id,
                    "iuv": o.iuv,
                    "nav": o.nav,
                    "amount": o.amount,
                    "due_date": o.due_date,
                    "retention_date": o.retention_date,
                    "is_partial_payment": o.is_partial_payment,
                    "installment_number": o.installment_number,
                    "status": OPEN,
                }
                for o in model.payment_options
            ],
        )
        if settings.mode == "gpd":
            await enqueue_many(
                conn,
                [
                    NewJob(
                        tenant_id,
                        GPD_CREATE_KIND,
                        {"iupd": model.iupd, "to_publish": to_publish},
                        idempotency_key=_gpd_key(tenant_id, model.iupd),
                        lock=gpd_lock(tenant_id, model.iupd),
                    )
                ],
                now=now,
                default_max_attempts=self.config.outbox.max_attempts,
            )
        row = (await conn.execute(select(positions).where(positions.c.id == position_id))).one()
        return await self._load(conn, row, created=True)

    async def _allocate(
        self, conn: AsyncConnection, tenant_id: str, segregation_code: str, count: int
    ) -> int:
        """Reserve ``count`` consecutive IUV bases; returns the first."""
        ins = _insert(conn, iuv_counters).values(
            tenant_id=tenant_id, segregation_code=segregation_code, last_value=count
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["tenant_id", "segregation_code"],
            set_={"last_value": iuv_counters.c.last_value + count},
        ).returning(iuv_counters.c.last_value)
        last = int((await conn.execute(stmt)).scalar_one())
        return last - count + 1

    async def _load(
        self, conn: AsyncConnection, row: Any, *, created: bool, changed: bool = False
    ) -> StoredPosition:
        options = await conn.execute(
            select(payment_options)
            .where(payment_options.c.position_id == row.id)
            .order_by(payment_options.c.id)
        )
        return StoredPosition(
            id=int(row.id),
            tenant_id=row.tenant_id,
            iupd=row.iupd,
            status=row.status,
            mode=row.mode,
            position=DebtPosition.from_stored(row.content),
            options=tuple(_option(o) for o in options),
            created_at=row.created_at,
            updated_at=row.updated_at,
            created=created,
            changed=changed,
            gpd_seq=int(row.gpd_seq),
        )

    async def get_position(self, tenant_id: str, iupd: str) -> StoredPosition | None:
        async with reading(self.engine) as conn:
            row = (
                await conn.execute(
                    select(positions).where(
                        positions.c.tenant_id == tenant_id, positions.c.iupd == iupd
                    )
                )
            ).first()
            return None if row is None else await self._load(conn, row, created=False)

    # -- changes after creation (update, publish, invalidate) ------------------------------

    async def update_position(
        self, tenant_id: str, iupd: str, changes: DebtPosition | Mapping[str, Any]
    ) -> StoredPosition:
        """Replace the content of position ``iupd`` (all its fields: a PUT, not a patch).

        Allowed in DRAFT, PUBLISHED, VALID and EXPIRED (time applied) and when no option is
        paid, else :class:`IllegalPositionChange`. Options without ``iuv`` keep the IUVs
        (and notice numbers) of the stored options in order; more options than before get
        new IUVs. The content must pass ``DebtPosition``'s rules (:class:`InvalidPosition`)
        and, in GPD mode, GPD's date rules for an update. The position keeps its
        publication: a DRAFT stays DRAFT, a published one becomes PUBLISHED (with a
        validity date) or VALID, as GPD's ``PUT ?toPublish=true`` does. The same content
        again changes nothing and queues nothing (``changed=False``).
        """
        self.settings(tenant_id)
        raw: dict[str, Any] = (
            changes.model_dump() if isinstance(changes, DebtPosition) else dict(changes)
        )
        async with self.engine.begin() as conn:
            return await self.update_in(conn, tenant_id, iupd, copy.deepcopy(raw))

    async def publish_position(self, tenant_id: str, iupd: str) -> StoredPosition:
        """DRAFT → PUBLISHED (VALID at once without a validity date); already PUBLISHED or
        VALID: nothing to do. In GPD mode GPD refuses it once the validity date began or a
        due date passed, so that is refused here too."""
        self.settings(tenant_id)
        async with self.engine.begin() as conn:
            return await self.publish_in(conn, tenant_id, iupd)

    async def invalidate_position(self, tenant_id: str, iupd: str) -> StoredPosition:
        """PUBLISHED or VALID → INVALID (final: GPD cancels the notices; the station answers
        PAA_PAGAMENTO_ANNULLATO); already INVALID: nothing to do."""
        self.settings(tenant_id)
        async with self.engine.begin() as conn:
            return await self.invalidate_in(conn, tenant_id, iupd)

    async def _locked(self, conn: AsyncConnection, tenant_id: str, iupd: str) -> Any:
        stmt = select(positions).where(positions.c.tenant_id == tenant_id, positions.c.iupd == iupd)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # SQLite: BEGIN IMMEDIATE already serialises writers
        row = (await conn.execute(stmt)).first()
        if row is None:
            raise PositionNotFound(f"no debt position {iupd}")
        return row

    async def update_in(
        self, conn: AsyncConnection, tenant_id: str, iupd: str, raw: dict[str, Any]
    ) -> StoredPosition:
        """:meth:`update_position` inside the caller's transaction."""
        settings = self.settings(tenant_id)
        row = await self._locked(conn, tenant_id, iupd)
        now = self.clock.now()
        stored = DebtPosition.from_stored(row.content)
        current = effective_status(row.status, stored, now)
        if current not in UPDATABLE:
            raise IllegalPositionChange(
                iupd, "update", current, "GPD updates only DRAFT, PUBLISHED, VALID or EXPIRED ones"
            )
        if str(raw.get("iupd") or iupd) != iupd:
            raise InvalidPosition("iupd: must be the IUPD of the position being updated")
        raw["iupd"] = iupd
        raw["payment_options"] = [dict(o) for o in raw.get("payment_options") or ()]
        held = (
            await conn.execute(
                select(payment_options.c.iuv, payment_options.c.status).where(
                    payment_options.c.position_id == row.id
                )
            )
        ).all()
        if any(h.status == PAID for h in held):
            raise IllegalPositionChange(iupd, "update", current, "an option is already paid")
        named = {str(o["iuv"]) for o in raw["payment_options"] if o.get("iuv")}
        reusable = [o.iuv for o in stored.payment_options if o.iuv not in named]
        missing = [o for o in raw["payment_options"] if not o.get("iuv")]
        for option in missing:
            if reusable:
                option["iuv"] = reusable.pop(0)
        fresh = [o for o in missing if not o.get("iuv")]
        if fresh:
            first = await self._allocate(conn, tenant_id, settings.segregation_code, len(fresh))
            for offset, option in enumerate(fresh):
                option["iuv"] = iuv_for(first + offset, segregation_code=settings.segregation_code)
        try:
            model = DebtPosition.model_validate(raw)
        except ValidationError as exc:
            raise InvalidPosition(describe_validation_error(exc)) from None
        if model == stored:
            return await self._load(conn, row, created=False)
        if row.mode == "gpd":
            problems = update_date_problems(model, now)
            if problems:
                raise InvalidPosition("; ".join(problems))
        iuvs = [o.iuv for o in model.payment_options]
        taken = (
            (
                await conn.execute(
                    select(payment_options.c.iuv).where(
                        payment_options.c.tenant_id == tenant_id,
                        payment_options.c.iuv.in_(iuvs),
                        payment_options.c.position_id != row.id,
                    )
                )
            )
            .scalars()
            .all()
        )
        if taken:
            raise IuvInUse(f"IUV {', '.join(sorted(taken))} already belongs to another position")

        to_publish = current is not S.DRAFT
        if not to_publish:
            event = Event.UPDATE_TO_DRAFT
        else:
            event = Event.UPDATE_PUBLISHED if model.validity_date else Event.UPDATE_VALID
        target = next_state(current, event)
        content = model.model_dump_json()
        kept = {h.iuv for h in held}
        for option in model.payment_options:
            values = {
                "amount": option.amount,
                "due_date": option.due_date,
                "retention_date": option.retention_date,
                "is_partial_payment": option.is_partial_payment,
                "installment_number": option.installment_number,
            }
            if option.iuv in kept:
                await conn.execute(
                    update(payment_options)
                    .where(
                        payment_options.c.position_id == row.id,
                        payment_options.c.iuv == option.iuv,
                    )
                    .values(**values)
                )
            else:
                await conn.execute(
                    insert(payment_options).values(
                        tenant_id=tenant_id,
                        position_id=row.id,
                        iuv=option.iuv,
                        nav=option.nav,
                        status=OPEN,
                        **values,
                    )
                )
        gone = kept - set(iuvs)
        if gone:
            await conn.execute(
                delete(payment_options).where(
                    payment_options.c.position_id == row.id, payment_options.c.iuv.in_(gone)
                )
            )
        return await self._change(
            conn,
            row,
            "update",
            target,
            now,
            values={
                "content": content,
                "content_sha256": hashlib.sha256(content.encode()).hexdigest(),
                "debtor_fiscal_code": model.fiscal_code,
            },
            payload={"to_publish": to_publish},
        )

    async def publish_in(self, conn: AsyncConnection, tenant_id: str, iupd: str) -> StoredPosition:
        """:meth:`publish_position` inside the caller's transaction."""
        row = await self._locked(conn, tenant_id, iupd)
        now = self.clock.now()
        stored = DebtPosition.from_stored(row.content)
        current = effective_status(row.status, stored, now)
        if current in (S.PUBLISHED, S.VALID):
            return await self._load(conn, row, created=False)
        try:
            next_state(current, Event.PUBLISH)
        except IllegalTransition:
            raise IllegalPositionChange(
                iupd, "publish", current, "only a DRAFT position can be published"
            ) from None
        if row.mode == "gpd":
            problems = publish_date_problems(stored, now)
            if problems:
                raise IllegalPositionChange(
                    iupd, "publish", current, f"GPD refuses it: {'; '.join(problems)}"
                )
        target = S.PUBLISHED if stored.validity_date is not None else S.VALID
        return await self._change(conn, row, "publish", target, now)

    async def invalidate_in(
        self, conn: AsyncConnection, tenant_id: str, iupd: str
    ) -> StoredPosition:
        """:meth:`invalidate_position` inside the caller's transaction."""
        row = await self._locked(conn, tenant_id, iupd)
        now = self.clock.now()
        current = effective_status(row.status, DebtPosition.from_stored(row.content), now)
        if current is S.INVALID:
            return await self._load(conn, row, created=False)
        try:
            target = next_state(current, Event.INVALIDATE)
        except IllegalTransition:
            raise IllegalPositionChange(
                iupd, "invalidate", current, "GPD invalidates only PUBLISHED or VALID positions"
            ) from None
        return await self._change(conn, row, "invalidate", target, now)

    async def _change(
        self,
        conn: AsyncConnection,
        row: Any,
        operation: str,
        target: DebtPositionStatus,
        now: datetime,
        *,
        values: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> StoredPosition:
        """Record the change (status, next ``gpd_seq``) and, in GPD mode, queue its job."""
        seq = int(row.gpd_seq) + 1
        await conn.execute(
            update(positions)
            .where(positions.c.id == row.id)
            .values(status=target.value, updated_at=now, gpd_seq=seq, **(values or {}))
        )
        if row.mode == "gpd":
            await enqueue_many(
                conn,
                [
                    NewJob(
                        row.tenant_id,
                        GPD_CHANGE_KINDS[operation],
                        {"iupd": row.iupd, "seq": seq, **(payload or {})},
                        idempotency_key=change_key(row.tenant_id, row.iupd, operation, seq),
                        lock=gpd_lock(row.tenant_id, row.iupd),
                    )
                ],
                now=now,
                default_max_attempts=self.config.outbox.max_attempts,
            )
        fresh = (await conn.execute(select(positions).where(positions.c.id == row.id))).one()
        return await self._load(conn, fresh, created=False, changed=True)

    async def list_positions(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        debtor: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> list[StoredPosition]:
        """Positions by id (``after`` is the last id seen: a cursor)."""
        stmt = (
            select(positions)
            .where(positions.c.tenant_id == tenant_id, positions.c.id > after)
            .order_by(positions.c.id)
            .limit(limit)
        )
        if status:
            stmt = stmt.where(positions.c.status == status)
        if debtor:
            stmt = stmt.where(positions.c.debtor_fiscal_code == debtor.upper())
        async with reading(self.engine) as conn:
            rows = (await conn.execute(stmt)).all()
            return [await self._load(conn, r, created=False) for r in rows]

    async def find_option(self, tenant_id: str, nav: str) -> OptionMatch | None:
        """The option with notice number ``nav`` and its position, or None."""
        stmt = (
            select(
                payment_options,
                positions.c.iupd,
                positions.c.status.label("p_status"),
                positions.c.content,
            )
            .join(positions, positions.c.id == payment_options.c.position_id)
            .where(payment_options.c.tenant_id == tenant_id, payment_options.c.nav == nav)
        )
        async with reading(self.engine) as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        return OptionMatch(
            position_id=int(row.position_id),
            iupd=row.iupd,
            status=row.p_status,
            position=position_from_json(row.content),
            option=_option(row),
        )

    async def known_notices(
        self, tenant_id: str, navs: Iterable[str]
    ) -> dict[str, tuple[int, datetime, str, bool]]:
        """For App IO messages: notice number -> (amount in cents, due date, debtor fiscal
        code, still payable) of the options the hub keeps, among ``navs``."""
        wanted = sorted(set(navs))
        found: dict[str, tuple[int, datetime, str, bool]] = {}
        async with reading(self.engine) as conn:
            for start in range(0, len(wanted), 500):
                stmt = (
                    select(
                        payment_options.c.nav,
                        payment_options.c.amount,
                        payment_options.c.due_date,
                        payment_options.c.status,
                        positions.c.status.label("p_status"),
                        positions.c.content,
                    )
                    .join(positions, positions.c.id == payment_options.c.position_id)
                    .where(
                        payment_options.c.tenant_id == tenant_id,
                        payment_options.c.nav.in_(wanted[start : start + 500]),
                    )
                )
                for row in await conn.execute(stmt):
                    debtor = DebtPosition.from_stored(row.content).fiscal_code
                    payable = row.status == OPEN and row.p_status not in (
                        "INVALID",
                        "EXPIRED",
                        "PAID",
                        "REPORTED",
                    )
                    found[row.nav] = (int(row.amount), row.due_date, debtor, payable)
        return found

    async def mark_activated(self, tenant_id: str, nav: str) -> None:
        """Record that a payment of ``nav`` started (paGetPayment answered OK)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(payment_options)
                .where(payment_options.c.tenant_id == tenant_id, payment_options.c.nav == nav)
                .values(activated_at=self.clock.now())
            )

    async def mark_activated_many(self, items: Sequence[tuple[str, str]]) -> list[None]:
        """:meth:`mark_activated` for several ``(tenant, notice number)`` pairs in ONE
        transaction (the station groups concurrent paGetPayment calls with a ``Batcher``)."""
        now = self.clock.now()
        if self.engine.dialect.name == "postgresql":
            keys = sorted(set(items))
            # ONE statement outside a transaction: committed (durably) when it returns
            async with self.engine.connect() as conn:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                await driver.execute(
                    _ACTIVATE_PG,
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    now.astimezone(UTC).replace(tzinfo=None),  # the column is naive UTC
                )
            return [None] * len(items)
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, nav in items:
            by_tenant.setdefault(tenant_id, []).append(nav)
        async with self.engine.begin() as conn:
            for tenant_id, navs in by_tenant.items():
                await conn.execute(
                    update(payment_options)
                    .where(
                        payment_options.c.tenant_id == tenant_id,
                        payment_options.c.nav.in_(sorted(set(navs))),
                    )
                    .values(activated_at=now)
                )
        return [None] * len(items)

    # -- receipts -------------------------------------------------------------------------

    async def store_receipt(
        self, tenant_id: str, receipt: Receipt, *, raw_xml: str, version: int
    ) -> ReceiptOutcome:
        """Keep ``receipt`` for good, once, and act on it (see the module docstring)."""
        now = self.clock.now()
        ec_fiscal_code = self.settings(tenant_id).ec_fiscal_code
        role = receipt_role(receipt, ec_fiscal_code)
        async with self.engine.begin() as conn:
            stmt = (
                _insert(conn, receipts)
                .values(
                    tenant_id=tenant_id,
                    receipt_id=receipt.receipt_id,
                    nav=receipt.notice_number,
                    iuv=receipt.creditor_reference_id,
                    amount=receipt.payment_amount,
                    outcome=receipt.outcome,
                    id_psp=receipt.id_psp,
                    psp_company_name=receipt.psp_company_name,
                    payment_date_time=receipt.payment_date_time,
                    stand_in=receipt.stand_in,
                    version=version,
                    raw_xml=raw_xml,
                    data=json.dumps(receipt.to_json(), separators=(",", ":")),
                    received_at=now,
                    forward_status=NOT_OURS if role == ROLE_UNRELATED else FORWARD_PENDING,
                    role=role,
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "receipt_id"])
                .returning(receipts.c.id)
            )
            row_id = (await conn.execute(stmt)).scalar_one_or_none()
            if row_id is None:
                return ReceiptOutcome(receipt.receipt_id, duplicate=True, matched=False, role=role)
            notes: list[str] = []
            if receipt.stand_in:
                notes.append("collected in Stand-In")
            position_id, iupd, status = None, None, None
            if receipt.outcome != "OK":
                notes.append("outcome KO: nothing was paid")
            elif role == ROLE_CREDITOR:
                position_id, iupd, status = await self._apply_payment(
                    conn, tenant_id, receipt, notes, now
                )
                if position_id is not None and self.plugins is not None:
                    # in this transaction: the SEND platform queues SEND's payment event
                    await self.plugins.notice_paid(
                        conn,
                        tenant_id=tenant_id,
                        notice_number=receipt.notice_number,
                        creditor_tax_id=receipt.fiscal_code,
                        amount=receipt.payment_amount,
                        paid_at=receipt.payment_date_time or now,
                        now=now,
                    )
            elif role == ROLE_BENEFICIARY:
                ours = [
                    t.id_transfer for t in receipt.transfers if t.fiscal_code_pa == ec_fiscal_code
                ]
                notes.append(
                    f"secondary beneficiary of creditor {receipt.fiscal_code}'s notice: "
                    f"our transfers {', '.join(map(str, ours))}; no position of ours is touched"
                )
            else:
                notes.append(
                    f"not ours: creditor {receipt.fiscal_code}, and no transfer credited to "
                    f"{ec_fiscal_code}; kept, not applied, not forwarded"
                )
            note = "; ".join(notes) or None
            await conn.execute(
                update(receipts)
                .where(receipts.c.id == row_id)
                .values(note=note, position_id=position_id)
            )
            if role == ROLE_UNRELATED:
                return ReceiptOutcome(
                    receipt.receipt_id, duplicate=False, matched=False, note=note, role=role
                )
            await enqueue_many(
                conn,
                [
                    NewJob(
                        tenant_id,
                        RECEIPT_FORWARD_KIND,
                        {"receipt_id": receipt.receipt_id},
                        idempotency_key=forward_key(tenant_id, receipt.receipt_id),
                    )
                ],
                now=now,
                default_max_attempts=self.config.outbox.max_attempts,
            )
            event = {
                "receipt_id": receipt.receipt_id,
                "notice_number": receipt.notice_number,
                "iuv": receipt.creditor_reference_id,
                "iupd": iupd,
                "amount_cents": receipt.payment_amount,
                "outcome": receipt.outcome,
                "stand_in": receipt.stand_in,
                "payment_date_time": receipt.payment_date_time.isoformat()
                if receipt.payment_date_time
                else None,
                "id_psp": receipt.id_psp,
                "matched": position_id is not None,
                "position_status": status,
                "note": note,
                "role": role,
                "creditor_fiscal_code": receipt.fiscal_code,
            }
            await emit(conn, self.config, [(tenant_id, RECEIPT_EVENT, event)], now=now)
        return ReceiptOutcome(
            receipt.receipt_id,
            duplicate=False,
            matched=position_id is not None,
            note=note,
            position_status=status,
            role=role,
        )

    async def _apply_payment(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        receipt: Receipt,
        notes: list[str],
        now: datetime,
    ) -> tuple[int | None, str | None, str | None]:
        """Mark the option paid and move the position; returns (position id, IUPD, status)."""
        stmt = (
            select(
                payment_options,
                positions.c.iupd,
                positions.c.status.label("p_status"),
                positions.c.content,
            )
            .join(positions, positions.c.id == payment_options.c.position_id)
            .where(
                payment_options.c.tenant_id == tenant_id,
                payment_options.c.nav == receipt.notice_number,
            )
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # serialises receipts of one position
        row = (await conn.execute(stmt)).first()
        if row is None:
            notes.append("no payment option with this notice number")
            return None, None, None
        if receipt.payment_amount != row.amount:
            note = f"amount {receipt.payment_amount} cents differs from the option's {row.amount}"
            if receipt.payment_amount > row.amount:
                # the station may add to the amount it answers (SEND's notification cost
                # with applyCost: hub_notice_surcharge); the option is paid all the same
                note += (
                    f" (+{receipt.payment_amount - row.amount}: a surcharge such as SEND's "
                    "notification cost)"
                )
            notes.append(note)
        if row.status == PAID:
            notes.append(f"option already paid by receipt {row.receipt_id}: double payment")
            return int(row.position_id), row.iupd, row.p_status
        await conn.execute(
            update(payment_options)
            .where(payment_options.c.id == row.id)
            .values(
                status=PAID, receipt_id=receipt.receipt_id, paid_at=receipt.payment_date_time or now
            )
        )
        if row.is_partial_payment:
            unpaid = (
                await conn.execute(
                    select(func.count()).where(
                        payment_options.c.position_id == row.position_id,
                        payment_options.c.is_partial_payment.is_(True),
                        payment_options.c.status == OPEN,
                    )
                )
            ).scalar_one()
            event = Event.PAY_INSTALLMENT if unpaid else Event.PAY_LAST_INSTALLMENT
        else:
            event = Event.PAY_FULL
        position = DebtPosition.from_stored(row.content)
        current = effective_status(row.p_status, position, now)
        try:
            target = next_state(current, event)
        except IllegalTransition:
            target = S.PARTIALLY_PAID if event is Event.PAY_INSTALLMENT else S.PAID
            notes.append(f"paid while the position was {current.value}")
        await conn.execute(
            update(positions)
            .where(positions.c.id == row.position_id)
            .values(status=target.value, updated_at=now)
        )
        return int(row.position_id), row.iupd, target.value

    def receipt_from_row(self, row: Any) -> StoredReceipt:
        return StoredReceipt(
            id=int(row.id),
            tenant_id=row.tenant_id,
            receipt_id=row.receipt_id,
            nav=row.nav,
            iuv=row.iuv,
            amount=int(row.amount),
            outcome=row.outcome,
            id_psp=row.id_psp,
            psp_company_name=row.psp_company_name,
            payment_date_time=row.payment_date_time,
            stand_in=bool(row.stand_in),
            version=int(row.version),
            note=row.note,
            data=json.loads(row.data),
            received_at=row.received_at,
            forward_status=row.forward_status,
            forwarded_at=row.forwarded_at,
            iupd=row.iupd,
            role=row.role,
        )

    def receipts_query(self, tenant_id: str) -> Any:
        return (
            select(receipts, positions.c.iupd)
            .outerjoin(positions, positions.c.id == receipts.c.position_id)
            .where(receipts.c.tenant_id == tenant_id)
        )

    async def get_receipt(self, tenant_id: str, receipt_id: str) -> StoredReceipt | None:
        stmt = self.receipts_query(tenant_id).where(receipts.c.receipt_id == receipt_id)
        async with reading(self.engine) as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else self.receipt_from_row(row)

    async def raw_receipt(self, tenant_id: str, receipt_id: str) -> str | None:
        """The receipt's SOAP request exactly as received."""
        async with reading(self.engine) as conn:
            return (
                await conn.execute(
                    select(receipts.c.raw_xml).where(
                        receipts.c.tenant_id == tenant_id, receipts.c.receipt_id == receipt_id
                    )
                )
            ).scalar_one_or_none()

    async def list_receipts(
        self,
        tenant_id: str,
        *,
        nav: str | None = None,
        forward_status: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> list[StoredReceipt]:
        """Receipts in arrival order (``after``: the last ``id`` seen)."""
        stmt = (
            self.receipts_query(tenant_id)
            .where(receipts.c.id > after)
            .order_by(receipts.c.id)
            .limit(limit)
        )
        if nav:
            stmt = stmt.where(receipts.c.nav == nav)
        if forward_status:
            stmt = stmt.where(receipts.c.forward_status == forward_status)
        async with reading(self.engine) as conn:
            return [self.receipt_from_row(r) for r in await conn.execute(stmt)]

    async def receipts_for_recovery(
        self, tenant_id: str, *, activated_before: datetime, limit: int = 100
    ) -> list[OptionMatch]:
        """Options whose payment started (paGetPayment answered) before ``activated_before``
        and that still have no receipt: ask biz-events for them (the receipt may be lost)."""
        stmt = (
            select(
                payment_options,
                positions.c.iupd,
                positions.c.status.label("p_status"),
                positions.c.content,
            )
            .join(positions, positions.c.id == payment_options.c.position_id)
            .where(
                payment_options.c.tenant_id == tenant_id,
                payment_options.c.status == OPEN,
                payment_options.c.activated_at < activated_before,
            )
            .order_by(payment_options.c.activated_at)
            .limit(limit)
        )
        async with reading(self.engine) as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            OptionMatch(
                position_id=int(r.position_id),
                iupd=r.iupd,
                status=r.p_status,
                position=DebtPosition.from_stored(r.content),
                option=_option(r),
            )
            for r in rows
        ]

    async def mark_forwarded(self, tenant_id: str, receipt_id: str, status: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(receipts)
                .where(receipts.c.tenant_id == tenant_id, receipts.c.receipt_id == receipt_id)
                .values(forward_status=status, forwarded_at=self.clock.now())
            )

    async def set_status(
        self, tenant_id: str, iupd: str, status: str, *, seq: int | None = None
    ) -> None:
        """Record the status GPD reports for a position (GPD mode). With ``seq``, only
        while the position's ``gpd_seq`` is still ``seq``: a later change made here (an
        invalidation queued behind the create job) is not overwritten by an older answer."""
        stmt = update(positions).where(positions.c.tenant_id == tenant_id, positions.c.iupd == iupd)
        if seq is not None:
            stmt = stmt.where(positions.c.gpd_seq == seq)
        async with self.engine.begin() as conn:
            await conn.execute(
                stmt.values(status=DebtPositionStatus(status).value, updated_at=self.clock.now())
            )


@lru_cache(maxsize=1024)
def position_from_json(content: str) -> DebtPosition:
    """A stored position's JSON as a model, validated once per distinct JSON text.

    Safe to share: the models are frozen, and the cache key is the whole stored text, so a
    position whose content changed is a different key (the mutable status columns are
    read from the row on every call, never cached).
    """
    return DebtPosition.from_stored(content)


def _utc(value: Any) -> datetime:
    """A driver's timestamp (SQLite: ISO text; PostgreSQL: naive datetime) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC)


_OPTION_COLUMNS = (
    "o.position_id, o.iuv, o.nav, o.amount, o.due_date, o.is_partial_payment, "
    "o.installment_number, o.status, o.receipt_id, o.paid_at, p.iupd, p.status, p.content, "
    "o.tenant_id"
)
_ONE_OPTION = (
    f"SELECT {_OPTION_COLUMNS} FROM {payment_options.name} o "
    f"JOIN {positions.name} p ON p.id = o.position_id WHERE o.tenant_id = ? AND o.nav = ?"
)
_MANY_OPTIONS_PG = (
    f"SELECT {_OPTION_COLUMNS} FROM {payment_options.name} o "
    "JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, nav) "
    "ON o.tenant_id = k.tenant_id AND o.nav = k.nav "
    f"JOIN {positions.name} p ON p.id = o.position_id"
)

_ACTIVATE_PG = (
    f"UPDATE {payment_options.name} o SET activated_at = $3 "
    "FROM unnest($1::text[], $2::text[]) AS k(tenant_id, nav) "
    "WHERE o.tenant_id = k.tenant_id AND o.nav = k.nav"
)


def _match_from(row: Any) -> OptionMatch:
    (position_id, iuv, nav, amount, due, partial, instalment, status, receipt_id, paid_at,
     iupd, p_status, content, _tenant) = row  # fmt: skip
    return OptionMatch(
        position_id=int(position_id),
        iupd=iupd,
        status=p_status,
        position=position_from_json(content),
        option=StoredOption(
            iuv=iuv,
            nav=nav,
            amount=int(amount),
            due_date=_utc(due),
            is_partial_payment=bool(partial),
            installment_number=instalment,
            status=status,
            receipt_id=receipt_id,
            paid_at=None if paid_at is None else _utc(paid_at),
        ),
    )


class OptionReader:
    """:meth:`PagopaStore.find_option` for the EC station's hot path.

    SQLite: one query on a plain ``sqlite3`` connection of its own (``query_only``), on the
    event loop. In WAL mode a reader neither waits for nor blocks the writer, and an indexed
    point query answered from the page cache takes a few microseconds, where each hop to
    aiosqlite's thread costs tens (SQLAlchemy's connect/begin/execute/rollback make eight of
    them). With ``timeout=0`` it never sleeps on a lock: on any ``sqlite3.Error`` (busy,
    another thread) it uses the pooled connection instead.
    PostgreSQL: the look-ups of concurrent requests are grouped (``Batcher``): one pool
    checkout and ONE ``fetch`` on the asyncpg connection, outside any transaction, for all.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        url = make_url(engine.url)
        db = url.database
        self._path = db if url.get_backend_name() == "sqlite" and db and db != ":memory:" else None
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Batcher[tuple[str, str], Any] | None = None
        if engine.dialect.name == "postgresql":
            self._pg = Batcher(self._pg_rows)

    def close(self) -> None:
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # e.g. called from another thread
                conn.close()

    def _sqlite_row(self, tenant_id: str, nav: str) -> Any:
        if self._sqlite is None:
            if self._path is None:
                raise sqlite3.OperationalError("no database file")
            # mode=rw: never create a database that is not there
            conn = sqlite3.connect(
                f"file:{quote(self._path)}?mode=rw", uri=True, timeout=0, isolation_level=None
            )
            conn.execute("PRAGMA query_only=ON")
            self._sqlite = conn
        # fetchall: the statement runs to its end, so no read snapshot stays open
        rows = self._sqlite.execute(_ONE_OPTION, (tenant_id, nav)).fetchall()
        return rows[0] if rows else None

    async def _pg_rows(self, keys: Sequence[tuple[str, str]]) -> list[Any]:
        async with self.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            rows = await driver.fetch(_MANY_OPTIONS_PG, [k[0] for k in keys], [k[1] for k in keys])
        found = {(r[-1], r[2]): r for r in rows}
        return [found.get(k) for k in keys]

    async def find_option(self, tenant_id: str, nav: str) -> OptionMatch | None:
        """The option with notice number ``nav`` and its position, or None."""
        row: Any
        if self._pg is not None:
            row = await self._pg((tenant_id, nav))
        else:
            try:
                row = self._sqlite_row(tenant_id, nav)
            except sqlite3.Error:
                self.close()
                async with reading(self.engine) as conn:
                    row = (await conn.exec_driver_sql(_ONE_OPTION, (tenant_id, nav))).first()
        return None if row is None else _match_from(row)


def nav_of(iuv: str) -> str:
    """The notice number of one of the hub's IUVs."""
    return notice_number(iuv)

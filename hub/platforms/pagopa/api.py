"""REST API routes for pagoPA (``/api/v1/tenants/{tenant}/pagopa/...``).

- ``POST positions`` (write, Idempotency-Key): a debt position; the hub allocates the IUVs
  and answers with the notice numbers. The same IUPD with the same content answers 200
  with the stored position, with other content 409. Validation errors are 422 with the
  field paths, never the values.
- ``GET positions`` (read): without the debtor. Filtering by ``debtor`` (a fiscal code) is
  a personal-data query: scope personal_data, audited.
- ``GET positions/{iupd}`` and ``GET notices/{nav}.pdf`` (personal_data, audited): the
  position with its debtor; the payment notice as a PDF.
- ``PUT positions/{iupd}`` (write, Idempotency-Key): the position's new content (the whole
  position, options without ``iuv``: they keep the stored options' IUVs in order);
  ``POST positions/{iupd}/publish`` and ``POST positions/{iupd}/invalidate`` (write,
  Idempotency-Key). 200 with the position (already published / invalidated, or the same
  content: 200 and nothing queued), 404 for an unknown IUPD, 409 naming the state when
  GPD's state machine does not allow it (nothing stored, nothing queued). In GPD mode
  the change goes to GPD through the outbox (``pagopa.gpd.update`` / ``.publish`` /
  ``.invalidate``, in order per IUPD).
- ``POST carts`` (write, Idempotency-Key): 1 to 5 notices of the tenant → a Checkout cart
  → ``redirect_url`` for the payer. Nothing changes here: only receipts pay.
- ``GET receipts`` and ``GET receipts/{receipt_id}`` (read): without the debtor and payer;
  a key with personal_data also gets the full receipt (``data``), and that read is audited.

A tenant without ``[tenants.pagopa]`` answers 409 on every route.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import audit
from sportello.api.bodies import loads_json, read_body
from sportello.api.core import (
    PAGING,
    PREFIX,
    _iso,
    _parse_time,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    page,
    page_params,
    principal_of,
    problem,
    require,
    tenant_of,
)
from sportello.api.models import page_of
from sportello.api.openapi import Answer, Query, failure, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SESSION
from sportello.config import TenantConfig
from sportello.connectors import fiscal_code
from sportello.connectors.errors import (
    AuthError,
    ConnectorError,
    SigningError,
    Unprocessable,
)
from sportello.connectors.pagopa.checkout import (
    PRODUCTION_BASE_URL as CHECKOUT_PRODUCTION_URL,
)
from sportello.connectors.pagopa.checkout import (
    CartRequest,
    CheckoutClient,
    CheckoutNotice,
    ReturnUrls,
)
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import DebtPosition, PaymentOption
from sportello.connectors.pagopa.notice_layout import Creditor
from sportello.connectors.pagopa.notice_pdf import render_notice
from sportello.connectors.pagopa.states import DebtPositionStatus
from sportello.db import reading
from sportello.platforms.pagopa.api_models import (
    PagopaCart,
    PagopaCartRequest,
    PagopaPosition,
    PagopaPositionRequest,
    PagopaPositionUpdate,
    PagopaReceipt,
)
from sportello.platforms.pagopa.settings import PagopaTenantSettings, pagopa_settings
from sportello.platforms.pagopa.station import fault_for
from sportello.platforms.pagopa.store import (
    IllegalPositionChange,
    InvalidPosition,
    IuvInUse,
    PagopaStore,
    PositionConflict,
    PositionNotFound,
    StoredPosition,
    StoredReceipt,
    effective_status,
)
from sportello.platforms.pagopa.tables import OPEN, receipts
from sportello.schema import idempotency_keys

__all__ = ["notice_creditor", "routes"]

BASE = PREFIX + "/tenants/{tenant}/pagopa"
STATUSES = tuple(s.value for s in DebtPositionStatus)
NAV = re.compile(r"[0-9]{18}")
_DEBTOR_FIELDS = (
    "type",
    "fiscal_code",
    "full_name",
    "street_name",
    "civic_number",
    "postal_code",
    "city",
    "province",
    "region",
    "country",
    "email",
)


# -- the contract (OpenAPI metadata shared by the handlers) -----------------------------

_PURPOSE = Query(
    "purpose",
    Annotated[str, Field(max_length=200)],
    "why the personal data is read (goes to the audit log)",
)
_NOT_CONFIGURED = failure("The tenant has no pagoPA settings ([tenants.pagopa])")
_INVALID = failure("What is wrong, field by field (errors: 'path: reason'); nothing stored")
_NO_POSITION = failure("No debt position with this IUPD, or no such tenant")
_ILLEGAL = failure(
    "GPD's state machine does not allow it in the position's state (the detail names the "
    "state; nothing stored or queued), or no pagoPA settings"
)
_KEY_REUSED = failure("An Idempotency-Key already used for another request")


# -- helpers ----------------------------------------------------------------------------


def notice_creditor(tenant: TenantConfig, position: DebtPosition) -> Creditor:
    """The creditor as ``position``'s payment notice shows it: the tenant's name and EC
    fiscal code, and its postal account (``[tenants.pagopa.postal]``) when the position
    names that account as a postal IBAN: the notice then has the *Bollettino Postale PA*
    with Poste's Data Matrix."""
    settings = pagopa_settings(tenant)
    assert settings is not None
    postal = settings.postal
    creditor = Creditor(
        name=tenant.name,
        fiscal_code=settings.ec_fiscal_code,
        postal_account=postal.account if postal else None,
        postal_authorization=postal.authorization if postal else None,
        postal_holder=postal.holder if postal else None,
    )
    return creditor.for_position(position)


def _settings(request: web.Request, tenant_id: str) -> PagopaTenantSettings:
    tenant = request.app[CONFIG].tenant(tenant_id)
    settings = pagopa_settings(tenant) if tenant is not None else None
    if settings is None:
        raise _Problem(409, "Conflict", "the tenant has no pagoPA settings ([tenants.pagopa])")
    return settings


def _store(request: web.Request) -> PagopaStore:
    return PagopaStore(request.app[ENGINE], request.app[CONFIG], request.app[CLOCK])


def _has(request: web.Request, scope: str) -> bool:
    scopes = principal_of(request).scopes
    return scope in scopes or "admin" in scopes


def _purpose(request: web.Request) -> str:
    """``?purpose=``: why personal data is read (to the audit log), at most 200 characters."""
    purpose = request.query.get("purpose", "").strip()
    if len(purpose) > 200:
        raise _Problem(400, "Bad Request", "purpose: at most 200 characters")
    return purpose or "pagoPA"


async def _audit(
    request: web.Request, tenant_id: str, action: str, subject: str, detail: str | None = None
) -> None:
    p = require(request, "personal_data")
    purpose = _purpose(request)
    async with request.app[ENGINE].begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=p.actor,
                action=action,
                subject=subject.upper(),
                purpose=purpose,
                sources="hub",
                outcome="ok",
                detail=detail,
            ),
            at=request.app[CLOCK].now(),
        )


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = loads_json(raw or b"null")
    except ValueError:
        raise _Problem(400, "Bad Request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _Problem(400, "Bad Request", "the body must be a JSON object")
    return body


def _unprocessable(errors: list[str], what: str) -> _Problem:
    exc = _Problem(422, "Unprocessable Content", f"{len(errors)} problem(s) in {what}")
    exc.response = problem(
        422,
        "Unprocessable Content",
        f"{len(errors)} problem(s) in {what}; nothing was stored",
        errors=errors,
    )
    return exc


def _validation_errors(exc: ValidationError) -> list[str]:
    """``field.path: reason`` per problem (never the input values)."""
    out = []
    for item in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        out.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return out


def _option_view(option: PaymentOption, stored: Any, *, transfers: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "iuv": option.iuv,
        "notice_number": option.nav,
        "amount": option.amount,
        "description": option.description,
        "due_date": option.due_date.isoformat(),
        "retention_date": _iso(option.retention_date),
        "is_partial_payment": option.is_partial_payment,
        "installment_number": option.installment_number,
        "status": stored.status if stored is not None else OPEN,
        "receipt_id": stored.receipt_id if stored is not None else None,
        "paid_at": _iso(stored.paid_at) if stored is not None else None,
    }
    if transfers:
        view["transfers"] = [t.model_dump(mode="json") for t in option.transfers]
        view["metadata"] = dict(option.metadata)
    return view


def _position_view(
    stored: StoredPosition, now: datetime, *, debtor: bool, detail: bool
) -> dict[str, Any]:
    """The position; the debtor only when ``debtor`` (personal_data, audited)."""
    p = stored.position
    by_iuv = {o.iuv: o for o in stored.options}
    view: dict[str, Any] = {
        "id": stored.id,
        "iupd": stored.iupd,
        "status": effective_status(stored.status, p, now).value,
        "mode": stored.mode,
        "company_name": p.company_name,
        "office_name": p.office_name,
        "validity_date": _iso(p.validity_date),
        "switch_to_expired": p.switch_to_expired,
        "pay_stand_in": p.pay_stand_in,
        "payment_options": [
            _option_view(o, by_iuv.get(o.iuv), transfers=detail) for o in p.payment_options
        ],
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
    }
    if debtor:
        view["debtor"] = {name: getattr(p, name) for name in _DEBTOR_FIELDS}
    return view


def _receipt_view(r: StoredReceipt, *, full: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r.id,
        "receipt_id": r.receipt_id,
        "notice_number": r.nav,
        "iuv": r.iuv,
        "iupd": r.iupd,
        "amount": r.amount,
        "outcome": r.outcome,
        "id_psp": r.id_psp,
        "psp_company_name": r.psp_company_name,
        "payment_date_time": _iso(r.payment_date_time),
        "stand_in": r.stand_in,
        "version": r.version,
        "note": r.note,
        "received_at": r.received_at.isoformat(),
        "forward_status": r.forward_status,
        "forwarded_at": _iso(r.forwarded_at),
        "role": r.role,
        "creditor_fiscal_code": r.data.get("fiscal_code"),
    }
    if full:
        view["data"] = r.data
    return view


# -- positions --------------------------------------------------------------------------


def _prepare_position(
    body: dict[str, Any], company_name: str, settings: PagopaTenantSettings
) -> tuple[dict[str, Any], DebtPosition]:
    """The body with the hub's defaults, and the position it makes with stand-in IUVs
    (checked before anything is allocated or stored: 422 with the field paths)."""
    options = body.get("payment_options")
    if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        raise _unprocessable(["payment_options: a list of objects"], "the debt position")
    errors = [
        f"payment_options.{i}.iuv: allocated by the hub, do not send it"
        for i, o in enumerate(options)
        if "iuv" in o
    ]
    if errors:
        raise _unprocessable(errors, "the debt position")
    raw = dict(body)
    raw.setdefault("company_name", company_name)
    raw["payment_options"] = []
    for given in options:
        option = dict(given)
        transfers = option.get("transfers")
        if isinstance(transfers, list):
            # the beneficiary is the comune unless the transfer names another
            option["transfers"] = [
                {"organization_fiscal_code": settings.ec_fiscal_code, **t}
                if isinstance(t, dict)
                else t
                for t in transfers
            ]
        raw["payment_options"].append(option)
    candidate = {
        **raw,
        "payment_options": [
            {**o, "iuv": iuv_for(i + 1, segregation_code=settings.segregation_code)}
            for i, o in enumerate(raw["payment_options"])
        ],
    }
    try:
        model = DebtPosition.model_validate(candidate)
    except ValidationError as exc:
        raise _unprocessable(_validation_errors(exc), "the debt position") from None
    return raw, model


@operation(
    "createPagopaPosition",
    "Store a debt position, IUVs and notice numbers allocated by the hub (scope write). The "
    "same IUPD with the same content answers 200 with the stored one.",
    body=PagopaPositionRequest,
    idempotent=True,
    responses={
        201: Answer(PagopaPosition, "Stored"),
        200: Answer(PagopaPosition, "Already stored"),
        409: "The IUPD is stored with other content, or no pagoPA settings",
        422: _INVALID,
    },
    scope="write",
)
@handles_problems
async def create_position(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    settings = _settings(request, tenant_id)
    raw_body = await read_body(request)
    tenant = request.app[CONFIG].tenant(tenant_id)
    assert tenant is not None
    raw, model = _prepare_position(_json_body(raw_body), tenant.name, settings)
    store = _store(request)
    now = request.app[CLOCK].now()
    if settings.mode == "gpd" and await store.get_position(tenant_id, model.iupd) is None:
        # GPD refuses past dates at creation: say so now rather than fail in the outbox.
        dates = model.date_problems(now)
        if dates:
            raise _unprocessable(dates, "the debt position")

    async def produce(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
        # a fresh copy per attempt: the store fills the IUVs in
        stored = await store.create_in(conn, tenant_id, settings, copy.deepcopy(raw), True)
        view = _position_view(stored, now, debtor=False, detail=True)
        return (201 if stored.created else 200), view

    try:
        return await idempotent(request, tenant_id, raw_body, produce)
    except PositionConflict as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    except IuvInUse as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    except InvalidPosition as exc:
        raise _unprocessable(str(exc).split("; "), "the debt position") from None


@operation(
    "listPagopaPositions",
    "Debt positions, oldest first, without the debtor (scope read; filtering by debtor "
    "needs personal_data and is audited)",
    query=(
        *PAGING,
        Query("status", DebtPositionStatus, "the stored status"),
        Query("debtor", Annotated[str, Field(pattern=r"^([A-Za-z0-9]{16}|[0-9]{11})$")]),
        _PURPOSE,
    ),
    responses={200: page_of(PagopaPosition), 409: _NOT_CONFIGURED},
    scope="read",
)
@handles_problems
async def list_positions(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    _settings(request, tenant_id)
    _purpose(request)
    limit, after = page_params(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise _Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}")
    debtor = request.query.get("debtor")
    if debtor is not None:
        require(request, "personal_data")
        reason = fiscal_code.problem(debtor.upper())
        if reason is not None:
            raise _Problem(400, "Bad Request", f"debtor: {reason}")
    found = await _store(request).list_positions(
        tenant_id, status=status, debtor=debtor, after=after, limit=limit
    )
    if debtor is not None:
        await _audit(
            request, tenant_id, "pagopa.positions.search", debtor, f"{len(found)} positions"
        )
    now = request.app[CLOCK].now()
    items = [_position_view(s, now, debtor=False, detail=False) for s in found]
    return web.json_response(page(items, limit))


@operation(
    "getPagopaPosition",
    "One debt position with its debtor (scope personal_data; audited)",
    query=[_PURPOSE],
    responses={200: PagopaPosition, 409: _NOT_CONFIGURED},
    scope="personal_data",
)
@handles_problems
async def get_position(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "personal_data")
    _settings(request, tenant_id)
    _purpose(request)
    iupd = request.match_info["iupd"]
    stored = await _store(request).get_position(tenant_id, iupd)
    if stored is None:
        raise _Problem(404, "Not Found", "no debt position with this IUPD")
    await _audit(request, tenant_id, "pagopa.position.read", stored.position.fiscal_code)
    now = request.app[CLOCK].now()
    return web.json_response(_position_view(stored, now, debtor=True, detail=True))


async def _change(
    request: web.Request,
    tenant_id: str,
    raw_body: bytes,
    change: Callable[[AsyncConnection, PagopaStore], Awaitable[StoredPosition]],
) -> web.StreamResponse:
    """Run a change of a stored position once per Idempotency-Key (404, 409, 422 mapped)."""
    store = _store(request)
    iupd = request.match_info["iupd"]
    if await store.get_position(tenant_id, iupd) is None:
        raise _Problem(404, "Not Found", "no debt position with this IUPD")
    now = request.app[CLOCK].now()

    async def produce(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
        stored = await change(conn, store)
        return 200, _position_view(stored, now, debtor=False, detail=True)

    try:
        return await idempotent(request, tenant_id, raw_body, produce)
    except PositionNotFound:
        raise _Problem(404, "Not Found", "no debt position with this IUPD") from None
    except (IllegalPositionChange, IuvInUse) as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    except InvalidPosition as exc:
        raise _unprocessable(str(exc).split("; "), "the debt position") from None


@operation(
    "updatePagopaPosition",
    "Replace a position's content, in DRAFT, PUBLISHED, VALID or EXPIRED and before any "
    "payment (scope write). It keeps its publication; in GPD mode the update goes to GPD "
    "through the outbox. The same content again changes nothing.",
    body=PagopaPositionUpdate,
    idempotent=True,
    responses={
        200: Answer(PagopaPosition, "Updated"),
        404: _NO_POSITION,
        409: _ILLEGAL,
        422: _INVALID,
    },
    scope="write",
)
@handles_problems
async def update_position(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    settings = _settings(request, tenant_id)
    iupd = request.match_info["iupd"]
    raw_body = await read_body(request)
    body = _json_body(raw_body)
    if body.setdefault("iupd", iupd) != iupd:
        raise _unprocessable(["iupd: must be the IUPD of the path"], "the debt position")
    tenant = request.app[CONFIG].tenant(tenant_id)
    assert tenant is not None
    raw, _ = _prepare_position(body, tenant.name, settings)

    async def change(conn: AsyncConnection, store: PagopaStore) -> StoredPosition:
        # a fresh copy per attempt: the store fills the IUVs in
        return await store.update_in(conn, tenant_id, iupd, copy.deepcopy(raw))

    return await _change(request, tenant_id, raw_body, change)


@operation(
    "publishPagopaPosition",
    "Publish a DRAFT position: PUBLISHED, or VALID at once without a validity date (scope "
    "write; already published: 200, nothing queued). In GPD mode it goes to GPD through "
    "the outbox.",
    idempotent=True,
    responses={
        200: Answer(PagopaPosition, "Published"),
        404: _NO_POSITION,
        409: _ILLEGAL,
        422: _KEY_REUSED,
    },
    scope="write",
)
@handles_problems
async def publish_position(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    _settings(request, tenant_id)
    iupd = request.match_info["iupd"]

    async def change(conn: AsyncConnection, store: PagopaStore) -> StoredPosition:
        return await store.publish_in(conn, tenant_id, iupd)

    return await _change(request, tenant_id, await read_body(request), change)


@operation(
    "invalidatePagopaPosition",
    "Cancel a PUBLISHED or VALID position: INVALID, final; its notices are refused "
    "(PAA_PAGAMENTO_ANNULLATO). Scope write; already INVALID: 200, nothing queued. In GPD "
    "mode it goes to GPD through the outbox.",
    idempotent=True,
    responses={
        200: Answer(PagopaPosition, "Invalidated"),
        404: _NO_POSITION,
        409: _ILLEGAL,
        422: _KEY_REUSED,
    },
    scope="write",
)
@handles_problems
async def invalidate_position(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    _settings(request, tenant_id)
    iupd = request.match_info["iupd"]

    async def change(conn: AsyncConnection, store: PagopaStore) -> StoredPosition:
        return await store.invalidate_in(conn, tenant_id, iupd)

    return await _change(request, tenant_id, await read_body(request), change)


@operation(
    "getPagopaNoticePdf",
    "The payment notice (avviso) of the position holding this notice number, as a PDF: "
    "single payment and instalments (scope personal_data; audited)",
    query=[_PURPOSE],
    responses={200: Answer(bytes, "The notice", "application/pdf"), 409: _NOT_CONFIGURED},
    scope="personal_data",
)
@handles_problems
async def get_notice_pdf(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "personal_data")
    _settings(request, tenant_id)
    _purpose(request)
    nav = request.match_info["nav"]
    match = await _store(request).find_option(tenant_id, nav) if NAV.fullmatch(nav) else None
    if match is None:
        raise _Problem(404, "Not Found", "no payment notice with this number")
    tenant = request.app[CONFIG].tenant(tenant_id)
    assert tenant is not None
    creditor = notice_creditor(tenant, match.position)
    pdf = await asyncio.to_thread(render_notice, match.position, creditor=creditor)
    await _audit(
        request, tenant_id, "pagopa.notice.pdf", match.position.fiscal_code, f"iupd {match.iupd}"
    )
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{nav}.pdf"'},
    )


# -- carts ------------------------------------------------------------------------------


async def _replay_only(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
    raise AssertionError("the stored answer is replayed")  # pragma: no cover


async def _already_answered(request: web.Request, tenant_id: str, key: str) -> bool:
    async with reading(request.app[ENGINE]) as conn:
        row = (
            await conn.execute(
                select(idempotency_keys.c.key).where(
                    idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
                )
            )
        ).first()
    return row is not None


@operation(
    "createPagopaCart",
    "A pagoPA Checkout cart for 1 to 5 notices of the tenant: send the payer to "
    "redirect_url (scope write). Nothing is paid here: only receipts change a payment.",
    body=PagopaCartRequest,
    idempotent=True,
    responses={
        201: Answer(PagopaCart, "Cart created"),
        409: "No pagoPA settings or no checkout_api_key for the tenant",
        422: "Notices unknown, not payable or refused by Checkout (errors), or an "
        "Idempotency-Key reused for another request",
        502: "Checkout failed or refused the tenant's subscription key",
    },
    scope="write",
)
@handles_problems
async def create_cart(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    key = idempotency_key(request)
    settings = _settings(request, tenant_id)
    raw = await read_body(request)
    if await _already_answered(request, tenant_id, key):
        # The same key again: the stored answer (or 422 for another body), no new cart.
        return await idempotent(request, tenant_id, raw, _replay_only)
    try:
        body = PagopaCartRequest.model_validate(_json_body(raw))
    except ValidationError as exc:
        raise _unprocessable(_validation_errors(exc), "the cart") from None
    if len(set(body.notice_numbers)) != len(body.notice_numbers):
        raise _unprocessable(["notice_numbers: the same notice twice"], "the cart")
    if settings.checkout_api_key is None:
        raise _Problem(409, "Conflict", "the tenant has no pagopa.checkout_api_key")

    store = _store(request)
    now = request.app[CLOCK].now()
    notices: list[CheckoutNotice] = []
    errors: list[str] = []
    for index, nav in enumerate(body.notice_numbers):
        match = await store.find_option(tenant_id, nav)
        if match is None:
            errors.append(f"notice_numbers.{index}: no notice of this tenant")
            continue
        fault = fault_for(match, effective_status(match.status, match.position, now))
        if fault is not None:
            errors.append(f"notice_numbers.{index}: not payable: {fault[1]}")
            continue
        option = next(o for o in match.position.payment_options if o.iuv == match.option.iuv)
        notices.append(
            CheckoutNotice(
                notice_number=nav,
                fiscal_code=settings.ec_fiscal_code,
                amount=option.amount,
                company_name=match.position.company_name,
                description=option.description,
            )
        )
    if errors:
        raise _unprocessable(errors, "the cart")
    urls = body.return_urls
    cart = CartRequest(
        tuple(notices),
        ReturnUrls(ok=urls.ok, cancel=urls.cancel, error=urls.error),
        email_notice=body.email_notice,
    )
    client = CheckoutClient(
        request.app[SESSION],
        settings.checkout_url or CHECKOUT_PRODUCTION_URL,
        api_key=settings.checkout_api_key.reveal,
    )
    try:
        redirect_url = await client.create_cart(cart)
    except SigningError:
        raise _Problem(
            409, "Conflict", "the tenant's pagopa.checkout_api_key cannot be read"
        ) from None
    except Unprocessable as exc:
        raise _unprocessable([f"notice_numbers: Checkout: {exc.message}"], "the cart") from None
    except AuthError:
        raise _Problem(
            502, "Bad Gateway", "Checkout refused the tenant's subscription key"
        ) from None
    except ConnectorError as exc:
        raise _Problem(502, "Bad Gateway", f"Checkout did not create the cart: {exc}") from None

    answer = {
        "redirect_url": redirect_url,
        "notice_numbers": list(body.notice_numbers),
        "amount": sum(n.amount for n in notices),
    }

    async def produce(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
        return 201, answer

    return await idempotent(request, tenant_id, raw, produce)


# -- receipts ---------------------------------------------------------------------------


@operation(
    "listPagopaReceipts",
    "Receipts in arrival order, without debtor and payer (scope read)",
    query=(
        *PAGING,
        Query("since", datetime, "received at or after"),
        Query("until", datetime, "received before"),
    ),
    responses={200: page_of(PagopaReceipt), 409: _NOT_CONFIGURED},
    scope="read",
)
@handles_problems
async def list_receipts(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    _settings(request, tenant_id)
    limit, after = page_params(request)
    since, until = _parse_time(request, "since"), _parse_time(request, "until")
    store = _store(request)
    stmt = (
        store.receipts_query(tenant_id)
        .where(receipts.c.id > after)
        .order_by(receipts.c.id)
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(receipts.c.received_at >= since)
    if until is not None:
        stmt = stmt.where(receipts.c.received_at < until)
    async with reading(request.app[ENGINE]) as conn:
        found = [store.receipt_from_row(r) for r in await conn.execute(stmt)]
    return web.json_response(page([_receipt_view(r, full=False) for r in found], limit))


@operation(
    "getPagopaReceipt",
    "One receipt (scope read); with personal_data also the whole receipt (data), and that "
    "read is audited",
    query=[_PURPOSE],
    responses={200: PagopaReceipt, 409: _NOT_CONFIGURED},
    scope="read",
)
@handles_problems
async def get_receipt(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    _settings(request, tenant_id)
    _purpose(request)
    found = await _store(request).get_receipt(tenant_id, request.match_info["receipt_id"])
    if found is None:
        raise _Problem(404, "Not Found", "no receipt with this id")
    full = _has(request, "personal_data")
    if full:
        debtor = found.data.get("debtor") or {}
        await _audit(
            request,
            tenant_id,
            "pagopa.receipt.read",
            str(debtor.get("fiscal_code") or "-"),
            f"receipt {found.receipt_id[:100]}",
        )
    return web.json_response(_receipt_view(found, full=full))


def routes() -> list[web.RouteDef]:
    return [
        web.post(BASE + "/positions", create_position),
        web.get(BASE + "/positions", list_positions),
        web.get(BASE + "/positions/{iupd}", get_position),
        web.put(BASE + "/positions/{iupd}", update_position),
        web.post(BASE + "/positions/{iupd}/publish", publish_position),
        web.post(BASE + "/positions/{iupd}/invalidate", invalidate_position),
        web.get(BASE + "/notices/{nav}.pdf", get_notice_pdf),
        web.post(BASE + "/carts", create_cart),
        web.get(BASE + "/receipts", list_receipts),
        web.get(BASE + "/receipts/{receipt_id}", get_receipt),
    ]

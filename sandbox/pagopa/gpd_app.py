"""A sandbox of pagoPA's GPD: Debt Positions v1 and the bulk upload v2, as GPD answers.

Routes are those of ``gpd.json`` under ``/gpd/debt-positions-service/v1`` and of
``gpd_massive_v2.json`` under ``/upload/gpd/debt-positions-service/v2`` (the path prefixes
of the production servers), with the ``Ocp-Apim-Subscription-Key`` header (or the
``subscription-key`` query parameter). What it reproduces (see
``connectors/pagopa/README.md`` for the list and the ``/__sandbox/`` routes):

- the Azure API gateway: 401 bodies for a missing or wrong key, 403 for an organization
  the subscription is not enabled for, 404 "Resource not found" for unknown routes;
  ``X-Request-Id`` echoed (or generated);
- GPD's checks in GPD's order: the request schema (400 ``BAD REQUEST``, ``detail`` naming
  each field), then dates, transfers and amounts (400 "Dates congruence error: ..."),
  then uniqueness: 409 for an IUPD or an IUV already used in the organization;
- the debt-position state machine (its own, ``gpd_states.py``, never the connector's):
  create DRAFT / PUBLISHED / VALID, publish, invalidate, update and delete only where GPD
  allows them
  (409 with GPD's titles otherwise), PUBLISHED → VALID when the validity date is reached
  and VALID → EXPIRED after the last due date with ``switchToExpired``, both computed
  from ``clock`` on every read;
- the bulk upload: ZIP of one JSON file, whole-file checks (400), ``202`` with the file id
  in ``Location``, processing ``processing_delay`` seconds later in chunks, status
  ``IN_PROGRESS`` → ``COMPLETED`` / ``COMPLETED_WITH_WARNINGS`` /
  ``COMPLETED_UNSUCCESSFULLY``, and a report with GPD's answer for each position.

State lives on the app (``web.AppKey``), so each ``create_app`` is independent.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
import zipfile
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from sportello.clock import Clock, SystemClock

from ..common import platform_app
from . import gpd_states
from .gpd_spec import GpdSpecChecker, SpecViolation
from .gpd_states import DELETABLE, UPDATABLE, Refused
from .gpd_validation import check_position, format_datetime, parse_datetime, semantic_problem

__all__ = [
    "DEFAULT_API_KEY",
    "GPD_PREFIX",
    "SUBSCRIPTION_KEY_HEADER",
    "UPLOAD_PREFIX",
    "create_app",
]

log = logging.getLogger("sportello.sandbox.pagopa.gpd")

GPD_PREFIX = "/gpd/debt-positions-service/v1"
UPLOAD_PREFIX = "/upload/gpd/debt-positions-service/v2"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_API_KEY = "sandbox-gpd-key"

S = gpd_states.Status
PROBLEM_JSON = "application/json"  # GPD sends its ProblemJson as application/json
_MISSING_KEY = (
    "Access denied due to missing subscription key. "
    "Make sure to include subscription key when making requests to an API."
)
_INVALID_KEY = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)
_FORBIDDEN = "You are not allowed to access this resource."
_BAD_REQUEST = "BAD REQUEST"
_DATA_ERROR = "Error in the debt position request data"
_DELETED = "The debt position was successfully deleted"
_MAX_CALLS = 100_000
_CHUNK = 30  # GPD-upload queues ~30 positions per message
_LIST_MAX_DAYS = 30
_ZIP_MAX_ENTRIES = 1_000
_ZIP_MAX_CONTENT = 100 * 1024 * 1024
_UPLOAD_MAX_BYTES = _ZIP_MAX_CONTENT + 1024 * 1024
_READ_ONLY = ("status", "paymentDate")
_OPTION_READ_ONLY = ("nav", "notificationFee")


# -- state -------------------------------------------------------------------------------


@dataclass
class _Option:
    body: dict[str, Any]
    inserted: datetime
    status: str = "PO_UNPAID"
    payment_date: datetime | None = None
    payment_method: str | None = None
    psp_company: str | None = None
    id_receipt: str | None = None
    #: SEND's notification cost (``notificationFee``), already in ``body``'s amount and in
    #: its creditor's first transfer
    notification_fee: int = 0

    @property
    def iuv(self) -> str:
        return str(self.body["iuv"])


@dataclass
class _Position:
    org: str
    body: dict[str, Any]  # the accepted request, without read-only fields and options
    options: list[_Option]
    status: gpd_states.Status
    inserted: datetime
    last_updated: datetime
    validity_date: datetime | None
    publish_date: datetime | None = None
    payment_date: datetime | None = None

    @property
    def iupd(self) -> str:
        return str(self.body["iupd"])

    def due_dates(self) -> list[datetime]:
        return [d for o in self.options if (d := parse_datetime(o.body.get("dueDate")))]


@dataclass
class _Upload:
    file_id: str
    broker: str
    org: str
    operation: str  # CREATE, UPDATE, DELETE
    total: int
    start: datetime
    current: int = 0
    end: datetime | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def operation_status(self) -> str:
        if self.current < self.total:
            return "IN_PROGRESS"
        codes = [r["statusCode"] for r in self.responses]
        if codes and all(c >= 400 for c in codes):
            return "COMPLETED_UNSUCCESSFULLY"
        if any(c >= 400 for c in codes):
            return "COMPLETED_WITH_WARNINGS"
        return "COMPLETED"


@dataclass
class _Fault:
    remaining: int
    mode: str  # fail (before processing), lose (answer lost after processing), drop
    status: int
    retry_after: float | None
    delay: float
    operations: frozenset[str] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "operations": sorted(self.operations) if self.operations is not None else None,
        }


@dataclass
class _State:
    api_key: str
    clock: Clock
    processing_delay: float
    organizations: frozenset[str] | None
    spec: GpdSpecChecker | None
    positions: dict[tuple[str, str], _Position] = field(default_factory=dict)
    iuvs: dict[tuple[str, str], str] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_MAX_CALLS))
    violations: list[SpecViolation] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: every notificationFee written (``GET /__sandbox/notification-fees``)
    fee_updates: list[dict[str, Any]] = field(default_factory=list)

    def now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.positions.clear()
        self.iuvs.clear()
        self.uploads.clear()
        self.faults.clear()
        self.calls.clear()
        self.violations.clear()
        self.fee_updates.clear()

    def refresh(self, position: _Position) -> _Position:
        """Apply what time does: validity date reached, last due date passed."""
        now = self.now()
        if (
            position.status is S.PUBLISHED
            and position.validity_date is not None
            and position.validity_date <= now
        ):
            position.status = gpd_states.validity_reached(position.status)
            position.last_updated = position.validity_date
        dues = position.due_dates()
        if (
            position.status is S.VALID
            and position.body.get("switchToExpired") is True
            and dues
            and max(dues) < now
        ):
            position.status = gpd_states.expired(position.status)
            position.last_updated = max(dues)
        return position

    def find(self, org: str, iupd: str) -> _Position | None:
        position = self.positions.get((org, iupd))
        return self.refresh(position) if position is not None else None

    def index(self, position: _Position) -> None:
        for option in position.options:
            self.iuvs[(position.org, option.iuv)] = position.iupd

    def unindex(self, position: _Position) -> None:
        for option in position.options:
            if self.iuvs.get((position.org, option.iuv)) == position.iupd:
                del self.iuvs[(position.org, option.iuv)]


STATE = web.AppKey("gpd_sandbox_state", _State)
_REQUEST_ID = web.RequestKey("gpd_sandbox_request_id", str)


# -- responses ---------------------------------------------------------------------------


class _Refused(Exception):
    """A GPD error answer, raised from deep inside a handler."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def _json(payload: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type=content_type,
    )


def _problem(status: int, title: str, detail: str) -> web.Response:
    """GPD's ``ProblemJson``."""
    return _json({"title": title, "status": status, "detail": detail}, status, PROBLEM_JSON)


def _gateway(status: int, message: str) -> web.Response:
    """An answer of the Azure API gateway in front of GPD."""
    return _json({"statusCode": status, "message": message}, status)


def _not_found(org: str, iupd: str) -> _Refused:
    return _Refused(
        404,
        "Not found the debt position",
        f"Not found a debt position for Organization Fiscal Code {org} and IUPD {iupd}",
    )


def _state_conflict(kind: str, org: str, iupd: str) -> _Refused:
    return _Refused(
        409,
        f"Existing related payment found or not in {kind} state",
        "A payment transaction has already been carried out or, the debt position with "
        f"Organization Fiscal Code {org} and IUPD {iupd}, is not in {kind} state",
    )


def _unique_violation(org: str) -> _Refused:
    return _Refused(
        409,
        "The debt position violated constraints of uniqueness",
        f"Already exists a debt position for the Organization Fiscal Code {org} or one of "
        "its payment options is not unique",
    )


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise _Refused(400, _BAD_REQUEST, "Required request body is missing")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Refused(400, _BAD_REQUEST, f"JSON parse error: {exc}") from None


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false")
    if raw.lower() not in ("true", "false"):
        raise _Refused(400, _BAD_REQUEST, f"Invalid value {raw} for property {name}")
    return raw.lower() == "true"


# -- representations ---------------------------------------------------------------------


def _dt(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _model(position: _Position) -> dict[str, Any]:
    """``PaymentPositionModel``: the answer of create, update, publish and invalidate."""
    body = dict(position.body)
    if position.validity_date is not None:
        body["validityDate"] = format_datetime(position.validity_date)
    if position.payment_date is not None:
        body["paymentDate"] = format_datetime(position.payment_date)
    body["status"] = position.status.value
    options = []
    for option in position.options:
        item = dict(option.body)
        item["nav"] = "3" + option.iuv
        item.setdefault("fee", 0)
        item["notificationFee"] = option.notification_fee
        options.append(item)
    body["paymentOption"] = options
    return body


def _transfer_response(org: str, transfer: dict[str, Any], inserted: datetime) -> dict[str, Any]:
    return _drop_none(
        {
            "organizationFiscalCode": transfer.get("organizationFiscalCode") or org,
            "companyName": transfer.get("companyName"),
            "idTransfer": transfer.get("idTransfer"),
            "amount": transfer.get("amount"),
            "remittanceInformation": transfer.get("remittanceInformation"),
            "category": transfer.get("category"),
            "iban": transfer.get("iban"),
            "postalIban": transfer.get("postalIban"),
            "stamp": transfer.get("stamp"),
            "insertedDate": format_datetime(inserted),
            "status": "T_UNREPORTED",
            "lastUpdatedDate": format_datetime(inserted),
            "transferMetadata": transfer.get("transferMetadata") or [],
        }
    )


def _base_response(position: _Position) -> dict[str, Any]:
    """``PaymentPositionModelBaseResponse``: the answer of GET and of the list (the v1 read
    model has no debtor data)."""
    options = []
    for option in position.options:
        body = option.body
        options.append(
            _drop_none(
                {
                    "nav": "3" + option.iuv,
                    "iuv": option.iuv,
                    "organizationFiscalCode": position.org,
                    "amount": body.get("amount"),
                    "description": body.get("description"),
                    "isPartialPayment": body.get("isPartialPayment"),
                    "dueDate": _dt(parse_datetime(body.get("dueDate"))),
                    "retentionDate": _dt(parse_datetime(body.get("retentionDate"))),
                    "paymentDate": _dt(option.payment_date),
                    "insertedDate": format_datetime(option.inserted),
                    "paymentMethod": option.payment_method,
                    "fee": body.get("fee") or 0,
                    "notificationFee": option.notification_fee,
                    "pspCompany": option.psp_company,
                    "idReceipt": option.id_receipt,
                    "status": option.status,
                    "lastUpdatedDate": format_datetime(position.last_updated),
                    "paymentOptionMetadata": body.get("paymentOptionMetadata") or [],
                    "transfer": [
                        _transfer_response(position.org, t, option.inserted)
                        for t in body.get("transfer") or []
                    ],
                }
            )
        )
    return _drop_none(
        {
            "iupd": position.iupd,
            "organizationFiscalCode": position.org,
            "type": position.body.get("type"),
            "companyName": position.body.get("companyName"),
            "officeName": position.body.get("officeName"),
            "insertedDate": format_datetime(position.inserted),
            "publishDate": _dt(position.publish_date),
            "validityDate": _dt(position.validity_date),
            "paymentDate": _dt(position.payment_date),
            "status": position.status.value,
            "lastUpdatedDate": format_datetime(position.last_updated),
            "paymentOption": options,
        }
    )


def _sandbox_view(position: _Position) -> dict[str, Any]:
    return {
        "organization": position.org,
        "iupd": position.iupd,
        "status": position.status.value,
        "inserted": format_datetime(position.inserted),
        "validity_date": _dt(position.validity_date),
        "payment_date": _dt(position.payment_date),
        "request": position.body,
        "options": [
            {
                "iuv": o.iuv,
                "nav": "3" + o.iuv,
                "status": o.status,
                "payment_date": _dt(o.payment_date),
                "body": o.body,
            }
            for o in position.options
        ],
    }


# -- the GPD core (shared by the REST handlers and the bulk processing) --------------------


def _accept_body(body: Any, now: datetime, *, action: str) -> dict[str, Any]:
    problems = check_position(body)
    if problems:
        raise _Refused(400, _BAD_REQUEST, ", ".join(problems))
    problem = semantic_problem(body, now, action=action)
    if problem is not None:
        raise _Refused(400, _DATA_ERROR, problem)
    clean = {k: v for k, v in body.items() if k not in _READ_ONLY}
    clean.setdefault("payStandIn", True)
    return clean


def _split(clean: dict[str, Any], now: datetime) -> tuple[dict[str, Any], list[_Option]]:
    position_body = {k: v for k, v in clean.items() if k != "paymentOption"}
    options = []
    for item in clean.get("paymentOption") or []:
        option_body = {k: v for k, v in item.items() if k not in _OPTION_READ_ONLY}
        options.append(_Option(body=option_body, inserted=now))
    return position_body, options


def _check_unique_iuvs(state: _State, org: str, options: list[_Option], iupd: str) -> None:
    seen: set[str] = set()
    for option in options:
        owner = state.iuvs.get((org, option.iuv))
        if option.iuv in seen or (owner is not None and owner != iupd):
            raise _unique_violation(org)
        seen.add(option.iuv)


def _publish_dates(position: _Position, now: datetime) -> None:
    """GPD's ``publishProcess``: set or check the validity date, refuse past due dates."""
    if position.validity_date is None:
        position.validity_date = now
    elif position.validity_date < now:
        raise _Refused(
            409,
            "Publish request occurred after the validity date began",
            "A publish request has been made after the validity date began for the debt "
            f"position with Organization Fiscal Code {position.org} and IUPD {position.iupd}",
        )
    if any(d < now for d in position.due_dates()):
        raise _Refused(
            409,
            "Publish request occurred after the due date of a payment options has expired",
            "A publish request occurred after the due date of a payment options has expired "
            f"for the debt position with Organization Fiscal Code {position.org} and IUPD "
            f"{position.iupd}",
        )
    position.publish_date = now


def _create(state: _State, org: str, body: Any, *, to_publish: bool) -> _Position:
    now = state.now()
    clean = _accept_body(body, now, action="create")
    position_body, options = _split(clean, now)
    iupd = str(position_body["iupd"])
    if (org, iupd) in state.positions:
        raise _unique_violation(org)
    _check_unique_iuvs(state, org, options, iupd)
    validity = parse_datetime(position_body.pop("validityDate", None))
    status = gpd_states.created(to_publish=to_publish, validity_date=validity)
    position = _Position(
        org=org,
        body=position_body,
        options=options,
        status=status,
        inserted=now,
        last_updated=now,
        validity_date=validity,
    )
    if to_publish:
        position.publish_date = now
        if validity is None:
            position.validity_date = now
    state.positions[(org, iupd)] = position
    state.index(position)
    return position


def _update(state: _State, org: str, iupd: str, body: Any, *, to_publish: bool) -> _Position:
    position = state.find(org, iupd)
    if position is None:
        raise _not_found(org, iupd)
    if position.status not in UPDATABLE:
        raise _state_conflict("updatable", org, iupd)
    now = state.now()
    clean = _accept_body(body, now, action="update")
    if clean.get("iupd") != iupd:
        raise _Refused(400, _BAD_REQUEST, "iupd: must be the IUPD of the path")
    position_body, options = _split(clean, now)
    _check_unique_iuvs(state, org, options, iupd)
    validity = parse_datetime(position_body.pop("validityDate", None))
    status = gpd_states.updated(position.status, to_publish=to_publish, validity_date=validity)
    fees = {o.iuv: o.notification_fee for o in position.options if o.notification_fee}
    state.unindex(position)
    for option in options:
        option.inserted = position.inserted
        if fees.get(option.iuv):  # GPD keeps SEND's cost over the creditor's update
            _apply_notification_fee(org, option, fees[option.iuv])
    position.body, position.options, position.status = position_body, options, status
    position.validity_date = validity
    position.last_updated = now
    if to_publish:
        position.publish_date = now
        if validity is None:
            position.validity_date = now
    state.index(position)
    return position


def _primary_transfer(org: str, option: _Option) -> dict[str, Any] | None:
    """The transfer that carries SEND's cost: the first (by ``idTransfer``) credited to the
    organization itself, never a stamp (GPD's ``findPrimaryTransfer``)."""
    ours = [
        t
        for t in option.body.get("transfer") or []
        if (t.get("organizationFiscalCode") or org) == org and not t.get("stamp")
    ]
    return min(ours, key=lambda t: str(t.get("idTransfer"))) if ours else None


def _apply_notification_fee(org: str, option: _Option, fee: int) -> None:
    """Set the option's ``notificationFee``: the amount and the primary transfer lose the old
    fee and gain the new one, so the transfers still sum to the amount."""
    transfer = _primary_transfer(org, option)
    if transfer is None:
        raise _Refused(
            422,
            "Unprocessable payment option",
            f"No transfer of the payment option with Organization Fiscal Code {org} and NAV "
            f"3{option.iuv} can carry the notification fee",
        )
    delta = fee - option.notification_fee
    option.body["amount"] = int(option.body["amount"]) + delta
    transfer["amount"] = int(transfer["amount"]) + delta
    option.notification_fee = fee


async def update_notification_fee(request: web.Request) -> web.Response:
    """``PUT .../organizations/{org}/paymentoptions/{nav}/notificationfee`` with
    ``{"notificationFee": cents}``: SEND (ASYNC mode) writes its notification cost into the
    option (GPD's internal ``updateNotificationFee``, not in the published ``gpd.json``):
    200 with the option, 404 for an unknown NAV, 422 when the option or its position can no
    longer change (paid, reported, invalid, expired)."""
    state = request.app[STATE]
    org, nav = _org(request), request.match_info["nav"]
    body = await _read_json(request)
    fee = body.get("notificationFee") if isinstance(body, dict) else None
    if type(fee) is not int or fee < 0:
        raise _Refused(400, _BAD_REQUEST, "notificationFee: must be an integer >= 0")
    iupd = state.iuvs.get((org, nav[1:])) if nav.startswith("3") else None
    position = state.find(org, iupd) if iupd is not None else None
    option = (
        next((o for o in position.options if "3" + o.iuv == nav), None)
        if position is not None
        else None
    )
    if position is None or option is None:
        raise _Refused(
            404,
            "Not found the payment option",
            f"Not found a payment option for Organization Fiscal Code {org} and NAV {nav}",
        )
    if option.status != "PO_UNPAID" or position.status not in UPDATABLE - {S.EXPIRED}:
        raise _Refused(
            422,
            "Unprocessable payment option",
            f"The payment option with Organization Fiscal Code {org} and NAV {nav} is not in a "
            f"state where its notification fee can change ({position.status.value})",
        )
    _apply_notification_fee(org, option, fee)
    position.last_updated = state.now()
    state.fee_updates.append(
        {"organization": org, "nav": nav, "notificationFee": fee, "amount": option.body["amount"]}
    )
    [item] = [o for o in _base_response(position)["paymentOption"] if o["nav"] == nav]
    return _json(item)


def _delete(state: _State, org: str, iupd: str) -> None:
    position = state.find(org, iupd)
    if position is None:
        raise _not_found(org, iupd)
    if position.status not in DELETABLE:
        raise _Refused(
            409,
            "Existing related payment found",
            "A payment transaction has already been carried out on the debt position with "
            f"Organization Fiscal Code {org} and IUPD {iupd}",
        )
    state.unindex(position)
    del state.positions[(org, iupd)]


# -- API handlers --------------------------------------------------------------------------


def _org(request: web.Request) -> str:
    return request.match_info["org"]


async def create_position(request: web.Request) -> web.Response:
    state = request.app[STATE]
    to_publish = _flag(request, "toPublish")
    body = await _read_json(request)
    position = _create(state, _org(request), body, to_publish=to_publish)
    return _json(_model(position), 201)


async def get_position(request: web.Request) -> web.Response:
    state = request.app[STATE]
    org, iupd = _org(request), request.match_info["iupd"]
    position = state.find(org, iupd)
    if position is None:
        raise _not_found(org, iupd)
    return _json(_base_response(position))


async def update_position(request: web.Request) -> web.Response:
    state = request.app[STATE]
    to_publish = _flag(request, "toPublish")
    body = await _read_json(request)
    position = _update(
        state, _org(request), request.match_info["iupd"], body, to_publish=to_publish
    )
    return _json(_model(position))


async def delete_position(request: web.Request) -> web.Response:
    _delete(request.app[STATE], _org(request), request.match_info["iupd"])
    return _json(_DELETED)


async def publish_position(request: web.Request) -> web.Response:
    state = request.app[STATE]
    org, iupd = _org(request), request.match_info["iupd"]
    position = state.find(org, iupd)
    if position is None:
        raise _not_found(org, iupd)
    try:
        status = gpd_states.published(position.status)
    except Refused:
        raise _state_conflict("publishable", org, iupd) from None
    now = state.now()
    _publish_dates(position, now)
    position.status = status
    position.last_updated = now
    state.refresh(position)  # no validity date given: VALID at once
    return _json(_model(position))


async def invalidate_position(request: web.Request) -> web.Response:
    state = request.app[STATE]
    org, iupd = _org(request), request.match_info["iupd"]
    position = state.find(org, iupd)
    if position is None:
        raise _not_found(org, iupd)
    try:
        position.status = gpd_states.invalidated(position.status)
    except Refused:
        raise _state_conflict("invalidable", org, iupd) from None
    position.last_updated = state.now()
    return _json(_model(position))


def _query_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _Refused(400, _BAD_REQUEST, f"Invalid value {raw} for property {name}") from None


def _query_int(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Refused(400, _BAD_REQUEST, f"Invalid value {raw} for property {name}") from None
    if value < low:
        raise _Refused(400, _BAD_REQUEST, f"{name}: must be greater than or equal to {low}")
    if high is not None and value > high:
        raise _Refused(400, _BAD_REQUEST, f"{name}: must be less than or equal to {high}")
    return value


def _interval(start: date | None, end: date | None) -> tuple[datetime, datetime] | None:
    """GPD's ``checkDatesInterval``: fill a missing end, refuse a reversed or wide window."""
    if start is None and end is None:
        return None
    if start is not None and end is None:
        end = start + timedelta(days=_LIST_MAX_DAYS)
    elif end is not None and start is None:
        start = end - timedelta(days=_LIST_MAX_DAYS)
    assert start is not None and end is not None
    low = datetime.combine(start, time.min).replace(tzinfo=UTC)
    high = datetime.combine(end, time.max).replace(tzinfo=UTC)
    days = (high - low).days
    if low > high or days > _LIST_MAX_DAYS:
        raise _Refused(
            400,
            "The debt positions cannot be recovered",
            "Debt positions cannot be recovered. Verify that due_date_to >= due_date_from and "
            "that the interval between the two dates not exceed the maximum number of days "
            f"allowed [due_date_from= {start}, due_date_to= {end}, days_between_from_to= "
            f"{days}, max_days_interval= {_LIST_MAX_DAYS}]",
        )
    return low, high


_ORDER_KEYS: dict[str, Callable[[_Position], Any]] = {
    "INSERTED_DATE": lambda p: p.inserted,
    "IUPD": lambda p: p.iupd,
    "STATUS": lambda p: p.status.value,
    "COMPANY_NAME": lambda p: str(p.body.get("companyName", "")),
}


async def list_positions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    org = _org(request)
    limit = _query_int(request, "limit", 10, 1, 50)
    page = _query_int(request, "page", 0, 0, None)
    due = _interval(_query_date(request, "due_date_from"), _query_date(request, "due_date_to"))
    paid = _interval(
        _query_date(request, "payment_date_from"), _query_date(request, "payment_date_to")
    )
    if due is not None and paid is not None:
        raise _Refused(
            400, _BAD_REQUEST, "The due dates interval is mutually exclusive with the payment dates"
        )
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in S}:
        raise _Refused(400, _BAD_REQUEST, f"Invalid value {status} for property status")
    order = request.query.get("orderby", "INSERTED_DATE")
    ordering = request.query.get("ordering", "DESC")
    if order not in _ORDER_KEYS or ordering not in ("ASC", "DESC"):
        raise _Refused(400, _BAD_REQUEST, "orderby or ordering: not an allowed value")
    selected = []
    for (owner, _), position in state.positions.items():
        if owner != org:
            continue
        state.refresh(position)
        if status is not None and position.status.value != status:
            continue
        if due is not None and not any(due[0] <= d <= due[1] for d in position.due_dates()):
            continue
        if paid is not None and not (
            position.payment_date is not None and paid[0] <= position.payment_date <= paid[1]
        ):
            continue
        selected.append(position)
    selected.sort(key=_ORDER_KEYS[order], reverse=ordering == "DESC")
    chunk = selected[page * limit : (page + 1) * limit]
    total_pages = (len(selected) + limit - 1) // limit
    return _json(
        {
            "payment_position_list": [_base_response(p) for p in chunk],
            "page_info": {
                "page": page,
                "limit": limit,
                "items_found": len(chunk),
                "total_pages": total_pages,
            },
        }
    )


# -- bulk upload ---------------------------------------------------------------------------


async def _read_file_part(request: web.Request) -> tuple[str, bytes]:
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/") or "boundary=" not in content_type:
        raise _Refused(400, "EMPTY FILE", "The zip file is missing")
    # A reader of our own: the app's client_max_size (1 MiB) would refuse real uploads.
    reader = MultipartReader(request.headers, request.content)
    while True:
        part = await reader.next()
        if part is None:
            raise _Refused(400, "EMPTY FILE", "The zip file is missing")
        if isinstance(part, BodyPartReader) and part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > _UPLOAD_MAX_BYTES:
                    raise _Refused(413, "FILE TOO LARGE", "The uploaded file is too large.")
            return part.filename or "", bytes(data)


def _unzip(filename: str, content: bytes) -> bytes:
    """GPD-upload's ``unzip``: the first non-directory entry, which must be a .json file."""
    if not filename.lower().endswith(".zip"):
        raise _Refused(400, "NOT A ZIP FILE", "Only ZIP files can be uploaded.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise _Refused(400, "INVALID FILE", "No valid file found in ZIP.") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > _ZIP_MAX_ENTRIES:
            raise _Refused(400, "INVALID FILE", "Too many entries in ZIP file.")
        for entry in entries:
            if entry.is_dir():
                continue
            if not entry.filename.lower().endswith(".json"):
                raise _Refused(400, "INVALID FILE", "ZIP contains unsupported file type.")
            if entry.file_size > _ZIP_MAX_CONTENT:
                raise _Refused(400, "INVALID FILE", "Unzipped content exceeds size limit.")
            with archive.open(entry) as handle:
                data = handle.read(_ZIP_MAX_CONTENT + 1)
            if len(data) > _ZIP_MAX_CONTENT:
                raise _Refused(400, "INVALID FILE", "Unzipped content exceeds size limit.")
            return data
    raise _Refused(400, "INVALID FILE", "No valid file found in ZIP.")


def _invalid_positions(problems: list[str]) -> _Refused:
    shown = ", ".join(problems[:20])
    return _Refused(
        400,
        "INVALID DEBT POSITIONS",
        f"The format of the debt positions in the uploaded file is invalid. Invalid values: "
        f"[{shown}]",
    )


def _parse_upload(operation: str, data: bytes) -> list[Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise _Refused(
            400, "INVALID JSON", f"Given JSON is invalid for required API payload: {exc}"
        ) from None
    key = "paymentPositionIUPDs" if operation == "DELETE" else "paymentPositions"
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise _invalid_positions([f"{key}: must be a non-empty array"])
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if operation == "DELETE":
            if not isinstance(item, str) or not item.strip():
                problems.append(f"{key}[{index}]: must not be blank")
            iupd = item
        else:
            problems.extend(f"{key}[{index}].{p}" for p in check_position(item))
            iupd = item.get("iupd") if isinstance(item, dict) else None
        if isinstance(iupd, str):
            if iupd in seen:
                problems.append(f"{key}[{index}].iupd: duplicate IUPD in the file")
            seen.add(iupd)
    if problems:
        raise _invalid_positions(problems)
    return items


def _process_one(state: _State, upload: _Upload, item: Any) -> tuple[int, str, str]:
    """One position of an upload: (status, message, iupd), as GPD-upload records them."""
    iupd = item if isinstance(item, str) else str(item.get("iupd"))
    try:
        if upload.operation == "CREATE":
            _create(state, upload.org, item, to_publish=True)
            return 201, "201", iupd
        if upload.operation == "UPDATE":
            _update(state, upload.org, iupd, item, to_publish=True)
            return 200, "200", iupd
        _delete(state, upload.org, iupd)
        return 200, "200", iupd
    except _Refused as refused:
        return refused.status, refused.detail, iupd


async def _process_upload(state: _State, upload: _Upload, items: list[Any]) -> None:
    if state.processing_delay > 0:
        await asyncio.sleep(state.processing_delay)
    for start in range(0, len(items), _CHUNK):
        ok: dict[int, list[str]] = {}
        for item in items[start : start + _CHUNK]:
            try:
                status, message, iupd = _process_one(state, upload, item)
            except Exception:  # a sandbox bug must not leave the upload IN_PROGRESS forever
                log.exception("GPD sandbox: bulk item failed")
                iupd = item if isinstance(item, str) else str(item.get("iupd"))
                status, message = 500, "Internal Server Error: operation not completed"
            if status < 300:
                ok.setdefault(status, []).append(iupd)
            else:
                upload.responses.append(
                    {"statusCode": status, "statusMessage": message, "iupds": [iupd]}
                )
            upload.current += 1
        for status, iupds in ok.items():
            upload.responses.append(
                {"statusCode": status, "statusMessage": str(status), "iupds": iupds}
            )
        await asyncio.sleep(0)
    upload.end = state.now()


def _upload_handler(operation: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        broker, org = request.match_info["broker"], _org(request)
        filename, content = await _read_file_part(request)
        items = _parse_upload(operation, _unzip(filename, content))
        file_id = str(uuid.uuid4())
        upload = _Upload(
            file_id=file_id,
            broker=broker,
            org=org,
            operation=operation,
            total=len(items),
            start=state.now(),
        )
        state.uploads[file_id] = upload
        task = asyncio.get_running_loop().create_task(_process_upload(state, upload, items))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        response = web.Response(status=202)
        response.headers["Location"] = (
            f"brokers/{broker}/organizations/{org}/debtpositions/file/{file_id}/status"
        )
        response.headers["Retry-After"] = f"{max(int(state.processing_delay * 1000), 1000)} ms"
        return response

    return handler


def _find_upload(request: web.Request) -> _Upload:
    state = request.app[STATE]
    file_id = request.match_info["file_id"]
    upload = state.uploads.get(file_id)
    if (
        upload is None
        or upload.broker != request.match_info["broker"]
        or upload.org != _org(request)
    ):
        raise _Refused(
            404,
            "STATUS NOT FOUND",
            f"The status for given fileId {file_id} does not exist for GPD",
        )
    return upload


async def upload_status(request: web.Request) -> web.Response:
    upload = _find_upload(request)
    return _json(
        {
            "uploadID": upload.file_id,
            "processedItem": upload.current,
            "submittedItem": upload.total,
            "startTime": upload.start.strftime("%Y-%m-%d %H:%M:%S"),
            "operationStatus": upload.operation_status,
        }
    )


def _report_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


async def upload_report(request: web.Request) -> web.Response:
    upload = _find_upload(request)
    if upload.end is None:
        raise _Refused(
            425,
            "REPORT NOT READY",
            f"The report for fileId {upload.file_id} has not been generated yet: "
            f"{upload.current}/{upload.total} debt positions processed",
        )
    return _json(
        {
            "fileId": upload.file_id,
            "processedItem": upload.current,
            "submittedItem": upload.total,
            "responses": upload.responses,
            "startTime": _report_time(upload.start),
            "endTime": _report_time(upload.end),
        }
    )


async def list_uploads_by_org(request: web.Request) -> web.Response:
    state = request.app[STATE]
    broker, org = request.match_info["broker"], _org(request)
    ids = [u.file_id for u in state.uploads.values() if u.broker == broker and u.org == org]
    return _json({"fileIds": ids, "size": len(ids), "hasMore": False})


# -- gateway, faults, spec checks ---------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _take_fault(state: _State, operation: str, *, after: bool) -> _Fault | None:
    for fault in state.faults:
        if (fault.mode != "fail") != after:
            continue
        if fault.operations is not None and operation not in fault.operations:
            continue
        fault.remaining -= 1
        if fault.remaining <= 0:
            state.faults.remove(fault)
        return fault
    return None


async def _apply_fault(request: web.Request, state: _State, fault: _Fault) -> web.Response:
    if fault.delay > 0:
        try:
            await asyncio.wait_for(state.closing.wait(), fault.delay)
        except TimeoutError:
            pass
    if fault.mode == "drop":
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=fault.status)
    if fault.status == 429:
        response = _gateway(429, "Rate limit is exceeded. Try again later.")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response
    if fault.status == 500:
        return _problem(500, "INTERNAL SERVER ERROR", "sandbox fault injection")
    return _gateway(fault.status, "sandbox fault injection")


def _is_api(path: str) -> bool:
    return path.startswith((GPD_PREFIX + "/", UPLOAD_PREFIX + "/"))


@web.middleware
async def gpd_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What Azure APIM does in front of GPD, plus GPD's error answers, the call log and
    the faults."""
    if not _is_api(request.path):
        return await handler(request)
    state = request.app[STATE]
    route = request.match_info.route
    operation = route.name if request.match_info.http_exception is None else None
    request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
    request[_REQUEST_ID] = request_id
    response: web.StreamResponse
    key = request.headers.get(SUBSCRIPTION_KEY_HEADER) or request.query.get("subscription-key")
    org = request.match_info.get("org")
    if operation is None:
        response = _gateway(404, "Resource not found")
    elif not key:
        response = _gateway(401, _MISSING_KEY)
    elif key != state.api_key:
        response = _gateway(401, _INVALID_KEY)
    elif state.organizations is not None and org not in state.organizations:
        response = _gateway(403, _FORBIDDEN)
    else:
        fault = _take_fault(state, operation, after=False)
        if fault is not None:
            response = await _apply_fault(request, state, fault)
        else:
            try:
                response = await handler(request)
            except _Refused as refused:
                response = _problem(refused.status, refused.title, refused.detail)
            fault = _take_fault(state, operation, after=True)
            if fault is not None:
                response = await _apply_fault(request, state, fault)
    if response.status == 401:
        response.headers["WWW-Authenticate"] = (
            f'AzureApiManagementKey realm="https://api.platform.pagopa.it",'
            f'name="{SUBSCRIPTION_KEY_HEADER}",type="header"'
        )
    response.headers["X-Request-Id"] = request_id
    state.calls.append(
        {
            "operation": operation,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "request_id": request_id,
        }
    )
    return response


@web.middleware
async def spec_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record request and response bodies that do not match the official specs."""
    state = request.app[STATE]
    checker = state.spec
    if checker is None or not _is_api(request.path):
        return await handler(request)
    route = request.match_info.route
    operation = route.name if request.match_info.http_exception is None else None
    if operation is None or not checker.has_operation(operation):
        return await handler(request)
    response = await handler(request)
    path, method = request.path, request.method
    is_json = request.content_type == "application/json"
    if request.body_exists and is_json and 200 <= response.status < 300:
        # GPD accepted this body: the spec must accept it too
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        for problem in checker.request_errors(operation, body):
            state.violations.append(SpecViolation("request", method, path, None, problem))
    # 401, 403, 413 and 429 come from the API gateway, which answers them on every route
    if isinstance(response, web.Response) and response.status not in (401, 403, 413, 429):
        declared = checker.declared_statuses(operation)
        if response.status not in declared and response.status < 500:
            state.violations.append(
                SpecViolation(
                    "response", method, path, response.status, "status not declared by the spec"
                )
            )
        if checker.has_response_schema(operation, response.status):
            try:
                payload = json.loads(response.body) if response.body else None  # type: ignore[arg-type]
            except ValueError:
                payload = None
                state.violations.append(
                    SpecViolation("response", method, path, response.status, "body is not JSON")
                )
            for problem in checker.response_errors(operation, response.status, payload):
                state.violations.append(
                    SpecViolation("response", method, path, response.status, problem)
                )
    return response


# -- test-only routes ----------------------------------------------------------------------


def _bad(detail: str) -> web.Response:
    return _problem(400, "Invalid sandbox request", detail)


async def sandbox_positions(request: web.Request) -> web.Response:
    """``?organization=&status=``: every stored position, debtor data and options included."""
    state = request.app[STATE]
    org = request.query.get("organization")
    status = request.query.get("status")
    out = []
    for (owner, _), position in state.positions.items():
        if org and owner != org:
            continue
        state.refresh(position)
        if status and position.status.value != status:
            continue
        out.append(_sandbox_view(position))
    return _json({"positions": out, "count": len(out)})


async def sandbox_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"reset": True})


async def add_faults(request: web.Request) -> web.Response:
    """``{"count": 1, "mode": "fail" | "lose" | "drop", "status": 503, "operations":
    ["createPosition"], "retry_after": 1, "delay": 0}``

    ``fail`` answers ``status`` without doing anything; ``lose`` does the work, then
    answers ``status`` (default 502) instead of the real answer; ``drop`` does the work,
    then closes the connection without answering.
    """
    state = request.app[STATE]
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return _bad("expected a JSON object")
    if not isinstance(body, dict):
        return _bad("expected a JSON object")
    mode = body.get("mode", "fail")
    count = body.get("count", 1)
    status = body.get("status", 502 if mode == "lose" else 503)
    operations = body.get("operations")
    retry_after = body.get("retry_after")
    delay = body.get("delay", 0)
    if mode not in ("fail", "lose", "drop"):
        return _bad("mode must be fail, lose or drop")
    if not isinstance(count, int) or count < 1:
        return _bad("count must be a positive integer")
    if not isinstance(status, int) or not 400 <= status <= 599:
        return _bad("status must be an HTTP error status")
    if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
        return _bad("retry_after must be a number of seconds")
    if not isinstance(delay, int | float) or delay < 0:
        return _bad("delay must be a number of seconds")
    if operations is not None and (
        not isinstance(operations, list) or not all(isinstance(o, str) for o in operations)
    ):
        return _bad("operations must be a list of operation ids")
    state.faults.append(
        _Fault(
            remaining=count,
            mode=mode,
            status=status,
            retry_after=float(retry_after) if retry_after is not None else None,
            delay=float(delay),
            operations=frozenset(operations) if operations is not None else None,
        )
    )
    return _json({"faults": [f.as_dict() for f in state.faults]}, 201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": [f.as_dict() for f in request.app[STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return _json({"faults": []})


async def list_calls(request: web.Request) -> web.Response:
    calls = list(request.app[STATE].calls)
    operation = request.query.get("operation")
    if operation:
        calls = [c for c in calls if c["operation"] == operation]
    return _json({"calls": calls, "count": len(calls)})


async def list_uploads(request: web.Request) -> web.Response:
    uploads = request.app[STATE].uploads.values()
    return _json(
        {
            "uploads": [
                {
                    "file_id": u.file_id,
                    "broker": u.broker,
                    "organization": u.org,
                    "operation": u.operation,
                    "submitted": u.total,
                    "processed": u.current,
                    "status": u.operation_status,
                }
                for u in uploads
            ]
        }
    )


async def pay_option(request: web.Request) -> web.Response:
    """Mark an option paid, as a receipt (``paSendRT``) would: VALID → PAID or
    PARTIALLY_PAID, PARTIALLY_PAID → PAID on the last instalment. Optional body:
    ``{"payment_method", "psp_company", "id_receipt"}``."""
    state = request.app[STATE]
    org, iuv = request.match_info["org"], request.match_info["iuv"]
    iupd = state.iuvs.get((org, iuv))
    position = state.find(org, iupd) if iupd is not None else None
    if position is None:
        return _problem(
            404,
            "Not found the payment option",
            f"Not found a payment option for Organization Fiscal Code {org} and IUV {iuv}",
        )
    option = next(o for o in position.options if o.iuv == iuv)
    nav = "3" + iuv
    if option.status != "PO_UNPAID":
        return _problem(
            409,
            "Existing related payment found",
            "A payment transaction has already been carried out for the Organization Fiscal "
            f"Code {org} and NAV {nav}",
        )
    instalment = option.body.get("isPartialPayment") is True
    others = [
        o for o in position.options if o is not option and o.body.get("isPartialPayment") is True
    ]
    last = all(o.status != "PO_UNPAID" for o in others)
    try:
        status = gpd_states.paid(position.status, instalment=instalment, last=last)
    except Refused:
        return _problem(
            422,
            "Not in payable state",
            f"The payment option with Organization Fiscal Code {org} and NAV {nav} is not in "
            "payable state",
        )
    try:
        extra = json.loads(await request.read() or b"{}")
    except ValueError:
        return _bad("expected a JSON object")
    extra = extra if isinstance(extra, dict) else {}
    now = state.now()
    option.status = "PO_PAID"
    option.payment_date = now
    option.payment_method = str(extra.get("payment_method") or "CP")
    option.psp_company = str(extra.get("psp_company") or "Sandbox PSP")
    option.id_receipt = str(extra.get("id_receipt") or uuid.uuid4().hex)
    position.status = status
    position.payment_date = now
    position.last_updated = now
    return _json(
        {"iupd": position.iupd, "status": position.status.value, "option_status": option.status}
    )


async def list_fee_updates(request: web.Request) -> web.Response:
    """Every ``notificationFee`` written (SEND's ASYNC mode), in order."""
    return _json(request.app[STATE].fee_updates)


async def list_violations(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json(
        {
            "enabled": state.spec is not None,
            "violations": [v.as_dict() for v in state.violations],
        }
    )


# -- app -----------------------------------------------------------------------------------


def create_app(
    *,
    api_key: str = DEFAULT_API_KEY,
    clock: Clock | None = None,
    processing_delay: float = 0.0,
    organizations: Collection[str] | None = None,
    spec_checker: GpdSpecChecker | None = None,
) -> web.Application:
    """The GPD sandbox.

    ``api_key`` is the only subscription key accepted (both APIs). ``clock`` drives every
    date GPD checks or fills in (validity and due dates, expiry). ``processing_delay`` is
    how many seconds a bulk upload waits before being processed. ``organizations``, when
    given, are the only fiscal codes the subscription may act for (others: 403).
    ``spec_checker`` turns on spec checking of every JSON body (see ``gpd_spec.py``).
    """
    if not api_key:
        raise ValueError("api_key must not be empty")
    if processing_delay < 0:
        raise ValueError("processing_delay must not be negative")
    state = _State(
        api_key=api_key,
        clock=clock or SystemClock(),
        processing_delay=processing_delay,
        organizations=frozenset(organizations) if organizations is not None else None,
        spec=spec_checker,
    )
    app = platform_app("pagopa", "pagoPA GPD: debt positions and bulk upload")
    app[STATE] = state
    if spec_checker is not None:
        app.middlewares.append(spec_check)
    app.middlewares.append(gpd_gateway)

    async def on_shutdown(app: web.Application) -> None:
        app[STATE].closing.set()
        tasks = list(app[STATE].tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.on_shutdown.append(on_shutdown)
    router = app.router
    positions = f"{GPD_PREFIX}/organizations/{{org}}/debtpositions"
    router.add_get(positions, list_positions, name="getOrganizationDebtPositions")
    router.add_post(positions, create_position, name="createPosition")
    one = f"{positions}/{{iupd}}"
    router.add_get(one, get_position, name="getOrganizationDebtPositionByIUPD")
    router.add_put(one, update_position, name="updatePosition")
    router.add_delete(one, delete_position, name="deletePosition")
    router.add_post(f"{one}/publish", publish_position, name="publishPosition")
    router.add_post(f"{one}/invalidate", invalidate_position, name="invalidatePosition")
    router.add_put(
        f"{GPD_PREFIX}/organizations/{{org}}/paymentoptions/{{nav}}/notificationfee",
        update_notification_fee,
        name="updateNotificationFee",
    )

    files = f"{UPLOAD_PREFIX}/brokers/{{broker}}/organizations/{{org}}/debtpositions"
    router.add_post(
        f"{files}/file", _upload_handler("CREATE"), name="create-debt-positions-by-file-upload"
    )
    router.add_put(
        f"{files}/file", _upload_handler("UPDATE"), name="update-debt-positions-by-file-upload"
    )
    router.add_delete(
        f"{files}/file", _upload_handler("DELETE"), name="delete-debt-positions-by-file-upload"
    )
    router.add_get(
        f"{files}/file/{{file_id}}/status", upload_status, name="get-debt-positions-upload-status"
    )
    router.add_get(
        f"{files}/file/{{file_id}}/report", upload_report, name="get-debt-positions-upload-report"
    )
    router.add_get(f"{files}/files", list_uploads_by_org, name="get-debt-positions-fileids")

    router.add_get("/__sandbox/positions", sandbox_positions)
    router.add_post("/__sandbox/reset", sandbox_reset)
    router.add_get("/__sandbox/faults", list_faults)
    router.add_post("/__sandbox/faults", add_faults)
    router.add_delete("/__sandbox/faults", clear_faults)
    router.add_get("/__sandbox/calls", list_calls)
    router.add_get("/__sandbox/uploads", list_uploads)
    router.add_post("/__sandbox/pay/{org}/{iuv}", pay_option)
    router.add_get("/__sandbox/spec-violations", list_violations)
    router.add_get("/__sandbox/notification-fees", list_fee_updates)
    return app

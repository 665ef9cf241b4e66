"""Sandbox twin of SEND (Piattaforma Notifiche Digitali), the B2B API for senders.

Routes of the spec (``api-external-b2b-pa-bundle.yaml``), each behind SEND's gateway
checks (``x-api-key``, then the PDND voucher, checked against the PDND sandbox's JWKS):

- ``POST /delivery/attachments/preload``: 1-15 slots with a presigned ``PUT`` URL (served
  by this twin under ``/safe-storage/upload/{key}``), a ``secret`` and a ``key``; the
  upload needs ``x-amz-meta-secret`` and ``x-amz-checksum-sha256`` (base64 SHA-256 equal
  to the body's and to the preloaded ``sha256``) and answers ``x-amz-version-id``. The
  same bytes uploaded again get the same version; other bytes ``BadDigest``;
- ``POST /delivery/v2.6/requests`` (202), checked against ``NewNotificationRequestV26``
  (400 Problem naming each field), the taxonomy catalogue (400
  ``PN_GENERIC_INVALIDPARAMETER_TAXONOMYCODE``), duplicates (409
  ``PN_GENERIC_INVALIDPARAMETER_DUPLICATED`` for the same ``paProtocolNumber`` +
  ``idempotenceToken`` or the same pagoPA notice); then, after ``acceptance_delay``
  seconds, ACCEPTED with an IUN or REFUSED (``FILE_NOTFOUND``, ``FILE_SHA_ERROR``,
  ``FILE_PDF_INVALID_ERROR``, ``NOT_VALID_ADDRESS``);
- ``GET /delivery/v2.6/requests``: WAITING (with ``retryAfter``), ACCEPTED, REFUSED;
- ``GET /delivery/v2.9/notifications/sent/{iun}``: the notification with its status
  history and a timeline that advances one step every ``step_delay`` seconds through the
  digital workflow (``SEND_DIGITAL_DOMICILE`` ... ``DIGITAL_SUCCESS_WORKFLOW``) or the
  analog one (``PREPARE_ANALOG_DOMICILE`` ... ``ANALOG_SUCCESS_WORKFLOW``), then
  ``REFINEMENT``;
- ``GET /delivery-push/v2.0/{iun}/legal-facts`` and ``GET /delivery-push/{iun}/download/
  legal-facts/{legalFactId}``: legal facts as small PDFs (reportlab), downloaded from
  ``/safe-storage/legal-facts/{key}``;
- ``PUT /delivery-push/v2.0/notifications/cancel/{iun}`` (202);
- ``POST /delivery/events/payment/pagopa`` (204): the creditor's payment events; each
  notice of an accepted notification of the caller gets ``PAYMENT`` (status ``PAID``), an
  unknown notice a 404 (nothing applied);
- ``POST /delivery/events/payment/f24`` (204): the sender's F24 payments (IUN, recipient
  tax id and type, instant, amount), checked against ``PaymentEventsRequestF24``; the
  recipient gets ``PAYMENT`` with an ``idF24`` (status ``PAID``), once per event; an IUN or a
  recipient the caller has not is a 404 (nothing applied);
- ``GET /delivery/v2.3/price/{paTaxId}/{noticeCode}``: the cost of the notice's recipient
  now (``SEND_FEE`` + the sender's ``paFee``, plus ``ANALOG_COST`` of the product and its
  VAT once a registered letter was sent; 0 with ``FLAT_RATE``), 404 before acceptance;
- ``/delivery-progresses/v2.9/streams`` (create, list, read, delete) and
  ``.../{streamId}/events?lastEventId=``: events with 38-digit ids, in order, up to
  ``page_size`` per read, events up to ``lastEventId`` dropped, ``retry-after`` in ms.

Sandbox-only routes (``/__sandbox``): ``GET notifications`` (the twin's own record: every
request, its status and IUN, so a test can check "accepted exactly once"), ``POST
notifications/{iun}/view`` and ``.../pay``, ``GET|POST|DELETE faults`` (``{"count", "mode":
"fail"|"lose"|"drop", "status", "operations", "retry_after"}``), ``GET calls``, ``POST
reset``. The twin shares no code with the connector it tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import random
import re
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from sportello.clock import Clock, SystemClock

from ..common import platform_app
from ..pdnd.hosts import SANDBOX_ISSUER
from ..voucher import VoucherChecker, VoucherInvalid
from .validation import (
    F24_KINDS_SCHEMAS,
    NEW_NOTIFICATION,
    PAYMENT_EVENTS_F24,
    PAYMENT_EVENTS_PAGOPA,
    PRELOAD,
    STREAM_REQUEST,
    check,
)

__all__ = [
    "DEFAULT_PDND_URL",
    "DEMO_API_KEY",
    "DEMO_SENDER_TAX_ID",
    "OTHER_API_KEY",
    "OTHER_SENDER_TAX_ID",
    "SEND_STATE",
    "TAXONOMY_CODES",
    "SendSandbox",
    "Sender",
    "create_app",
    "demo_senders",
]

DEFAULT_PDND_URL = "http://127.0.0.1:8104"
#: GPD's debt positions service under the pagoPA sandbox's base URL, and the sandbox's key
GPD_PATH = "/gpd/debt-positions-service/v1"
DEFAULT_GPD_API_KEY = "sandbox-gpd-key"
DEMO_API_KEY = "sandbox-send-demo-key"
DEMO_SENDER_TAX_ID = "00000000999"
OTHER_API_KEY = "sandbox-send-other-key"
OTHER_SENDER_TAX_ID = "00000000998"

#: The sandbox's taxonomy catalogue (SEND's has hundreds; ``010101P`` is traffic fines).
TAXONOMY_CODES: frozenset[str] = frozenset(
    {"010101P", "010102P", "010201P", "010202P", "010301P", "010401P", "010801N", "020101P"}
)
PROBLEM_JSON = "application/problem+json"
_MAX_CALLS = 50_000
_URL_LIFETIME = 3600
#: The sandbox's tariff (euro cents): SEND's fee, and the postal cost by product (a fixed
#: table: SEND's real postal costs depend on the tender's price lists, weight and zone).
SEND_FEE = 100
ANALOG_COST = {"AR_REGISTERED_LETTER": 545, "REGISTERED_LETTER_890": 890}
_IUN_LETTERS = "ADEGHJKLMNPQRTUVWXYZ"


@dataclass(frozen=True)
class Sender:
    """A public body known to the twin: its API key, tax id and name."""

    api_key: str
    tax_id: str
    denomination: str
    pa_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def demo_senders() -> list[Sender]:
    """The demo comune (tax id of the demo tenant) and another one (isolation tests)."""
    return [
        Sender(DEMO_API_KEY, DEMO_SENDER_TAX_ID, "Comune di Esempio"),
        Sender(OTHER_API_KEY, OTHER_SENDER_TAX_ID, "Comune di Altrove"),
    ]


#: ``F24Metadata``: one and only one of these (SEND B2B bundle).
F24_KINDS = ("f24Standard", "f24Simplified", "f24Excise", "f24Elid")


@dataclass
class _Upload:
    key: str
    sha256: str
    content_type: str
    secret: str
    expires: float
    sender: str
    body: bytes | None = None
    version: str | None = None


@dataclass
class _Step:
    category: str
    rec_index: int | None
    details: dict[str, Any]
    legal_fact: str | None = None
    status: str | None = None


@dataclass
class _Notification:
    request_id: str
    iun: str
    sender: Sender
    body: dict[str, Any]
    created: float
    sent_at: datetime
    state: str = "WAITING"  # WAITING, ACCEPTED, REFUSED
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: str = "IN_VALIDATION"
    history: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    pending: deque[_Step] = field(default_factory=deque)
    next_due: float = 0.0
    legal_facts: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[int, int] = field(default_factory=dict)
    viewed_at: str | None = None
    refined_at: str | None = None
    #: ASYNC mode: the refusals GPD's answers gave (None: GPD not asked yet), and whether
    #: the asking is under way
    gpd_errors: list[dict[str, Any]] | None = None
    gpd_pending: bool = False

    @property
    def asynchronous(self) -> bool:
        """pagoPaIntMode ASYNC: SEND writes its cost into the GPD positions."""
        return self.body.get("pagoPaIntMode") == "ASYNC"


@dataclass
class _Stream:
    stream_id: str
    sender: Sender
    request: dict[str, Any]
    activation: str
    events: deque[dict[str, Any]] = field(default_factory=deque)


@dataclass
class _Fault:
    remaining: int
    mode: str
    status: int
    retry_after: float | None
    operations: frozenset[str] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "operations": sorted(self.operations) if self.operations is not None else None,
        }


class SendSandbox:
    """State of one SEND twin."""

    def __init__(
        self,
        *,
        senders: Iterable[Sender],
        vouchers: VoucherChecker,
        clock: Clock,
        acceptance_delay: float,
        step_delay: float,
        page_size: int,
        stream_retry_after_ms: int,
        taxonomy_codes: Collection[str],
        gpd_url: str | None = None,
        gpd_api_key: str = "",
        gpd_retry_delay: float = 1.0,
    ) -> None:
        self.initial_senders = list(senders)
        self.gpd_url = gpd_url.rstrip("/") if gpd_url else None
        self.gpd_api_key = gpd_api_key
        self.gpd_retry_delay = gpd_retry_delay
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.vouchers = vouchers
        self.clock = clock
        self.acceptance_delay = acceptance_delay
        self.step_delay = step_delay
        self.page_size = page_size
        self.stream_retry_after_ms = stream_retry_after_ms
        self.taxonomy_codes = frozenset(taxonomy_codes)
        self.signing_key = secrets.token_bytes(32)
        self.closing = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.senders = {s.api_key: s for s in self.initial_senders}
        self.uploads: dict[str, _Upload] = {}
        self.notifications: dict[str, _Notification] = {}
        # WAITING, or with timeline steps still due: what ``advance`` looks at (not every
        # notification ever received, so a call costs the same after 100,000 of them).
        self.active: dict[str, _Notification] = {}
        self.by_iun: dict[str, _Notification] = {}
        self.by_protocol: dict[tuple[str, str, str], str] = {}
        self.by_notice: dict[tuple[str, str], tuple[str, int]] = {}
        self.legal_fact_files: dict[str, tuple[str, bytes | None, dict[str, Any]]] = {}
        self.streams: dict[str, _Stream] = {}
        self.faults: list[_Fault] = []
        self.calls: deque[dict[str, Any]] = deque(maxlen=_MAX_CALLS)
        self.event_counter = 0
        #: every notificationFee this twin wrote into GPD (``GET /__sandbox/gpd-fees``)
        self.gpd_log: list[dict[str, Any]] = []

    # -- time --------------------------------------------------------------------------

    def now_iso(self) -> str:
        return (
            self.clock.now()
            .astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )

    def sign(self, text: str) -> str:
        return hmac.new(self.signing_key, text.encode(), hashlib.sha256).hexdigest()

    # -- workflow ------------------------------------------------------------------------

    def advance(self) -> None:
        """Validate requests whose delay has passed and apply the timeline steps due."""
        now = self.clock.monotonic()
        for notification in list(self.active.values()):
            if notification.state == "WAITING":
                if now - notification.created < self.acceptance_delay:
                    continue
                if notification.asynchronous and notification.gpd_errors is None:
                    errors = self._problems(notification)
                    if errors:  # refused before GPD is touched
                        self._decide(notification, errors)
                    else:  # ASYNC: GPD must have the positions; SEND writes its cost
                        if not notification.gpd_pending:
                            notification.gpd_pending = True
                            self._spawn(self._gpd_accept(notification))
                        continue
                else:
                    self._validate(notification)
                notification.next_due = now
            while notification.pending and notification.next_due <= now:
                self._apply(notification, notification.pending.popleft())
                notification.next_due += self.step_delay
            if not notification.pending:
                del self.active[notification.request_id]

    def _file_problems(
        self, sender: Sender, attachment: dict[str, Any], element: str, pdf: bool
    ) -> list[dict[str, Any]]:
        ref = attachment.get("ref") or {}
        key = str(ref.get("key", "")).removeprefix("safestorage://")
        upload = self.uploads.get(key)
        if upload is None or upload.body is None or upload.sender != sender.tax_id:
            return [{"code": "FILE_NOTFOUND", "element": element, "detail": "file not found"}]
        if ref.get("versionToken") != upload.version:
            return [{"code": "FILE_NOTFOUND", "element": element, "detail": "wrong versionToken"}]
        digest = (attachment.get("digests") or {}).get("sha256")
        if digest != upload.sha256:
            return [{"code": "FILE_SHA_ERROR", "element": element, "detail": "sha256 mismatch"}]
        if pdf and not upload.body.startswith(b"%PDF-"):
            return [{"code": "FILE_PDF_INVALID_ERROR", "element": element, "detail": "not a PDF"}]
        return []

    def _f24_problems(self, metadata: dict[str, Any], element: str) -> list[dict[str, Any]]:
        """The F24 metadata file preloaded as JSON, an object with exactly one of the
        ``F24Metadata`` kinds, that kind checked field by field against its schema of the
        bundle (``F24_KINDS_SCHEMAS``); else ``F24_METADATA_NOT_VALID``, its detail naming
        the fields (``f24Standard.localTax.records[0].municipality: must match ...``)."""
        key = str((metadata.get("ref") or {}).get("key", "")).removeprefix("safestorage://")
        upload = self.uploads[key]
        detail = None
        if upload.content_type != "application/json":
            detail = "the F24 metadata was not preloaded as application/json"
        else:
            try:
                data = json.loads(upload.body or b"")
            except (ValueError, UnicodeDecodeError):
                data = None
            kinds = (
                [k for k in F24_KINDS if data.get(k) is not None] if isinstance(data, dict) else []
            )
            if not isinstance(data, dict) or set(data) - set(F24_KINDS):
                detail = "not an F24Metadata object"
            elif len(kinds) != 1 or not isinstance(data[kinds[0]], dict) or not data[kinds[0]]:
                detail = "one and only one of " + ", ".join(F24_KINDS) + " (an object)"
            else:
                found = check(F24_KINDS_SCHEMAS[kinds[0]], data[kinds[0]], kinds[0])
                if found:
                    detail = "; ".join(f"{where}: {what}" for _, where, what in found[:10])
        if detail is None:
            return []
        return [{"code": "F24_METADATA_NOT_VALID", "element": element, "detail": detail[:2048]}]

    def _validate(self, notification: _Notification) -> None:
        self._decide(notification, self._problems(notification) + (notification.gpd_errors or []))

    def _problems(self, notification: _Notification) -> list[dict[str, Any]]:
        """Why the request is refused (the files, the F24 metadata, the addresses)."""
        body, sender = notification.body, notification.sender
        errors: list[dict[str, Any]] = []
        for index, document in enumerate(body["documents"]):
            errors += self._file_problems(sender, document, f"documents[{index}]", True)
        for rec_index, recipient in enumerate(body["recipients"]):
            for pay_index, payment in enumerate(recipient.get("payments") or []):
                attachment = (payment.get("pagoPa") or {}).get("attachment")
                if attachment:
                    where = f"recipients[{rec_index}].payments[{pay_index}].pagoPa.attachment"
                    for problem in self._file_problems(sender, attachment, where, True):
                        errors.append({**problem, "recIndex": rec_index})
                metadata = (payment.get("f24") or {}).get("metadataAttachment")
                if metadata:
                    where = f"recipients[{rec_index}].payments[{pay_index}].f24.metadataAttachment"
                    problems = self._file_problems(sender, metadata, where, False)
                    if not problems:
                        problems = self._f24_problems(metadata, where)
                    errors += [{**problem, "recIndex": rec_index} for problem in problems]
            if not recipient.get("digitalDomicile") and not recipient.get("physicalAddress"):
                errors.append(
                    {
                        "code": "NOT_VALID_ADDRESS",
                        "element": f"recipients[{rec_index}].physicalAddress",
                        "detail": "no digital domicile and no physical address",
                        "recIndex": rec_index,
                    }
                )
        return errors

    def _decide(self, notification: _Notification, errors: list[dict[str, Any]]) -> None:
        """ACCEPTED (the workflow queued) or REFUSED with ``errors``."""
        if errors:
            notification.state = "REFUSED"
            notification.status = "REFUSED"
            notification.errors = errors
            self._release(notification)
            self._apply(
                notification,
                _Step(
                    "REQUEST_REFUSED",
                    None,
                    {
                        "refusalReasons": [
                            {"errorCode": e["code"], "detail": e["detail"]}
                            | ({"recIndex": e["recIndex"]} if "recIndex" in e else {})
                            for e in errors
                        ],
                        **self._request_ids(notification),
                    },
                    status="REFUSED",
                ),
            )
            return
        notification.state = "ACCEPTED"
        notification.pending.extend(self._workflow(notification))

    # -- ASYNC mode: SEND writes its cost into GPD -------------------------------------------

    def cost(self, notification: _Notification, rec_index: int) -> dict[str, Any]:
        """The recipient's cost now, as the price API answers it: the postal cost counts once
        the registered letter was sent (SEND knowledge base, "Pagamenti pagoPA": in the
        analog workflow a first cost is attributed at the first attempt), so the cost of one
        notice grows while the notification travels."""
        body = notification.body
        flat = body["notificationFeePolicy"] == "FLAT_RATE"
        letters = sum(
            1
            for e in notification.timeline
            if e["category"] == "SEND_ANALOG_DOMICILE" and e["details"].get("recIndex") == rec_index
        )
        analog = 0 if flat else ANALOG_COST[body["physicalCommunicationType"]] * letters
        vat: int = body["vat"] if body.get("vat") is not None else 22
        pa_fee = 0 if flat else body.get("paFee") or 0
        send_fee = 0 if flat else SEND_FEE
        return {
            "partialPrice": send_fee + analog,
            "totalPrice": send_fee + analog + pa_fee + analog * vat // 100,
            "vat": vat,
            "paFee": pa_fee,
            "sendFee": send_fee,
            "analogCost": analog,
        }

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def _cost_payments(notification: _Notification, rec_index: int | None = None) -> list[Any]:
        """``(recIndex, payIndex, pagoPa)`` of the payments with ``applyCost``."""
        return [
            (i, j, payment["pagoPa"])
            for i, recipient in enumerate(notification.body["recipients"])
            for j, payment in enumerate(recipient.get("payments") or [])
            if payment.get("pagoPa", {}).get("applyCost") and rec_index in (None, i)
        ]

    async def _put_fee(self, notification: _Notification, pago: dict[str, Any], fee: int) -> int:
        """``PUT {gpd}/organizations/{creditorTaxId}/paymentoptions/{noticeCode}/
        notificationfee``, GPD's API SEND calls in ASYNC mode; GPD's status (0: no answer),
        retried while GPD fails (5xx, no answer)."""
        if self.gpd_url is None:
            return 404  # no GPD twin configured: no position can be found
        url = (
            f"{self.gpd_url}/organizations/{pago['creditorTaxId']}/paymentoptions/"
            f"{pago['noticeCode']}/notificationfee"
        )
        while True:
            if self.session is None or self.session.closed:
                self.session = aiohttp.ClientSession()
            status = 0
            try:
                async with self.session.put(
                    url,
                    json={"notificationFee": fee},
                    headers={"Ocp-Apim-Subscription-Key": self.gpd_api_key},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            self.gpd_log.append(
                {
                    "iun": notification.iun,
                    "creditorTaxId": pago["creditorTaxId"],
                    "noticeCode": pago["noticeCode"],
                    "notificationFee": fee,
                    "status": status,
                }
            )
            if (status and status < 500 and status != 429) or self.closing.is_set():
                return status
            await asyncio.sleep(self.gpd_retry_delay)

    async def _gpd_accept(self, notification: _Notification) -> None:
        """Before accepting an ASYNC notification: each payment with ``applyCost`` gets the
        recipient's cost in GPD; a position GPD has not (404) or cannot change (422) refuses
        the notification with ``PAYMENT_NOT_VALID``."""
        errors = []
        for i, j, pago in self._cost_payments(notification):
            status = await self._put_fee(
                notification, pago, self.cost(notification, i)["totalPrice"]
            )
            if not 200 <= status < 300:
                errors.append(
                    {
                        "code": "PAYMENT_NOT_VALID",
                        "element": f"recipients[{i}].payments[{j}].pagoPa",
                        "detail": "the payment is not a position GPD has open "
                        f"(GPD answered {status})",
                        "recIndex": i,
                    }
                )
        notification.gpd_errors = errors

    async def _gpd_update(self, notification: _Notification, rec_index: int) -> None:
        """The recipient's cost changed: written again into GPD (nothing to do once GPD
        refuses, e.g. the position was paid meanwhile)."""
        fee = self.cost(notification, rec_index)["totalPrice"]
        for _, _, pago in self._cost_payments(notification, rec_index):
            await self._put_fee(notification, pago, fee)

    def _release(self, notification: _Notification) -> None:
        """A refused request frees its protocol number and notices (they may be sent again)."""
        body = notification.body
        key = (
            notification.sender.tax_id,
            body["paProtocolNumber"],
            body.get("idempotenceToken") or "",
        )
        self.by_protocol.pop(key, None)
        for recipient in body["recipients"]:
            for payment in recipient.get("payments") or []:
                pago = payment.get("pagoPa")
                if pago:
                    self.by_notice.pop((pago["creditorTaxId"], pago["noticeCode"]), None)

    @staticmethod
    def _request_ids(notification: _Notification) -> dict[str, Any]:
        ids = {
            "notificationRequestId": notification.request_id,
            "paProtocolNumber": notification.body["paProtocolNumber"],
        }
        token = notification.body.get("idempotenceToken")
        if token:
            ids["idempotenceToken"] = token
        return ids

    def _workflow(self, notification: _Notification) -> list[_Step]:
        body = notification.body
        later = (self.clock.now() + timedelta(days=7)).isoformat().replace("+00:00", "Z")
        steps = [
            _Step(
                "REQUEST_ACCEPTED", None, self._request_ids(notification), "SENDER_ACK", "ACCEPTED"
            )
        ]
        product = body["physicalCommunicationType"]
        recipients = body["recipients"]
        for i, _ in enumerate(recipients):
            steps.append(
                _Step(
                    "AAR_GENERATION",
                    i,
                    {
                        "recIndex": i,
                        "generatedAarUrl": f"safestorage://PN_AAR-{uuid.uuid4().hex}.pdf",
                        "numberOfPages": 1,
                    },
                )
            )
        for i, recipient in enumerate(recipients):
            domicile = recipient.get("digitalDomicile")
            first = "DELIVERING" if i == 0 else None
            fee = SEND_FEE + (body.get("paFee") or 0)
            if domicile:
                address = {"type": "PEC", "address": domicile["address"]}
                notification.cost[i] = fee
                steps += [
                    _Step(
                        "GET_ADDRESS",
                        i,
                        {
                            "recIndex": i,
                            "digitalAddressSource": "SPECIAL",
                            "isAvailable": True,
                            "attemptDate": self.now_iso(),
                        },
                    ),
                    _Step(
                        "SEND_DIGITAL_DOMICILE",
                        i,
                        {
                            "recIndex": i,
                            "digitalAddress": address,
                            "digitalAddressSource": "SPECIAL",
                            "retryNumber": 0,
                        },
                        status=first,
                    ),
                    _Step(
                        "SEND_DIGITAL_FEEDBACK",
                        i,
                        {
                            "recIndex": i,
                            "digitalAddress": address,
                            "responseStatus": "OK",
                            "notificationDate": self.now_iso(),
                        },
                        "PEC_RECEIPT",
                    ),
                    _Step(
                        "DIGITAL_SUCCESS_WORKFLOW",
                        i,
                        {"recIndex": i, "digitalAddress": address},
                        "DIGITAL_DELIVERY",
                    ),
                ]
            else:
                physical = dict(recipient["physicalAddress"])
                cost = ANALOG_COST[product]
                vat: int = body["vat"] if body.get("vat") is not None else 22
                notification.cost[i] = fee + cost + cost * vat // 100
                base = {
                    "recIndex": i,
                    "physicalAddress": physical,
                    "serviceLevel": product,
                    "sentAttemptMade": 0,
                }
                steps += [
                    _Step("SCHEDULE_ANALOG_WORKFLOW", i, {"recIndex": i, "schedulingDate": later}),
                    _Step("PREPARE_ANALOG_DOMICILE", i, dict(base), status=first),
                    _Step(
                        "SEND_ANALOG_DOMICILE",
                        i,
                        {
                            **base,
                            "analogCost": cost,
                            "productType": "AR" if product.startswith("AR") else "890",
                            "numberOfPages": 2,
                        },
                    ),
                    _Step(
                        "SEND_ANALOG_PROGRESS",
                        i,
                        {
                            "recIndex": i,
                            "deliveryDetailCode": "CON080",
                            "notificationDate": self.now_iso(),
                        },
                    ),
                    _Step(
                        "SEND_ANALOG_FEEDBACK",
                        i,
                        {
                            **base,
                            "responseStatus": "OK",
                            "deliveryDetailCode": "RECRN001C",
                            "notificationDate": self.now_iso(),
                        },
                        "ANALOG_DELIVERY",
                    ),
                    _Step(
                        "ANALOG_SUCCESS_WORKFLOW", i, {"recIndex": i, "physicalAddress": physical}
                    ),
                ]
            if body["notificationFeePolicy"] == "FLAT_RATE":
                notification.cost[i] = 0
        steps[-1].status = "DELIVERED"
        for i, _ in enumerate(recipients):
            steps.append(_Step("SCHEDULE_REFINEMENT", i, {"recIndex": i, "schedulingDate": later}))
        for i, _ in enumerate(recipients):
            steps.append(
                _Step(
                    "REFINEMENT",
                    i,
                    {
                        "recIndex": i,
                        "notificationCost": notification.cost[i],
                        "eventTimestamp": self.now_iso(),
                    },
                )
            )
        steps[-1].status = "EFFECTIVE_DATE"
        return steps

    def _apply(self, notification: _Notification, step: _Step) -> None:
        """Append a timeline element, move the status, emit the stream events."""
        suffix = f".RECINDEX_{step.rec_index}" if step.rec_index is not None else ""
        element_id = f"{step.category}.IUN_{notification.iun}{suffix}"
        if any(e["elementId"] == element_id for e in notification.timeline):
            element_id += f".{len(notification.timeline)}"
        now = self.now_iso()
        element: dict[str, Any] = {
            "elementId": element_id,
            "timestamp": now,
            "eventTimestamp": now,
            "ingestionTimestamp": now,
            "notificationSentAt": notification.sent_at.isoformat().replace("+00:00", "Z"),
            "category": step.category,
            "details": step.details,
            "legalFactsIds": [],
        }
        if step.legal_fact is not None:
            key = f"PN_LEGAL_FACTS-{uuid.uuid4().hex.upper()}.pdf"
            fact = {"key": f"safestorage://{key}", "category": step.legal_fact}
            element["legalFactsIds"].append(fact)
            notification.legal_facts.append({"iun": notification.iun, "legalFactsId": fact})
            self.legal_fact_files[key] = (
                notification.iun,
                None,
                {"category": step.legal_fact, "element": element_id},
            )
        if step.category == "REFINEMENT" and notification.refined_at is None:
            notification.refined_at = now
        if (
            step.category == "SEND_ANALOG_DOMICILE"
            and notification.asynchronous
            and step.rec_index is not None
        ):  # the cost grew: SEND writes the new one into GPD
            self._spawn(self._gpd_update(notification, step.rec_index))
        notification.timeline.append(element)
        new_status = step.status
        if notification.status == "CANCELLED" and new_status != "CANCELLED":
            new_status = None
        if (
            new_status is not None and new_status != notification.status
        ) or not notification.history:
            notification.status = new_status or notification.status
            notification.history.append(
                {
                    "status": notification.status,
                    "activeFrom": now,
                    "relatedTimelineElements": [element_id],
                }
            )
            changed = True
        else:
            notification.history[-1]["relatedTimelineElements"].append(element_id)
            changed = False
        for stream in self.streams.values():
            if stream.sender.tax_id != notification.sender.tax_id:
                continue
            request = stream.request
            filters = request.get("filterValues") or []
            if request["eventType"] == "TIMELINE":
                wanted = not filters or step.category in filters
            else:
                wanted = changed and (not filters or notification.status in filters)
            if not wanted:
                continue
            self.event_counter += 1
            event: dict[str, Any] = {
                "eventId": f"{self.event_counter:038d}",
                "notificationRequestId": notification.request_id,
                "element": element,
            }
            if notification.state == "ACCEPTED":
                event["iun"] = notification.iun
            if changed:
                event["newStatus"] = notification.status
            stream.events.append(event)

    # -- views ---------------------------------------------------------------------------

    def full(self, notification: _Notification) -> dict[str, Any]:
        return {
            **notification.body,
            "iun": notification.iun,
            "sentAt": notification.sent_at.isoformat().replace("+00:00", "Z"),
            "senderPaId": notification.sender.pa_id,
            "documentsAvailable": notification.status != "CANCELLED",
            "notificationStatus": notification.status,
            "notificationStatusHistory": notification.history,
            "timeline": notification.timeline,
        }

    def record(self, notification: _Notification) -> dict[str, Any]:
        return {
            "notificationRequestId": notification.request_id,
            "iun": notification.iun if notification.state == "ACCEPTED" else None,
            "senderTaxId": notification.sender.tax_id,
            "paProtocolNumber": notification.body["paProtocolNumber"],
            "idempotenceToken": notification.body.get("idempotenceToken"),
            "state": notification.state,
            "notificationStatus": notification.status,
            "errors": notification.errors,
            "categories": [e["category"] for e in notification.timeline],
            "recipients": len(notification.body["recipients"]),
        }


SEND_STATE = web.AppKey("send_sandbox_state", SendSandbox)
_SENDER = web.RequestKey("send_sandbox_sender", Sender)


# -- answers ----------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type=content_type,
    )


def _problem(
    status: int, title: str, errors: list[tuple[str, str | None, str]], detail: str | None = None
) -> web.Response:
    """SEND's ``Problem`` body."""
    body: dict[str, Any] = {
        "type": "GENERIC_ERROR",
        "status": status,
        "title": title,
        "detail": detail or "See logs for details in PN-DELIVERY",
        "traceId": f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)}",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "errors": [
            {"code": code, **({"element": element} if element else {}), "detail": text}
            for code, element, text in errors
        ],
    }
    return _json(body, status, PROBLEM_JSON)


def _bad(problems: list[tuple[str, str, str]]) -> web.Response:
    return _problem(400, "Bad Request", list(problems))


def _not_found(what: str) -> web.Response:
    return _problem(404, "Not Found", [("PN_GENERIC_NOT_FOUND", None, f"{what} not found")])


def _s3_error(status: int, code: str, message: str) -> web.Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    )
    return web.Response(text=xml, status=status, content_type="application/xml")


async def _body(request: web.Request) -> tuple[Any, web.Response | None]:
    raw = await request.read()
    try:
        return json.loads(raw), None
    except ValueError:
        return None, _bad([("PN_GENERIC_INVALIDPARAMETER", "body", "the body is not valid JSON")])


def _ctx(request: web.Request) -> tuple[SendSandbox, Sender]:
    return request.app[SEND_STATE], request[_SENDER]


# -- preload and storage ------------------------------------------------------------------


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def preload(request: web.Request) -> web.Response:
    state, sender = _ctx(request)
    body, error = await _body(request)
    if error is not None:
        return error
    problems = check(PRELOAD, body)
    if problems:
        return _bad(problems)
    expires = state.clock.monotonic() + _URL_LIFETIME
    answer = []
    for item in body:
        key = f"PN_NOTIFICATION_ATTACHMENTS-{secrets.token_hex(12).upper()}.pdf"
        secret = secrets.token_urlsafe(24)
        state.uploads[key] = _Upload(
            key,
            item["sha256"],
            item.get("contentType", "application/pdf"),
            secret,
            expires,
            sender.tax_id,
        )
        deadline = f"{expires:.3f}"
        signature = state.sign(f"PUT {key} {deadline}")
        url = (
            f"{_base_url(request)}/safe-storage/upload/{key}"
            f"?X-Amz-Expires={_URL_LIFETIME}&X-Amz-Deadline={deadline}"
            f"&X-Amz-Signature={signature}"
        )
        slot = {"secret": secret, "httpMethod": "PUT", "url": url, "key": f"safestorage://{key}"}
        if "preloadIdx" in item:
            slot["preloadIdx"] = item["preloadIdx"]
        answer.append(slot)
    return _json(answer)


async def upload(request: web.Request) -> web.Response:
    state = request.app[SEND_STATE]
    key = request.match_info["key"]
    upload_ = state.uploads.get(key)
    deadline = request.query.get("X-Amz-Deadline", "")
    if upload_ is None or not hmac.compare_digest(
        request.query.get("X-Amz-Signature", ""), state.sign(f"PUT {key} {deadline}")
    ):
        return _s3_error(403, "SignatureDoesNotMatch", "The request signature does not match")
    if state.clock.monotonic() > upload_.expires:
        return _s3_error(403, "AccessDenied", "Request has expired")
    if not hmac.compare_digest(request.headers.get("x-amz-meta-secret", ""), upload_.secret):
        return _s3_error(403, "AccessDenied", "Access Denied")
    if request.content_type != upload_.content_type:
        return _s3_error(403, "AccessDenied", "Content-Type does not match the preload")
    body = await request.read()
    actual = base64.b64encode(hashlib.sha256(body).digest()).decode()
    declared = request.headers.get("x-amz-checksum-sha256")
    if declared is None:
        return _s3_error(400, "InvalidRequest", "x-amz-checksum-sha256 is required")
    if declared != actual:
        return _s3_error(
            400, "BadDigest", "The SHA256 you specified did not match the calculated checksum."
        )
    if actual != upload_.sha256:
        return _s3_error(
            400, "BadDigest", "The checksum does not match the one declared at preload."
        )
    if upload_.body is None:
        upload_.body = body
        upload_.version = secrets.token_urlsafe(24)
    response = web.Response(status=200)
    response.headers["x-amz-version-id"] = upload_.version or ""
    response.headers["ETag"] = f'"{hashlib.md5(body).hexdigest()}"'
    return response


# -- notification requests -----------------------------------------------------------------


def _new_iun(state: SendSandbox) -> str:
    now = state.clock.now()
    while True:
        parts = ["".join(random.choices(_IUN_LETTERS, k=4)) for _ in range(3)]
        iun = f"{'-'.join(parts)}-{now:%Y%m}-{random.choice(_IUN_LETTERS)}-{random.randint(0, 9)}"
        if iun not in state.by_iun:
            return iun


async def send_notification(request: web.Request) -> web.Response:
    state, sender = _ctx(request)
    body, error = await _body(request)
    if error is not None:
        return error
    problems = check(NEW_NOTIFICATION, body)
    if problems:
        return _bad(problems)
    if body["senderTaxId"] != sender.tax_id:
        return _bad([("PN_GENERIC_INVALIDPARAMETER", "senderTaxId", "not the caller's tax id")])
    if body["taxonomyCode"] not in state.taxonomy_codes:
        return _bad(
            [("PN_GENERIC_INVALIDPARAMETER_TAXONOMYCODE", "taxonomyCode", "unknown taxonomy code")]
        )
    if body.get("pagoPaIntMode") == "ASYNC" and body["notificationFeePolicy"] == "DELIVERY_MODE":
        # PaFeeV21, VatV21: required with DELIVERY_MODE in the asynchronous mode
        missing = [name for name in ("paFee", "vat") if body.get(name) is None]
        if missing:
            return _bad(
                [
                    ("PN_GENERIC_INVALIDPARAMETER_REQUIRED", name, "must not be null")
                    for name in missing
                ]
            )
    protocol_key = (sender.tax_id, body["paProtocolNumber"], body.get("idempotenceToken") or "")
    if protocol_key in state.by_protocol:
        return _problem(
            409,
            "Conflict",
            [
                (
                    "PN_GENERIC_INVALIDPARAMETER_DUPLICATED",
                    "Duplicated notification for senderPaId##paProtocolNumber##idempotenceToken",
                    "Duplicated notification for senderPaId##paProtocolNumber##idempotenceToken",
                )
            ],
            "Some resources are in conflict",
        )
    notices = []
    for recipient in body["recipients"]:
        for payment in recipient.get("payments") or []:
            pago = payment.get("pagoPa")
            if pago:
                notices.append((pago["creditorTaxId"], pago["noticeCode"]))
    if len(set(notices)) != len(notices) or any(n in state.by_notice for n in notices):
        return _problem(
            409,
            "Conflict",
            [
                (
                    "PN_GENERIC_INVALIDPARAMETER_DUPLICATED",
                    "Duplicated notification for creditorTaxId##noticeCode",
                    "Duplicated notification for creditorTaxId##noticeCode",
                )
            ],
            "Some resources are in conflict",
        )
    iun = _new_iun(state)
    request_id = base64.b64encode(iun.encode()).decode()
    notification = _Notification(
        request_id=request_id,
        iun=iun,
        sender=sender,
        body=body,
        created=state.clock.monotonic(),
        sent_at=state.clock.now(),
    )
    state.notifications[request_id] = notification
    state.active[request_id] = notification
    state.by_iun[iun] = notification
    state.by_protocol[protocol_key] = request_id
    for rec_index, recipient in enumerate(body["recipients"]):
        for payment in recipient.get("payments") or []:
            pago = payment.get("pagoPa")
            if pago:
                state.by_notice[(pago["creditorTaxId"], pago["noticeCode"])] = (iun, rec_index)
    answer = {"notificationRequestId": request_id, "paProtocolNumber": body["paProtocolNumber"]}
    if body.get("idempotenceToken"):
        answer["idempotenceToken"] = body["idempotenceToken"]
    return _json(answer, 202)


async def request_status(request: web.Request) -> web.Response:
    state, sender = _ctx(request)
    query = request.query
    request_id = query.get("notificationRequestId")
    notification: _Notification | None = None
    if request_id is not None:
        if len(request_id) != 36 or not all(c.isalnum() or c in "+/=" for c in request_id):
            return _bad(
                [
                    (
                        "PN_GENERIC_INVALIDPARAMETER_PATTERN",
                        "notificationRequestId",
                        "must match ^[A-Za-z0-9+/=]{36}$",
                    )
                ]
            )
        notification = state.notifications.get(request_id)
    elif "paProtocolNumber" in query:
        key = (sender.tax_id, query["paProtocolNumber"], query.get("idempotenceToken", ""))
        found = state.by_protocol.get(key)
        notification = state.notifications.get(found) if found else None
        if notification is None:  # a refused one is not in by_protocol any more
            for candidate in reversed(list(state.notifications.values())):
                if (
                    candidate.sender.tax_id == sender.tax_id
                    and candidate.body["paProtocolNumber"] == key[1]
                    and (candidate.body.get("idempotenceToken") or "") == key[2]
                ):
                    notification = candidate
                    break
    else:
        return _bad(
            [
                (
                    "PN_GENERIC_INVALIDPARAMETER_REQUIRED",
                    "notificationRequestId",
                    "pass notificationRequestId or paProtocolNumber and idempotenceToken",
                )
            ]
        )
    if notification is None or notification.sender.tax_id != sender.tax_id:
        return _not_found("notification request")
    answer: dict[str, Any] = {
        **notification.body,
        "notificationRequestId": notification.request_id,
        "notificationRequestStatus": notification.state,
    }
    if notification.state == "ACCEPTED":
        answer["iun"] = notification.iun
    elif notification.state == "REFUSED":
        answer["errors"] = notification.errors
    else:
        answer["retryAfter"] = max(1, round(state.acceptance_delay))
    return _json(answer)


def _accepted(request: web.Request) -> tuple[_Notification | None, web.Response | None]:
    state, sender = _ctx(request)
    iun = request.match_info["iun"]
    if len(iun) != 25 or not _IUN_RE.match(iun):
        return None, _bad(
            [
                (
                    "PN_GENERIC_INVALIDPARAMETER_PATTERN",
                    "iun",
                    "must match ^[A-Z]{4}-[A-Z]{4}-[A-Z]{4}-[0-9]{6}-[A-Z]{1}-[0-9]{1}$",
                )
            ]
        )
    notification = state.by_iun.get(iun)
    if (
        notification is None
        or notification.state != "ACCEPTED"
        or notification.sender.tax_id != sender.tax_id
    ):
        return None, _not_found("notification")
    return notification, None


async def sent_notification(request: web.Request) -> web.Response:
    notification, error = _accepted(request)
    if notification is None:
        return error or _not_found("notification")
    return _json(request.app[SEND_STATE].full(notification))


async def legal_facts(request: web.Request) -> web.Response:
    notification, error = _accepted(request)
    if notification is None:
        return error or _not_found("notification")
    return _json(notification.legal_facts)


def _legal_fact_pdf(iun: str, meta: dict[str, Any], sender: str) -> bytes:
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=True)
    canvas.setTitle(f"{meta['category']} {iun}")
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawString(60, 780, "Piattaforma Notifiche Digitali (sandbox)")
    canvas.setFont("Helvetica", 11)
    for line, text in enumerate(
        (
            f"Atto opponibile a terzi: {meta['category']}",
            f"IUN: {iun}",
            f"Mittente: {sender}",
            f"Evento: {meta['element']}",
            "Documento di prova generato dalla sandbox: nessun valore legale.",
        )
    ):
        canvas.drawString(60, 740 - 18 * line, text)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


async def legal_fact_download(request: web.Request) -> web.Response:
    notification, error = _accepted(request)
    if notification is None:
        return error or _not_found("notification")
    state = request.app[SEND_STATE]
    key = request.match_info["legal_fact_id"].removeprefix("safestorage://")
    entry = state.legal_fact_files.get(key)
    if entry is None or entry[0] != notification.iun:
        return _not_found("legal fact")
    iun, pdf, meta = entry
    if pdf is None:
        pdf = _legal_fact_pdf(iun, meta, notification.sender.denomination)
        state.legal_fact_files[key] = (iun, pdf, meta)
    expires = state.clock.monotonic() + 300
    signature = state.sign(f"GET {key} {expires:.3f}")
    return _json(
        {
            "filename": key,
            "contentLength": len(pdf),
            "url": f"{_base_url(request)}/safe-storage/legal-facts/{key}"
            f"?X-Amz-Deadline={expires:.3f}&X-Amz-Signature={signature}",
        }
    )


async def download_legal_fact(request: web.Request) -> web.Response:
    state = request.app[SEND_STATE]
    key = request.match_info["key"]
    deadline = request.query.get("X-Amz-Deadline", "")
    entry = state.legal_fact_files.get(key)
    if (
        entry is None
        or entry[1] is None
        or not hmac.compare_digest(
            request.query.get("X-Amz-Signature", ""), state.sign(f"GET {key} {deadline}")
        )
    ):
        return _s3_error(403, "AccessDenied", "Access Denied")
    try:
        if state.clock.monotonic() > float(deadline):
            return _s3_error(403, "AccessDenied", "Request has expired")
    except ValueError:
        return _s3_error(403, "AccessDenied", "Access Denied")
    return web.Response(body=entry[1], content_type="application/pdf")


async def cancel(request: web.Request) -> web.Response:
    notification, error = _accepted(request)
    if notification is None:
        return error or _not_found("notification")
    state = request.app[SEND_STATE]
    if notification.status == "CANCELLED":
        return _json(
            {
                "status": "OK",
                "details": [
                    {
                        "code": "NOTIFICATION_ALREADY_CANCELLED",
                        "level": "WARN",
                        "detail": f"notification {notification.iun} already cancelled",
                    }
                ],
            },
            202,
        )
    refined = {
        e["details"].get("recIndex") for e in notification.timeline if e["category"] == "REFINEMENT"
    }
    not_refined = [i for i in range(len(notification.body["recipients"])) if i not in refined]
    notification.pending.clear()
    state._apply(
        notification,
        _Step(
            "NOTIFICATION_CANCELLATION_REQUEST", None, {"cancellationRequestId": str(uuid.uuid4())}
        ),
    )
    state._apply(
        notification,
        _Step(
            "NOTIFICATION_CANCELLED",
            None,
            {"notificationCost": 0, "notRefinedRecipientIndexes": not_refined},
            "NOTIFICATION_CANCELLED",
            "CANCELLED",
        ),
    )
    return _json(
        {
            "status": "OK",
            "details": [
                {
                    "code": "NOTIFICATION_CANCELLATION_ACCEPTED",
                    "level": "INFO",
                    "detail": f"cancellation of {notification.iun} accepted",
                }
            ],
        },
        202,
    )


async def price(request: web.Request) -> web.Response:
    state, _ = _ctx(request)
    tax_id, notice = request.match_info["paTaxId"], request.match_info["noticeCode"]
    problems = []
    if len(tax_id) != 11 or not tax_id.isdigit():
        problems.append(("PN_GENERIC_INVALIDPARAMETER_PATTERN", "paTaxId", "must be 11 digits"))
    if len(notice) != 18 or not notice.isdigit():
        problems.append(("PN_GENERIC_INVALIDPARAMETER_PATTERN", "noticeCode", "must be 18 digits"))
    if problems:
        return _bad(problems)
    found = state.by_notice.get((tax_id, notice))
    notification = state.by_iun.get(found[0]) if found else None
    if found is None or notification is None or notification.state != "ACCEPTED":
        return _problem(
            404,
            "Not Found",
            [("PN_DELIVERY_NOTIFICATIONCOSTNOTFOUND", None, "no notification for this notice")],
        )
    answer: dict[str, Any] = {"iun": notification.iun, **state.cost(notification, found[1])}
    if notification.refined_at:
        answer["refinementDate"] = notification.refined_at
    if notification.viewed_at:
        answer["notificationViewDate"] = notification.viewed_at
    return _json(answer)


# -- streams ------------------------------------------------------------------------------


def _stream_meta(stream: _Stream) -> dict[str, Any]:
    return {
        **{k: v for k, v in stream.request.items() if k != "replacedStreamId"},
        "streamId": stream.stream_id,
        "activationDate": stream.activation,
        "version": "v29",
    }


async def create_stream(request: web.Request) -> web.Response:
    state, sender = _ctx(request)
    body, error = await _body(request)
    if error is not None:
        return error
    problems = check(STREAM_REQUEST, body)
    if problems:
        return _bad(problems)
    replaced = body.get("replacedStreamId")
    if replaced is not None:
        old = state.streams.get(replaced)
        if old is None or old.sender.tax_id != sender.tax_id:
            return _not_found("stream")
        del state.streams[replaced]
    stream = _Stream(str(uuid.uuid4()), sender, body, state.now_iso())
    state.streams[stream.stream_id] = stream
    return _json(_stream_meta(stream))


async def list_streams(request: web.Request) -> web.Response:
    state, sender = _ctx(request)
    return _json(
        [
            {"streamId": s.stream_id, "title": s.request["title"]}
            for s in state.streams.values()
            if s.sender.tax_id == sender.tax_id
        ]
    )


def _stream(request: web.Request) -> tuple[_Stream | None, web.Response | None]:
    state, sender = _ctx(request)
    stream_id = request.match_info["streamId"]
    try:
        uuid.UUID(stream_id)
    except ValueError:
        return None, _bad([("PN_GENERIC_INVALIDPARAMETER_PATTERN", "streamId", "must be a UUID")])
    stream = state.streams.get(stream_id)
    if stream is None:
        return None, _not_found("stream")
    if stream.sender.tax_id != sender.tax_id:
        return None, _problem(
            403,
            "Forbidden",
            [("PN_WEBHOOK_FORBIDDEN", "streamId", "the stream belongs to another sender")],
        )
    return stream, None


async def get_stream(request: web.Request) -> web.Response:
    stream, error = _stream(request)
    return _json(_stream_meta(stream)) if stream is not None else error or _not_found("stream")


async def delete_stream(request: web.Request) -> web.Response:
    stream, error = _stream(request)
    if stream is None:
        return error or _not_found("stream")
    del request.app[SEND_STATE].streams[stream.stream_id]
    return web.Response(status=204)


async def stream_events(request: web.Request) -> web.Response:
    stream, error = _stream(request)
    if stream is None:
        return error or _not_found("stream")
    state = request.app[SEND_STATE]
    last = request.query.get("lastEventId")
    if last is not None:
        if len(last) != 38 or not last.isdigit() or last[0] != "0":
            return _bad(
                [("PN_GENERIC_INVALIDPARAMETER_PATTERN", "lastEventId", "must match ^0\\d{37}$")]
            )
        while stream.events and stream.events[0]["eventId"] <= last:
            stream.events.popleft()
    page = list(stream.events)[: state.page_size]
    response = _json(page)
    more = len(stream.events) > len(page)
    response.headers["retry-after"] = "0" if more else str(state.stream_retry_after_ms)
    return response


# -- sandbox-only -------------------------------------------------------------------------


async def list_notifications(request: web.Request) -> web.Response:
    state = request.app[SEND_STATE]
    state.advance()
    records = [state.record(n) for n in state.notifications.values()]
    return _json({"notifications": records, "count": len(records)})


async def view_notification(request: web.Request) -> web.Response:
    """The recipient opens the notification: NOTIFICATION_VIEWED (RECIPIENT_ACCESS)."""
    state = request.app[SEND_STATE]
    state.advance()
    notification = state.by_iun.get(request.match_info["iun"])
    if notification is None or notification.state != "ACCEPTED":
        return _not_found("notification")
    rec_index = int(request.query.get("recIndex", "0"))
    notification.viewed_at = notification.viewed_at or state.now_iso()
    state._apply(
        notification,
        _Step(
            "NOTIFICATION_VIEWED",
            rec_index,
            {
                "recIndex": rec_index,
                "notificationCost": notification.cost.get(rec_index, 0),
                "eventTimestamp": state.now_iso(),
            },
            "RECIPIENT_ACCESS",
            "VIEWED",
        ),
    )
    return _json(state.record(notification))


async def pay_notification(request: web.Request) -> web.Response:
    """A notice of the notification was paid: PAYMENT, status PAID."""
    state = request.app[SEND_STATE]
    state.advance()
    notification = state.by_iun.get(request.match_info["iun"])
    if notification is None or notification.state != "ACCEPTED":
        return _not_found("notification")
    rec_index = int(request.query.get("recIndex", "0"))
    recipient = notification.body["recipients"][rec_index]
    pago = next((p["pagoPa"] for p in recipient.get("payments") or [] if p.get("pagoPa")), None)
    _paid(state, notification, rec_index, pago)
    return _json(state.record(notification))


def _paid(
    state: SendSandbox,
    notification: _Notification,
    rec_index: int,
    pago: dict[str, Any] | None,
    amount: int | None = None,
) -> None:
    recipient = notification.body["recipients"][rec_index]
    details: dict[str, Any] = {
        "recIndex": rec_index,
        "recipientType": recipient["recipientType"],
        "paymentSourceChannel": "PA",
        "eventTimestamp": state.now_iso(),
    }
    if pago:
        details.update(creditorTaxId=pago["creditorTaxId"], noticeCode=pago["noticeCode"])
    if amount is not None:
        details["amount"] = amount
    state._apply(notification, _Step("PAYMENT", rec_index, details, status="PAID"))


async def payment_events(request: web.Request) -> web.Response:
    """``paymentEventsRequestPagoPa``: the creditor's pagoPA payments; 204. A notice that no
    accepted notification of the caller carries is a 404 and nothing is applied. A notice
    already recorded as paid is not recorded twice (the creditor may repeat an event)."""
    state, sender = _ctx(request)
    body, error = await _body(request)
    if error is not None:
        return error
    problems = check(PAYMENT_EVENTS_PAGOPA, body)
    if problems:
        return _bad(problems)
    found = []
    for index, event in enumerate(body["events"]):
        hit = state.by_notice.get((event["creditorTaxId"], event["noticeCode"]))
        notification = state.by_iun.get(hit[0]) if hit else None
        if (
            notification is None
            or notification.state != "ACCEPTED"
            or notification.sender.tax_id != sender.tax_id
        ):
            return _problem(
                404,
                "Not Found",
                [("PN_GENERIC_NOT_FOUND", f"events[{index}]", "no notification for this notice")],
            )
        assert hit is not None
        found.append((notification, hit[1], event))
    for notification, rec_index, event in found:
        already = any(
            e["category"] == "PAYMENT"
            and e["details"].get("noticeCode") == event["noticeCode"]
            and e["details"].get("creditorTaxId") == event["creditorTaxId"]
            for e in notification.timeline
        )
        if not already:
            pago = {"creditorTaxId": event["creditorTaxId"], "noticeCode": event["noticeCode"]}
            _paid(state, notification, rec_index, pago, event["amount"])
    return web.Response(status=204)


async def payment_events_f24(request: web.Request) -> web.Response:
    """``paymentEventsRequestF24``: F24 payments told by the sender; 204. Each event names an
    accepted notification of the caller (else 404, nothing applied) and one of its recipients
    by ``recipientTaxId`` and ``recipientType`` (else 404 naming the field); the recipient
    gets ``PAYMENT`` (``idF24``, ``amount``, channel ``PA``) and the notification PAID. The
    same event again (same IUN, recipient, instant and amount: the same ``idF24``) is kept
    once."""
    state, sender = _ctx(request)
    body, error = await _body(request)
    if error is not None:
        return error
    problems = check(PAYMENT_EVENTS_F24, body)
    if problems:
        return _bad(problems)
    found = []
    for index, event in enumerate(body["events"]):
        notification = state.by_iun.get(event["iun"])
        if (
            notification is None
            or notification.state != "ACCEPTED"
            or notification.sender.tax_id != sender.tax_id
        ):
            return _problem(
                404,
                "Not Found",
                [("PN_GENERIC_NOT_FOUND", f"events[{index}].iun", "no notification with this IUN")],
            )
        rec_index = next(
            (
                i
                for i, r in enumerate(notification.body["recipients"])
                if r["taxId"] == event["recipientTaxId"]
                and r["recipientType"] == event["recipientType"]
            ),
            None,
        )
        if rec_index is None:
            return _problem(
                404,
                "Not Found",
                [
                    (
                        "PN_GENERIC_NOT_FOUND",
                        f"events[{index}].recipientTaxId",
                        "no recipient of the notification with this taxId and recipientType",
                    )
                ],
            )
        paid_at = datetime.fromisoformat(event["paymentDate"].replace("z", "Z")).astimezone(UTC)
        id_f24 = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"f24:{notification.iun}:{rec_index}:{paid_at.isoformat()}:{event['amount']}",
            )
        )
        found.append((notification, rec_index, event, id_f24, paid_at))
    for notification, rec_index, event, id_f24, paid_at in found:
        if any(
            e["category"] == "PAYMENT" and e["details"].get("idF24") == id_f24
            for e in notification.timeline
        ):
            continue
        recipient = notification.body["recipients"][rec_index]
        details: dict[str, Any] = {
            "recIndex": rec_index,
            "recipientType": recipient["recipientType"],
            "amount": event["amount"],
            "idF24": id_f24,
            "paymentSourceChannel": "PA",
            "eventTimestamp": paid_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        state._apply(notification, _Step("PAYMENT", rec_index, details, status="PAID"))
    return web.Response(status=204)


async def list_gpd_fees(request: web.Request) -> web.Response:
    """Every ``notificationFee`` this twin wrote into GPD (ASYNC mode), with GPD's status."""
    return _json(request.app[SEND_STATE].gpd_log)


async def reset(request: web.Request) -> web.Response:
    request.app[SEND_STATE].reset()
    return _json({"reset": True})


async def add_faults(request: web.Request) -> web.Response:
    """``{"count": 1, "mode": "fail"|"lose"|"drop", "status": 503, "operations":
    ["sendNewNotificationV26", "upload"], "retry_after": 1}``: ``fail`` answers ``status``
    without acting, ``lose`` acts then answers ``status``, ``drop`` acts then closes the
    connection. A 429 carries ``Retry-After`` (milliseconds on the streams, as SEND)."""
    state = request.app[SEND_STATE]
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _problem(400, "Bad Request", [("SANDBOX", "body", "expected a JSON object")])
    mode = body.get("mode", "fail")
    count = body.get("count", 1)
    status = body.get("status", 503)
    operations = body.get("operations")
    retry_after = body.get("retry_after")
    if (
        mode not in ("fail", "lose", "drop")
        or type(count) is not int
        or count < 1
        or type(status) is not int
        or not 400 <= status <= 599
        or (
            retry_after is not None
            and (not isinstance(retry_after, int | float) or retry_after < 0)
        )
        or (
            operations is not None
            and (
                not isinstance(operations, list) or not all(isinstance(o, str) for o in operations)
            )
        )
    ):
        return _problem(
            400,
            "Bad Request",
            [
                (
                    "SANDBOX",
                    "body",
                    "mode fail|lose|drop, count >= 1, "
                    "status 400-599, operations: list, retry_after >= 0",
                )
            ],
        )
    state.faults.append(
        _Fault(
            count,
            mode,
            status,
            float(retry_after) if retry_after is not None else None,
            frozenset(operations) if operations is not None else None,
        )
    )
    return _json({"faults": [f.as_dict() for f in state.faults]}, 201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": [f.as_dict() for f in request.app[SEND_STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[SEND_STATE].faults.clear()
    return _json({"faults": []})


async def list_calls(request: web.Request) -> web.Response:
    calls = list(request.app[SEND_STATE].calls)
    return _json({"calls": calls, "count": len(calls)})


# -- gateway ------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STORAGE_OPERATIONS = {"upload", "uploadPost", "downloadLegalFact"}


def _take_fault(state: SendSandbox, operation: str) -> _Fault | None:
    for fault in state.faults:
        if fault.operations is not None and operation not in fault.operations:
            continue
        fault.remaining -= 1
        if fault.remaining <= 0:
            state.faults.remove(fault)
        return fault
    return None


def _fault_answer(fault: _Fault, operation: str) -> web.Response:
    if operation in _STORAGE_OPERATIONS:
        if fault.status == 503:
            response = _s3_error(503, "SlowDown", "Please reduce your request rate.")
        else:
            response = _s3_error(fault.status, "InternalError", "sandbox fault injection")
    elif fault.status == 429:
        response = _json({"message": "Too Many Requests"}, 429)
    elif fault.status >= 500:
        response = _problem(
            fault.status,
            "Internal Server Error",
            [("PN_GENERIC_ERROR", None, "sandbox fault injection")],
        )
    else:
        response = _problem(fault.status, "Sandbox fault", [("SANDBOX_FAULT", None, "injected")])
    if fault.retry_after is not None:
        millis = operation.startswith(("consumeEventStream",))
        value = fault.retry_after * 1000 if millis else fault.retry_after
        response.headers["Retry-After"] = f"{value:g}"
    return response


@web.middleware
async def send_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """SEND's gateway: ``x-api-key`` (403), voucher (401 missing, 403 refused), faults,
    call log. Storage routes (presigned) need no credentials."""
    route = request.match_info.route
    operation = route.name if request.match_info.http_exception is None else None
    if operation is None or request.path.startswith("/__sandbox"):
        return await handler(request)
    state = request.app[SEND_STATE]
    sender: Sender | None = None
    reason: str | None = None
    response: web.StreamResponse
    if operation in _STORAGE_OPERATIONS:
        response = await _with_faults(request, handler, state, operation)
    else:
        sender = state.senders.get(request.headers.get("x-api-key", ""))
        if sender is None:
            reason = "apiKey"
            response = _json({"message": "Forbidden"}, 403)
        else:
            try:
                await state.vouchers.check(request.headers.get("Authorization"), _base_url(request))
            except VoucherInvalid as exc:
                reason = f"voucher.{exc.reason}"
                if exc.reason == "missing":
                    response = _json({"message": "Unauthorized"}, 401)
                else:
                    response = _json(
                        {
                            "Message": "User is not authorized to access this resource with an "
                            "explicit deny"
                        },
                        403,
                    )
            else:
                request[_SENDER] = sender
                state.advance()
                response = await _with_faults(request, handler, state, operation)
    state.calls.append(
        {
            "operation": operation,
            "method": request.method,
            "status": response.status,
            "sender": sender.tax_id if sender is not None else None,
            "refused": reason,
        }
    )
    return response


async def _with_faults(
    request: web.Request, handler: Handler, state: SendSandbox, operation: str
) -> web.StreamResponse:
    fault = _take_fault(state, operation)
    if fault is not None and fault.mode == "fail":
        return _fault_answer(fault, operation)
    response = await handler(request)
    if fault is None:
        return response
    if fault.mode == "drop":
        if request.transport is not None:
            request.transport.close()
        return response
    return _fault_answer(fault, operation)


_IUN_RE = re.compile(r"^[A-Z]{4}-[A-Z]{4}-[A-Z]{4}-[0-9]{6}-[A-Z]-[0-9]$")


def create_app(
    *,
    senders: Iterable[Sender] | None = None,
    pdnd_url: str = DEFAULT_PDND_URL,
    jwks: dict[str, Any] | None = None,
    voucher_issuer: str = SANDBOX_ISSUER,
    voucher_audience: str | None = None,
    purposes: Collection[str] | None = None,
    clock: Clock | None = None,
    acceptance_delay: float = 1.0,
    step_delay: float = 1.0,
    page_size: int = 50,
    stream_retry_after_ms: int = 1000,
    taxonomy_codes: Collection[str] = TAXONOMY_CODES,
    gpd_url: str | None = None,
    gpd_api_key: str = DEFAULT_GPD_API_KEY,
    gpd_retry_delay: float = 1.0,
) -> web.Application:
    """The SEND twin.

    Vouchers are checked against the PDND sandbox at ``pdnd_url`` (its JWKS) or ``jwks``;
    their ``aud`` must be ``voucher_audience`` (default: this twin's own base URL, e.g.
    ``http://127.0.0.1:8106``) and, when ``purposes`` is given, their ``purposeId`` one of
    them. ``acceptance_delay``: seconds a request stays WAITING; ``step_delay``: seconds
    between two timeline steps (0: the whole workflow at the first look). ``gpd_url``: the
    base URL of GPD's debt positions service (the pagoPA sandbox's
    ``.../gpd/debt-positions-service/v1``), where an ASYNC notification's cost is written
    with ``gpd_api_key`` (``Ocp-Apim-Subscription-Key``), retried every
    ``gpd_retry_delay`` seconds while GPD fails.
    """
    if acceptance_delay < 0 or step_delay < 0 or page_size < 1 or stream_retry_after_ms < 0:
        raise ValueError("delays must not be negative and page_size must be positive")
    actual_clock = clock or SystemClock()
    checker = VoucherChecker(
        jwks if jwks is not None else pdnd_url.rstrip("/") + "/.well-known/jwks.json",
        issuer=voucher_issuer,
        audience=voucher_audience if voucher_audience is not None else (lambda base: base),
        purposes=purposes,
        clock=lambda: actual_clock.now().timestamp(),
    )
    state = SendSandbox(
        senders=senders if senders is not None else demo_senders(),
        vouchers=checker,
        clock=actual_clock,
        acceptance_delay=acceptance_delay,
        step_delay=step_delay,
        page_size=page_size,
        stream_retry_after_ms=stream_retry_after_ms,
        taxonomy_codes=taxonomy_codes,
        gpd_url=gpd_url,
        gpd_api_key=gpd_api_key,
        gpd_retry_delay=gpd_retry_delay,
    )
    app = platform_app("send", "SEND (Piattaforma Notifiche Digitali) B2B API for senders")
    app[SEND_STATE] = state
    app.middlewares.append(send_gateway)
    r = app.router
    r.add_post("/delivery/attachments/preload", preload, name="presignedUploadRequest")
    r.add_post("/delivery/v2.6/requests", send_notification, name="sendNewNotificationV26")
    r.add_get(
        "/delivery/v2.6/requests", request_status, name="retrieveNotificationRequestStatusV26"
    )
    r.add_get(
        "/delivery/v2.9/notifications/sent/{iun}",
        sent_notification,
        name="retrieveSentNotificationV29",
    )
    r.add_get(
        "/delivery/v2.3/price/{paTaxId}/{noticeCode}", price, name="retrieveNotificationPriceV23"
    )
    r.add_post("/delivery/events/payment/pagopa", payment_events, name="paymentEventsRequestPagoPa")
    r.add_post("/delivery/events/payment/f24", payment_events_f24, name="paymentEventsRequestF24")
    r.add_put(
        "/delivery-push/v2.0/notifications/cancel/{iun}", cancel, name="notificationCancellation"
    )
    r.add_get(
        "/delivery-push/v2.0/{iun}/legal-facts",
        legal_facts,
        name="retrieveNotificationLegalFactsV20",
    )
    r.add_get(
        "/delivery-push/{iun}/download/legal-facts/{legal_fact_id}",
        legal_fact_download,
        name="downloadLegalFactById",
    )
    r.add_post("/delivery-progresses/v2.9/streams", create_stream, name="createEventStreamV29")
    r.add_get("/delivery-progresses/v2.9/streams", list_streams, name="listEventStreamsV29")
    r.add_get(
        "/delivery-progresses/v2.9/streams/{streamId}", get_stream, name="retrieveEventStreamV29"
    )
    r.add_delete(
        "/delivery-progresses/v2.9/streams/{streamId}", delete_stream, name="removeEventStreamV29"
    )
    r.add_get(
        "/delivery-progresses/v2.9/streams/{streamId}/events",
        stream_events,
        name="consumeEventStreamV29",
    )
    r.add_put("/safe-storage/upload/{key}", upload, name="upload")
    r.add_post("/safe-storage/upload/{key}", upload, name="uploadPost")
    r.add_get("/safe-storage/legal-facts/{key}", download_legal_fact, name="downloadLegalFact")
    r.add_get("/__sandbox/notifications", list_notifications)
    r.add_post("/__sandbox/notifications/{iun}/view", view_notification)
    r.add_post("/__sandbox/notifications/{iun}/pay", pay_notification)
    r.add_post("/__sandbox/reset", reset)
    r.add_get("/__sandbox/gpd-fees", list_gpd_fees)
    r.add_get("/__sandbox/faults", list_faults)
    r.add_post("/__sandbox/faults", add_faults)
    r.add_delete("/__sandbox/faults", clear_faults)
    r.add_get("/__sandbox/calls", list_calls)

    async def on_cleanup(app: web.Application) -> None:
        state = app[SEND_STATE]
        state.closing.set()
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        if state.session is not None:
            await state.session.close()
        await state.vouchers.close()

    app.on_cleanup.append(on_cleanup)
    return app

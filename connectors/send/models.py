"""Pydantic models of SEND's B2B API for senders (``api-external-b2b-pa-bundle.yaml``).

Request models follow the spec's constraints (patterns, lengths, required fields, enums)
so that a request SEND would refuse with a 400 is refused here, before anything is sent.
Response models are lenient: unknown fields are kept out of the way (``extra="ignore"``)
and enum-like values that the spec keeps open (timeline categories, statuses) stay plain
strings, with the values this version of the spec lists in ``TIMELINE_CATEGORIES`` and
``NOTIFICATION_STATUSES``.

Names follow the spec's schemas: ``NewNotificationRequest`` is ``NewNotificationRequestV26``,
``SentNotification`` is ``FullSentNotificationV29``, ``TimelineElement`` is
``TimelineElementV28``, ``ProgressEvent`` is ``ProgressResponseElementV29``.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "IUN_PATTERN",
    "LAST_EVENT_ID_PATTERN",
    "LEGAL_FACT_CATEGORIES",
    "NOTIFICATION_STATUSES",
    "TIMELINE_CATEGORIES",
    "AttachmentDigests",
    "AttachmentRef",
    "CancellationStatus",
    "DigitalDomicile",
    "EventsPage",
    "F24Payment",
    "LegalFactDownload",
    "LegalFactId",
    "LegalFactListElement",
    "NewNotificationRequest",
    "NewNotificationResponse",
    "NotificationAttachment",
    "NotificationDocument",
    "NotificationPrice",
    "NotificationRequestStatus",
    "PagoPaPayment",
    "PaymentEventF24",
    "PaymentEventPagoPa",
    "PaymentItem",
    "PhysicalAddress",
    "PreLoadRequest",
    "PreLoadResponse",
    "Problem",
    "ProblemError",
    "ProgressEvent",
    "Recipient",
    "RefusalError",
    "SentNotification",
    "StatusHistoryElement",
    "StreamListElement",
    "StreamMetadata",
    "StreamRequest",
    "TimelineElement",
    "UploadedFile",
    "sha256_b64",
]

IUN_PATTERN = r"^[A-Z]{4}-[A-Z]{4}-[A-Z]{4}-[0-9]{6}-[A-Z]{1}-[0-9]{1}$"
LAST_EVENT_ID_PATTERN = r"^0\d{37}$"
_SHA256 = r"^[A-Za-z0-9+\/]{43}=|[A-Za-z0-9+\/]{44}$"
_TAX_ID = (
    r"^([A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z]{1}[0-9LMNPQRSTUV]{2}[A-Z]{1}[0-9LMNPQRSTUV]{3}[A-Z]{1})"
    r"|([0-9]{11})$"
)
_KEY = r"^(safestorage:\/\/)?[A-Za-z0-9._-]+$"
_PRINTABLE = r"^[ -~]*$"
_ONE_LINE = r"^.*$"

#: ``TimelineElementCategoryV28`` of the spec, in its order.
TIMELINE_CATEGORIES: tuple[str, ...] = (
    "SENDER_ACK_CREATION_REQUEST",
    "VALIDATE_NORMALIZE_ADDRESSES_REQUEST",
    "NORMALIZED_ADDRESS",
    "REQUEST_ACCEPTED",
    "SEND_COURTESY_MESSAGE",
    "GET_ADDRESS",
    "PUBLIC_REGISTRY_CALL",
    "PUBLIC_REGISTRY_RESPONSE",
    "SCHEDULE_ANALOG_WORKFLOW",
    "SCHEDULE_DIGITAL_WORKFLOW",
    "PREPARE_DIGITAL_DOMICILE",
    "SEND_DIGITAL_DOMICILE",
    "SEND_DIGITAL_PROGRESS",
    "SEND_DIGITAL_FEEDBACK",
    "REFINEMENT",
    "SCHEDULE_REFINEMENT",
    "DIGITAL_DELIVERY_CREATION_REQUEST",
    "DIGITAL_SUCCESS_WORKFLOW",
    "DIGITAL_FAILURE_WORKFLOW",
    "ANALOG_SUCCESS_WORKFLOW",
    "ANALOG_FAILURE_WORKFLOW",
    "PREPARE_SIMPLE_REGISTERED_LETTER",
    "SEND_SIMPLE_REGISTERED_LETTER",
    "SEND_SIMPLE_REGISTERED_LETTER_PROGRESS",
    "NOTIFICATION_VIEWED_CREATION_REQUEST",
    "NOTIFICATION_VIEWED",
    "PREPARE_ANALOG_DOMICILE",
    "SEND_ANALOG_DOMICILE",
    "SEND_ANALOG_PROGRESS",
    "SEND_ANALOG_FEEDBACK",
    "PAYMENT",
    "COMPLETELY_UNREACHABLE",
    "COMPLETELY_UNREACHABLE_CREATION_REQUEST",
    "REQUEST_REFUSED",
    "AAR_CREATION_REQUEST",
    "AAR_GENERATION",
    "NOT_HANDLED",
    "PROBABLE_SCHEDULING_ANALOG_DATE",
    "NOTIFICATION_CANCELLATION_REQUEST",
    "NOTIFICATION_CANCELLED",
    "PREPARE_ANALOG_DOMICILE_FAILURE",
    "NOTIFICATION_RADD_RETRIEVED",
    "ANALOG_WORKFLOW_RECIPIENT_DECEASED",
    "PUBLIC_REGISTRY_VALIDATION_CALL",
    "PUBLIC_REGISTRY_VALIDATION_RESPONSE",
    "NOTIFICATION_TIMELINE_REWORKED",
)

#: ``NotificationStatusV26``.
NOTIFICATION_STATUSES: tuple[str, ...] = (
    "IN_VALIDATION",
    "ACCEPTED",
    "REFUSED",
    "DELIVERING",
    "DELIVERED",
    "VIEWED",
    "EFFECTIVE_DATE",
    "PAID",
    "UNREACHABLE",
    "CANCELLED",
    "RETURNED_TO_SENDER",
)

#: ``LegalFactCategoryV20`` (documented values; the schema keeps it an open string).
LEGAL_FACT_CATEGORIES: tuple[str, ...] = (
    "SENDER_ACK",
    "DIGITAL_DELIVERY",
    "ANALOG_DELIVERY",
    "RECIPIENT_ACCESS",
    "PEC_RECEIPT",
    "ANALOG_FAILURE_DELIVERY",
    "NOTIFICATION_CANCELLED",
)


def sha256_b64(content: bytes) -> str:
    """The SHA-256 of ``content``, base64 (44 characters): what SEND calls ``sha256``."""
    return base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")


Sha256 = Annotated[str, StringConstraints(pattern=_SHA256, min_length=44, max_length=44)]
PaTaxId = Annotated[str, StringConstraints(pattern=r"^\d+$", min_length=11, max_length=11)]
NoticeCode = Annotated[str, StringConstraints(pattern=r"^\d+$", min_length=18, max_length=18)]
TaxId = Annotated[str, StringConstraints(pattern=_TAX_ID, min_length=11, max_length=16)]
Iun = Annotated[str, StringConstraints(pattern=IUN_PATTERN, min_length=25, max_length=25)]
Denomination = Annotated[str, StringConstraints(pattern=_ONE_LINE, min_length=1, max_length=88)]
FilterValue = Annotated[str, StringConstraints(pattern=r"^[A-Z_]+$", min_length=4, max_length=256)]


class _Request(BaseModel):
    """Request models: unknown fields are refused (SEND refuses them on recipients too)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON body, as SEND expects it (absent optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


# -- preload and upload -----------------------------------------------------------------


class PreLoadRequest(_Request):
    """One file to preload: ``preloadIdx`` is the caller's id for it in the answer."""

    preloadIdx: str | None = Field(
        default=None, pattern=r"^[a-zA-Z0-9._-]{1,512}$", min_length=1, max_length=512
    )
    contentType: Literal["application/pdf", "application/json"] = "application/pdf"
    sha256: Sha256


class PreLoadResponse(_Response):
    """Where and how to upload one file. ``secret`` goes in ``x-amz-meta-secret``."""

    preloadIdx: str | None = None
    secret: str = Field(repr=False)
    httpMethod: Literal["POST", "PUT"]
    url: str = Field(repr=False)
    key: str


class UploadedFile(BaseModel):
    """A file preloaded and uploaded: what a document or payment attachment refers to."""

    model_config = ConfigDict(frozen=True)

    key: str
    version_token: str
    sha256: str
    content_type: str = "application/pdf"


# -- the notification request -------------------------------------------------------------


class AttachmentDigests(_Request):
    sha256: Sha256


class AttachmentRef(_Request):
    key: str = Field(pattern=_KEY, max_length=512)
    versionToken: str = Field(pattern=_ONE_LINE, max_length=256)


class NotificationAttachment(_Request):
    """``NotificationPaymentAttachment``: a PDF by digest and reference."""

    digests: AttachmentDigests
    contentType: Literal["application/pdf"] = "application/pdf"
    ref: AttachmentRef

    @classmethod
    def of(cls, uploaded: UploadedFile) -> NotificationAttachment:
        return cls(
            digests=AttachmentDigests(sha256=uploaded.sha256),
            ref=AttachmentRef(key=uploaded.key, versionToken=uploaded.version_token),
        )


class NotificationDocument(NotificationAttachment):
    title: str | None = Field(default=None, pattern=_ONE_LINE, min_length=1, max_length=512)
    docIdx: str | None = Field(default=None, pattern=r"^\d+$", max_length=3)

    @classmethod
    def of(cls, uploaded: UploadedFile, title: str | None = None) -> NotificationDocument:
        return cls(
            digests=AttachmentDigests(sha256=uploaded.sha256),
            ref=AttachmentRef(key=uploaded.key, versionToken=uploaded.version_token),
            title=title,
        )


class MetadataAttachment(_Request):
    digests: AttachmentDigests
    contentType: Literal["application/json"] = "application/json"
    ref: AttachmentRef


class PagoPaPayment(_Request):
    """A pagoPA notice of this recipient; ``attachment`` is the notice PDF."""

    noticeCode: NoticeCode
    creditorTaxId: PaTaxId
    applyCost: bool
    attachment: NotificationAttachment | None = None


class F24Payment(_Request):
    title: str
    applyCost: bool
    metadataAttachment: MetadataAttachment


class PaymentItem(_Request):
    pagoPa: PagoPaPayment | None = None
    f24: F24Payment | None = None


class PhysicalAddress(_Request):
    address: str = Field(pattern=_ONE_LINE, min_length=2, max_length=1024)
    municipality: str = Field(pattern=_ONE_LINE, min_length=2, max_length=256)
    at: str | None = Field(default=None, pattern=_ONE_LINE, max_length=44)
    addressDetails: str | None = Field(default=None, pattern=_ONE_LINE, max_length=1024)
    zip: str | None = Field(default=None, pattern=r"^(\w|\ |\-)*$", max_length=15)
    municipalityDetails: str | None = Field(default=None, pattern=_ONE_LINE, max_length=256)
    province: str | None = Field(default=None, pattern=_ONE_LINE, max_length=256)
    foreignState: str | None = Field(default=None, pattern=_ONE_LINE, max_length=256)


class DigitalDomicile(_Request):
    type: Literal["PEC"] = "PEC"
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)


class Recipient(_Request):
    """``NotificationRecipientV24``."""

    recipientType: Literal["PF", "PG"]
    taxId: TaxId
    denomination: Denomination
    digitalDomicile: DigitalDomicile | None = None
    physicalAddress: PhysicalAddress | None = None
    payments: list[PaymentItem] | None = None

    def __repr__(self) -> str:  # tax ids and names are personal data
        return (
            f"Recipient(recipientType={self.recipientType!r}, payments={len(self.payments or [])})"
        )


class NewNotificationRequest(_Request):
    """``NewNotificationRequestV26``, the body of ``POST /delivery/v2.6/requests``."""

    paProtocolNumber: str = Field(pattern=_ONE_LINE, max_length=256)
    idempotenceToken: str | None = Field(default=None, pattern=_PRINTABLE, max_length=256)
    subject: str = Field(pattern=_ONE_LINE, max_length=134)
    abstract: str | None = Field(default=None, pattern=_ONE_LINE, max_length=1024)
    recipients: list[Recipient] = Field(min_length=1)
    documents: list[NotificationDocument] = Field(min_length=1)
    notificationFeePolicy: Literal["FLAT_RATE", "DELIVERY_MODE"]
    cancelledIun: Iun | None = None
    physicalCommunicationType: Literal["AR_REGISTERED_LETTER", "REGISTERED_LETTER_890"]
    senderDenomination: Denomination
    senderTaxId: PaTaxId
    group: str | None = Field(default=None, pattern=_PRINTABLE, max_length=1024)
    amount: int | None = None
    paymentExpirationDate: str | None = Field(
        default=None,
        pattern=r"^([0-9]{4})-(1[0-2]|0[1-9])-(3[01]|[12][0-9]|0[1-9])$",
        min_length=10,
        max_length=10,
    )
    taxonomyCode: str = Field(pattern=r"^([0-9]{6}[A-Z]{1})$", min_length=7, max_length=7)
    paFee: int | None = Field(default=None, ge=0, le=100)
    vat: int | None = Field(default=None, ge=0, le=100)
    pagoPaIntMode: Literal["NONE", "SYNC", "ASYNC"] | None = None
    physicalCommunicationPriority: int | None = Field(default=None, ge=0, le=100)
    additionalLanguages: list[str] | None = None


class NewNotificationResponse(_Response):
    notificationRequestId: str
    paProtocolNumber: str
    idempotenceToken: str | None = None


class RefusalError(_Response):
    """``NotificationRequestRefusedProblemError``: why a request was refused."""

    code: str
    element: str | None = None
    detail: str | None = None
    recIndex: int | None = None


class NotificationRequestStatus(_Response):
    """``NewNotificationRequestStatusResponseV26`` (only what the sender needs from it)."""

    notificationRequestId: str
    notificationRequestStatus: str  # WAITING, ACCEPTED, REFUSED
    iun: str | None = None
    paProtocolNumber: str | None = None
    idempotenceToken: str | None = None
    errors: list[RefusalError] = Field(default_factory=list)
    retryAfter: int | None = None

    @property
    def accepted(self) -> bool:
        return self.notificationRequestStatus == "ACCEPTED"

    @property
    def refused(self) -> bool:
        return self.notificationRequestStatus == "REFUSED"

    @property
    def waiting(self) -> bool:
        return not (self.accepted or self.refused)


# -- the sent notification ----------------------------------------------------------------


class LegalFactId(_Response):
    key: str
    category: str


class TimelineElement(_Response):
    """``TimelineElementV28``: ``details`` stays a dict (its shape depends on ``category``)."""

    elementId: str | None = None
    timestamp: str | None = None
    eventTimestamp: str | None = None
    notificationSentAt: str | None = None
    ingestionTimestamp: str | None = None
    legalFactsIds: list[LegalFactId] = Field(default_factory=list)
    category: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class StatusHistoryElement(_Response):
    status: str
    activeFrom: str
    relatedTimelineElements: list[str] = Field(default_factory=list)


class SentNotification(_Response):
    """``FullSentNotificationV29``: the request as accepted, plus status and timeline."""

    iun: str
    sentAt: str
    paProtocolNumber: str
    subject: str
    senderTaxId: str
    senderDenomination: str | None = None
    idempotenceToken: str | None = None
    taxonomyCode: str | None = None
    notificationFeePolicy: str | None = None
    physicalCommunicationType: str | None = None
    cancelledByIun: str | None = None
    documentsAvailable: bool | None = None
    recipients: list[dict[str, Any]] = Field(default_factory=list)
    documents: list[dict[str, Any]] = Field(default_factory=list)
    notificationStatus: str
    notificationStatusHistory: list[StatusHistoryElement] = Field(default_factory=list)
    timeline: list[TimelineElement] = Field(default_factory=list)

    def categories(self) -> list[str]:
        return [e.category for e in self.timeline if e.category]


class NotificationPrice(_Response):
    """``NotificationPriceResponseV23``: amounts in euro cents."""

    iun: str | None = None
    partialPrice: int | None = None
    totalPrice: int | None = None
    vat: int | None = None
    paFee: int | None = None
    sendFee: int | None = None
    analogCost: int | None = None
    refinementDate: str | None = None
    notificationViewDate: str | None = None


class PaymentEventPagoPa(_Request):
    """``PaymentEventPagoPa``: a pagoPA notice paid, told to SEND by its creditor."""

    noticeCode: NoticeCode
    creditorTaxId: PaTaxId
    paymentDate: str = Field(
        pattern=r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
        r"(\.[0-9]+)?(Z|([+\-][0-9]{2}):([0-9]{2}))$"
    )
    amount: int = Field(ge=-(2**31), le=2**31 - 1, description="euro cents")


class PaymentEventF24(_Request):
    """``PaymentEventF24``: an F24 of a notification paid (at a bank, a post office, home
    banking), told to SEND by its sender: the IUN, the paying recipient and the amount."""

    iun: Iun
    paymentDate: datetime = Field(description="date and time, with its offset")
    recipientTaxId: TaxId
    recipientType: Literal["PF", "PG"]
    amount: int = Field(ge=-(2**31), le=2**31 - 1, description="euro cents")

    @field_validator("paymentDate")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("paymentDate needs its UTC offset")
        return value

    def wire(self) -> dict[str, Any]:
        body = super().wire()
        body["paymentDate"] = (
            self.paymentDate.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
        return body


class LegalFactListElement(_Response):
    iun: str
    taxId: str | None = None
    legalFactsId: LegalFactId


class LegalFactDownload(_Response):
    """``LegalFactDownloadMetadataResponse``: ``url`` is absent while SEND is still making
    the file (then ``retryAfter`` says in how many seconds to ask again)."""

    filename: str
    contentLength: float
    url: str | None = Field(default=None, repr=False)
    retryAfter: float | None = None


class StatusDetail(_Response):
    code: str
    level: str | None = None
    detail: str | None = None


class CancellationStatus(_Response):
    """``RequestStatus``, the answer to a cancellation (``NOTIFICATION_CANCELLATION_ACCEPTED``
    or ``NOTIFICATION_ALREADY_CANCELLED`` in ``details``)."""

    status: str
    details: list[StatusDetail] = Field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.details]


# -- progress streams ---------------------------------------------------------------------


class StreamRequest(_Request):
    """``StreamCreationRequestV29``: ``filterValues`` are timeline categories (``TIMELINE``)
    or notification statuses (``STATUS``); empty means every event."""

    title: str = Field(pattern=_ONE_LINE, max_length=256)
    eventType: Literal["STATUS", "TIMELINE"]
    groups: list[str] = Field(default_factory=list)
    filterValues: list[FilterValue] | None = None
    replacedStreamId: str | None = None
    waitForAccepted: bool | None = None


class StreamMetadata(_Response):
    streamId: str
    title: str
    eventType: str
    groups: list[str] = Field(default_factory=list)
    filterValues: list[str] | None = None
    activationDate: str
    disabledDate: str | None = None
    version: str | None = None


class StreamListElement(_Response):
    streamId: str
    title: str


class ProgressEvent(_Response):
    """``ProgressResponseElementV29``: one event of a stream."""

    eventId: str
    notificationRequestId: str | None = None
    iun: str | None = None
    newStatus: str | None = None
    element: TimelineElement


class EventsPage(BaseModel):
    """One read of a stream: its events in order and SEND's ``retry-after`` (milliseconds:
    0 when more events are waiting, else how long to wait before the next read)."""

    events: list[ProgressEvent]
    retry_after_ms: int | None = None

    @property
    def last_event_id(self) -> str | None:
        return self.events[-1].eventId if self.events else None


# -- problems -----------------------------------------------------------------------------


class ProblemError(_Response):
    code: str
    element: str | None = None
    detail: str | None = None


class Problem(_Response):
    """SEND's problem body (``Problem``): ``errors`` names each field or rule."""

    status: int | None = None
    title: str | None = None
    detail: str | None = None
    type: str | None = None
    traceId: str | None = None
    timestamp: str | None = None
    errors: list[ProblemError] = Field(default_factory=list)

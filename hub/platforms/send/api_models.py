"""The SEND API's request and response models: the handler validates bodies with the
request model, and the OpenAPI document is generated from all of them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sportello.api.models import absent
from sportello.connectors.send.models import Recipient

#: one line of text without control characters (PostgreSQL stores no NUL: a 500 before)
_LINE = r"^[^\x00-\x1f\x7f]*$"


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=512, pattern=_LINE)
    content_base64: str = Field(min_length=4, description="the PDF, base64")


class F24In(BaseModel):
    """An F24 payment of a recipient: SEND builds the form from ``metadata`` (SEND's
    ``F24Metadata``: one and only one of ``f24Standard``, ``f24Simplified``, ``f24Excise``,
    ``f24Elid``), which the hub preloads as a JSON attachment."""

    model_config = ConfigDict(extra="forbid")

    recipient: int = Field(default=0, ge=0, le=14, description="index in recipients")
    title: str = Field(min_length=1, max_length=512, pattern=_LINE, description="the PDF's title")
    apply_cost: bool = Field(default=False, description="SEND's cost added to the F24")
    metadata: dict[str, Any] = Field(description="SEND's F24Metadata, at most 256 KiB as JSON")


class PositionIn(BaseModel):
    """A pagoPA debt position the hub creates for the notification (the pagoPA platform, in
    the transaction that queues it): one option of ``amount`` cents due ``due_date`` paid to
    ``iban``; its notice goes in the recipient's payments with the notice PDF attached. Its
    reference is the ``pa_protocol_number``."""

    model_config = ConfigDict(extra="forbid")

    recipient: int = Field(default=0, ge=0, le=14, description="index in recipients")
    amount: int = Field(gt=0, le=99_999_999_999, description="euro cents")
    due_date: date
    description: str = Field(min_length=1, max_length=140, pattern=_LINE)
    iban: str = Field(pattern=r"^IT[0-9]{2}[A-Z][0-9]{10}[0-9A-Z]{12}$")
    transfer_category: str = Field(
        pattern=r"^(?:[6-9]/)?[0-9]{7}(?:IM|TS|SP|SA|AP)(?:/\S*)?$",
        description="the pagoPA taxonomy code of the payment, e.g. 9/0101108TS/",
    )
    apply_cost: bool = Field(default=False, description="SEND's cost added when paid")


class NotificationIn(BaseModel):
    """One notification; the recipients in SEND's own shape (``NotificationRecipientV24``)."""

    model_config = ConfigDict(extra="forbid")

    pa_protocol_number: str = Field(
        min_length=1, max_length=256, pattern=_LINE, description="unique per tenant"
    )
    subject: str = Field(min_length=1, max_length=134, pattern=_LINE)
    abstract: str | None = Field(default=None, max_length=1024, pattern=_LINE)
    taxonomy_code: str = Field(pattern=r"^[0-9]{6}[A-Z]$", description="e.g. 010101P (fines)")
    notification_fee_policy: Literal["FLAT_RATE", "DELIVERY_MODE"] = "DELIVERY_MODE"
    physical_communication_type: Literal["AR_REGISTERED_LETTER", "REGISTERED_LETTER_890"] = (
        "AR_REGISTERED_LETTER"
    )
    pa_fee: int | None = Field(default=None, ge=0, le=100, description="euro cents")
    vat: int | None = Field(default=None, ge=0, le=100)
    recipients: list[Recipient] = Field(min_length=1, max_length=15)
    documents: list[DocumentIn] = Field(min_length=1, max_length=15)
    position: PositionIn | None = Field(
        default=None, description="a pagoPA position the hub creates, its notice attached"
    )
    f24: list[F24In] = Field(
        default_factory=list,
        max_length=15,
        description="F24 payments, added to their recipients' payments",
    )


class NotificationQueued(BaseModel):
    id: int
    status: str
    pa_protocol_number: str
    idempotence_token: str


class NotificationSummary(BaseModel):
    id: int
    pa_protocol_number: str
    subject: str
    status: str
    iun: str | None = None
    send_status: str | None = None
    created_at: datetime
    updated_at: datetime


class TimelineEvent(BaseModel):
    event_id: str
    category: str | None = None
    new_status: str | None = None
    timestamp: str | None = None
    received_at: datetime


class NotificationDetail(NotificationSummary):
    notification_request_id: str | None = None
    idempotence_token: str
    accepted_at: datetime | None = None
    errors: list[Any] = Field(default_factory=list)
    timeline: list[TimelineEvent]
    recipients: list[dict[str, Any]] = absent(
        "tax id and name of each recipient: only for keys with personal_data (audited)"
    )


class CancelQueued(BaseModel):
    id: int
    status: str


class DomicileAddress(BaseModel):
    address: str = Field(description="the PEC address")
    profession: str | None = Field(default=None, description="for professionals only")
    ends_on: str | None = Field(default=None, description="INAD's dateEndValidity, if any")
    end_reason: str | None = Field(default=None, description="INAD's motivation, if any")


class Domicile(BaseModel):
    """INAD's answer for one fiscal code: now (``found`` false: INAD has no domicile), or
    with ``date`` whether ``address`` was the domicile that day (``was_domicile``)."""

    fiscal_code: str
    found: bool
    since: str | None = Field(default=None, description="when INAD answered")
    addresses: list[DomicileAddress]
    date: str | None = absent("the day asked (with ?date=, INAD's verify)")
    address: str | None = absent("the address verified (with ?date=)")
    was_domicile: bool | None = absent("INAD's verify outcome (with ?date=)")

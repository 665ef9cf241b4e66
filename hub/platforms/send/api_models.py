"""The SEND API's request and response models: the handler validates bodies with the
request model, and the OpenAPI document is generated from all of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sportello.api.models import absent
from sportello.connectors.send.models import Recipient


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=512)
    content_base64: str = Field(min_length=4, description="the PDF, base64")


class NotificationIn(BaseModel):
    """One notification; the recipients in SEND's own shape (``NotificationRecipientV24``)."""

    model_config = ConfigDict(extra="forbid")

    pa_protocol_number: str = Field(
        min_length=1, max_length=256, pattern=r"^[^\r\n]*$", description="unique per tenant"
    )
    subject: str = Field(min_length=1, max_length=134, pattern=r"^[^\r\n]*$")
    abstract: str | None = Field(default=None, max_length=1024, pattern=r"^[^\r\n]*$")
    taxonomy_code: str = Field(pattern=r"^[0-9]{6}[A-Z]$", description="e.g. 010101P (fines)")
    notification_fee_policy: Literal["FLAT_RATE", "DELIVERY_MODE"] = "DELIVERY_MODE"
    physical_communication_type: Literal["AR_REGISTERED_LETTER", "REGISTERED_LETTER_890"] = (
        "AR_REGISTERED_LETTER"
    )
    pa_fee: int | None = Field(default=None, ge=0, le=100, description="euro cents")
    vat: int | None = Field(default=None, ge=0, le=100)
    recipients: list[Recipient] = Field(min_length=1, max_length=15)
    documents: list[DocumentIn] = Field(min_length=1, max_length=15)


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

"""The App IO API's request and response models: the handlers validate bodies with the
request models, and the OpenAPI document is generated from all of them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sportello.api.models import absent

FeatureLevel = Literal["STANDARD", "ADVANCED"]


class CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: str = Field(min_length=1, description="an App IO service of the tenant")
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(
        min_length=1, description="Jinja2 template, 10-120 characters once rendered"
    )
    markdown: str = Field(
        min_length=1, description="Jinja2 template, 80-10000 characters once rendered"
    )
    csv: str = Field(
        min_length=1,
        description="header + rows: fiscal_code;expedition_date;due_date;notice_number;"
        "amount;<template fields>. Every row is validated before anything is queued.",
    )
    feature_level_type: FeatureLevel = "STANDARD"


class MessageRequest(BaseModel):
    """One App IO message (literal texts, not templates)."""

    model_config = ConfigDict(extra="forbid")

    service_id: str = Field(min_length=1, description="an App IO service of the tenant")
    fiscal_code: str = Field(pattern=r"^[A-Za-z0-9]{16}$")
    subject: str = Field(min_length=1)
    markdown: str = Field(min_length=1)
    due_date: str = Field(default="", description="YYYY-MM-DD or an ISO date-time")
    notice_number: str = Field(default="", description="pagoPA NAV (18 digits)")
    amount: str = Field(default="", description="euro, e.g. 123,45 (omit for a hub position)")
    expedition_date: str = Field(default="", description="when to send (default: now)")
    feature_level_type: FeatureLevel = "STANDARD"


class CampaignCreated(BaseModel):
    id: int
    messages: int


class CampaignSummary(BaseModel):
    id: int
    service_id: str
    name: str
    rows_total: int
    created_by: str
    created_at: datetime


class CampaignMessage(BaseModel):
    id: int = absent()
    row_number: int | None = None
    fiscal_code: str = absent()
    status: str = absent()
    io_message_id: str | None = None
    error: str | None = None


class CampaignReport(BaseModel):
    id: int
    tenant_id: str = absent()
    service_id: str
    name: str
    rows_total: int
    created_at: datetime = absent()
    counts: dict[str, int]
    messages: list[CampaignMessage] = absent(
        "only for keys with the personal_data scope (the read is audited)"
    )


class MessageQueued(BaseModel):
    id: int
    status: str
    payment_data: bool


class MessageStatus(BaseModel):
    id: int
    service_id: str
    campaign_id: int | None = None
    status: str
    io_message_id: str | None = None
    error: str | None = None
    attempts: int
    expedition_at: datetime = absent()
    created_at: datetime
    updated_at: datetime = absent()
    sent_at: datetime | None = None
    fiscal_code: str = absent("only for keys with personal_data (the read is audited)")

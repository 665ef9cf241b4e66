"""The SUAP API's response models, for the generated OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from sportello.api.models import absent


class Practice(BaseModel):
    id: str
    applicant_fiscal_code: str
    applicant_name: str | None = None
    title: str
    kind: str
    status: str
    submitted_at: datetime
    updated_at: datetime = absent()
    protocol_number: str | None = None
    deadline: date | None = None


class PracticeEvent(BaseModel):
    practice_id: str
    status: str
    at: datetime
    note: str | None = None


class PracticeDocument(BaseModel):
    id: str
    name: str
    media_type: str
    size: int = Field(ge=0)


class PracticeDetail(Practice):
    timeline: list[PracticeEvent]
    documents: list[PracticeDocument]

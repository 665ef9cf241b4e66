"""The requests API's bodies and answers, for the generated OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MilestoneRequest(_Body):
    """A milestone the back office sets: the new status and what the citizen reads."""

    status: Literal["in_progress", "completed", "rejected"]
    label: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="what the citizen reads in the personal area (Italian)"
    )
    note: Annotated[str, Field(max_length=500)] | None = None


class Milestone(BaseModel):
    status: str
    label: str
    note: str | None = None
    at: str


class Request(BaseModel):
    ref: str
    service: str
    status: Literal["draft", "submitted", "in_progress", "completed", "rejected"]
    protocol_number: str | None = None
    submitted_at: str | None = None
    deadline: str | None = Field(default=None, description="YYYY-MM-DD (Europe/Rome)")
    stamp: Literal["due", "paid", "exempt"] | None = None
    notice_number: str | None = None
    practice_ref: str | None = None
    fiscal_code: str
    milestones: list[Milestone]
    data: dict[str, str] | None = Field(default=None, description="the form's values")


class Requests(BaseModel):
    items: list[Request]
    next_after: str | None = Field(default=None, description="pass as ?after= for more")


class Rating(BaseModel):
    service: str
    score: Annotated[int, Field(ge=1, le=5)]
    follow_up: str | None = None
    follow_up_label: str | None = None
    comment: str | None = None
    created_at: str


class Ratings(BaseModel):
    items: list[Rating]
    count: int
    average: float | None = None

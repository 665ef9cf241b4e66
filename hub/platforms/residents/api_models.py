"""The resident look-up API's response models, for the generated OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sportello.api.models import absent

Source = Literal["anpr", "registry"]


class Sourced(BaseModel):
    value: Any
    source: Source


class HouseholdMember(BaseModel):
    fiscal_code: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    relationship: str | None = None
    relationship_code: str | None = None
    source: Source = absent()


class SourceFailure(BaseModel):
    platform: str = absent("PDND, ANPR or the comune's registry")
    error: str = absent()
    status: int | None = Field(default=None, description="the platform's HTTP status")
    platform_id: str | None = Field(
        default=None,
        description="the platform's own id (PDND correlationId, GovWay transaction id)",
    )


class Resident(BaseModel):
    fiscal_code: str
    found: bool
    fields: dict[str, Sourced | None] = Field(
        description="each field with the source it came from (ANPR wins over the comune's "
        "registry; the registry fills what ANPR does not give)"
    )
    household: list[HouseholdMember] | None = None
    sources: list[str]
    warnings: list[str]
    failures: list[SourceFailure] = absent(
        "platforms that failed while another source found the person"
    )
    request_id: str = Field(description="the support id, also in the logs")

"""The booking API's bodies and answers, for the generated OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: no control characters (PostgreSQL stores no NUL: a 500 before; names go in e-mails)
_PLAIN = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, Field(min_length=1, max_length=100, pattern=_PLAIN)]
FiscalCode = Annotated[str, Field(pattern=r"^[A-Z0-9]{16}$")]
Email = Annotated[
    str,
    Field(
        pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$", max_length=254
    ),
]
Verify = Annotated[str, Field(min_length=3, max_length=254, pattern=_PLAIN)]
#: free text (the reason): line breaks and tabs, no other control character
Reason = Annotated[
    str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BookingRequest(_Body):
    office_id: Annotated[str, Field(max_length=40, pattern=_PLAIN)]
    service_id: Annotated[str, Field(max_length=40, pattern=_PLAIN)]
    start: AwareDatetime
    name: Text
    surname: Text
    email: Email
    reason: Reason
    fiscal_code: FiscalCode | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ]{6,20}$")] | None = None
    logged_in: bool = Field(
        default=False,
        description="the citizen booked after SPID/CIE login (then fiscal_code is required)",
    )


class VerifyRequest(_Body):
    verify: Verify = Field(description="the fiscal code or the e-mail given at booking")


class RescheduleRequest(VerifyRequest):
    start: AwareDatetime


class Service(BaseModel):
    id: str
    name: str
    minutes: int
    capacity: int


class Office(BaseModel):
    id: str
    name: str
    address: str
    services: list[Service]
    hours: dict[str, list[str]]
    holidays: list[str]


class Offices(BaseModel):
    items: list[Office]
    horizon_days: int
    timezone: str


class Slot(BaseModel):
    start: datetime
    end: datetime
    free: int
    capacity: int


class Slots(BaseModel):
    items: list[Slot]


class Booking(BaseModel):
    code: str
    office_id: str
    service_id: str
    start: datetime
    end: datetime
    status: str
    name: str
    surname: str
    fiscal_code: str | None
    email: str
    phone: str | None
    reason: str
    logged_in: bool


class DayList(BaseModel):
    office_id: str
    date: str
    items: list[Booking]

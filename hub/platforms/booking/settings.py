"""The booking platform's part of the configuration: ``[tenants.booking]``.

Offices, the services each offers (slot length and seats per slot), opening hours per
weekday in Europe/Rome, holidays, how far ahead citizens may book, and the reminder.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sportello.config import ConfigModel as _Model
from sportello.config import SecretRef, TenantConfig

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ADDRESS = r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$"
_INTERVAL = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class BookingService(_Model):
    """A service an office offers: its slot length and how many citizens each slot takes."""

    id: Slug
    name: Annotated[str, Field(min_length=1, max_length=120)]
    minutes: Annotated[int, Field(ge=5, le=480)] = Field(description="slot length")
    capacity: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="citizens per slot (desks serving the service at once)"
    )


class BookingOffice(_Model):
    """An office (sportello) with its services and its opening hours (Europe/Rome)."""

    id: Slug
    name: Annotated[str, Field(min_length=1, max_length=120)]
    address: Annotated[str, Field(max_length=200)] = ""
    services: Annotated[list[BookingService], Field(min_length=1)]
    hours: dict[Weekday, list[str]] = Field(
        description='opening hours per weekday, e.g. {mon = ["09:00-12:30", "14:30-17:00"]}'
    )
    holidays: list[date] = Field(default_factory=list, description="this office's closed days")

    @field_validator("hours")
    @classmethod
    def _intervals(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, intervals in value.items():
            for interval in intervals:
                m = _INTERVAL.match(interval)
                if m is None:
                    raise ValueError(f"{day}: {interval!r} is not HH:MM-HH:MM")
                start = time(int(m[1]), int(m[2]))
                end = time(int(m[3]), int(m[4]))
                if start >= end:
                    raise ValueError(f"{day}: {interval!r} ends before it starts")
        return value

    @model_validator(mode="after")
    def _unique_services(self) -> BookingOffice:
        ids = [s.id for s in self.services]
        if len(ids) != len(set(ids)):
            raise ValueError(f"office {self.id!r}: service ids must be unique")
        return self

    def service(self, service_id: str) -> BookingService | None:
        return next((s for s in self.services if s.id == service_id), None)

    def intervals(self, weekday: int) -> list[tuple[time, time]]:
        """The opening intervals of a weekday (0 Monday), as local times."""
        out = []
        for interval in self.hours.get(WEEKDAYS[weekday], []):
            m = _INTERVAL.match(interval)
            assert m is not None
            out.append((time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))))
        return sorted(out)


class BookingEmail(_Model):
    """The comune's SMTP server for the booking's e-mails (``[tenants.booking.email]``)."""

    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = Field(default=True, description="upgrade the connection (submission, 587)")
    implicit_tls: bool = Field(default=False, description="TLS from the first byte (port 465)")
    username: str | None = None
    password: SecretRef | None = Field(default=None, description="by reference (env or file)")
    ca_file: str | None = Field(default=None, description="trust this CA (PEM) for TLS")
    from_address: Annotated[str, Field(pattern=_ADDRESS, max_length=254)]
    from_name: Annotated[str, Field(max_length=100)] | None = None
    reply_to: Annotated[str, Field(pattern=_ADDRESS, max_length=254)] | None = None
    timeout: Annotated[float, Field(gt=0, le=300)] = 30.0
    confirmation: bool = Field(default=True, description="e-mail the confirmation at booking")
    reminder: bool = Field(default=True, description="e-mail the reminder before the day")

    @model_validator(mode="after")
    def _credentials(self) -> BookingEmail:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.starttls and self.implicit_tls:
            raise ValueError("starttls and implicit_tls exclude each other")
        return self


class BookingTenantSettings(_Model):
    """Appointments at the comune's offices (docs/booking.md)."""

    offices: list[BookingOffice] = Field(
        default_factory=list,
        description="the offices (none when [tenants.adapters.booking] names the comune's "
        "agenda, which then owns offices, services and hours)",
    )
    holidays: list[date] = Field(default_factory=list, description="days every office is closed")
    horizon_days: Annotated[int, Field(ge=1, le=366)] = Field(
        default=60, description="how many days ahead a citizen may book"
    )
    reminder_hours: Annotated[int, Field(ge=1, le=336)] = Field(
        default=24, description="the reminder goes this many hours before the appointment"
    )
    io_service: str | None = Field(
        default=None, description="App IO service for reminders (none: no App IO reminder)"
    )
    email: BookingEmail | None = Field(
        default=None, description="SMTP for e-mail confirmations and reminders (none: no e-mail)"
    )
    verify_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        default=5,
        description="wrong second factors (fiscal code or e-mail) a booking code takes "
        "before it is locked",
    )
    verify_lock_minutes: Annotated[int, Field(ge=1, le=10080)] = Field(
        default=15, description="how long a code stays locked after too many wrong attempts"
    )

    @model_validator(mode="after")
    def _unique_offices(self) -> BookingTenantSettings:
        ids = [o.id for o in self.offices]
        if len(ids) != len(set(ids)):
            raise ValueError("office ids must be unique")
        return self

    def office(self, office_id: str) -> BookingOffice | None:
        return next((o for o in self.offices if o.id == office_id), None)


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"booking": BookingTenantSettings}


def booking_settings(tenant: TenantConfig) -> BookingTenantSettings | None:
    """The tenant's ``[tenants.booking]``, if configured."""
    value = getattr(tenant, "booking", None)
    return value if isinstance(value, BookingTenantSettings) else None

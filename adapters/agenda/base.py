"""What an agenda adapter is: a class, built per tenant from its configured options
(``[tenants.adapters.booking]``), that books appointments in the comune's existing agenda
software instead of the hub's own tables.

The booking platform declares this kind (``booking``) through ``hub_adapter_kinds``; the
classes come from ``hub_adapters`` (``{"booking": {name: class}}``). The hub keeps its
own record of each appointment (the citizen's code, second factor, reminders, e-mails) and
asks the agenda for what the agenda owns: offices and services, free seats, the booking
itself, moves and cancellations, and the desk's list of a day (which may hold appointments
booked elsewhere, at the desk or by phone).

Times are aware datetimes (the hub sends and expects UTC); days are local days in
Europe/Rome. An adapter raises :class:`SlotTaken` when no seat is left (the hub answers
409), :class:`NotBookable` when the office, service or time is not one the agenda offers
(422), and :class:`AgendaUnavailable` when the agenda cannot be reached (503); anything
else is a bug.

The hub's own tables implement the same contract (``sportello.platforms.booking.service.
HubAgenda``): that is the reference the adapter kit's checks (``sportello.adapter_kit.
agenda_contract``) hold every adapter to.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

KIND = "booking"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgendaService(_Frozen):
    """A service an office offers: slot length and citizens per slot."""

    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    minutes: int = Field(ge=5, le=480)
    capacity: int = Field(ge=1, le=100)


class AgendaOffice(_Frozen):
    """An office with the services it offers."""

    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    address: str = ""
    services: tuple[AgendaService, ...]

    def service(self, service_id: str) -> AgendaService | None:
        return next((s for s in self.services if s.id == service_id), None)


class AgendaSlot(_Frozen):
    """A slot with at least one free seat."""

    start: AwareDatetime
    end: AwareDatetime
    free: int = Field(ge=1)
    capacity: int = Field(ge=1)


class AgendaHolder(_Frozen):
    """Who the seat is for, as the agenda shows it at the desk (no fiscal code: the hub
    keeps the second factor; the agenda gets the name and the hub's booking code)."""

    name: str
    surname: str
    reference: str = Field(description="the hub's booking code, shown at the desk")
    reason: str = ""


class AgendaBooking(_Frozen):
    """A seat the agenda holds; ``id`` is the agenda's own, kept by the hub."""

    id: str = Field(min_length=1, max_length=64)
    office_id: str
    service_id: str
    start: AwareDatetime
    end: AwareDatetime


class AgendaEntry(_Frozen):
    """One line of the desk's day: booked through the hub (``reference`` is its code) or
    elsewhere (``reference`` None)."""

    id: str
    office_id: str
    service_id: str
    start: AwareDatetime
    end: AwareDatetime
    name: str
    surname: str
    reference: str | None = None


class AgendaError(Exception):
    """Base of what an agenda adapter raises on purpose."""


class SlotTaken(AgendaError):
    """Every seat of the slot is taken."""


class NotBookable(AgendaError):
    """The office, service or time is not one the agenda offers (closed, off the grid,
    unknown): the message says which field."""


class AgendaUnavailable(AgendaError):
    """The agenda cannot be reached or answered badly: try again later."""


class UnknownBooking(AgendaError):
    """The agenda has no booking with this id (cancelled or moved elsewhere)."""


@runtime_checkable
class AgendaAdapter(Protocol):
    """The ``booking`` adapter kind: a class built as ``cls(options, base_dir=<folder of the
    configuration>)``, with these async methods.

    ``book`` and ``move`` must never put more than a service's capacity into a slot, even
    when called concurrently (the kit books the last seat from many tasks at once)."""

    async def offices(self) -> list[AgendaOffice]:
        """Every office and the services it offers."""
        ...

    async def free_slots(
        self, office_id: str, service_id: str, first: date, days: int
    ) -> list[AgendaSlot]:
        """The slots with a free seat on local days ``first`` .. ``first + days - 1``, by
        start (past slots included: the hub filters by its clock)."""
        ...

    async def book(
        self, office_id: str, service_id: str, start: datetime, holder: AgendaHolder
    ) -> AgendaBooking:
        """Take a seat of the slot starting at ``start``; :class:`SlotTaken`,
        :class:`NotBookable`."""
        ...

    async def move(self, booking_id: str, start: datetime) -> AgendaBooking:
        """Move a booking to another slot of its office and service (atomically: on
        :class:`SlotTaken` the old seat is kept); :class:`UnknownBooking`."""
        ...

    async def cancel(self, booking_id: str) -> None:
        """Free the booking's seat; cancelling twice is not an error."""
        ...

    async def day(self, office_id: str, day: date) -> list[AgendaEntry]:
        """The office's booked seats of a local day, by start."""
        ...

    async def close(self) -> None: ...


__all__ = [
    "KIND",
    "AgendaAdapter",
    "AgendaBooking",
    "AgendaEntry",
    "AgendaError",
    "AgendaHolder",
    "AgendaOffice",
    "AgendaService",
    "AgendaSlot",
    "AgendaUnavailable",
    "NotBookable",
    "SlotTaken",
    "UnknownBooking",
]

"""The agenda adapter contract (the ``booking`` adapter kind) as executable checks, over a
canonical fictitious agenda.

An adapter author provides ``factory(agenda, workdir) -> adapter``: it stores the agenda
(offices, services, opening hours and closed days, in the shape of ``[tenants.booking]``:
see :func:`canonical_agenda`) in the adapter's own kind of storage under ``workdir`` and
returns an adapter over it, with no appointment booked. The days are in 2030 (an adapter
must not refuse them as too far ahead); the checks book, move and cancel appointments and
read them back, and book the last seat of a slot from many tasks at once. The hub's own
tables (``sportello.platforms.booking.service.HubAgenda``) pass the same checks
(tests/booking/test_booking_agenda.py).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ..adapters.agenda.base import (
    KIND,
    AgendaBooking,
    AgendaHolder,
    AgendaOffice,
    AgendaService,
    NotBookable,
    SlotTaken,
    UnknownBooking,
)
from ..plugins import PluginConflict, Plugins
from .contract import ContractRunner, _fail, plugins_with

AgendaFactory = Callable[[dict[str, Any], Path], Awaitable[Any]]
"""``async def factory(agenda, workdir) -> adapter``."""

ROME = ZoneInfo("Europe/Rome")
MONDAY = date(2030, 3, 18)  # an ordinary week: Monday 18 to Sunday 24 March 2030
DST_SUNDAY = date(2030, 3, 31)  # clocks go from 02:00 to 03:00 in Rome
HOLIDAY = date(2030, 3, 19)  # every office closed
OFFICE_CLOSED = date(2030, 3, 20)  # the registry office only


def canonical_agenda() -> dict[str, Any]:
    """Two offices: the registry office (identity cards, two seats per 30-minute slot;
    changes of residence, one seat per 20 minutes), open weekday mornings and Tuesday and
    Thursday afternoons, plus a night desk on Sundays that crosses the DST change; the
    technical office, open Saturday mornings. A fresh copy on each call."""
    weekdays = {d: ["09:00-12:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    return copy.deepcopy(
        {
            "offices": [
                {
                    "id": "anagrafe",
                    "name": "Ufficio Anagrafe",
                    "address": "Piazza del Municipio 1, piano terra",
                    "services": [
                        {"id": "cie", "name": "Carta d'identità", "minutes": 30, "capacity": 2},
                        {
                            "id": "residenza",
                            "name": "Cambio di residenza",
                            "minutes": 20,
                            "capacity": 1,
                        },
                    ],
                    "hours": {
                        **weekdays,
                        "tue": ["09:00-12:00", "14:30-16:00"],
                        "thu": ["09:00-12:00", "14:30-16:00"],
                        "sun": ["01:00-04:00"],
                    },
                    "holidays": [OFFICE_CLOSED.isoformat()],
                },
                {
                    "id": "tecnico",
                    "name": "Ufficio Tecnico",
                    "address": "Via Roma 3",
                    "services": [
                        {"id": "pratiche", "name": "Edilizia", "minutes": 60, "capacity": 1}
                    ],
                    "hours": {"sat": ["09:00-12:00"]},
                    "holidays": [],
                },
            ],
            "holidays": [HOLIDAY.isoformat()],
        }
    )


def _rome(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=ROME)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _holder(n: int) -> AgendaHolder:
    return AgendaHolder(
        name="Nicolò", surname=f"D'Angelo {n}", reference=f"KITREF{n:06d}", reason="Rinnovo"
    )


def _same(what: str, got: Any, expected: Any) -> None:
    if got != expected:
        _fail(f"{what} returned {got!r}, expected {expected!r}")


class AgendaContract(ContractRunner):
    """What every agenda adapter must do, as one async method per check."""

    KIND = "agenda"
    HOOK = "hub_adapters"
    CHECKS: ClassVar[tuple[str, ...]] = (
        "offices_and_services",
        "free_slots_follow_hours_and_closed_days",
        "slots_skip_the_hour_that_does_not_exist",
        "book_takes_a_seat_and_day_lists_it",
        "capacity_is_never_exceeded_by_simultaneous_bookings",
        "refuses_what_it_does_not_offer",
        "move_and_cancel_free_the_old_seat",
        "close_is_idempotent",
        "registered_through_the_hook",
    )

    def __init__(
        self,
        factory: AgendaFactory,
        *,
        agenda: dict[str, Any] | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.factory = factory
        self.agenda = canonical_agenda() if agenda is None else agenda
        self.plugins = plugins

    def factory_input(self) -> dict[str, Any]:
        return copy.deepcopy(self.agenda)

    async def _free(self, adapter: Any, office: str, service: str, day: date) -> dict[Any, int]:
        return {_utc(s.start): s.free for s in await adapter.free_slots(office, service, day, 1)}

    # --- the checks ---------------------------------------------------------------------------
    async def offices_and_services(self, adapter: Any, workdir: Path) -> None:
        """``offices()`` gives every office with its services (any order)."""
        want = sorted(
            (
                AgendaOffice(
                    id=o["id"],
                    name=o["name"],
                    address=o["address"],
                    services=tuple(sorted((AgendaService(**s) for s in o["services"]), key=str)),
                )
                for o in self.agenda["offices"]
            ),
            key=lambda o: o.id,
        )
        got = await adapter.offices()
        if not all(isinstance(o, AgendaOffice) for o in got):
            _fail("offices() must return AgendaOffice objects")
        got = sorted(
            (o.model_copy(update={"services": tuple(sorted(o.services, key=str))}) for o in got),
            key=lambda o: o.id,
        )
        _same("offices()", got, want)

    async def free_slots_follow_hours_and_closed_days(self, adapter: Any, workdir: Path) -> None:
        """Slots on the opening hours in Europe/Rome, by start, every seat free; none on a
        closed day (of every office, or of this office); a week at once."""
        slots = await adapter.free_slots("anagrafe", "cie", MONDAY, 1)
        starts = [_utc(s.start) for s in slots]
        want = [_utc(_rome(MONDAY, 9) + timedelta(minutes=30 * i)) for i in range(6)]
        _same("free_slots(anagrafe, cie, Monday) starts", starts, want)
        for s in slots:
            if (s.free, s.capacity) != (2, 2) or _utc(s.end) - _utc(s.start) != want[1] - want[0]:
                _fail(f"free_slots: slot {s!r} should be 30 minutes with 2 of 2 seats free")
        holiday = await adapter.free_slots("anagrafe", "residenza", HOLIDAY, 1)
        _same("free_slots on a holiday of every office", holiday, [])
        wednesday = await adapter.free_slots("anagrafe", "cie", OFFICE_CLOSED, 1)
        _same("free_slots on the office's closed day", wednesday, [])
        thursday = await adapter.free_slots("anagrafe", "cie", date(2030, 3, 21), 1)
        _same("free_slots on Thursday (morning and afternoon)", len(thursday), 6 + 3)
        week = await adapter.free_slots("anagrafe", "residenza", MONDAY, 7)
        # Mon 9, Tue closed, Wed closed, Thu 9 + 4, Fri 9, Sat 0, Sun night desk 9
        _same("free_slots of a week (residenza) count", len(week), 9 + 13 + 9 + 9)
        if [_utc(s.start) for s in week] != sorted(_utc(s.start) for s in week):
            _fail("free_slots must be ordered by start")
        saturday = await adapter.free_slots("tecnico", "pratiche", date(2030, 3, 23), 1)
        _same(
            "free_slots(tecnico, pratiche, Saturday) starts",
            [_utc(s.start) for s in saturday],
            [_utc(_rome(date(2030, 3, 23), h)) for h in (9, 10, 11)],
        )

    async def slots_skip_the_hour_that_does_not_exist(self, adapter: Any, workdir: Path) -> None:
        """On the night the clocks go forward, a slot that would start or end between 02:00
        and 03:00 (which do not exist in Rome) is not offered; the others are, in UTC."""
        slots = await adapter.free_slots("anagrafe", "cie", DST_SUNDAY, 1)
        _same(
            "free_slots on the DST night (01:00-04:00, 30 minutes)",
            [_utc(s.start) for s in slots],
            [
                datetime(2030, 3, 31, 0, 0, tzinfo=UTC),  # 01:00 CET
                datetime(2030, 3, 31, 1, 0, tzinfo=UTC),  # 03:00 CEST
                datetime(2030, 3, 31, 1, 30, tzinfo=UTC),  # 03:30 CEST
            ],
        )

    async def book_takes_a_seat_and_day_lists_it(self, adapter: Any, workdir: Path) -> None:
        """``book()`` answers the seat (its id, times in UTC); the slot has one seat less;
        ``day()`` lists the office's bookings of the day, by start, with the holder's name
        and reference, and nothing of another office."""
        start = _rome(MONDAY, 10)
        held = await adapter.book("anagrafe", "cie", start, _holder(1))
        if not isinstance(held, AgendaBooking) or not held.id:
            _fail(f"book() returned {held!r}, expected an AgendaBooking with an id")
        _same("book().start", _utc(held.start), _utc(start))
        _same("book().end", _utc(held.end), _utc(_rome(MONDAY, 10, 30)))
        _same("book() office and service", (held.office_id, held.service_id), ("anagrafe", "cie"))
        free = await self._free(adapter, "anagrafe", "cie", MONDAY)
        _same("free seats of the booked slot", free.get(_utc(start)), 1)
        early = await adapter.book("anagrafe", "residenza", _rome(MONDAY, 9), _holder(2))
        _same("book().start", _utc(early.start), _utc(_rome(MONDAY, 9)))
        await adapter.book("tecnico", "pratiche", _rome(date(2030, 3, 23), 9), _holder(3))
        day = await adapter.day("anagrafe", MONDAY)
        _same(
            "day(anagrafe, Monday)",
            [(e.id, _utc(e.start), e.service_id, e.name, e.surname, e.reference) for e in day],
            [
                (early.id, _utc(early.start), "residenza", "Nicolò", "D'Angelo 2", "KITREF000002"),
                (held.id, _utc(start), "cie", "Nicolò", "D'Angelo 1", "KITREF000001"),
            ],
        )
        _same("day(anagrafe, Friday)", await adapter.day("anagrafe", date(2030, 3, 22)), [])

    async def capacity_is_never_exceeded_by_simultaneous_bookings(
        self, adapter: Any, workdir: Path
    ) -> None:
        """Twelve bookings of a one-seat slot at once: exactly one gets it, the others
        :class:`SlotTaken`; then the slot is not offered."""
        start = _rome(MONDAY, 11)

        async def one(n: int) -> str:
            try:
                await adapter.book("anagrafe", "residenza", start, _holder(100 + n))
            except SlotTaken:
                return "taken"
            return "booked"

        got = sorted(await asyncio.gather(*(one(n) for n in range(12))))
        _same("12 simultaneous bookings of one seat", got, ["booked"] + ["taken"] * 11)
        free = await self._free(adapter, "anagrafe", "residenza", MONDAY)
        if _utc(start) in free:
            _fail("free_slots still offers a slot whose only seat is taken")
        _same(
            "day() entries in the full slot",
            len([e for e in await adapter.day("anagrafe", MONDAY) if _utc(e.start) == _utc(start)]),
            1,
        )

    async def refuses_what_it_does_not_offer(self, adapter: Any, workdir: Path) -> None:
        """:class:`NotBookable` for an unknown office or service, a closed day, a time off
        the slot grid or outside the hours, a time without its offset."""
        cases: Sequence[tuple[str, str, str, datetime]] = (
            ("unknown office", "nessuno", "cie", _rome(MONDAY, 9)),
            ("unknown service", "anagrafe", "nessuno", _rome(MONDAY, 9)),
            ("another office's service", "tecnico", "cie", _rome(MONDAY, 9)),
            ("a holiday", "anagrafe", "cie", _rome(HOLIDAY, 9)),
            ("the office's closed day", "anagrafe", "cie", _rome(OFFICE_CLOSED, 9)),
            ("off the slot grid", "anagrafe", "cie", _rome(MONDAY, 9, 10)),
            ("outside the hours", "anagrafe", "cie", _rome(MONDAY, 13)),
            ("no offset", "anagrafe", "cie", datetime(2030, 3, 18, 9, 0)),
        )
        for what, office, service, start in cases:
            try:
                await adapter.book(office, service, start, _holder(9))
            except NotBookable:
                continue
            except Exception as exc:
                _fail(f"book() for {what} raised {type(exc).__name__}, expected NotBookable")
            _fail(f"book() for {what} succeeded, expected NotBookable")
        for what, office, service in (("office", "nessuno", "cie"), ("service", "anagrafe", "x")):
            try:
                await adapter.free_slots(office, service, MONDAY, 1)
            except NotBookable:
                continue
            _fail(f"free_slots() for an unknown {what} should raise NotBookable")

    async def move_and_cancel_free_the_old_seat(self, adapter: Any, workdir: Path) -> None:
        """``move()`` takes the new seat and frees the old one; a move to a full slot is
        :class:`SlotTaken` and keeps the old seat; ``cancel()`` frees the seat, twice is no
        error; moving a cancelled or unknown booking is :class:`UnknownBooking`."""
        first, second = _rome(MONDAY, 9), _rome(MONDAY, 9, 20)
        mine = await adapter.book("anagrafe", "residenza", first, _holder(1))
        await adapter.book("anagrafe", "residenza", second, _holder(2))
        try:
            await adapter.move(mine.id, second)
        except SlotTaken:
            pass
        else:
            _fail("move() to a full slot succeeded, expected SlotTaken")
        free = await self._free(adapter, "anagrafe", "residenza", MONDAY)
        if _utc(first) in free:
            _fail("a refused move() freed the old seat")
        later = _rome(MONDAY, 10, 40)
        moved = await adapter.move(mine.id, later)
        _same("move().start", _utc(moved.start), _utc(later))
        _same("move().end", _utc(moved.end), _utc(_rome(MONDAY, 11)))
        free = await self._free(adapter, "anagrafe", "residenza", MONDAY)
        _same("free seats of the old slot after move()", free.get(_utc(first)), 1)
        if _utc(later) in free:
            _fail("the slot moved to is still offered")
        await adapter.cancel(moved.id)
        await adapter.cancel(moved.id)
        free = await self._free(adapter, "anagrafe", "residenza", MONDAY)
        _same("free seats after cancel()", free.get(_utc(later)), 1)
        if any(e.id == moved.id for e in await adapter.day("anagrafe", MONDAY)):
            _fail("day() still lists a cancelled booking")
        for what, booking_id in (("cancelled", moved.id), ("unknown", "no-such-booking")):
            try:
                await adapter.move(booking_id, _rome(MONDAY, 11, 20))
            except UnknownBooking:
                continue
            _fail(f"move() of a {what} booking should raise UnknownBooking")

    async def close_is_idempotent(self, adapter: Any, workdir: Path) -> None:
        """``close()`` may be called twice, after use and on an adapter never used."""
        await adapter.offices()
        await adapter.close()
        await adapter.close()
        unused = await self.build(workdir / "unused")
        await unused.close()
        await unused.close()

    async def registered_through_the_hook(self, adapter: Any, workdir: Path) -> None:
        """The plugin returns the class from ``hub_adapters()`` under the ``booking`` kind and
        its ``name``, and the kind is declared (``hub_adapter_kinds``)."""
        cls = type(adapter)
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            _fail(f"{cls.__name__}.name must be a non-empty class attribute (the adapter's name)")
        if self.plugins is None:
            _fail("no plugins given to check the hub_adapters hook with")
        try:
            kinds = self.plugins.adapter_kinds()
            adapters = self.plugins.kind_adapters(KIND)
        except PluginConflict as exc:
            _fail(f"{exc}: pick another name")
        if KIND not in kinds:
            _fail(f"no plugin declares the {KIND!r} adapter kind (the booking platform does)")
        if adapters.get(name) is not cls:
            _fail(f"hub_adapters()[{KIND!r}] gives {adapters.get(name)!r} for {name!r}")


async def run_agenda_contract(
    factory: AgendaFactory,
    workdir: Path,
    *,
    agenda: dict[str, Any] | None = None,
    plugin: object | None = None,
    plugin_name: str | None = None,
) -> dict[str, str]:
    """Run every agenda contract check without pytest."""
    plugins = plugins_with(plugin, plugin_name) if plugin is not None else None
    return await AgendaContract(factory, agenda=agenda, plugins=plugins).run_all(workdir)

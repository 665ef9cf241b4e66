"""The reference agenda adapter: a comune's agenda software that keeps its data in SQLite.

Options: ``path`` (the agenda's database file, relative to the configuration's folder).
The schema is the agenda's own (:data:`SCHEMA`): offices, their services (slot length and
seats), opening hours per weekday in Europe/Rome, closed days, and appointments. The hub
reads and writes it only through the :class:`~sportello.adapters.agenda.base.AgendaAdapter`
methods; :meth:`SqliteAgenda.load` fills a new file from a description of the offices (the
shape of ``[tenants.booking]``), for the demo and the adapter kit.

A booking takes a seat inside ``BEGIN IMMEDIATE`` (one writer at a time on the file, across
processes): it counts the slot's booked seats and inserts only when one is free, so
concurrent bookings never exceed the service's capacity.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from .base import (
    AgendaBooking,
    AgendaEntry,
    AgendaHolder,
    AgendaOffice,
    AgendaService,
    AgendaSlot,
    AgendaUnavailable,
    NotBookable,
    SlotTaken,
    UnknownBooking,
)

ROME = ZoneInfo("Europe/Rome")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS offices (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS services (
    office_id TEXT NOT NULL REFERENCES offices(id), id TEXT NOT NULL, name TEXT NOT NULL,
    minutes INTEGER NOT NULL, capacity INTEGER NOT NULL, PRIMARY KEY (office_id, id)
);
CREATE TABLE IF NOT EXISTS hours (
    office_id TEXT NOT NULL REFERENCES offices(id), weekday INTEGER NOT NULL,
    opens TEXT NOT NULL, closes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS closed_days (office_id TEXT, day TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    office_id TEXT NOT NULL, service_id TEXT NOT NULL,
    starts_at TEXT NOT NULL, ends_at TEXT NOT NULL,
    status TEXT NOT NULL, name TEXT NOT NULL, surname TEXT NOT NULL,
    reference TEXT, reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_appointments_slot
    ON appointments (office_id, service_id, starts_at, status);
"""


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _hhmm(text: str) -> time:
    return time(int(text[:2]), int(text[3:5]))


def _exists(local: datetime) -> bool:
    back = local.astimezone(UTC).astimezone(ROME)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None)


class SqliteAgenda:
    """An agenda in a SQLite file (see the module's docstring)."""

    name = "sqlite"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        raw = options.get("path")
        if not isinstance(raw, str) or not raw:
            raise ValueError('agenda adapter "sqlite": options.path (the database file) needed')
        path = Path(raw)
        self.path = path if path.is_absolute() else base_dir / path
        self._ready = False

    # --- plumbing --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise AgendaUnavailable(f"agenda database {self.path} not found")
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise AgendaUnavailable(f"agenda database: {exc}") from None
            try:
                return work(conn)
            except sqlite3.OperationalError as exc:
                raise AgendaUnavailable(f"agenda database: {exc}") from None
            finally:
                conn.close()

        return await asyncio.to_thread(call)

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> None:
        """Create the agenda file from ``spec``: ``{"offices": [{id, name, address,
        services: [{id, name, minutes, capacity}], hours: {mon: ["09:00-12:00"]},
        holidays: [date]}], "holidays": [date]}`` (dates as ``date`` or ISO text)."""
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            for day in spec.get("holidays", []):
                conn.execute("INSERT INTO closed_days VALUES (NULL, ?)", (str(day),))
            for o in spec["offices"]:
                office = (o["id"], o["name"], o.get("address", ""))
                conn.execute("INSERT INTO offices VALUES (?, ?, ?)", office)
                for s in o["services"]:
                    conn.execute(
                        "INSERT INTO services VALUES (?, ?, ?, ?, ?)",
                        (o["id"], s["id"], s["name"], s["minutes"], s.get("capacity", 1)),
                    )
                for weekday, intervals in o.get("hours", {}).items():
                    for interval in intervals:
                        opens, closes = interval.split("-")
                        conn.execute(
                            "INSERT INTO hours VALUES (?, ?, ?, ?)",
                            (o["id"], WEEKDAYS.index(weekday), opens, closes),
                        )
                for day in o.get("holidays", []):
                    conn.execute("INSERT INTO closed_days VALUES (?, ?)", (o["id"], str(day)))
            conn.execute("COMMIT")
        finally:
            conn.close()

    # --- the calendar ----------------------------------------------------------------------

    @staticmethod
    def _service(conn: sqlite3.Connection, office_id: str, service_id: str) -> sqlite3.Row:
        if conn.execute("SELECT 1 FROM offices WHERE id = ?", (office_id,)).fetchone() is None:
            raise NotBookable(f"office_id: no office {office_id[:40]!r}")
        row = conn.execute(
            "SELECT * FROM services WHERE office_id = ? AND id = ?", (office_id, service_id)
        ).fetchone()
        if row is None:
            raise NotBookable(f"service_id: office {office_id!r} offers no {service_id[:40]!r}")
        return row  # type: ignore[no-any-return]

    @staticmethod
    def _times(
        conn: sqlite3.Connection, office_id: str, minutes: int, day: date
    ) -> list[tuple[datetime, datetime]]:
        closed = conn.execute(
            "SELECT 1 FROM closed_days WHERE day = ? AND (office_id IS NULL OR office_id = ?)",
            (day.isoformat(), office_id),
        ).fetchone()
        if closed is not None:
            return []
        step = timedelta(minutes=minutes)
        out = []
        intervals = conn.execute(
            "SELECT opens, closes FROM hours WHERE office_id = ? AND weekday = ? ORDER BY opens",
            (office_id, day.weekday()),
        ).fetchall()
        for opens, closes in intervals:
            start = datetime.combine(day, _hhmm(opens), ROME)
            last = datetime.combine(day, _hhmm(closes), ROME)
            while start + step <= last:
                end = start + step
                if _exists(start) and _exists(end):
                    out.append((start.astimezone(UTC), end.astimezone(UTC)))
                start = end
        return out

    @staticmethod
    def _taken(conn: sqlite3.Connection, office_id: str, service_id: str, start: datetime) -> int:
        return int(
            conn.execute(
                "SELECT count(*) FROM appointments WHERE office_id = ? AND service_id = ? "
                "AND starts_at = ? AND status = 'booked'",
                (office_id, service_id, _utc(start)),
            ).fetchone()[0]
        )

    def _slot_end(
        self, conn: sqlite3.Connection, service: sqlite3.Row, start: datetime
    ) -> datetime:
        if start.tzinfo is None:
            raise NotBookable("start: give the time with its offset")
        start = start.astimezone(UTC)
        day = start.astimezone(ROME).date()
        for s, e in self._times(conn, service["office_id"], service["minutes"], day):
            if s == start:
                return e
        raise NotBookable("start: not a slot of this service (closed, or off the slot grid)")

    # --- the contract ----------------------------------------------------------------------

    async def offices(self) -> list[AgendaOffice]:
        def work(conn: sqlite3.Connection) -> list[AgendaOffice]:
            out = []
            for o in conn.execute("SELECT * FROM offices ORDER BY rowid").fetchall():
                services = conn.execute(
                    "SELECT * FROM services WHERE office_id = ? ORDER BY rowid", (o["id"],)
                ).fetchall()
                out.append(
                    AgendaOffice(
                        id=o["id"],
                        name=o["name"],
                        address=o["address"],
                        services=tuple(
                            AgendaService(
                                id=s["id"],
                                name=s["name"],
                                minutes=s["minutes"],
                                capacity=s["capacity"],
                            )
                            for s in services
                        ),
                    )
                )
            return out

        return await self._run(work)

    async def free_slots(
        self, office_id: str, service_id: str, first: date, days: int
    ) -> list[AgendaSlot]:
        def work(conn: sqlite3.Connection) -> list[AgendaSlot]:
            service = self._service(conn, office_id, service_id)
            out = []
            for n in range(days):
                for start, end in self._times(
                    conn, office_id, service["minutes"], first + timedelta(days=n)
                ):
                    seats = service["capacity"]
                    free = seats - self._taken(conn, office_id, service_id, start)
                    if free > 0:
                        out.append(AgendaSlot(start=start, end=end, free=free, capacity=seats))
            return out

        return await self._run(work)

    def _hold(
        self,
        conn: sqlite3.Connection,
        service: sqlite3.Row,
        start: datetime,
    ) -> datetime:
        end = self._slot_end(conn, service, start)
        if self._taken(conn, service["office_id"], service["id"], start) >= service["capacity"]:
            raise SlotTaken(f"start: every seat of this slot is taken ({service['capacity']})")
        return end

    async def book(
        self, office_id: str, service_id: str, start: datetime, holder: AgendaHolder
    ) -> AgendaBooking:
        def work(conn: sqlite3.Connection) -> AgendaBooking:
            conn.execute("BEGIN IMMEDIATE")
            try:
                service = self._service(conn, office_id, service_id)
                end = self._hold(conn, service, start)
                cursor = conn.execute(
                    "INSERT INTO appointments (office_id, service_id, starts_at, ends_at, status,"
                    " name, surname, reference, reason) VALUES (?, ?, ?, ?, 'booked', ?, ?, ?, ?)",
                    (
                        office_id,
                        service_id,
                        _utc(start),
                        _utc(end),
                        holder.name,
                        holder.surname,
                        holder.reference,
                        holder.reason,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return AgendaBooking(
                id=str(cursor.lastrowid),
                office_id=office_id,
                service_id=service_id,
                start=start.astimezone(UTC),
                end=end,
            )

        return await self._run(work)

    async def move(self, booking_id: str, start: datetime) -> AgendaBooking:
        def work(conn: sqlite3.Connection) -> AgendaBooking:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT * FROM appointments WHERE id = ? AND status = 'booked'",
                    (_id(booking_id),),
                ).fetchone()
                if row is None:
                    raise UnknownBooking(f"no booked appointment {booking_id!r}")
                service = self._service(conn, row["office_id"], row["service_id"])
                if _parse(row["starts_at"]) == start.astimezone(UTC):
                    end = _parse(row["ends_at"])
                else:
                    end = self._hold(conn, service, start)
                    conn.execute(
                        "UPDATE appointments SET starts_at = ?, ends_at = ? WHERE id = ?",
                        (_utc(start), _utc(end), row["id"]),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return AgendaBooking(
                id=str(row["id"]),
                office_id=row["office_id"],
                service_id=row["service_id"],
                start=start.astimezone(UTC),
                end=end,
            )

        return await self._run(work)

    async def cancel(self, booking_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE appointments SET status = 'cancelled' WHERE id = ?", (_id(booking_id),)
            )

        await self._run(work)

    async def day(self, office_id: str, day: date) -> list[AgendaEntry]:
        since = datetime.combine(day, time(0), ROME)
        until = datetime.combine(day + timedelta(days=1), time(0), ROME)

        def work(conn: sqlite3.Connection) -> list[AgendaEntry]:
            rows = conn.execute(
                "SELECT * FROM appointments WHERE office_id = ? AND status = 'booked' "
                "AND starts_at >= ? AND starts_at < ? ORDER BY starts_at, id",
                (office_id, _utc(since), _utc(until)),
            ).fetchall()
            return [
                AgendaEntry(
                    id=str(r["id"]),
                    office_id=r["office_id"],
                    service_id=r["service_id"],
                    start=_parse(r["starts_at"]),
                    end=_parse(r["ends_at"]),
                    name=r["name"],
                    surname=r["surname"],
                    reference=r["reference"],
                )
                for r in rows
            ]

        return await self._run(work)

    async def close(self) -> None:
        return None


def _id(booking_id: str) -> int:
    try:
        return int(booking_id)
    except ValueError:
        raise UnknownBooking(f"no appointment {booking_id[:40]!r}") from None

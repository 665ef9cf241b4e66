"""The appointment as an iCalendar object (RFC 5545), written by hand: one VEVENT.

UID is the booking code at the hub's host name part (stable across moves: a calendar
updates the event, SEQUENCE says which version), DTSTAMP/DTSTART/DTEND in UTC (the ``Z``
form, 3.3.5 form #2, so no VTIMEZONE is needed), TEXT values escaped (3.3.11), lines folded
at 75 octets (3.1) and ended with CRLF. No personal data: the office, the service and the
code only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol


class Offices(Protocol):
    """Where an office's name, address and services are found by id: ``[tenants.booking]``
    (``BookingTenantSettings``) or a comune's agenda's offices (:class:`OfficesOf`)."""

    def office(self, office_id: str) -> Any: ...


class OfficesOf:
    """The offices a comune's agenda lists (``AgendaOffice``), looked up by id."""

    def __init__(self, offices: list[Any]) -> None:
        self._by_id = {o.id: o for o in offices}

    def office(self, office_id: str) -> Any:
        return self._by_id.get(office_id)


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line at 75 octets, never inside a UTF-8 character (RFC 5545 3.1)."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, current, limit = [], b"", 75
    for ch in line:
        b = ch.encode()
        if len(current) + len(b) > limit:
            parts.append(current.decode())
            current, limit = b"", 74  # continuation lines start with a space
        current += b
    parts.append(current.decode())
    return "\r\n ".join(parts)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar(
    *,
    uid: str,
    start: datetime,
    end: datetime,
    stamp: datetime,
    summary: str,
    location: str,
    description: str,
    sequence: int = 0,
    cancelled: bool = False,
) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Sportello//booking//IT",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(start)}",
        f"DTEND:{_utc(end)}",
        f"SEQUENCE:{sequence}",
        f"SUMMARY:{escape(summary)}",
        f"LOCATION:{escape(location)}",
        f"DESCRIPTION:{escape(description)}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode()


def appointment(settings: Offices, tenant_id: str, row: Any) -> tuple[str, bytes]:
    """The display code and the ``.ics`` of an appointment's row (the API's download and
    the e-mail's attachment are the same file)."""
    from sportello.platforms.booking.service import display_code

    office = settings.office(row.office_id)
    svc = office.service(row.service_id) if office is not None else None
    office_name = office.name if office is not None else row.office_id
    location = f"{office_name}, {office.address}" if office and office.address else office_name
    code = display_code(row.code)
    body = calendar(
        uid=f"{row.code}@{tenant_id}.booking.sportello",
        start=row.starts_at,
        end=row.ends_at,
        stamp=row.updated_at,
        summary=f"{svc.name if svc else row.service_id} - {office_name}",
        location=location,
        description=f"Codice di prenotazione: {code}",
        sequence=row.version - 1,
        cancelled=row.status == "cancelled",
    )
    return code, body

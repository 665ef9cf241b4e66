"""Booking tables (migration ``booking_0001``): appointments and the seats they hold.

A seat row is what makes a slot impossible to double-book: its primary key is (tenant,
office, service, start, seat number), seat numbers run from 0 to the service's capacity
minus one, and a booking takes a seat with an insert that does nothing on conflict. The
database, not the code, decides who got the last seat. Cancelling or moving an appointment
deletes its seat row, so the seat is free again.

``booking_attempts`` (migration ``booking_0002``) counts the second-factor attempts of a
code that have not succeeded: an attempt takes its number with one atomic upsert before
the factor is checked, so however many arrive at once, at most ``verify_attempts`` are
checked before the code is locked (``service.take_attempt``).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from sportello.schema import Id, UTCDateTime, metadata

# Appointment statuses: booked -> cancelled | no_show.
booking_appointments = Table(
    "booking_appointments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("code", String(16), nullable=False, unique=True),
    Column("office_id", String(40), nullable=False),
    Column("service_id", String(40), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("status", String(12), nullable=False),
    Column("name", String(100), nullable=False),
    Column("surname", String(100), nullable=False),
    Column("fiscal_code", String(16), nullable=True),
    Column("email", String(254), nullable=False),
    Column("phone", String(30), nullable=True),
    Column("reason", String(500), nullable=False),
    Column("logged_in", Integer(), nullable=False),  # 1: the citizen booked after SPID/CIE
    Column("version", Integer(), nullable=False),  # +1 at every move or cancellation
    Column("reminded_version", Integer(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # the appointment's id in the comune's agenda ([tenants.adapters.booking]); None when the
    # hub's own seats hold it (migration booking_0002)
    Column("agenda_ref", String(64), nullable=True),
    Index("ix_booking_appointments_day", "tenant_id", "office_id", "starts_at"),
)

booking_seats = Table(
    "booking_seats",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("office_id", String(40), primary_key=True),
    Column("service_id", String(40), primary_key=True),
    Column("starts_at", UTCDateTime(), primary_key=True),
    Column("seat", Integer(), primary_key=True),
    Column("code", String(16), nullable=False, unique=True),
)

booking_attempts = Table(
    "booking_attempts",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("code", String(16), primary_key=True),
    Column("attempts", Integer(), nullable=False),  # taken and not (yet) succeeded
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

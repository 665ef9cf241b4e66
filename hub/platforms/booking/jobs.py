"""The booking platform's outbox handler: the App IO reminder of an appointment.

The job is queued when the citizen books or moves (``service._queue_reminder``), with a
not-before ``reminder_hours`` ahead of the appointment, and names the appointment's
version. When it runs it queues the App IO message through the kernel
(``hub_queue_message``) only if the appointment is still booked at that version: a
cancelled or moved appointment's reminder does nothing. ``reminded_version`` is set in the
same transaction, so a job run twice sends one message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update

from sportello.connectors.io.models import MessageContent, NewMessage
from sportello.outbox import Delivery, Handler, Job
from sportello.platforms.booking.service import ROME, display_code
from sportello.platforms.booking.settings import booking_settings
from sportello.platforms.booking.tables import booking_appointments

if TYPE_CHECKING:
    from sportello.services import HubServices


def reminder_message(
    fiscal_code: str, office: str, address: str, service: str, row: object
) -> NewMessage:
    start = row.starts_at.astimezone(ROME)  # type: ignore[attr-defined]
    code = display_code(row.code)  # type: ignore[attr-defined]
    where = f"{office}, {address}" if address else office
    return NewMessage(
        fiscal_code=fiscal_code,
        content=MessageContent(
            subject=f"Promemoria appuntamento del {start:%d/%m/%Y} alle {start:%H:%M}",
            markdown=(
                f"Ti ricordiamo l'appuntamento per **{service}** presso **{where}** "
                f"il giorno **{start:%d/%m/%Y}** alle ore **{start:%H:%M}**.\n\n"
                f"Codice di prenotazione: **{code}**. Con il codice puoi disdire o spostare "
                "l'appuntamento dal sito del comune."
            ),
        ),
    )


def reminder_handler(services: HubServices) -> Handler:
    plugins = services.plugins or services.adapters.plugins

    async def handle(job: Job) -> Delivery | None:
        code, version = str(job.payload["code"]), int(job.payload["version"])
        tenant = services.config.tenant(job.tenant_id)
        settings = booking_settings(tenant) if tenant is not None else None
        if settings is None or settings.io_service is None:
            return Delivery(remote_id="skipped: no App IO service")
        async with services.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(booking_appointments).where(
                        booking_appointments.c.tenant_id == job.tenant_id,
                        booking_appointments.c.code == code,
                    )
                )
            ).first()
            if row is None or row.status != "booked" or row.version != version:
                return Delivery(remote_id="skipped: cancelled or moved")
            office = settings.office(row.office_id)
            service = office.service(row.service_id) if office is not None else None
            if office is None or service is None or row.fiscal_code is None:
                return Delivery(remote_id="skipped: office or service gone")
            claimed = await conn.execute(
                update(booking_appointments)
                .where(
                    booking_appointments.c.id == row.id,
                    booking_appointments.c.version == version,
                    or_(
                        booking_appointments.c.reminded_version.is_(None),
                        booking_appointments.c.reminded_version != version,
                    ),
                )
                .values(reminded_version=version)
            )
            if claimed.rowcount != 1:
                return Delivery(remote_id="skipped: already reminded")
            message = reminder_message(
                row.fiscal_code, office.name, office.address, service.name, row
            )
            message_id = await plugins.queue_message(
                conn,
                tenant_id=job.tenant_id,
                service_id=settings.io_service,
                message=message,
                now=services.clock.now(),
            )
        return Delivery(remote_id=f"io-message:{message_id}")

    return handle

"""The booking platform's outbox handlers: the App IO reminder of an appointment, and its
e-mails (confirmation, reminder, cancellation) through the tenant's SMTP server.

The job is queued when the citizen books or moves (``service._queue_reminder``), with a
not-before ``reminder_hours`` ahead of the appointment, and names the appointment's
version. When it runs it queues the App IO message through the kernel
(``hub_queue_message``) only if the appointment is still booked at that version: a
cancelled or moved appointment's reminder does nothing. ``reminded_version`` is set in the
same transaction, so a job run twice sends one message.

An e-mail job (``service.EMAIL_KIND``) names the appointment's version and what it says;
it goes only if the appointment is still at that version (booked for a confirmation or a
reminder, cancelled for a cancellation). SMTP has no idempotency key: the ``Message-ID``
is derived from the outbox's idempotency key, so an attempt repeated after a lost answer
carries the same id and the receiving server or mail client can recognise it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from sportello.connectors.email import (
    Attachment,
    SmtpClient,
    SmtpSettings,
    build_message,
    message_id_for,
)
from sportello.connectors.errors import PermanentError
from sportello.connectors.io.models import MessageContent, NewMessage
from sportello.outbox import Delivery, Handler, Job
from sportello.platforms.booking import ics
from sportello.platforms.booking.service import EMAIL_WHAT, ROME, display_code
from sportello.platforms.booking.settings import (
    BookingEmail,
    BookingTenantSettings,
    booking_settings,
)
from sportello.platforms.booking.tables import booking_appointments

if TYPE_CHECKING:
    from sportello.services import HubServices

log = logging.getLogger("sportello.booking")


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


# --- e-mail --------------------------------------------------------------------------------


def email_text(what: str, tenant_name: str, settings: ics.Offices, row: Any) -> tuple[str, str]:
    """The subject and the plain text (Italian) of an appointment's e-mail."""
    office = settings.office(row.office_id)
    svc = office.service(row.service_id) if office is not None else None
    office_name = office.name if office is not None else row.office_id
    where = f"{office_name}, {office.address}" if office and office.address else office_name
    service_name = svc.name if svc is not None else row.service_id
    start = row.starts_at.astimezone(ROME)
    when = f"{start:%d/%m/%Y} alle ore {start:%H:%M}"
    code = display_code(row.code)
    if what == "cancellation":
        subject = f"Appuntamento del {start:%d/%m/%Y} alle {start:%H:%M} annullato"
        lead = (
            f"il tuo appuntamento per {service_name} presso {where} del {when} è stato annullato."
        )
    elif what == "reminder":
        subject = f"Promemoria appuntamento del {start:%d/%m/%Y} alle {start:%H:%M}"
        lead = f"ti ricordiamo l'appuntamento per {service_name} presso {where} il {when}."
    elif row.version > 1:
        subject = f"Appuntamento spostato al {start:%d/%m/%Y} alle {start:%H:%M}"
        lead = f"il tuo appuntamento per {service_name} presso {where} è ora il {when}."
    else:
        subject = f"Appuntamento confermato il {start:%d/%m/%Y} alle {start:%H:%M}"
        lead = f"il tuo appuntamento per {service_name} presso {where} è confermato il {when}."
    lines = [
        f"Gentile {row.name} {row.surname},",
        "",
        lead,
        "",
        f"Codice di prenotazione: {code}",
    ]
    if what != "cancellation":
        lines += [
            "",
            "Con il codice e il codice fiscale o l'indirizzo e-mail indicati alla prenotazione "
            "puoi disdire o spostare l'appuntamento dal sito del comune.",
            "In allegato l'appuntamento da aggiungere al tuo calendario.",
        ]
    lines += ["", tenant_name, "", "Messaggio automatico: non rispondere a questo indirizzo."]
    return subject, "\n".join(lines) + "\n"


def smtp_settings(mail: BookingEmail) -> SmtpSettings:
    """The connector's settings, the password revealed here, at the point of use."""
    return SmtpSettings(
        host=mail.host,
        port=mail.port,
        starttls=mail.starttls,
        implicit_tls=mail.implicit_tls,
        username=mail.username,
        password=mail.password.reveal() if mail.password is not None else None,
        ca_file=mail.ca_file,
        timeout=mail.timeout,
    )


def _wanted(what: str, row: Any, version: int) -> bool:
    if row.version != version:
        return False  # moved or cancelled since: a later version has its own e-mails
    return bool(row.status == ("cancelled" if what == "cancellation" else "booked"))


async def _agenda_offices(
    services: HubServices, tenant_id: str, settings: BookingTenantSettings
) -> ics.Offices:
    """The office names of an appointment the comune's agenda holds: the agenda's; the
    ids stand in for them when the agenda cannot say (the e-mail still goes)."""
    try:
        agenda = services.adapters.get(tenant_id, "booking")
        if agenda is not None:
            return ics.OfficesOf(await agenda.offices())
    except Exception as exc:  # the e-mail matters more than the office's name
        log.warning("booking: agenda offices unavailable for an e-mail: %s", type(exc).__name__)
    return settings


def email_handler(services: HubServices) -> Handler:
    async def handle(job: Job) -> Delivery | None:
        code, version = str(job.payload["code"]), int(job.payload["version"])
        what = str(job.payload.get("what", ""))
        if what not in EMAIL_WHAT:
            raise PermanentError(f"booking.email: unknown kind of e-mail {what[:40]!r}")
        tenant = services.config.tenant(job.tenant_id)
        settings = booking_settings(tenant) if tenant is not None else None
        if tenant is None or settings is None or settings.email is None:
            return Delivery(remote_id="skipped: no [tenants.booking.email]")
        mail = settings.email
        async with services.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(booking_appointments).where(
                        booking_appointments.c.tenant_id == job.tenant_id,
                        booking_appointments.c.code == code,
                    )
                )
            ).first()
        if row is None or not _wanted(what, row, version):
            return Delivery(remote_id="skipped: cancelled or moved")
        offices: ics.Offices = settings
        if row.agenda_ref is not None and settings.office(row.office_id) is None:
            offices = await _agenda_offices(services, job.tenant_id, settings)
        subject, text = email_text(what, tenant.name, offices, row)
        display, calendar = ics.appointment(offices, job.tenant_id, row)
        domain = mail.from_address.rsplit("@", 1)[1]
        message = build_message(
            sender=mail.from_address,
            sender_name=mail.from_name or tenant.name,
            to=row.email,
            subject=subject,
            text=text,
            message_id=message_id_for(job.idempotency_key, domain),
            date=services.clock.now(),
            attachments=(
                Attachment(
                    f"appuntamento-{display}.ics", "text/calendar; method=PUBLISH", calendar
                ),
            ),
            reply_to=mail.reply_to,
        )
        try:
            settings_ = smtp_settings(mail)
        except LookupError as exc:  # the password's env or file is missing: fix, then retry
            raise PermanentError(f"[tenants.booking.email] password: {exc}") from None
        sent = await SmtpClient(settings_).send(message)
        return Delivery(remote_id=f"smtp:{sent.message_id}")

    return handle

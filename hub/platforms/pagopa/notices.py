"""A position's payment notice for another platform (``hub_notice_document``): the SEND
platform attaches it to a notification's pagoPA payment (``pagoPa.attachment``)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import audit
from sportello.connectors.pagopa.notice_pdf import render_notice
from sportello.hookspecs import CreatedNotice, NoticeDocument, NoticeRefused, NoticeRequest
from sportello.platforms.pagopa.api import NAV, notice_creditor
from sportello.platforms.pagopa.settings import pagopa_settings
from sportello.platforms.pagopa.station import fault_for
from sportello.platforms.pagopa.store import (
    InvalidPosition,
    IuvInUse,
    PagopaStore,
    PositionConflict,
    effective_status,
    gpd_lock,
)
from sportello.services import HubServices


async def notice_document(
    services: HubServices, tenant_id: str, notice_number: str, actor: str
) -> NoticeDocument | None:
    """The notice PDF of the tenant's position holding ``notice_number`` (None: no such
    notice, or no pagoPA for the tenant). The read is on the audit log (the PDF carries the
    debtor's name and fiscal code) as ``actor``'s, for a SEND notification."""
    tenant = services.config.tenant(tenant_id)
    settings = pagopa_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None or not NAV.fullmatch(notice_number):
        return None
    store = PagopaStore(services.engine, services.config, services.clock)
    match = await store.find_option(tenant_id, notice_number)
    if match is None:
        return None
    now = services.clock.now()
    payable = fault_for(match, effective_status(match.status, match.position, now)) is None
    creditor = notice_creditor(tenant, match.position)
    pdf = await asyncio.to_thread(render_notice, match.position, creditor=creditor)
    async with services.engine.begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=actor,
                action="pagopa.notice.pdf",
                subject=match.position.fiscal_code.upper(),
                purpose="SEND notification: the payment notice attached",
                sources="hub",
                outcome="ok",
                detail=f"iupd {match.iupd}",
            ),
            at=now,
        )
    return NoticeDocument(
        pdf=pdf,
        creditor_tax_id=settings.ec_fiscal_code,
        debtor=match.position.fiscal_code.upper(),
        payable=payable,
        station=settings.mode == "station",
        lock=gpd_lock(tenant_id, match.iupd) if settings.mode == "gpd" else None,
    )


#: The IUPD prefix of the positions made for another platform's notices (SEND's fines).
CREATED_IUPD_PREFIX = "notice-"


def created_iupd(reference: str) -> str:
    """The IUPD of the position of ``reference``: stable, so asking again finds it (GPD's
    IUPD is letters, digits, '-' and '_'; the reference may have any character)."""
    return CREATED_IUPD_PREFIX + hashlib.sha256(reference.encode()).hexdigest()[:40]


async def create_notice(
    conn: AsyncConnection,
    services: HubServices,
    tenant_id: str,
    request: NoticeRequest,
    actor: str,
) -> CreatedNotice:
    """Create (or find again, same reference and content) the position of ``request`` in
    ``conn``'s transaction, published, and render its notice PDF (``hub_create_notice``)."""
    tenant = services.config.tenant(tenant_id)
    settings = pagopa_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None:
        raise NoticeRefused(f"tenant {tenant_id!r} has no [tenants.pagopa]: no position to create")
    raw: dict[str, Any] = {
        "iupd": created_iupd(request.reference),
        "type": request.debtor_type,
        "fiscal_code": request.debtor,
        "full_name": request.full_name[:70],
        "company_name": tenant.name[:140],
        "payment_options": [
            {
                "amount": request.amount,
                "description": request.description[:140],
                "due_date": request.due,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": request.amount,
                        "organization_fiscal_code": settings.ec_fiscal_code,
                        "remittance_information": request.description[:140],
                        "category": request.category,
                        "iban": request.iban,
                    }
                ],
            }
        ],
    }
    store = PagopaStore(services.engine, services.config, services.clock)
    try:
        stored = await store.create_in(conn, tenant_id, settings, raw, True)
    except InvalidPosition as exc:
        raise NoticeRefused(f"the debt position is not valid: {exc}") from None
    except PositionConflict as exc:
        raise NoticeRefused(
            f"a position for this reference exists with other content ({exc})"
        ) from None
    except IuvInUse as exc:
        raise NoticeRefused(str(exc)) from None
    position = stored.position
    creditor = notice_creditor(tenant, position)
    pdf = await asyncio.to_thread(render_notice, position, creditor=creditor)
    now = services.clock.now()
    await audit.record(
        conn,
        audit.AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action="pagopa.notice.pdf",
            subject=position.fiscal_code.upper(),
            purpose="SEND notification: the payment notice of the position the hub created",
            sources="hub",
            outcome="ok",
            detail=f"iupd {stored.iupd}",
        ),
        at=now,
    )
    option = stored.options[0]
    return CreatedNotice(
        notice_number=option.nav,
        document=NoticeDocument(
            pdf=pdf,
            creditor_tax_id=settings.ec_fiscal_code,
            debtor=position.fiscal_code.upper(),
            payable=True,
            station=settings.mode == "station",
            # a job holding it (the SEND upload) runs after the position's creation in GPD
            lock=gpd_lock(tenant_id, position.iupd) if settings.mode == "gpd" else None,
        ),
    )

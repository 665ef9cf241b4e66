"""A position's payment notice for another platform (``hub_notice_document``): the SEND
platform attaches it to a notification's pagoPA payment (``pagoPa.attachment``)."""

from __future__ import annotations

import asyncio

from sportello import audit
from sportello.connectors.pagopa.notice_pdf import render_notice
from sportello.hookspecs import NoticeDocument
from sportello.platforms.pagopa.api import NAV, notice_creditor
from sportello.platforms.pagopa.settings import pagopa_settings
from sportello.platforms.pagopa.station import fault_for
from sportello.platforms.pagopa.store import PagopaStore, effective_status
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
    )

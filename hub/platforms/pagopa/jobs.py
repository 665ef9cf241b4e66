"""Outbox handlers of the pagoPA store.

- ``pagopa.receipt.forward`` (payload ``{"receipt_id"}``): gives the stored receipt to the
  tenant's accounting adapter (``adapters.accounting`` in the tenant's configuration),
  whose ``push_receipt`` is idempotent by receipt id. No adapter configured: the job
  completes with the note ``no accounting adapter`` and the receipt is marked so.
- ``pagopa.gpd.create`` (payload ``{"iupd", "to_publish"}``): creates the stored position
  in GPD with ``GpdClient.ensure_created`` (idempotent by IUPD) and records GPD's status
  (unless a later change of the position is already queued).
- ``pagopa.gpd.update`` (payload ``{"iupd", "seq", "to_publish"}``), ``pagopa.gpd.publish``
  and ``pagopa.gpd.invalidate`` (payload ``{"iupd", "seq"}``): change number ``seq`` of the
  position, queued by ``PagopaStore.update_position`` / ``publish_position`` /
  ``invalidate_position``. An update sends the position as stored now (a later update
  only makes it newer). Order: every GPD job of a position holds its outbox lock
  (``store.gpd_lock``), so the outbox claims a change only once the create or bulk job
  and the earlier changes of that IUPD have ended; no handler waits. A failed or cancelled
  earlier job does not block later ones.
  Already done counts as done: on a 409, or an answer lost after GPD's retries, the
  position is read back; PUBLISHED/VALID (or later) for publish, INVALID for invalidate,
  the same content in the right publication state for update is success. Anything else
  (an illegal transition on GPD, a position GPD does not have) fails the job for good with
  GPD's state and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sportello.adapters.accounting.base import (
    AccountingAdapter,
    AccountingReceipt,
    ReceiptTransferLine,
)
from sportello.connectors.errors import ConnectorError, PermanentError, ServerError, TransportError
from sportello.connectors.pagopa.gpd import PRODUCTION_BASE_URL, GpdClient, position_differences
from sportello.connectors.pagopa.gpd_errors import DebtPositionNotFound, InvalidState
from sportello.connectors.pagopa.models import DebtPosition
from sportello.connectors.pagopa.states import DebtPositionStatus
from sportello.outbox import Delivery, Handler, Job
from sportello.platforms.pagopa.store import PagopaStore, StoredReceipt
from sportello.platforms.pagopa.tables import FORWARDED, NO_ADAPTER, ROLE_BENEFICIARY
from sportello.services import HubServices
from sportello.tenant_adapters import AdapterNotInstalled

NO_ADAPTER_NOTE = "no accounting adapter"

log = logging.getLogger("sportello.pagopa.jobs")
S = DebtPositionStatus


def accounting_receipt(stored: StoredReceipt, ec_fiscal_code: str) -> AccountingReceipt:
    """The receipt as the tenant's accounting gets it: as a secondary beneficiary
    (``role == "beneficiary"``) only the transfers credited to ``ec_fiscal_code``."""
    data = stored.data
    transfers = tuple(
        ReceiptTransferLine(
            id_transfer=int(t["id_transfer"]),
            amount=int(t["amount"]),
            fiscal_code_pa=str(t["fiscal_code_pa"]),
            iban=t.get("iban"),
            category=str(t["category"]),
            remittance_information=str(t["remittance_information"]),
        )
        for t in data.get("transfers", [])
    )
    amount = stored.amount
    if stored.role == ROLE_BENEFICIARY:
        transfers = tuple(t for t in transfers if t.fiscal_code_pa == ec_fiscal_code)
        amount = sum(t.amount for t in transfers)
    debtor = data.get("debtor") or {}
    return AccountingReceipt(
        tenant_id=stored.tenant_id,
        receipt_id=stored.receipt_id,
        notice_number=stored.nav,
        iuv=stored.iuv,
        iupd=stored.iupd,
        amount=amount,
        outcome=stored.outcome,
        id_psp=stored.id_psp,
        psp_company_name=stored.psp_company_name,
        payment_date_time=stored.payment_date_time,
        stand_in=stored.stand_in,
        received_at=stored.received_at,
        debtor_fiscal_code=debtor.get("fiscal_code"),
        transfers=transfers,
        note=stored.note,
        role=stored.role,
        creditor_fiscal_code=data.get("fiscal_code"),
    )


class AccountingAdapters:
    """The tenants' accounting adapters, from the hub's one per-tenant factory
    (``services.adapters``: built once per tenant, closed with the services)."""

    def __init__(self, services: HubServices) -> None:
        self.services = services

    def get(self, tenant_id: str) -> AccountingAdapter | None:
        try:
            adapter: AccountingAdapter | None = self.services.adapters.get(tenant_id, "accounting")
        except AdapterNotInstalled as exc:
            raise PermanentError(str(exc), platform="accounting") from None
        return adapter


def receipt_forward_handler(services: HubServices) -> Handler:
    store = PagopaStore(services.engine, services.config, services.clock)
    adapters = AccountingAdapters(services)

    async def handle(job: Job) -> Delivery:
        receipt_id = str(job.payload["receipt_id"])
        stored = await store.get_receipt(job.tenant_id, receipt_id)
        if stored is None:
            raise PermanentError("the receipt to forward is not stored", platform="accounting")
        adapter = adapters.get(job.tenant_id)
        if adapter is None:
            await store.mark_forwarded(job.tenant_id, receipt_id, NO_ADAPTER)
            return Delivery(remote_id=NO_ADAPTER_NOTE)
        ec = store.settings(job.tenant_id).ec_fiscal_code
        await adapter.push_receipt(accounting_receipt(stored, ec))
        await store.mark_forwarded(job.tenant_id, receipt_id, FORWARDED)
        return Delivery(remote_id=receipt_id[:200])

    return handle


def gpd_create_handler(services: HubServices) -> Handler:
    store = PagopaStore(services.engine, services.config, services.clock)

    async def handle(job: Job) -> Delivery:
        settings = store.settings(job.tenant_id)
        if settings.api_key is None:
            raise PermanentError("the tenant's pagopa.api_key is not configured", platform="gpd")
        iupd = str(job.payload["iupd"])
        stored = await store.get_position(job.tenant_id, iupd)
        if stored is None:
            raise PermanentError("the position to create is not stored", platform="gpd")
        client = GpdClient(
            services.session,
            settings.base_url or PRODUCTION_BASE_URL,
            api_key=settings.api_key.reveal,
        )
        result = await client.ensure_created(
            settings.ec_fiscal_code, stored.position, to_publish=bool(job.payload["to_publish"])
        )
        if result.status:
            # not over a change made here meanwhile (its own job follows this one)
            await store.set_status(job.tenant_id, iupd, result.status, seq=0)
        return Delivery(remote_id=iupd[:200])

    return handle


def _already_done(
    operation: str, gpd: dict[str, Any], position: DebtPosition, to_publish: bool
) -> bool:
    """Whether GPD's position (a ``GET`` answer) shows ``operation`` as done."""
    status = gpd.get("status")
    if operation == "invalidate":
        return status == S.INVALID
    if operation == "publish":
        return status not in (None, S.DRAFT)
    if position_differences(position, gpd):
        return False
    return (status == S.DRAFT) != to_publish and status in {s.value for s in S}


def gpd_change_handler(operation: str) -> Callable[[HubServices], Handler]:
    """The handler factory of ``pagopa.gpd.<operation>`` (update, publish, invalidate)."""

    def factory(services: HubServices) -> Handler:
        store = PagopaStore(services.engine, services.config, services.clock)

        async def handle(job: Job) -> Delivery:
            settings = store.settings(job.tenant_id)
            if settings.api_key is None:
                raise PermanentError(
                    "the tenant's pagopa.api_key is not configured", platform="gpd"
                )
            iupd = str(job.payload["iupd"])
            to_publish = bool(job.payload.get("to_publish", True))
            stored = await store.get_position(job.tenant_id, iupd)
            if stored is None:
                raise PermanentError(f"the position to {operation} is not stored", platform="gpd")
            org = settings.ec_fiscal_code
            client = GpdClient(
                services.session,
                settings.base_url or PRODUCTION_BASE_URL,
                api_key=settings.api_key.reveal,
            )

            async def done_in_gpd() -> tuple[bool, str]:
                current = await client.get(org, iupd)
                status = str(current.get("status"))
                return _already_done(operation, current, stored.position, to_publish), status

            try:
                if operation == "update":
                    await client.update(org, iupd, stored.position, to_publish=to_publish)
                elif operation == "publish":
                    await client.publish(org, iupd)
                else:
                    await client.invalidate(org, iupd)
            except DebtPositionNotFound:
                raise PermanentError(
                    f"GPD has no debt position {iupd} (its creation failed or was deleted)",
                    platform="gpd",
                ) from None
            except InvalidState as refused:
                done, status = await done_in_gpd()
                if not done:
                    raise PermanentError(
                        f"GPD refused to {operation} position {iupd}, which is {status} there: "
                        f"{refused.message}",
                        platform="gpd",
                    ) from refused
                log.info("GPD %s of %s: 409, already done (status %s)", operation, iupd, status)
            except (ServerError, TransportError) as lost:
                # the answer may be lost after GPD did it: look before trying again
                try:
                    done, status = await done_in_gpd()
                except ConnectorError:
                    raise lost from None
                if not done:
                    raise lost
                log.info("GPD %s of %s: answer lost, found done (%s)", operation, iupd, status)
            return Delivery(remote_id=iupd[:200])

        return handle

    return factory


gpd_update_handler = gpd_change_handler("update")
gpd_publish_handler = gpd_change_handler("publish")
gpd_invalidate_handler = gpd_change_handler("invalidate")

"""Outbox handlers of the pagoPA store.

- ``pagopa.receipt.forward`` (payload ``{"receipt_id"}``): gives the stored receipt to the
  tenant's accounting adapter (``adapters.accounting`` in the tenant's configuration),
  whose ``push_receipt`` is idempotent by receipt id. No adapter configured: the job
  completes with the note ``no accounting adapter`` and the receipt is marked so.
- ``pagopa.gpd.create`` (payload ``{"iupd", "to_publish"}``): creates the stored position
  in GPD with ``GpdClient.ensure_created`` (idempotent by IUPD) and records GPD's status.
"""

from __future__ import annotations

from pathlib import Path

from sportello.adapters.accounting.base import (
    AccountingAdapter,
    AccountingReceipt,
    ReceiptTransferLine,
)
from sportello.connectors.errors import PermanentError
from sportello.connectors.pagopa.gpd import PRODUCTION_BASE_URL, GpdClient

from .outbox import Delivery, Handler, Job
from .pagopa_store import PagopaStore, StoredReceipt
from .pagopa_tables import FORWARDED, NO_ADAPTER
from .plugins import Plugins
from .services import HubServices

NO_ADAPTER_NOTE = "no accounting adapter"


def accounting_receipt(stored: StoredReceipt) -> AccountingReceipt:
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
    debtor = data.get("debtor") or {}
    return AccountingReceipt(
        tenant_id=stored.tenant_id,
        receipt_id=stored.receipt_id,
        notice_number=stored.nav,
        iuv=stored.iuv,
        iupd=stored.iupd,
        amount=stored.amount,
        outcome=stored.outcome,
        id_psp=stored.id_psp,
        psp_company_name=stored.psp_company_name,
        payment_date_time=stored.payment_date_time,
        stand_in=stored.stand_in,
        received_at=stored.received_at,
        debtor_fiscal_code=debtor.get("fiscal_code"),
        transfers=transfers,
        note=stored.note,
    )


class AccountingAdapters:
    """One adapter per tenant, built on first use from ``tenant.adapters["accounting"]``."""

    def __init__(self, services: HubServices, plugins: Plugins | None = None) -> None:
        self.services = services
        self._plugins = plugins
        self._adapters: dict[str, AccountingAdapter] = {}

    def get(self, tenant_id: str) -> AccountingAdapter | None:
        tenant = self.services.config.tenant(tenant_id)
        ref = tenant.adapters.get("accounting") if tenant else None
        if ref is None:
            return None
        if tenant_id not in self._adapters:
            if self._plugins is None:
                self._plugins = Plugins(self.services.config.plugins.disabled)
            classes = self._plugins.accounting_adapters()
            if ref.plugin not in classes:
                raise PermanentError(
                    f"accounting adapter {ref.plugin!r} is not installed "
                    f"(installed: {', '.join(sorted(classes)) or 'none'})",
                    platform="accounting",
                )
            base = Path(self.services.config.source).resolve().parent
            self._adapters[tenant_id] = classes[ref.plugin](ref.options, base_dir=base)
        return self._adapters[tenant_id]


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
        await adapter.push_receipt(accounting_receipt(stored))
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
            await store.set_status(job.tenant_id, iupd, result.status)
        return Delivery(remote_id=iupd[:200])

    return handle

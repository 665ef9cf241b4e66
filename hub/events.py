"""Events for the tenant's own systems, delivered as signed webhooks through the outbox.

``emit`` runs inside the transaction of the change it reports, so an event exists exactly
when its change does; the ``webhook`` outbox kind delivers it with retries and an HMAC
signature (``Sportello-Signature: t=<unix>,v1=<hex>``), and every attempt is in the ledger.
This module is the kernel's own plugin (named ``kernel``, registered by
``sportello.plugins.Plugins``): it registers the ``webhook`` outbox kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.connectors.webhook import WebhookConnector

from .config import HubConfig, SecretRef
from .hookspecs import HandlerFactory, hookimpl
from .outbox import Delivery, Handler, Job
from .outbox.store import NewJob, enqueue_many

if TYPE_CHECKING:
    from .services import HubServices

WEBHOOK_KIND = "webhook"


def webhook_jobs(
    config: HubConfig, tenant_id: str, event: str, data: dict[str, Any]
) -> list[NewJob]:
    tenant = config.tenant(tenant_id)
    if tenant is None:
        return []
    return [
        NewJob(
            tenant_id,
            WEBHOOK_KIND,
            {
                "url": hook.url,
                "event": event,
                "data": data,
                "secret": hook.secret.model_dump(mode="json", exclude_none=True)
                if hook.secret
                else None,
            },
        )
        for hook in tenant.webhooks
        if hook.wants(event)
    ]


async def emit(
    conn: AsyncConnection,
    config: HubConfig,
    events: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    now: datetime,
) -> int:
    """Queue webhook deliveries for ``(tenant_id, event, data)`` triples; returns how many."""
    jobs = [
        job for tenant, event, data in events for job in webhook_jobs(config, tenant, event, data)
    ]
    if jobs:
        await enqueue_many(conn, jobs, now=now, default_max_attempts=12)
    return len(jobs)


def webhook_handler(services: HubServices) -> Handler:
    """The ``webhook`` outbox kind: payload ``{"url": ..., "event": ..., "data": {...},
    "secret": {"env": ...} | null}``, one attempt per claim (the outbox owns retries)."""
    connector = WebhookConnector(services.session, timeout=services.config.outbox.http_timeout)

    async def handle(job: Job) -> Delivery:
        payload = job.payload
        secret = None
        if payload.get("secret"):
            secret = SecretRef.model_validate(payload["secret"]).reveal().encode()
        body = {
            "event": payload.get("event"),
            "data": payload.get("data"),
            "id": job.idempotency_key,
        }
        remote_id = await connector.deliver(
            payload["url"], body, idempotency_key=job.idempotency_key, secret=secret
        )
        return Delivery(remote_id=remote_id)

    return handle


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    return {"webhook": webhook_handler}

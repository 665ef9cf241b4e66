"""Events for the tenant's own systems, delivered as signed webhooks through the outbox.

``emit`` runs inside the transaction of the change it reports, so an event exists exactly
when its change does; the ``webhook`` outbox kind delivers it with retries and an HMAC
signature (``Sportello-Signature: t=<unix>,v1=<hex>``), and every attempt is in the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from .config import HubConfig
from .outbox.store import NewJob, enqueue_many

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

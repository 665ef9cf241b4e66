"""Outbox work of the requests platform: a residence declaration handed to the comune's
registry (``declare_residence_change`` of the tenant's registry adapter), once per
request: the job's key is the request's, the adapter gets the request ref as the
declaration's reference (the same practice again on a retry), and the practice number is
stored with a milestone when it answers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sportello.adapters.registry.base import RegistryRefused
from sportello.outbox import Delivery, Job

from . import service
from .tables import requests_requests

if TYPE_CHECKING:
    from sportello.outbox import Handler
    from sportello.services import HubServices

log = logging.getLogger("sportello.requests")


def residence_handler(services: HubServices) -> Handler:
    async def handle(job: Job) -> Delivery | None:
        ref = str(job.payload["ref"])
        async with services.engine.connect() as conn:
            try:
                row = await service.find(conn, job.tenant_id, ref)
            except service.NotFound:
                return Delivery(remote_id="skipped: request gone")
        if row.practice_ref:
            return Delivery(remote_id=row.practice_ref)
        adapter = services.adapters.get(job.tenant_id, "registry")
        declare = getattr(adapter, "declare_residence_change", None)
        if declare is None:
            # no registry to send it to: the back office follows it through the API
            return Delivery(remote_id="skipped: the tenant's registry takes no declarations")
        now = services.clock.now()
        try:
            practice = str(await declare(service.declaration(row)))[:64]
        except RegistryRefused as exc:
            log.warning("registry refused a residence declaration", extra={"ref": ref})
            if row.status not in service.NEXT:
                return Delivery(remote_id="refused by the registry")
            async with services.engine.begin() as conn:
                await service.add_milestone(
                    conn,
                    job.tenant_id,
                    ref,
                    "in_progress",
                    "La dichiarazione richiede una verifica dell'ufficio anagrafe",
                    str(exc)[:500],
                    "registry",
                    now,
                )
            return Delivery(remote_id="refused by the registry")
        async with services.engine.begin() as conn:
            await conn.execute(
                sa.update(requests_requests)
                .where(requests_requests.c.id == row.id)
                .values(practice_ref=practice, updated_at=now)
            )
            if row.status == "submitted":
                await service.add_milestone(
                    conn,
                    job.tenant_id,
                    ref,
                    "in_progress",
                    f"Dichiarazione trasmessa all'ufficio anagrafe, pratica n. {practice}",
                    None,
                    "registry",
                    now,
                )
        return Delivery(remote_id=practice)

    return handle

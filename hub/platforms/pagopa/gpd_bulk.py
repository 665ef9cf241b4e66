"""GPD mode: many positions sent to GPD as one bulk upload instead of one call each.

- :func:`create_positions_bulk` stores a batch of positions in ONE transaction (a
  savepoint per position: a bad one is reported and skipped) and replaces the
  ``pagopa.gpd.create`` job each new position queued with ONE ``pagopa.gpd.bulk`` job
  (payload ``{"iupds", "to_publish"}``), whose idempotency key is derived from the tenant
  and the batch's IUPDs: the same batch never queues two uploads. The upload holds
  the outbox lock of each of its positions (``gpd_lock``), so a change of one of them,
  queued while the upload is pending or running, waits for it.
- ``pagopa.gpd.bulk`` (:func:`gpd_bulk_handler`) sends the batch with
  ``GpdClient.bulk_upload`` (a ZIP of ``{"paymentPositions": [...]}``), polls its status
  until done and reads the report. A position GPD reports as a 409 (already there: the
  job is being retried after a lost answer, or the position was created another way) is
  checked with ``ensure_created`` (identical content = done); any other refusal fails the
  job permanently, naming the IUPDs and GPD's reasons.

``sportello pagopa import`` uses it in GPD mode when more than the tenant's
``pagopa.bulk_threshold`` positions are new (GPD-upload only creates published positions,
so ``--draft`` imports keep one job per position).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from sportello.connectors.errors import PermanentError
from sportello.connectors.pagopa.gpd import PRODUCTION_BASE_URL, GpdClient
from sportello.connectors.pagopa.models import DebtPosition
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.pagopa.store import (
    GPD_CREATE_KIND,
    PagopaStore,
    PagopaStoreError,
    StoredPosition,
    _gpd_key,
    gpd_lock,
)
from sportello.platforms.pagopa.tables import positions
from sportello.schema import outbox, outbox_locks
from sportello.services import HubServices

__all__ = ["BULK_BATCH", "GPD_BULK_KIND", "bulk_key", "create_positions_bulk", "gpd_bulk_handler"]

GPD_BULK_KIND = "pagopa.gpd.bulk"
#: Positions per upload (GPD-upload takes up to 100 MB; a thousand keeps retries cheap).
BULK_BATCH = 1000
#: Seconds between two status polls, and the longest an upload may take.
POLL_INTERVAL = 1.0
MAX_WAIT = 1800.0


def bulk_key(tenant_id: str, iupds: Sequence[str]) -> str:
    """The outbox idempotency key of one batch (fits the 100-character column)."""
    digest = hashlib.sha256("\0".join([tenant_id, *sorted(iupds)]).encode()).hexdigest()
    return f"{GPD_BULK_KIND}:{digest}"


async def create_positions_bulk(
    store: PagopaStore,
    tenant_id: str,
    items: Sequence[tuple[Any, dict[str, Any]]],
    *,
    to_publish: bool = True,
) -> list[tuple[Any, StoredPosition | PagopaStoreError]]:
    """Store ``items`` (a caller's tag, the position's fields) in one transaction and queue
    one bulk upload for the new ones; returns each tag with its stored position or error."""
    settings = store.settings(tenant_id)
    out: list[tuple[Any, StoredPosition | PagopaStoreError]] = []
    async with store.engine.begin() as conn:
        for tag, raw in items:
            try:
                async with conn.begin_nested():
                    stored = await store.create_in(
                        conn, tenant_id, settings, copy.deepcopy(raw), to_publish
                    )
            except PagopaStoreError as exc:
                out.append((tag, exc))
                continue
            out.append((tag, stored))
        new = [s.iupd for _, s in out if isinstance(s, StoredPosition) and s.created]
        if new and settings.mode == "gpd":
            keys = [_gpd_key(tenant_id, iupd) for iupd in new]
            for start in range(0, len(keys), 500):
                replaced = select(outbox.c.id).where(
                    outbox.c.kind == GPD_CREATE_KIND,
                    outbox.c.status == "pending",
                    outbox.c.idempotency_key.in_(keys[start : start + 500]),
                )
                await conn.execute(
                    delete(outbox_locks).where(outbox_locks.c.outbox_id.in_(replaced))
                )
                await conn.execute(delete(outbox).where(outbox.c.id.in_(replaced)))
            await enqueue_many(
                conn,
                [
                    NewJob(
                        tenant_id,
                        GPD_BULK_KIND,
                        {"iupds": new, "to_publish": to_publish},
                        idempotency_key=bulk_key(tenant_id, new),
                        # each position's lock: its changes wait for the upload
                        lock=[gpd_lock(tenant_id, iupd) for iupd in new],
                    )
                ],
                now=store.clock.now(),
                default_max_attempts=store.config.outbox.max_attempts,
            )
    return out


async def _load(store: PagopaStore, tenant_id: str, iupds: list[str]) -> list[DebtPosition]:
    found: dict[str, DebtPosition] = {}
    async with store.engine.connect() as conn:
        for start in range(0, len(iupds), 500):
            rows = await conn.execute(
                select(positions.c.iupd, positions.c.content).where(
                    positions.c.tenant_id == tenant_id,
                    positions.c.iupd.in_(iupds[start : start + 500]),
                )
            )
            for row in rows:
                found[row.iupd] = DebtPosition.from_stored(row.content)
    missing = [i for i in iupds if i not in found]
    if missing:
        raise PermanentError(
            f"{len(missing)} positions of the bulk upload are not stored (e.g. {missing[0]})",
            platform="gpd",
        )
    return [found[i] for i in iupds]


def gpd_bulk_handler(services: HubServices) -> Handler:
    store = PagopaStore(services.engine, services.config, services.clock)

    async def handle(job: Job) -> Delivery:
        settings = store.settings(job.tenant_id)
        if settings.api_key is None:
            raise PermanentError("the tenant's pagopa.api_key is not configured", platform="gpd")
        iupds = [str(i) for i in job.payload["iupds"]]
        loaded = await _load(store, job.tenant_id, iupds)
        by_iupd = dict(zip(iupds, loaded, strict=True))
        client = GpdClient(
            services.session,
            settings.base_url or PRODUCTION_BASE_URL,
            api_key=settings.api_key.reveal,
            broker_code=settings.broker_id,
        )
        org = settings.ec_fiscal_code
        file_id = await client.bulk_upload(org, loaded)
        report = await client.wait_for_bulk(
            org, file_id, poll_interval=POLL_INTERVAL, max_wait=MAX_WAIT
        )
        refused: dict[str, str] = {}
        for iupd, entry in report.failed.items():
            if iupd not in by_iupd:
                continue
            if entry.status_code == 409:
                # already in GPD: done if it is the position we sent
                await client.ensure_created(
                    org, by_iupd[iupd], to_publish=bool(job.payload.get("to_publish", True))
                )
            else:
                refused[iupd] = f"{entry.status_code} {entry.message}"[:200]
        unreported = set(iupds) - set(report.succeeded) - set(report.failed)
        for iupd in sorted(unreported):
            refused[iupd] = "not in GPD's report"
        if refused:
            shown = json.dumps(dict(list(refused.items())[:20]))
            raise PermanentError(
                f"GPD refused {len(refused)} of {len(iupds)} positions of upload {file_id}: "
                f"{shown}",
                platform="gpd",
            )
        return Delivery(remote_id=file_id[:200])

    return handle

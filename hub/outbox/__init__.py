"""Durable outbox: outbound work written in the business transaction, delivered by workers
with a lease, retried with backoff, recorded in a permanent ledger. See docs/outbox.md."""

from .store import Job, NewJob, enqueue_many, new_idempotency_key
from .worker import Delivery, Handler, OutboxWorker

__all__ = [
    "Delivery",
    "Handler",
    "Job",
    "NewJob",
    "OutboxWorker",
    "enqueue_many",
    "new_idempotency_key",
]

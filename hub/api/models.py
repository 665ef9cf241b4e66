"""The API kernel's response models (pydantic): they are the schemas of the OpenAPI
document (``sportello.api.openapi`` generates it from them and from each handler's
``@operation`` metadata). Handlers answer plain JSON; the contract tests check the answers
against these schemas.

Response models list what a handler may answer: a field without a default is always
present; ``absent()`` marks one that may be left out (it is not ``null`` unless its type
says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

OutboxStatus = Literal["pending", "running", "done", "failed", "cancelled"]


def absent(description: str | None = None) -> Any:
    """A response field the answer may leave out (documented as not required)."""
    return Field(default=None, description=description)


class Problem(BaseModel):
    """An RFC 9457 problem document; some carry more members (``errors``: what is wrong,
    field by field)."""

    type: str
    title: str
    status: int
    detail: str


class Tenant(BaseModel):
    id: str
    name: str
    ipa_code: str
    fiscal_code: str
    cadastral_code: str
    platforms: list[str]


class TenantDocument(BaseModel):
    """A tenant table as in a ``tenants_dir`` file, as JSON: the kernel's fields below and
    the platforms' sections (``pagopa``, ``spid``...), validated by the hub's tenant model
    exactly as at start-up. Secrets are references: ``{"env": "NAME"}`` or
    ``{"file": "/path"}``."""

    model_config = {"extra": "allow"}

    id: str
    name: str
    ipa_code: str
    fiscal_code: str
    cadastral_code: str


class StoredTenant(BaseModel):
    """A tenant stored in the database (admin API, ``sportello tenants add``)."""

    id: str
    name: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str


class LedgerEntry(BaseModel):
    id: int = absent()
    outbox_id: int = absent()
    tenant_id: str = absent()
    kind: str = absent()
    idempotency_key: str = absent()
    attempt: int
    outcome: str
    worker: str
    remote_id: str | None = None
    error: str | None = None
    recorded_at: datetime


class OutboxJob(BaseModel):
    id: int
    tenant_id: str
    kind: str
    idempotency_key: str
    status: OutboxStatus
    attempts: int
    max_attempts: int = absent()
    next_attempt_at: datetime = absent()
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None
    remote_id: str | None = None
    created_at: datetime = absent()
    updated_at: datetime = absent()
    finished_at: datetime | None = None
    lock: str | None = None
    ledger: list[LedgerEntry] = absent()


class AuditEntry(BaseModel):
    id: int
    at: datetime
    tenant_id: str
    actor: str
    action: str
    subject: str
    purpose: str
    sources: str = absent()
    outcome: str
    detail: str | None = None
    request_id: str | None = None


_PAGES: dict[type[BaseModel], type[BaseModel]] = {}


def page_of(item: type[BaseModel]) -> type[BaseModel]:
    """The model of a page of ``item``s (``<Item>Page``): ``items`` and the ``next`` cursor."""
    if item not in _PAGES:
        _PAGES[item] = create_model(
            f"{item.__name__}Page",
            __module__=item.__module__,
            items=(list[item], ...),  # type: ignore[valid-type]
            next=(
                str | None,
                Field(description="pass as ?after= to get the next page; null on the last page"),
            ),
        )
    return _PAGES[item]

"""The kernel's tables (SQLAlchemy Core) and the shared ``metadata``.

Platforms define their tables on this ``metadata`` in their own ``tables.py`` and list them
in their ``hub_tables`` hook; this module imports no platform. :func:`all_tables` loads every
plugin's tables. Alembic migrations in ``sportello.migrations`` create exactly the schema of
the kernel plus every platform (``tests/kernel/test_storage.py`` checks they agree)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# SQLite has no BIGINT autoincrement: map it to INTEGER there (which is the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (so comparisons are portable)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - defensive, SQLAlchemy parses it
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("ipa_code", String(20), nullable=False),
    Column("fiscal_code", String(16), nullable=False),
    Column("cadastral_code", String(4), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Status values of an outbox row. `running` rows carry a lease; an expired lease means the
# worker died and the row is claimable again.
PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
STATUSES = (PENDING, RUNNING, DONE, FAILED, CANCELLED)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("kind", String(80), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("max_attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("remote_id", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    # The job's lock key (the first when it holds several), NULL for most jobs: the claim
    # consults ``outbox_locks`` (indexed by key) only for rows that have one.
    Column("lock", String(200), nullable=True),
    UniqueConstraint("idempotency_key"),
    Index("ix_outbox_claim", "status", "next_attempt_at"),
    Index("ix_outbox_tenant_status", "tenant_id", "status"),
)

# Every lock key of every job that has one (a bulk job holds one per position it covers).
# The claim never takes a job while a job of one of its keys is running, or an earlier one
# (by id) is pending: the jobs of one key run one at a time, in the order they were queued.
outbox_locks = Table(
    "outbox_locks",
    metadata,
    Column("lock_key", String(200), primary_key=True),
    Column("outbox_id", Id, primary_key=True, autoincrement=False),
    Index("ix_outbox_locks_outbox", "outbox_id"),
)

# The ledger is append-only: one row per attempt outcome, kept after the outbox row is done.
ledger = Table(
    "outbox_ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", Id, nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("kind", String(80), nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("worker", String(100), nullable=False),
    Column("remote_id", String(200), nullable=True),
    Column("error", Text(), nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_outbox_ledger_outbox", "outbox_id"),
)

# Ledger outcomes.
OK, RETRY, GAVE_UP, LEASE_LOST, OPERATOR = "ok", "retry", "failed", "lease_lost", "operator"

# Every read of personal data (ANPR, the comune's registry) leaves one row here: who asked,
# for which tenant, about whom, why, and what came of it. Append-only: triggers created by
# migration 0002 refuse UPDATE and DELETE on both backends.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("action", String(80), nullable=False),
    Column("subject", String(32), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("sources", String(80), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("detail", Text(), nullable=True),
    Column("request_id", String(64), nullable=True),
    Index("ix_audit_log_tenant_at", "tenant_id", "at"),
    Index("ix_audit_log_tenant_subject", "tenant_id", "subject"),
)

# API keys for software houses: stored as a SHA-256 of a 256-bit random secret (a slow hash
# adds nothing for secrets of that entropy), scoped to one tenant (or none, for admin keys).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("tenant_id", String(40), nullable=True),
    Column("name", String(120), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
)

# Calls made per rate-limited key (e.g. an App IO service key), shared by every replica:
# a sliding log, trimmed as it goes. `rate_limit_keys` holds one row per key to lock on.
rate_limit_keys = Table(
    "rate_limit_keys",
    metadata,
    Column("key", String(120), primary_key=True),
)
rate_limit_events = Table(
    "rate_limit_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(120), nullable=False),
    Column("at", Float(), nullable=False),
    Index("ix_rate_limit_events_key_at", "key", "at"),
)

# Answers to POST requests by Idempotency-Key, so a repeated request gets the same answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Leases of the periodic tasks (``sportello.periodic``): one row per task, held by at most
# one replica until ``expires_at``; ``last_run_at`` is when its last round ended.
periodic_leases = Table(
    "periodic_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(120), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("last_run_at", UTCDateTime(), nullable=True),
)


# Tenants added through the admin API or `sportello tenants add`: the validated tenant table
# as JSON (secrets stay references). Removing a tenant deletes only its document, never its
# data. `config_generation` counts changes; replicas compare it to reload their tenants.
tenant_documents = Table(
    "tenant_documents",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("document", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

config_generation = Table(
    "config_generation",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("generation", BigInteger(), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
)

# The last result of each tenant check (``sportello tenants status --check``, onboarding):
# what ``tenants status`` shows without asking the platforms again. One row per check.
tenant_checks = Table(
    "tenant_checks",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("platform", String(40), primary_key=True),
    Column("name", String(80), primary_key=True),
    Column("ok", Boolean(), nullable=False),
    Column("detail", Text(), nullable=False),
    Column("checked_at", UTCDateTime(), nullable=False),
)


# Browser sessions of the hub's own pages (``sportello.web.sessions``): the front office's
# citizens (audience ``sportello``) and the console's operators (``console``). The cookie
# holds a random token; only its SHA-256 is stored. ``data`` is the JSON the page keeps
# (the identity of a login); ``csrf`` the token every form of the session carries.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("audience", String(20), nullable=False),
    Column("tenant_id", String(40), nullable=True),
    Column("subject", String(200), nullable=False),
    Column("data", Text(), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_web_sessions_expires_at", "expires_at"),
    Index("ix_web_sessions_audience_subject", "audience", "subject"),
)


def all_tables(plugins: Any = None) -> MetaData:
    """``metadata`` with every plugin's tables on it (``hub_tables``): what the migrations
    must create. ``plugins``: a ``sportello.plugins.Plugins`` (default: all installed)."""
    if plugins is None:
        from .plugins import Plugins

        plugins = Plugins()
    for table in plugins.tables():
        if table.metadata is not metadata:
            raise ValueError(f"table {table.name!r} is not on sportello.schema.metadata")
    return metadata

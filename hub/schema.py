"""The hub's own tables (SQLAlchemy Core). Alembic migrations in ``sportello.migrations``
create exactly this schema; ``tests/integration/test_migrations.py`` checks they agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    UniqueConstraint("idempotency_key"),
    Index("ix_outbox_claim", "status", "next_attempt_at"),
    Index("ix_outbox_tenant_status", "tenant_id", "status"),
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

# App IO: campaigns (many messages from one CSV and one template) and every message sent.
io_campaigns = Table(
    "io_campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("subject_template", Text(), nullable=False),
    Column("markdown_template", Text(), nullable=False),
    Column("source", String(300), nullable=False),
    Column("rows_total", Integer(), nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_io_campaigns_tenant", "tenant_id"),
)

# Message statuses: queued -> sending -> sent -> processed | rejected, or a final
# not_on_io, sender_not_allowed, failed, or unknown (the call may have reached IO and its
# answer was lost: IO has no idempotency key, so it is never resent without an operator).
io_messages = Table(
    "io_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("campaign_id", Id, nullable=True),
    Column("row_number", Integer(), nullable=True),
    Column("fiscal_code", String(16), nullable=False),
    Column("content", Text(), nullable=False),
    Column("feature_level_type", String(12), nullable=False),
    Column("expedition_at", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("io_message_id", String(40), nullable=True),
    Column("error", Text(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Index("ix_io_messages_campaign_status", "campaign_id", "status"),
    Index("ix_io_messages_tenant_status", "tenant_id", "status"),
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

# Where each tenant's SUAP change feed was last read (notifications resume from here).
suap_cursors = Table(
    "suap_cursors",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("last_seen", UTCDateTime(), nullable=False),
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

# SPID/CIE: AuthnRequests waiting for their Response, bound to one browser (cookie hash).
saml_requests = Table(
    "saml_requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("browser_hash", String(64), nullable=False),
    Column("idp_entity_id", String(1024), nullable=False),
    Column("level", Integer(), nullable=False),
    Column("comparison", String(10), nullable=False),
    Column("issue_instant", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("return_to", Text(), nullable=True),
    Column("client_state", String(200), nullable=True),
    Column("consumed_at", UTCDateTime(), nullable=True),
    Index(None, "expires_at"),
)

# Assertion IDs already accepted, kept until the assertion's NotOnOrAfter (replay cache).
saml_assertions = Table(
    "saml_assertions",
    metadata,
    Column("idp_entity_id", String(1024), primary_key=True),
    Column("assertion_id", String(128), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)

# Logged-in browsers (what SLO ends): no attributes, only what a LogoutRequest needs.
login_sessions = Table(
    "login_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("idp_entity_id", String(1024), nullable=False),
    Column("name_id", String(256), nullable=False),
    Column("name_qualifier", String(1024), nullable=False),
    Column("session_index", String(256), nullable=True),
    Column("level", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Index(None, "tenant_id", "name_id"),
)

# One-time authorization codes handing an identity to the tenant's application.
login_codes = Table(
    "login_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("identity", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
)

# pagoPA tables live in their own module; importing it registers them in `metadata`.
from sportello.platforms.pagopa import fdr_tables as pagopa_fdr_tables  # noqa: E402, F401
from sportello.platforms.pagopa import receipts_tables as pagopa_receipts_tables  # noqa: E402, F401
from sportello.platforms.pagopa import tables as pagopa_tables  # noqa: E402, F401

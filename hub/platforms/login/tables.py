"""SPID/CIE login tables (migration 0006): pending requests, replay guard, sessions, codes.

Defined on the shared ``sportello.schema.metadata``; the platform lists them in its
``hub_tables`` hook (migrations and the schema test load every platform's tables that way).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from sportello.schema import UTCDateTime, metadata

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

# SPID/CIE OpenID Connect: authorization requests waiting for their callback (migration 0014),
# keyed by the sha256 of ``state``, bound to one browser (cookie hash), used once. ``pending``
# is the connector's PendingAuthorization (nonce, PKCE verifier) as JSON.
oidc_requests = Table(
    "oidc_requests",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("browser_hash", String(64), nullable=False),
    Column("provider", String(1024), nullable=False),
    Column("pending", Text(), nullable=False),
    Column("return_to", Text(), nullable=True),
    Column("client_state", String(200), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("consumed_at", UTCDateTime(), nullable=True),
    Index(None, "expires_at"),
)

# SPID/CIE OpenID Connect logins (migration 0017): what logout needs to revoke at the OP. One
# row per login session; ``access_token`` is a JWE for the RP's own encryption key (so only a
# replica holding the tenant's keys can read it), wiped once revoked, expired or ended.
oidc_sessions = Table(
    "oidc_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("tenant_id", String(40), nullable=False),
    Column("provider", String(1024), nullable=False),
    Column("access_token", Text(), nullable=True),
    Column("token_expires_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("logout_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoke_error", String(200), nullable=True),
    Index(None, "expires_at"),
)

# The trust marks each tenant's RP publishes, as the periodic refresh last obtained them from
# their issuers (migration 0017), shared by every replica; ``trust_marks.json`` (onboarding)
# is the fallback for ids not refreshed yet.
oidc_trust_marks = Table(
    "oidc_trust_marks",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("mark_id", String(512), primary_key=True),
    Column("issuer", String(1024), nullable=False),
    Column("trust_mark", Text(), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("refreshed_at", UTCDateTime(), nullable=False),
)

"""The operator console's tables (migration branch ``console``).

- ``console_users``: the software house's operators with a local account (admins: every
  tenant). The password is stored as its scrypt hash with a per-user salt; the TOTP secret
  encrypted with the master key when one is configured (``sportello.secrets``);
  ``totp_last_step`` is the last time step accepted, so a code is never accepted twice.
- ``console_staff``: comune staff added with the CLI (besides ``[tenants.console] staff``),
  by tenant and fiscal code, with their role (``staff`` or ``tenant-admin``).
- ``console_attempts``: wrong passwords and TOTP codes by account, counted with one atomic
  upsert before the factor is checked; ``locked_until`` set once the limit is reached.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from sportello.schema import UTCDateTime, metadata

console_users = Table(
    "console_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(128), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("totp_secret", String(300), nullable=False),
    Column("totp_last_step", Integer(), nullable=True),
    Column("enrolled_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
)

console_staff = Table(
    "console_staff",
    metadata,
    Column("tenant_id", String(40), primary_key=True),
    Column("fiscal_code", String(16), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

console_attempts = Table(
    "console_attempts",
    metadata,
    Column("account", String(80), primary_key=True),
    Column("attempts", Integer(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

"""The console's accounts: software-house admins with a password and TOTP, comune staff by
fiscal code, and the limit on wrong login attempts.

Passwords are hashed with scrypt (``hashlib.scrypt``, N=2**14, r=8, p=1) and a random
per-user salt, and compared in constant time. The TOTP (RFC 6238, 30-second steps, six
digits, one step of drift either way) comes from ``pyotp``; the step of the last accepted
code is stored, so a code (or an earlier one) is never accepted twice.

Every wrong password or code counts against the account in ``console_attempts``: an
attempt takes its number with one atomic upsert *before* the factor is checked, so however
many arrive at once (any replica, SQLite or PostgreSQL) at most ``max_attempts`` are
checked before the account is locked for ``lock_minutes``. A name that is no account counts
the same way and costs the same scrypt time, so the answers do not tell names apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import secrets as sealed
from sportello.config import HubConfig

from .settings import ConsoleSettings, console_tenant_settings, normal_fiscal_code
from .tables import console_attempts, console_staff, console_users

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
ADMIN = "admin"
MAX_NAME = 64
_DUMMY_SALT = "00" * 16


class Locked(Exception):
    """Too many wrong attempts: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


class AccountError(Exception):
    """A CLI command that cannot be done (the name is taken, a bad fiscal code...)."""


def hash_password(password: str, salt_hex: str) -> str:
    digest = hashlib.scrypt(
        password.encode(),
        salt=bytes.fromhex(salt_hex),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_LEN,
        maxmem=64 * 1024 * 1024,
    )
    return digest.hex()


def verify_password(password: str, salt_hex: str, stored: str) -> bool:
    return hmac.compare_digest(hash_password(password, salt_hex), stored)


def _seal(secret: str) -> str:
    """The TOTP secret as stored: encrypted when a master key is configured."""
    return sealed.encrypt(secret.encode()) if sealed.master_keys() else secret


def _unseal(stored: str) -> str:
    return (
        sealed.decrypt(stored, source="console TOTP secret").decode()
        if sealed.is_encrypted(stored)
        else stored
    )


def valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and all(c.isalnum() or c in "._-@" for c in name)


def totp_uri(secret: str, name: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


@dataclass(frozen=True)
class NewUser:
    name: str
    secret: str  # shown once
    uri: str


async def add_user(
    conn: AsyncConnection,
    name: str,
    password: str,
    *,
    now: datetime,
    issuer: str,
    role: str = ADMIN,
    secret: str | None = None,
) -> NewUser:
    """A new local account; its TOTP secret and ``otpauth://`` URI (shown once)."""
    if not valid_name(name):
        raise AccountError(f"name {name!r}: 1-{MAX_NAME} letters, digits or . _ - @")
    if len(password) < 12:
        raise AccountError("password: at least 12 characters")
    exists = await conn.scalar(sa.select(console_users.c.name).where(console_users.c.name == name))
    if exists is not None:
        raise AccountError(f"user {name!r} exists")
    salt = secrets.token_hex(16)
    secret = secret or pyotp.random_base32()
    await conn.execute(
        sa.insert(console_users).values(
            name=name,
            role=role,
            password_hash=hash_password(password, salt),
            salt=salt,
            totp_secret=_seal(secret),
            totp_last_step=None,
            enrolled_at=None,
            created_at=now,
            disabled_at=None,
        )
    )
    return NewUser(name, secret, totp_uri(secret, name, issuer))


async def list_users(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(
            console_users.c.name,
            console_users.c.role,
            console_users.c.enrolled_at,
            console_users.c.created_at,
            console_users.c.disabled_at,
        ).order_by(console_users.c.name)
    )
    return [dict(r._mapping) for r in rows]


async def disable_user(conn: AsyncConnection, name: str, *, now: datetime) -> bool:
    result = await conn.execute(
        sa.update(console_users)
        .where(console_users.c.name == name, console_users.c.disabled_at.is_(None))
        .values(disabled_at=now)
    )
    return bool(result.rowcount)


async def user(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(console_users).where(console_users.c.name == name))).first()
    return dict(row._mapping) if row is not None else None


def user_secret(row: dict[str, Any]) -> str:
    return _unseal(str(row["totp_secret"]))


# --- the attempt limit ---------------------------------------------------------------------


def _upsert(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(console_attempts)


def _wait(locked_until: datetime, now: datetime) -> int:
    return max(1, int((locked_until - now).total_seconds() + 0.999))


async def take_attempt(
    conn: AsyncConnection, account: str, settings: ConsoleSettings, now: datetime
) -> int:
    """The next attempt's number for ``account`` (commit before checking the factor), or
    :class:`Locked`. An expired lock starts the count again."""
    t = console_attempts
    expired = sa.and_(t.c.locked_until.is_not(None), t.c.locked_until <= now)
    stmt = _upsert(conn).values(account=account, attempts=1, locked_until=None, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.account],
        set_={
            "attempts": sa.case((expired, 1), else_=t.c.attempts + 1),
            "locked_until": sa.case((expired, None), else_=t.c.locked_until),
            "updated_at": now,
        },
    ).returning(t.c.attempts, t.c.locked_until)
    taken, locked_until = (await conn.execute(stmt)).one()
    if locked_until is None and taken > settings.max_attempts:
        locked_until = now + timedelta(minutes=settings.lock_minutes)
        await conn.execute(
            sa.update(t)
            .where(t.c.account == account, t.c.locked_until.is_(None))
            .values(locked_until=locked_until)
        )
    if locked_until is not None:
        raise Locked(_wait(locked_until, now))
    return int(taken)


async def attempt_failed(
    conn: AsyncConnection, account: str, taken: int, settings: ConsoleSettings, now: datetime
) -> None:
    """Attempt ``taken`` was wrong: the last allowed one locks the account."""
    if taken < settings.max_attempts:
        return
    t = console_attempts
    await conn.execute(
        sa.update(t)
        .where(t.c.account == account, t.c.locked_until.is_(None))
        .values(locked_until=now + timedelta(minutes=settings.lock_minutes))
    )


async def attempt_succeeded(conn: AsyncConnection, account: str, now: datetime) -> None:
    """A right factor: the count starts again (a lock set meanwhile stays)."""
    t = console_attempts
    await conn.execute(
        sa.update(t)
        .where(t.c.account == account, t.c.locked_until.is_(None))
        .values(attempts=0, updated_at=now)
    )


def account_key(name: str) -> str:
    return f"user:{name[:MAX_NAME]}"


async def check_password(
    engine: Any, name: str, password: str, settings: ConsoleSettings, now: datetime
) -> dict[str, Any] | None:
    """The account when ``password`` is its password (and it is enabled), else None;
    :class:`Locked` when too many wrong attempts were made."""
    key = account_key(name)
    async with engine.begin() as conn:
        taken = await take_attempt(conn, key, settings, now)
        row = await user(conn, name[:MAX_NAME]) if valid_name(name) else None
    if row is None or row["disabled_at"] is not None:
        # the same time as a real check
        await asyncio.to_thread(verify_password, password[:1024], _DUMMY_SALT, "0" * 64)
        ok = False
    else:
        ok = await asyncio.to_thread(
            verify_password, password[:1024], str(row["salt"]), str(row["password_hash"])
        )
    async with engine.begin() as conn:
        if ok:
            # a right password gives its attempt back but does not reset the count: wrong
            # codes after it keep counting towards the lock
            t = console_attempts
            await conn.execute(
                sa.update(t)
                .where(t.c.account == key, t.c.locked_until.is_(None), t.c.attempts > 0)
                .values(attempts=t.c.attempts - 1)
            )
            return row
        await attempt_failed(conn, key, taken, settings, now)
    return None


async def check_totp(
    engine: Any, name: str, code: str, settings: ConsoleSettings, now: datetime
) -> bool:
    """Whether ``code`` is the account's current TOTP (one step of drift), not used before.
    Counts against the same limit as the password; a right code resets the count and, on
    the first use, marks the account enrolled."""
    key = account_key(name)
    async with engine.begin() as conn:
        taken = await take_attempt(conn, key, settings, now)
        row = await user(conn, name)
    step = None
    # ASCII digits only: "²" or "١" pass str.isdigit() and make hmac.compare_digest raise
    digits = code.isascii() and code.isdigit() and len(code) == 6
    if row is not None and row["disabled_at"] is None and digits:
        totp = pyotp.TOTP(user_secret(row))
        base = int(now.timestamp()) // totp.interval
        for candidate in (base, base - 1, base + 1):
            if hmac.compare_digest(totp.generate_otp(candidate), code):
                step = candidate
                break
    async with engine.begin() as conn:
        if step is not None:
            # atomic: a code (or an older one) is accepted once, even by two replicas at once
            t = console_users
            result = await conn.execute(
                sa.update(t)
                .where(
                    t.c.name == name,
                    sa.or_(t.c.totp_last_step.is_(None), t.c.totp_last_step < step),
                )
                .values(
                    totp_last_step=step,
                    enrolled_at=sa.func.coalesce(t.c.enrolled_at, now),
                )
            )
            if result.rowcount:
                await attempt_succeeded(conn, key, now)
                return True
        await attempt_failed(conn, key, taken, settings, now)
    return False


# --- comune staff ---------------------------------------------------------------------------


async def staff_role(
    conn: AsyncConnection, config: HubConfig, tenant_id: str, fiscal_code: str
) -> str | None:
    """The role of ``fiscal_code`` in the tenant's console (``[tenants.console] staff``
    first, then those added with the CLI), or None: not staff of this comune."""
    code = fiscal_code.strip().upper()
    tenant = config.tenant(tenant_id)
    settings = console_tenant_settings(tenant) if tenant is not None else None
    for member in settings.staff if settings is not None else []:
        if member.fiscal_code == code:
            return member.role
    role = await conn.scalar(
        sa.select(console_staff.c.role).where(
            console_staff.c.tenant_id == tenant_id, console_staff.c.fiscal_code == code
        )
    )
    return str(role) if role is not None else None


async def add_staff(
    conn: AsyncConnection, tenant_id: str, fiscal_code: str, role: str, *, now: datetime
) -> None:
    try:
        code = normal_fiscal_code(fiscal_code)
    except ValueError as exc:
        raise AccountError(f"fiscal code: {exc}") from None
    await conn.execute(
        sa.delete(console_staff).where(
            console_staff.c.tenant_id == tenant_id, console_staff.c.fiscal_code == code
        )
    )
    await conn.execute(
        sa.insert(console_staff).values(
            tenant_id=tenant_id, fiscal_code=code, role=role, created_at=now
        )
    )


async def remove_staff(conn: AsyncConnection, tenant_id: str, fiscal_code: str) -> bool:
    result = await conn.execute(
        sa.delete(console_staff).where(
            console_staff.c.tenant_id == tenant_id,
            console_staff.c.fiscal_code == fiscal_code.strip().upper(),
        )
    )
    return bool(result.rowcount)


async def list_staff(conn: AsyncConnection, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(console_staff).order_by(
        console_staff.c.tenant_id, console_staff.c.fiscal_code
    )
    if tenant_id is not None:
        query = query.where(console_staff.c.tenant_id == tenant_id)
    return [dict(r._mapping) for r in await conn.execute(query)]

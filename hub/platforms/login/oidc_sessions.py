"""What SPID/CIE OpenID Connect logout needs from a login, kept in ``oidc_sessions``.

The access token is sealed as a JWE (RSA-OAEP-256, A256GCM) for the RP's own encryption
key: a database dump alone holds no usable token, and the token is never logged. A token
sealed before a rotation of that key cannot be opened afterwards (retired entries keep
public keys only): that logout ends the local session and says the provider was not told.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from sqlalchemy import insert, select, update

from sportello.connectors.oidc.keys import RpKeys
from sportello.connectors.oidc.tokens import decrypt_jwe
from sportello.db import reading
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.login.store import SESSION_TTL, LoginStore
from sportello.platforms.login.tables import login_sessions, oidc_sessions

log = logging.getLogger("sportello.platforms.login.oidc")

_SEAL_ALG, _SEAL_ENC = "RSA-OAEP-256", "A256GCM"


def seal(keys: RpKeys, token: str) -> str:
    """``token`` as a compact JWE for the RP's active encryption key."""
    key = keys.encryption.active
    header = {"alg": _SEAL_ALG, "enc": _SEAL_ENC, "kid": key.kid, "cty": "sportello-token"}
    return jwe.encrypt_compact(
        header, token.encode("ascii"), key, algorithms=[_SEAL_ALG, _SEAL_ENC]
    )


def unseal(keys: RpKeys, sealed: str) -> str:
    """The token :func:`seal` sealed; ``OidcError`` when this key cannot open it."""
    _header, plain = decrypt_jwe(sealed, keys.decryption_keys(), algs=[_SEAL_ALG], encs=[_SEAL_ENC])
    return plain.decode("ascii")


async def remember_tokens(
    store: LoginStore,
    *,
    keys: RpKeys,
    session_id: str,
    tenant_id: str,
    provider: str,
    access_token: str,
    expires_in: int | None,
    now: datetime,
) -> None:
    """Keep (sealed) what logout needs to revoke this login's access token."""
    try:
        sealed: str | None = seal(keys, access_token)
    except (JoseError, ValueError, UnicodeEncodeError) as exc:
        log.warning("OIDC access token not kept: %s", type(exc).__name__)
        sealed = None
    lifetime = timedelta(seconds=expires_in) if expires_in and expires_in > 0 else SESSION_TTL
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(oidc_sessions).values(
                session_id=session_id,
                tenant_id=tenant_id,
                provider=provider,
                access_token=sealed,
                token_expires_at=now + min(lifetime, SESSION_TTL),
                expires_at=now + SESSION_TTL,
            )
        )


async def session_row(store: LoginStore, session_id: str) -> dict[str, Any] | None:
    async with reading(store.engine) as conn:
        row = (
            (
                await conn.execute(
                    select(
                        login_sessions.c.tenant_id,
                        login_sessions.c.kind,
                        login_sessions.c.ended_at,
                        oidc_sessions.c.provider,
                        oidc_sessions.c.access_token,
                        oidc_sessions.c.token_expires_at,
                    )
                    .select_from(
                        login_sessions.outerjoin(  # a session whose tokens were not kept
                            oidc_sessions,  # still ends (nothing to revoke)
                            oidc_sessions.c.session_id == login_sessions.c.session_id,
                        )
                    )
                    .where(login_sessions.c.session_id == session_id)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def end_session(store: LoginStore, session_id: str, tenant_id: str, now: datetime) -> bool:
    """End the local session; False when it had already ended (another logout got there)."""
    async with store.engine.begin() as conn:
        done = await conn.execute(
            update(login_sessions)
            .where(
                login_sessions.c.session_id == session_id,
                login_sessions.c.tenant_id == tenant_id,
                login_sessions.c.ended_at.is_(None),
            )
            .values(ended_at=now)
        )
        if done.rowcount != 1:
            return False
        await conn.execute(
            update(oidc_sessions)
            .where(oidc_sessions.c.session_id == session_id)
            .values(logout_at=now)
        )
    return True


async def settle(
    store: LoginStore,
    session_id: str,
    now: datetime,
    error: str | None,
    *,
    retry: NewJob | None = None,
    max_attempts: int = 12,
) -> None:
    """Record the revocation's outcome. The token is wiped once revoked, or when nothing more
    will be tried; with ``retry`` it stays sealed for the outbox job, queued in the same
    transaction."""
    values: dict[str, Any] = {"revoke_error": error}
    if error is None:
        values.update(revoked_at=now, access_token=None)
    elif retry is None:
        values.update(access_token=None)
    async with store.engine.begin() as conn:
        await conn.execute(
            update(oidc_sessions).where(oidc_sessions.c.session_id == session_id).values(**values)
        )
        if retry is not None:
            await enqueue_many(conn, [retry], now=now, default_max_attempts=max_attempts)

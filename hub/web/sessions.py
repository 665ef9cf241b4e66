"""Browser sessions and CSRF protection for the hub's own pages.

A session is a row of ``web_sessions``: the browser holds a random 256-bit token in an
HttpOnly cookie (``__Host-`` prefixed under https), the database only its SHA-256, so a
copy of the database opens no session. A session ends at ``expires_at`` (absolute), after
``idle`` without a request, or when revoked (logout); every replica sees the same rows.

Forms carry a CSRF token: the session's own (synchronizer token) or, before any login, a
random value that must equal a cookie's (double submit; the cookie is SameSite=Lax and
HttpOnly, and a cross-site page can neither read nor set it under ``__Host-``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import HubConfig
from ..schema import web_sessions

CSRF_FIELD = "csrf_token"
_ANON_CSRF = "sportello-csrf"
#: last_seen_at is written at most this often (not on every request)
_TOUCH = timedelta(minutes=1)


def _secure(config: HubConfig) -> bool:
    url = config.server.public_url
    return bool(url) and str(url).startswith("https://")


def cookie_name(config: HubConfig, name: str) -> str:
    return f"__Host-{name}" if _secure(config) else name


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebSession:
    audience: str
    tenant_id: str | None
    subject: str
    data: dict[str, Any]
    csrf: str
    created_at: datetime
    expires_at: datetime
    token_hash: str = field(repr=False)


class WebSessions:
    """The sessions of one audience (``sportello``, ``console``): start, load, end."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: HubConfig,
        audience: str,
        *,
        lifetime: timedelta = timedelta(hours=8),
        idle: timedelta = timedelta(minutes=30),
    ) -> None:
        self.engine = engine
        self.config = config
        self.audience = audience
        self.lifetime = lifetime
        self.idle = idle
        self.cookie = f"sportello-{audience}"

    def _set(self, response: web.StreamResponse, value: str, max_age: int | None) -> None:
        response.set_cookie(
            cookie_name(self.config, self.cookie),
            value,
            httponly=True,
            secure=_secure(self.config),
            path="/",
            samesite="Lax",
            max_age=max_age,
        )

    async def start(
        self,
        response: web.StreamResponse,
        *,
        tenant_id: str | None,
        subject: str,
        data: dict[str, Any],
        now: datetime,
    ) -> WebSession:
        """A new session (a login): its cookie is set on ``response``."""
        token = secrets.token_urlsafe(32)
        digest, csrf, expires_at = _hash(token), secrets.token_urlsafe(32), now + self.lifetime
        async with self.engine.begin() as conn:
            # sessions a day past their end are of no use to anyone: delete them here
            await conn.execute(
                sa.delete(web_sessions).where(web_sessions.c.expires_at < now - timedelta(days=1))
            )
            await conn.execute(
                sa.insert(web_sessions).values(
                    token_hash=digest,
                    audience=self.audience,
                    tenant_id=tenant_id,
                    subject=subject,
                    data=json.dumps(data, separators=(",", ":"), sort_keys=True),
                    csrf=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                    revoked_at=None,
                )
            )
        self._set(response, token, int(self.lifetime.total_seconds()))
        return WebSession(
            audience=self.audience,
            tenant_id=tenant_id,
            subject=subject,
            data=data,
            csrf=csrf,
            created_at=now,
            expires_at=expires_at,
            token_hash=digest,
        )

    async def load(self, request: web.Request, *, now: datetime) -> WebSession | None:
        """The request's live session of this audience, or None."""
        token = request.cookies.get(cookie_name(self.config, self.cookie))
        if not token or len(token) > 100:
            return None
        digest = _hash(token)
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(web_sessions).where(web_sessions.c.token_hash == digest)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["audience"] != self.audience or row["revoked_at"] is not None:
            return None
        if row["expires_at"] <= now or row["last_seen_at"] + self.idle <= now:
            return None
        if now - row["last_seen_at"] >= _TOUCH:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.update(web_sessions)
                    .where(web_sessions.c.token_hash == digest)
                    .values(last_seen_at=now)
                )
        return WebSession(
            audience=row["audience"],
            tenant_id=row["tenant_id"],
            subject=row["subject"],
            data=json.loads(row["data"]),
            csrf=row["csrf"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            token_hash=digest,
        )

    async def end(
        self, request: web.Request, response: web.StreamResponse, *, now: datetime
    ) -> None:
        """Log out: the session is revoked (on every replica) and its cookie removed."""
        token = request.cookies.get(cookie_name(self.config, self.cookie))
        if token:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.update(web_sessions)
                    .where(
                        web_sessions.c.token_hash == _hash(token),
                        web_sessions.c.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
        response.del_cookie(
            cookie_name(self.config, self.cookie),
            path="/",
            secure=_secure(self.config),
            httponly=True,
            samesite="Lax",
        )

    async def revoke_subject(self, subject: str, *, now: datetime) -> int:
        """Revoke every session of ``subject`` (e.g. after a single logout from the IdP)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(web_sessions)
                .where(
                    web_sessions.c.audience == self.audience,
                    web_sessions.c.subject == subject,
                    web_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        return int(result.rowcount or 0)


def anonymous_csrf(request: web.Request, response: web.StreamResponse, config: HubConfig) -> str:
    """The CSRF token of a form shown before any login (double submit): the cookie's value,
    issued now when the browser has none."""
    name = cookie_name(config, _ANON_CSRF)
    value = request.cookies.get(name)
    if not value or len(value) != 43:
        value = secrets.token_urlsafe(32)
        response.set_cookie(
            name, value, httponly=True, secure=_secure(config), path="/", samesite="Lax"
        )
    return value


def csrf_valid(
    request: web.Request,
    form_value: object,
    config: HubConfig,
    session: WebSession | None,
) -> bool:
    """Whether a submitted form's token is the session's (or, without a session, equals
    the anonymous cookie). Compared in constant time."""
    if not isinstance(form_value, str) or not form_value:
        return False
    if session is not None:
        return hmac.compare_digest(form_value.encode(), session.csrf.encode())
    cookie = request.cookies.get(cookie_name(config, _ANON_CSRF))
    return bool(cookie) and hmac.compare_digest(form_value.encode(), str(cookie).encode())

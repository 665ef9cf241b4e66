"""What logins keep in the database, so any replica can finish what another started.

- pending AuthnRequests, bound to one browser (sha256 of a random cookie), used once;
- the replay cache of accepted assertion IDs, kept until the assertion expires;
- login sessions (only what SLO needs: NameID, SessionIndex, IdP);
- one-time handoff codes (sha256 stored; the identity is deleted once exchanged).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.config import HubConfig
from sportello.connectors.spid.models import Identity, Kind, PendingRequest
from sportello.db import reading
from sportello.events import emit
from sportello.platforms.login.tables import (
    login_codes,
    login_sessions,
    oidc_requests,
    oidc_sessions,
    saml_assertions,
    saml_requests,
)

PENDING_TTL = timedelta(minutes=15)
CODE_TTL = timedelta(seconds=120)
SESSION_TTL = timedelta(hours=8)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class LoginStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add_pending(
        self,
        *,
        tenant_id: str,
        kind: Kind,
        browser: str,
        pending: PendingRequest,
        return_to: str | None,
        client_state: str | None,
        now: datetime,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(saml_requests).values(
                    request_id=pending.request_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    browser_hash=digest(browser),
                    idp_entity_id=pending.idp_entity_id,
                    level=pending.level,
                    comparison=pending.comparison,
                    issue_instant=pending.issue_instant,
                    expires_at=now + PENDING_TTL,
                    return_to=return_to,
                    client_state=client_state,
                )
            )

    async def pending(
        self, *, request_id: str, tenant_id: str, kind: Kind, browser: str | None, now: datetime
    ) -> tuple[PendingRequest, dict[str, Any]] | str:
        """The open request this browser started, or why there is none (a short reason)."""
        async with reading(self.engine) as conn:
            row = (
                (
                    await conn.execute(
                        select(saml_requests).where(saml_requests.c.request_id == request_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["tenant_id"] != tenant_id or row["kind"] != kind:
            return "no pending request with that ID (unsolicited or for another service)"
        if browser is None or row["browser_hash"] != digest(browser):
            return "the request was started by another browser"
        if row["consumed_at"] is not None:
            return "the request was already answered (replay)"
        if row["expires_at"] <= now:
            return "the request expired"
        pending = PendingRequest(
            request_id=row["request_id"],
            issue_instant=row["issue_instant"],
            idp_entity_id=row["idp_entity_id"],
            level=row["level"],
            comparison=row["comparison"],
        )
        return pending, {"return_to": row["return_to"], "client_state": row["client_state"]}

    async def consume(self, request_id: str, now: datetime) -> bool:
        """Mark the request answered; False when another response got there first."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(saml_requests)
                .where(
                    saml_requests.c.request_id == request_id,
                    saml_requests.c.consumed_at.is_(None),
                )
                .values(consumed_at=now)
            )
        return result.rowcount == 1

    async def remember_assertion(
        self, idp_entity_id: str, assertion_id: str, expires_at: datetime
    ) -> bool:
        """Record an accepted assertion ID; False when it was seen before (replay)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(saml_assertions).values(
                        idp_entity_id=idp_entity_id,
                        assertion_id=assertion_id,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def assertion_seen(self, idp_entity_id: str, assertion_id: str) -> bool:
        async with reading(self.engine) as conn:
            found = await conn.execute(
                select(saml_assertions.c.assertion_id).where(
                    saml_assertions.c.idp_entity_id == idp_entity_id,
                    saml_assertions.c.assertion_id == assertion_id,
                )
            )
            return found.first() is not None

    async def start_session(
        self,
        *,
        tenant_id: str,
        kind: Kind,
        identity: Identity,
        now: datetime,
        config: HubConfig | None = None,
    ) -> tuple[str, str]:
        """A login session and a one-time handoff code for it: (session id, code).

        With ``config``, a ``<kind>.login`` webhook event (no personal data: session, IdP,
        level) is queued in the same transaction.
        """
        session_id = new_token()
        view = identity_view(identity, kind=kind, session_id=session_id)
        code = await self.open_session(
            session_id=session_id,
            tenant_id=tenant_id,
            kind=kind,
            idp_entity_id=identity.idp_entity_id,
            name_id=identity.name_id,
            name_qualifier=identity.name_qualifier,
            session_index=identity.session_index,
            level=identity.level,
            view=view,
            now=now,
            config=config,
        )
        return session_id, code

    async def open_session(
        self,
        *,
        session_id: str,
        tenant_id: str,
        kind: Kind,
        idp_entity_id: str,
        name_id: str,
        name_qualifier: str,
        session_index: str | None,
        level: int,
        view: dict[str, Any],
        now: datetime,
        config: HubConfig | None = None,
    ) -> str:
        """Store a login session and its one-time handoff code (returned), whatever the
        protocol (SAML or OpenID Connect: ``view`` is the identity handed over); with
        ``config``, the ``<kind>.login`` webhook event in the same transaction."""
        code = new_token()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(login_sessions).values(
                    session_id=session_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    idp_entity_id=idp_entity_id,
                    name_id=name_id,
                    name_qualifier=name_qualifier,
                    session_index=session_index,
                    level=level,
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
            await conn.execute(
                insert(login_codes).values(
                    code_hash=digest(code),
                    tenant_id=tenant_id,
                    session_id=session_id,
                    identity=json.dumps(view),
                    created_at=now,
                    expires_at=now + CODE_TTL,
                )
            )
            if config is not None:
                event = {"session_id": session_id, "idp": idp_entity_id}
                event["level"] = str(level)
                event["protocol"] = str(view.get("protocol", "saml"))
                await emit(conn, config, [(tenant_id, f"{kind}.login", event)], now=now)
        return code

    async def exchange(self, *, tenant_id: str, code: str, now: datetime) -> dict[str, Any] | None:
        """The identity behind a code, once; the stored copy is wiped when it is handed out."""
        async with self.engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        select(login_codes).where(login_codes.c.code_hash == digest(code))
                    )
                )
                .mappings()
                .first()
            )
            if (
                row is None
                or row["tenant_id"] != tenant_id
                or row["used_at"] is not None
                or row["expires_at"] <= now
            ):
                return None
            done = await conn.execute(
                update(login_codes)
                .where(login_codes.c.code_hash == row["code_hash"], login_codes.c.used_at.is_(None))
                .values(used_at=now, identity="{}")
            )
            if done.rowcount != 1:
                return None
        result: dict[str, Any] = json.loads(row["identity"])
        return result

    async def session(self, session_id: str, tenant_id: str) -> dict[str, Any] | None:
        async with reading(self.engine) as conn:
            row = (
                (
                    await conn.execute(
                        select(login_sessions).where(
                            login_sessions.c.session_id == session_id,
                            login_sessions.c.tenant_id == tenant_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def end_sessions(
        self,
        *,
        tenant_id: str,
        kind: Kind,
        idp_entity_id: str,
        name_id: str,
        session_index: str | None,
        now: datetime,
    ) -> int:
        """End the sessions an IdP's LogoutRequest names (it is fine if there are none).

        Only sessions that IdP made (``idp_entity_id``: the verified Issuer) can end: a
        LogoutRequest signed by IdP B never ends a session of IdP A, not even with the same
        NameID or SessionIndex. Without a SessionIndex, that IdP's sessions of the NameID end.
        """
        stmt = update(login_sessions).where(
            login_sessions.c.tenant_id == tenant_id,
            login_sessions.c.kind == kind,
            login_sessions.c.idp_entity_id == idp_entity_id,
            login_sessions.c.name_id == name_id,
            login_sessions.c.ended_at.is_(None),
        )
        if session_index:
            stmt = stmt.where(login_sessions.c.session_index == session_index)
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt.values(ended_at=now))
        return int(result.rowcount)

    async def end_session(self, session_id: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(login_sessions)
                .where(login_sessions.c.session_id == session_id)
                .values(ended_at=now)
            )

    async def purge(self, now: datetime) -> int:
        """Drop expired requests, replay entries, codes and ended sessions."""
        async with self.engine.begin() as conn:
            n = 0
            for table, column in (
                (saml_requests, saml_requests.c.expires_at),
                (oidc_requests, oidc_requests.c.expires_at),
                (oidc_sessions, oidc_sessions.c.expires_at),
                (saml_assertions, saml_assertions.c.expires_at),
                (login_codes, login_codes.c.expires_at),
                (login_sessions, login_sessions.c.expires_at),
            ):
                n += int((await conn.execute(delete(table).where(column < now))).rowcount)
        return n


def identity_view(identity: Identity, *, kind: Kind, session_id: str) -> dict[str, Any]:
    """What the tenant's application receives for a login (the handoff payload)."""
    raw = asdict(identity)
    fiscal = identity.attributes.get("fiscalNumber", "")
    return {
        "scheme": kind,
        "protocol": "saml",
        "session_id": session_id,
        "idp": identity.idp_entity_id,
        "level": identity.level,
        "fiscal_code": fiscal.removeprefix("TINIT-") if fiscal else None,
        "attributes": raw["attributes"],
        "authn_instant": identity.authn_instant.isoformat() if identity.authn_instant else None,
    }

"""The citizen's session, readable from any platform's pages: the front office starts it
after a SPID or CIE login (audience ``sportello``), and the booking pages, the personal
area's own routes (a notice's PDF, "Paga") read it to prefill and to check whose data is
asked. A session belongs to one tenant: on another tenant's pages it is no session."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import CLOCK, CONFIG, ENGINE
from .sessions import WebSession, WebSessions

AUDIENCE = "sportello"


def sessions(app: web.Application) -> WebSessions:
    """The citizens' sessions (a light object over the ``web_sessions`` table)."""
    return WebSessions(app[ENGINE], app[CONFIG], AUDIENCE)


async def citizen(request: web.Request, tenant_id: str) -> WebSession | None:
    """The live citizen session of ``tenant_id`` in this request, or None (no login, the
    session ended or expired, or it is another tenant's)."""
    found = await sessions(request.app).load(request, now=request.app[CLOCK].now())
    if found is None or found.tenant_id != tenant_id:
        return None
    return found


def display_name(session: WebSession | None) -> str:
    if session is None:
        return ""
    data: dict[str, Any] = session.data
    return " ".join(x for x in (data.get("name"), data.get("family_name")) if x) or str(
        session.subject
    )

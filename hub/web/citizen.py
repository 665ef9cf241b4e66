"""The citizen's session, readable from any platform's pages: the front office starts it
after a SPID or CIE login (audience ``sportello``), and the booking pages, the personal
area's own routes (a notice's PDF, "Paga") read it to prefill and to check whose data is
asked. A session belongs to one tenant: on another tenant's pages it is no session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..appkeys import CLOCK, CONFIG, ENGINE
from .pages import render
from .sessions import WebSession, WebSessions, anonymous_csrf

if TYPE_CHECKING:
    import jinja2

    from ..config import TenantConfig

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


class CitizenPage:
    """A citizen's page being answered by a platform's own forms: its CSRF token (the
    session's, or the anonymous cookie's, set on the response) and the context every such
    page shares."""

    def __init__(self, request: web.Request, session: WebSession | None) -> None:
        self.request = request
        self.session = session
        self._carrier = web.Response()
        self.token = (
            session.csrf
            if session is not None
            else anonymous_csrf(request, self._carrier, request.app[CONFIG])
        )

    def context(self, tenant: TenantConfig, title: str, base: str) -> dict[str, Any]:
        """The title, the platform's ``base`` URL, the front office's links, the user's name
        and the CSRF token (plain forms: no script)."""
        return {
            "title": title,
            "base": base,
            "front_office": f"/t/{tenant.id}/sportello/",
            "user_name": display_name(self.session),
            "logout_url": f"/t/{tenant.id}/sportello/esci" if self.session else "",
            "csrf_token": self.token,
            "kit_script": False,
        }

    def respond(
        self, env: jinja2.Environment, template: str, ctx: Mapping[str, Any], *, status: int = 200
    ) -> web.Response:
        """``template`` rendered, with the anonymous CSRF cookie when this page set one."""
        resp = render(env, template, ctx, status=status)
        for name, morsel in self._carrier.cookies.items():
            resp.cookies[name] = morsel
        return resp

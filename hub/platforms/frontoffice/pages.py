"""The citizen's front office: ``/t/{tenant}/sportello/...`` (Italian, Bootstrap Italia, works
without JavaScript).

- ``/``: the comune's services and the login buttons (SPID with AgID's button look and an
  IdP chooser in random order, CIE straight to its login);
- ``accedi/spid``: the SPID chooser as a page (what AgID's button shows as a menu);
- ``accesso``: where a login comes back (``hub_login_return_paths``): the one-time code is
  exchanged server-side, the citizen's session starts (``sportello.web.citizen``), audited;
- ``area`` and ``area/{section}``: the personal area, a section per platform
  (``hub_personal_area``): my data, payments, practices, appointments, messages,
  notifications;
- ``esci`` (POST): the session ends here, then at the IdP (SPID single logout; CIE and
  OpenID Connect their logout), and the browser lands on the comune's page (``uscita``).

A session belongs to one tenant: on another tenant's pages it is no session (the login
page), and another tenant's items are never shown (each section reads by tenant and fiscal
code). A tenant without ``[tenants.frontoffice]`` answers 404.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from sportello import audit
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.config import HubConfig, TenantConfig
from sportello.web import CSRF_FIELD, csrf_valid, environment, read_form, render
from sportello.web.area import AreaSection, AreaSource
from sportello.web.citizen import citizen, display_name, sessions
from sportello.web.handoff import LoginChoice, LoginHandoff
from sportello.web.sessions import WebSession, cookie_name
from sportello.web.site import site

from .settings import FrontofficeTenantSettings, frontoffice_settings

log = logging.getLogger("sportello.platforms.frontoffice")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
BASE = "/t/{tenant}/sportello"
RETURN_PATH = BASE + "/accesso"
LOGOUT_RETURN_PATH = BASE + "/uscita"
STATE_COOKIE = "sportello-fo-state"
NEXT_COOKIE = "sportello-fo-next"
#: how long a personal-area section may take before it is shown as unavailable
SECTION_TIMEOUT = 15.0

_ENVS = web.AppKey("frontoffice_envs", dict)


def install(app: web.Application) -> None:
    """While the app is built (``hub_web_app``): the template environments' cache."""
    app[_ENVS] = {}


def env_for(app: web.Application, settings: FrontofficeTenantSettings) -> jinja2.Environment:
    """The templates of a tenant: its ``templates_dir`` first (branding), then ours."""
    envs: dict[str, jinja2.Environment] = app[_ENVS] if _ENVS in app else {}
    folders = [TEMPLATES]
    if settings.templates_dir is not None:
        folders.insert(0, Path(settings.templates_dir))
    key = "|".join(map(str, folders))
    if key not in envs:
        envs[key] = environment(*folders)
    return envs[key]


def public_url(config: HubConfig) -> str:
    if config.server.public_url:
        return str(config.server.public_url).rstrip("/")
    return f"http://{config.server.host}:{config.server.port}"


def _tenant(request: web.Request) -> tuple[TenantConfig, FrontofficeTenantSettings]:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    settings = frontoffice_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None:
        raise web.HTTPNotFound(text="no front office here")
    return tenant, settings


def base(tenant: TenantConfig) -> str:
    return BASE.format(tenant=tenant.id)


def home_url(tenant: TenantConfig, settings: FrontofficeTenantSettings) -> str:
    return settings.home_url or base(tenant) + "/"


def _handoff(app: web.Application) -> LoginHandoff | None:
    result: LoginHandoff | None = app[PLUGINS].pm.hook.hub_login_handoff(app=app)
    return result


def sources(app: web.Application, settings: FrontofficeTenantSettings) -> list[AreaSource]:
    """The personal area's sections this tenant shows, in order."""
    found: list[AreaSource] = [
        s for group in app[PLUGINS].pm.hook.hub_personal_area() for s in group
    ]
    if settings.sections is not None:
        wanted = settings.sections
        found = [s for s in found if s.key in wanted]
        return sorted(found, key=lambda s: wanted.index(s.key))
    return sorted(found, key=lambda s: (s.order, s.key))


def _safe_next(tenant: TenantConfig, value: str | None) -> str | None:
    """A page of this tenant's to go back to after the login (never another site)."""
    if not value or len(value) > 300 or not value.startswith(f"/t/{tenant.id}/"):
        return None
    if "//" in value or "\\" in value or any(c in value for c in "\r\n"):
        return None
    return value


def _context(
    request: web.Request,
    tenant: TenantConfig,
    session: WebSession | None,
    title: str,
    **extra: Any,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "site": site(request.app, tenant, request.path),
        "title": title,
        "base": base(tenant),
        "user_name": display_name(session),
        "logout_url": base(tenant) + "/esci" if session else "",
        "csrf_token": session.csrf if session else "",
        "kit_script": False,  # plain links and forms: no script needed
    }
    ctx.update(extra)
    return ctx


def page(
    request: web.Request,
    tenant: TenantConfig,
    settings: FrontofficeTenantSettings,
    template: str,
    session: WebSession | None,
    title: str,
    *,
    status: int = 200,
    **extra: Any,
) -> web.Response:
    return render(
        env_for(request.app, settings),
        template,
        _context(request, tenant, session, title, **extra),
        status=status,
    )


def message(
    request: web.Request,
    tenant: TenantConfig,
    settings: FrontofficeTenantSettings,
    title: str,
    text: str,
    *,
    status: int,
    session: WebSession | None = None,
    back_url: str | None = None,
    back_label: str = "Torna al sito del comune",
    login: bool = False,
) -> web.Response:
    """An error or notice page that always leads somewhere: the comune's site, the
    service the citizen came from, or a new login."""
    return page(
        request,
        tenant,
        settings,
        "fo/message.html",
        session,
        title,
        status=status,
        text=text,
        back_url=back_url or home_url(tenant, settings),
        back_label=back_label,
        login_url=base(tenant) + "/" if login else "",
    )


async def _login_choices(
    request: web.Request, tenant: TenantConfig, response_cookies: dict[str, str]
) -> list[LoginChoice]:
    handoff = _handoff(request.app)
    if handoff is None:
        return []
    state = request.cookies.get(cookie_name(request.app[CONFIG], STATE_COOKIE), "")
    if len(state) != 22:
        state = secrets.token_urlsafe(16)
    response_cookies[STATE_COOKIE] = state
    return_to = public_url(request.app[CONFIG]) + RETURN_PATH.format(tenant=tenant.id)
    return await handoff.choices(tenant, return_to=return_to, state=state)


def _set_cookies(
    request: web.Request, response: web.StreamResponse, cookies: Mapping[str, str]
) -> None:
    config = request.app[CONFIG]
    secure = str(config.server.public_url or "").startswith("https://")
    for name, value in cookies.items():
        response.set_cookie(
            cookie_name(config, name),
            value,
            httponly=True,
            secure=secure,
            samesite="Lax",
            path="/",
            max_age=1800,
        )


def _spid_choice(choices: list[LoginChoice]) -> LoginChoice | None:
    return next((c for c in choices if c.scheme == "spid"), None)


def _cie_url(choices: list[LoginChoice]) -> str | None:
    """CIE goes straight to its IdP (the Ministry's: one), with no chooser."""
    cie = next((c for c in choices if c.scheme == "cie"), None)
    if cie is None:
        return None
    return cie.idps[0].url if len(cie.idps) == 1 else cie.url


async def home(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    session = await citizen(request, tenant.id)
    cookies: dict[str, str] = {}
    choices = [] if session else await _login_choices(request, tenant, cookies)
    nxt = _safe_next(tenant, request.query.get("next"))
    if nxt:
        cookies[NEXT_COOKIE] = nxt
    expired = request.query.get("sessione") == "scaduta"
    left = request.query.get("uscito") == "1"
    resp = page(
        request,
        tenant,
        settings,
        "fo/home.html",
        session,
        "Servizi online",
        services=[s.model_dump() for s in settings.services],
        booking_url=base(tenant) + "/prenota/",
        spid=_spid_choice(choices),
        cie_url=_cie_url(choices),
        others=[c for c in choices if c.scheme not in ("spid", "cie")],
        area_url=base(tenant) + "/area",
        sections=[(s.key, s.title) for s in sources(request.app, settings)],
        expired=expired,
        left=left,
        login_available=bool(choices) or session is not None,
    )
    _set_cookies(request, resp, cookies)
    return resp


async def spid_chooser(request: web.Request) -> web.StreamResponse:
    """AgID's SPID button as a page: every IdP of the tenant, in random order."""
    tenant, settings = _tenant(request)
    if await citizen(request, tenant.id):
        raise web.HTTPSeeOther(base(tenant) + "/area")
    cookies: dict[str, str] = {}
    spid = _spid_choice(await _login_choices(request, tenant, cookies))
    if spid is None:
        return message(
            request,
            tenant,
            settings,
            "Accesso con SPID non disponibile",
            "Questo comune non offre l'accesso con SPID ai servizi online.",
            status=404,
            back_url=base(tenant) + "/",
            back_label="Torna ai servizi online",
        )
    resp = page(request, tenant, settings, "fo/spid.html", None, "Entra con SPID", spid=spid)
    _set_cookies(request, resp, cookies)
    return resp


async def accesso(request: web.Request) -> web.StreamResponse:
    """The login's way back: the code is exchanged server-side, once."""
    tenant, settings = _tenant(request)
    config = request.app[CONFIG]
    now = request.app[CLOCK].now()
    state = request.cookies.get(cookie_name(config, STATE_COOKIE))
    given = request.query.get("state", "")
    code = request.query.get("code", "")
    back = base(tenant) + "/"
    if not state or not secrets.compare_digest(given.encode(), state.encode()):
        return message(
            request,
            tenant,
            settings,
            "Accesso non riuscito",
            "La richiesta di accesso non è stata avviata da questo browser o è scaduta "
            "(parametro state). Riprova dalla pagina dei servizi online.",
            status=400,
            back_url=back,
            back_label="Riprova l'accesso",
        )
    handoff = _handoff(request.app)
    identity = None
    if handoff is not None and code and len(code) <= 200:
        identity = await handoff.exchange(
            tenant.id,
            code,
            actor="frontoffice",
            purpose="citizen login to the front office",
            now=now,
        )
    fiscal_code = str((identity or {}).get("fiscal_code") or "").upper()
    if identity is None or not fiscal_code:
        return message(
            request,
            tenant,
            settings,
            "Accesso non riuscito",
            "Il codice di accesso è scaduto o è già stato usato, oppure l'identità digitale "
            "non riporta il codice fiscale. Riprova l'accesso.",
            status=400,
            back_url=back,
            back_label="Riprova l'accesso",
        )
    attributes = identity.get("attributes") or {}
    data = {
        "name": str(attributes.get("name") or ""),
        "family_name": str(attributes.get("familyName") or ""),
        "email": str(attributes.get("email") or ""),
        "phone": str(attributes.get("mobilePhone") or ""),
        "scheme": str(identity.get("scheme") or ""),
        "protocol": str(identity.get("protocol") or "saml"),
        "level": identity.get("level"),
    }
    target = (
        _safe_next(tenant, request.cookies.get(cookie_name(config, NEXT_COOKIE)))
        or base(tenant) + "/area"
    )
    resp = web.Response(status=303, headers={"Location": target})
    await sessions(request.app).start(
        resp, tenant_id=tenant.id, subject=fiscal_code, data=data, now=now
    )
    async with request.app[ENGINE].begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant.id,
                actor=f"citizen:{fiscal_code}",
                action="frontoffice.login",
                subject=fiscal_code,
                purpose="personal area session",
                sources=f"{data['scheme']}:{data['protocol']}",
                outcome="ok",
                detail=f"level {data['level']}",
            ),
            at=now,
        )
    for name in (STATE_COOKIE, NEXT_COOKIE):
        resp.del_cookie(cookie_name(config, name), path="/")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _session_or_login(
    request: web.Request, tenant: TenantConfig, settings: FrontofficeTenantSettings
) -> WebSession:
    session = await citizen(request, tenant.id)
    if session is None:
        had = cookie_name(request.app[CONFIG], sessions(request.app).cookie) in request.cookies
        query = {"next": request.path}
        if had:
            query["sessione"] = "scaduta"
        raise web.HTTPSeeOther(base(tenant) + "/?" + urlencode(query))
    return session


async def area(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    session = await _session_or_login(request, tenant, settings)
    return page(
        request,
        tenant,
        settings,
        "fo/area.html",
        session,
        "La mia area personale",
        sections=[(s.key, s.title) for s in sources(request.app, settings)],
        identity=session.data,
        fiscal_code=session.subject,
    )


async def _read(
    request: web.Request, tenant: TenantConfig, source: AreaSource, fiscal_code: str
) -> AreaSection:
    try:
        return await asyncio.wait_for(
            source.section(request.app, tenant, fiscal_code, now=request.app[CLOCK].now()),
            SECTION_TIMEOUT,
        )
    except Exception as exc:  # a platform down: say so, never "nothing"
        log.warning(
            "personal area section failed",
            extra={"tenant": tenant.id, "section": source.key, "error": type(exc).__name__},
        )
        return AreaSection(
            key=source.key,
            title=source.title,
            unavailable="Questa sezione non è disponibile ora: riprova più tardi.",
        )


async def section(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    session = await _session_or_login(request, tenant, settings)
    key = request.match_info["section"]
    source = next((s for s in sources(request.app, settings) if s.key == key), None)
    if source is None:
        return message(
            request,
            tenant,
            settings,
            "Pagina non trovata",
            "Questa sezione dell'area personale non esiste.",
            status=404,
            session=session,
            back_url=base(tenant) + "/area",
            back_label="Torna all'area personale",
        )
    found = await _read(request, tenant, source, session.subject)
    notice = {
        "ok": "Pagamento completato: la ricevuta compare qui appena pagoPA la invia.",
        "annullato": "Pagamento annullato: puoi riprovare quando vuoi.",
        "errore": "Il pagamento non è andato a buon fine: nessun addebito. Riprova.",
    }.get(request.query.get("esito", ""))
    return page(
        request,
        tenant,
        settings,
        "fo/section.html",
        session,
        found.title,
        section=found,
        sections=[(s.key, s.title) for s in sources(request.app, settings)],
        current=key,
        notice=notice,
    )


async def esci(request: web.Request) -> web.StreamResponse:
    """Logout: the session ends here (every replica), then at the IdP."""
    tenant, settings = _tenant(request)
    form: Mapping[str, Any] = await read_form(request) or {}  # unreadable: refused below
    session = await citizen(request, tenant.id)
    config = request.app[CONFIG]
    if session is not None and not csrf_valid(request, form.get(CSRF_FIELD), config, session):
        return message(
            request,
            tenant,
            settings,
            "Richiesta non valida",
            "La pagina era scaduta: ripeti l'uscita dall'area personale.",
            status=403,
            session=session,
            back_url=base(tenant) + "/area",
            back_label="Torna all'area personale",
        )
    landing = public_url(config) + LOGOUT_RETURN_PATH.format(tenant=tenant.id)
    target = _after_logout(tenant, settings)
    if session is not None:
        scheme = str(session.data.get("scheme") or "")
        if session.data.get("protocol") == "oidc":
            target = f"/t/{tenant.id}/oidc/logout?{urlencode({'return_to': landing})}"
        elif scheme in ("spid", "cie"):
            target = f"/t/{tenant.id}/{scheme}/logout?{urlencode({'return_to': landing})}"
    resp = web.Response(status=303, headers={"Location": target})
    now = request.app[CLOCK].now()
    await sessions(request.app).end(request, resp, now=now)
    if session is not None:
        async with request.app[ENGINE].begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant.id,
                    actor=f"citizen:{session.subject}",
                    action="frontoffice.logout",
                    subject=session.subject,
                    purpose="personal area session",
                    sources="frontoffice",
                    outcome="ok",
                ),
                at=now,
            )
    return resp


def _after_logout(tenant: TenantConfig, settings: FrontofficeTenantSettings) -> str:
    return settings.after_logout_url or (settings.home_url or base(tenant) + "/?uscito=1")


async def uscita(request: web.Request) -> web.StreamResponse:
    """Where the IdP's logout comes back: on to the comune's page."""
    tenant, settings = _tenant(request)
    raise web.HTTPSeeOther(_after_logout(tenant, settings))


def routes() -> list[web.RouteDef]:
    b = BASE
    return [
        web.get(b, _to_slash),
        web.get(b + "/", home),
        web.get(b + "/accedi/spid", spid_chooser),
        web.get(b + "/accesso", accesso),
        web.get(b + "/area", area),
        web.get(b + "/area/{section}", section),
        web.post(b + "/esci", esci),
        web.get(b + "/uscita", uscita),
    ]


async def _to_slash(request: web.Request) -> web.StreamResponse:
    _tenant(request)
    raise web.HTTPFound(request.path + "/")

"""The operator console at ``/console/``: server-rendered pages (Bootstrap Italia, no
script), sessions in the database (``WebSessions``, audience ``console``), CSRF on every
POST, every login, logout, view and action written to the audit log.

Who sees what: a software-house admin (local account, password and TOTP) sees every
tenant; comune staff (SPID/CIE through the hub's own login) see only their tenant, and any
route of another tenant answers 404, as the API does. ``staff`` read; ``tenant-admin`` and
admins may also retry a failed outbox job.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import segno
import sqlalchemy as sa
from aiohttp import web

from sportello import audit, onboarding
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.audit import AuditEntry
from sportello.config import HubConfig, TenantConfig
from sportello.db import reading
from sportello.outbox import store
from sportello.schema import audit_log, outbox
from sportello.web import WebSession, WebSessions, anonymous_csrf, csrf_valid, environment, render
from sportello.web.console import PAGE_SIZE, ConsoleFilters, ConsolePanel, ConsoleView

from . import service
from .charts import bar_chart
from .service import Locked
from .settings import console_settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
ALL = "*"  # the audit log's tenant for what concerns the whole hub (an admin's login)
MAX_TEXT = 120
MAX_DAYS = 366
CHART_DAYS = 14


class Console:
    """What the console keeps on the app (``hub_platform_setup``)."""

    def __init__(self, app: web.Application) -> None:
        config = app[CONFIG]
        settings = console_settings(config)
        self.env = environment(TEMPLATES)
        self.sessions = WebSessions(
            app[ENGINE],
            config,
            "console",
            lifetime=timedelta(hours=settings.lifetime_hours),
            idle=timedelta(minutes=settings.idle_minutes),
        )
        # between the password and the TOTP code: a short-lived session of its own
        self.pending = WebSessions(
            app[ENGINE],
            config,
            "console-2fa",
            lifetime=timedelta(minutes=5),
            idle=timedelta(minutes=5),
        )


CONSOLE = web.AppKey("console", Console)


@dataclass(frozen=True)
class Operator:
    session: WebSession
    admin: bool
    tenant_id: str | None
    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"console:{self.session.subject}"[:120]

    @property
    def subject(self) -> str:
        return self.session.subject.split(":", 1)[-1][:32]

    def can_retry(self) -> bool:
        return self.admin or self.role == "tenant-admin"


class Page(Exception):
    """An answer other than the page asked for: an error page or a redirect."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__()
        self.response = response


def see_other(location: str) -> web.Response:
    """A 303 to ``location`` (answered, not raised, so cookies set on it are kept)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK].now()


def public_url(config: HubConfig) -> str:
    if config.server.public_url:
        return str(config.server.public_url).rstrip("/")
    return f"http://{config.server.host}:{config.server.port}"


def _site(op: Operator | None, tenant: TenantConfig | None, current: str) -> dict[str, Any]:
    nav: list[tuple[str, str, bool]] = []
    if op is not None and op.admin:
        nav += [
            ("Enti", "/console/", current == "tenants"),
            ("Registro", "/console/registro", current == "audit-all"),
        ]
    if op is not None and tenant is not None:
        base = f"/console/t/{tenant.id}"
        nav += [
            ("Riepilogo", f"{base}/", current == "overview"),
            ("Coda", f"{base}/coda", current == "outbox"),
            ("Registro dell'ente", f"{base}/registro", current == "audit"),
        ]
    return {
        "name": tenant.name if tenant is not None else "Console operatori",
        "home_url": "/console/",
        "logo_url": "",
        "owner_name": "Sportello - console operatori",
        "owner_url": "/console/",
        "tagline": "Console operatori" if tenant is not None else "",
        "nav": nav,
    }


def _base(
    request: web.Request, op: Operator | None, tenant: TenantConfig | None, current: str, title: str
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"site": _site(op, tenant, current), "title": title}
    if op is not None:
        ctx.update(user_name=op.name, logout_url="/console/esci", csrf_token=op.session.csrf)
    return ctx


def error_page(
    request: web.Request, status: int, message: str, op: Operator | None = None, **headers: str
) -> web.Response:
    titles = {
        400: "Richiesta non valida",
        403: "Accesso negato",
        404: "Pagina non trovata",
        429: "Troppi tentativi",
        503: "Servizio non disponibile",
    }
    ctx = _base(request, op, None, "", titles.get(status, "Errore"))
    ctx.update(message=message, back_url="/console/", back_label="Torna alla console")
    return render(_console(request).env, "web/error.html", ctx, status=status, headers=headers)


def _not_found(request: web.Request, op: Operator | None = None) -> Page:
    return Page(error_page(request, 404, "La pagina richiesta non esiste.", op))


def _bad(request: web.Request, message: str, op: Operator | None = None) -> Page:
    return Page(error_page(request, 400, message, op))


def _request_id(request: web.Request) -> str | None:
    """The caller's X-Request-Id, when printable: bytes that are not UTF-8 arrive as lone
    surrogates, which no database stores (a 500 before)."""
    value = request.headers.get("X-Request-Id", "")[:64]
    return value if value and value.isprintable() else None


async def _audit(
    request: web.Request,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    subject: str,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    async with request.app[ENGINE].begin() as conn:
        await audit.record(
            conn,
            AuditEntry(
                tenant_id=tenant_id,
                actor=actor[:120],
                action=action,
                subject=subject[:32],
                purpose="operator console",
                sources="console",
                outcome=outcome,
                detail=detail[:500] if detail else None,
                request_id=_request_id(request),
            ),
            at=_now(request),
        )


async def _viewed(
    request: web.Request,
    op: Operator,
    tenant_id: str,
    template: str,
    ctx: dict[str, Any],
    *,
    action: str = "console.view",
    subject: str | None = None,
) -> web.Response:
    """The page ``template``, its view audited (the operator's, with the path and query)."""
    await _audit(
        request,
        tenant_id=tenant_id,
        actor=op.actor,
        action=action,
        subject=subject or op.subject,
        detail=request.path_qs,
    )
    return render(_console(request).env, template, ctx)


async def operator(request: web.Request) -> Operator | None:
    session = await _console(request).sessions.load(request, now=_now(request))
    if session is None:
        return None
    kind = session.data.get("kind")
    if kind == "admin":
        return Operator(session, True, None, str(session.data.get("name", "")), "admin")
    if kind == "staff" and session.tenant_id:
        # the role is read again: a member removed meanwhile loses access at once
        code = session.subject.split(":", 1)[-1]
        async with reading(request.app[ENGINE]) as conn:
            role = await service.staff_role(conn, request.app[CONFIG], session.tenant_id, code)
        if role is None:
            return None
        return Operator(
            session, False, session.tenant_id, str(session.data.get("name", code)), role
        )
    return None


async def _signed_in(request: web.Request) -> Operator:
    op = await operator(request)
    if op is None:
        raise Page(see_other("/console/accesso"))
    return op


async def _admin(request: web.Request) -> Operator:
    op = await _signed_in(request)
    if not op.admin:
        raise _not_found(request, op)
    return op


async def _tenant_scope(request: web.Request) -> tuple[Operator, TenantConfig]:
    """The operator and the tenant of a ``/console/t/{tenant}/...`` route: 404 for a tenant
    that does not exist and for one that is not the staff member's."""
    tenant_id = request.match_info["tenant"]
    tenant = request.app[CONFIG].tenant(tenant_id)
    op = await operator(request)
    if op is None:
        target = f"/console/t/{tenant_id}/entra" if tenant is not None else "/console/accesso"
        raise Page(see_other(target))
    if tenant is None or (not op.admin and op.tenant_id != tenant_id):
        raise _not_found(request, op)
    return op, tenant


async def _form(request: web.Request) -> dict[str, str]:
    try:
        data = await request.post()
    except (ValueError, LookupError, AssertionError, web.HTTPException):  # charset=nope
        raise _bad(request, "Il modulo inviato non è leggibile.") from None
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _check_csrf(request: web.Request, form: dict[str, str], session: WebSession | None) -> None:
    if not csrf_valid(request, form.get("csrf_token"), request.app[CONFIG], session):
        raise Page(
            error_page(
                request,
                403,
                "Il modulo è scaduto o non proviene da questa console: ricarichi la pagina "
                "e riprovi.",
            )
        )


def handler(fn: Any) -> Any:
    """Turn :class:`Page` into its response."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            result: web.StreamResponse = await fn(request)
            return result
        except Page as page:
            return page.response

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


# --- query parameters ---------------------------------------------------------------------


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > MAX_TEXT:
        raise _bad(request, f"Il filtro «{name}» è troppo lungo (al massimo {MAX_TEXT} caratteri).")
    if not value.isprintable():
        raise _bad(request, f"Il filtro «{name}» contiene caratteri di controllo.")
    return value or None


#: the years a date filter may name (the API's booking dates: the same)
MIN_YEAR, MAX_YEAR = 2000, 2999


def _day(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise _bad(
            request, f"Il filtro «{name}» non è una data (AAAA-MM-GG): {raw[:20]!r}."
        ) from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        # the ranges and charts add and take days: year 1 or 9999 would overflow (a 500)
        raise _bad(request, f"Il filtro «{name}» deve cadere tra il {MIN_YEAR} e il {MAX_YEAR}.")
    return value


def _page(request: web.Request) -> int:
    raw = request.query.get("pagina", "0").strip() or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 100_000:  # not "²"
        raise _bad(request, "Il numero di pagina non è valido.")
    return int(raw)


def _range(request: web.Request, today: date, days: int = CHART_DAYS) -> tuple[date, date]:
    until = _day(request, "al", today)
    since = _day(request, "dal", until - timedelta(days=days - 1))
    if since > until:
        raise _bad(request, "La data «dal» è successiva alla data «al».")
    if (until - since).days >= MAX_DAYS:
        raise _bad(request, f"L'intervallo è troppo lungo (al massimo {MAX_DAYS} giorni).")
    return since, until


def _pager(request: web.Request, page: int, more: bool) -> dict[str, str | None]:
    def link(n: int) -> str:
        query = {k: v for k, v in request.query.items() if k != "pagina"}
        query["pagina"] = str(n)
        return f"{request.path}?{urlencode(query)}"

    return {
        "previous": link(page - 1) if page > 0 else None,
        "next": link(page + 1) if more else None,
        "page": str(page + 1),
    }


# --- panels of other platforms (hub_console_panels) ------------------------------------------


def panels(app: web.Application) -> list[ConsolePanel]:
    found = [p for group in app[PLUGINS].pm.hook.hub_console_panels() for p in group or []]
    return sorted(found, key=lambda p: (p.order, p.key))


def _panel(app: web.Application, key: str) -> ConsolePanel | None:
    return next((p for p in panels(app) if p.key == key), None)


async def _view(
    app: web.Application, panel: ConsolePanel, tenant_id: str, filters: ConsoleFilters
) -> ConsoleView:
    try:
        return await panel.rows(app, tenant_id, filters)
    except (OSError, sa.exc.OperationalError) as exc:
        return ConsoleView(unavailable=f"dati non disponibili ora ({type(exc).__name__})")


# --- login of the software house's admins --------------------------------------------------


@handler
async def index(request: web.Request) -> web.StreamResponse:
    op = await operator(request)
    if op is None:
        return see_other("/console/accesso")
    if not op.admin:
        return see_other(f"/console/t/{op.tenant_id}/")
    query = _text(request, "q")
    page = _page(request)
    config = request.app[CONFIG]
    matching = [
        t
        for t in config.tenants
        if query is None or query.lower() in t.id.lower() or query.lower() in t.name.lower()
    ]
    shown = matching[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    ids = [t.id for t in shown]
    engine = request.app[ENGINE]
    status = await onboarding.status_rows(
        config, request.app[PLUGINS], engine=engine, tenant_ids=ids
    )
    by_tenant = {row["tenant"]: row for row in status}
    async with reading(engine) as conn:
        counts = (
            await conn.execute(
                sa.select(outbox.c.tenant_id, outbox.c.status, sa.func.count())
                .where(
                    outbox.c.tenant_id.in_(ids),
                    outbox.c.status.in_(("pending", "running", "failed")),
                )
                .group_by(outbox.c.tenant_id, outbox.c.status)
            )
        ).all()
    depth: dict[str, dict[str, int]] = {}
    for tenant_id, state, n in counts:
        depth.setdefault(tenant_id, {})[state] = int(n)
    rows = []
    for t in shown:
        cells = by_tenant.get(t.id, {}).get("platforms", {})
        rows.append(
            {
                "tenant": t,
                "platforms": cells,
                "ready": sum(
                    1 for c in cells.values() if c["state"] in ("ready", "configured", "unchecked")
                ),
                "total": len(cells),
                "pending": depth.get(t.id, {}).get("pending", 0)
                + depth.get(t.id, {}).get("running", 0),
                "failed": depth.get(t.id, {}).get("failed", 0),
            }
        )
    ctx = _base(request, op, None, "tenants", "Enti")
    ctx.update(
        rows=rows,
        q=query or "",
        total=len(matching),
        pager=_pager(request, page, (page + 1) * PAGE_SIZE < len(matching)),
    )
    return await _viewed(request, op, ALL, "tenants.html", ctx)


def _login_page(
    request: web.Request,
    *,
    error: str | None = None,
    name: str = "",
    status: int = 200,
    **headers: str,
) -> web.Response:
    holder = web.Response()
    token = anonymous_csrf(request, holder, request.app[CONFIG])
    ctx = _base(request, None, None, "", "Accesso alla console")
    ctx.update(error=error, name=name, form_token=token)
    resp = render(_console(request).env, "login.html", ctx, status=status, headers=headers)
    for key, morsel in holder.cookies.items():
        resp.cookies[key] = morsel
    return resp


@handler
async def login_form(request: web.Request) -> web.StreamResponse:
    if await operator(request) is not None:
        return see_other("/console/")
    return _login_page(request)


async def _admin_login(
    request: web.Request, name: str, outcome: str = "ok", detail: str | None = None
) -> None:
    """Audit an administrator's login step (``console.login``, actor ``console:admin:<name>``)."""
    await _audit(
        request,
        tenant_id=ALL,
        actor=f"console:admin:{name}",
        action="console.login",
        subject=name,
        outcome=outcome,
        detail=detail,
    )


def _locked_text(retry_after: int) -> str:
    return f"Troppi tentativi errati: riprovi tra {math.ceil(retry_after / 60)} minuti."


@handler
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    _check_csrf(request, form, None)
    name = form.get("name", "").strip()[: service.MAX_NAME]
    password = form.get("password", "")
    if not name or not password:
        return _login_page(
            request, error="Inserisca nome utente e password.", name=name, status=400
        )
    if not service.valid_name(name):  # no account has such a name: nothing to count
        return _login_page(request, error="Nome utente o password errati.", status=401)
    now = _now(request)
    settings = console_settings(request.app[CONFIG])
    try:
        row = await service.check_password(request.app[ENGINE], name, password, settings, now)
    except Locked as exc:
        await _admin_login(request, name, outcome="locked")
        return _login_page(
            request,
            error=_locked_text(exc.retry_after),
            name=name,
            status=429,
            **{"Retry-After": str(exc.retry_after)},
        )
    if row is None:
        await _admin_login(request, name, outcome="refused", detail="wrong name or password")
        return _login_page(request, error="Nome utente o password errati.", name=name, status=401)
    resp = see_other("/console/accesso/codice")
    await _console(request).pending.start(resp, tenant_id=None, subject=name, data={}, now=now)
    return resp


def _qr_data_uri(uri: str) -> str:
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


async def _code_page(
    request: web.Request,
    pending: WebSession,
    *,
    error: str | None = None,
    status: int = 200,
    **headers: str,
) -> web.Response:
    enrol = None
    async with reading(request.app[ENGINE]) as conn:
        row = await service.user(conn, pending.subject)
    if row is not None and row["enrolled_at"] is None:
        secret = service.user_secret(row)
        uri = service.totp_uri(
            secret, pending.subject, console_settings(request.app[CONFIG]).totp_issuer
        )
        enrol = {"qr": _qr_data_uri(uri), "secret": secret}
    ctx = _base(request, None, None, "", "Codice di verifica")
    ctx.update(error=error, enrol=enrol, form_token=pending.csrf, name=pending.subject)
    return render(_console(request).env, "code.html", ctx, status=status, headers=headers)


@handler
async def code_form(request: web.Request) -> web.StreamResponse:
    pending = await _console(request).pending.load(request, now=_now(request))
    if pending is None:
        return see_other("/console/accesso")
    return await _code_page(request, pending)


@handler
async def code_submit(request: web.Request) -> web.StreamResponse:
    console = _console(request)
    now = _now(request)
    pending = await console.pending.load(request, now=now)
    if pending is None:
        return see_other("/console/accesso")
    form = await _form(request)
    _check_csrf(request, form, pending)
    code = "".join(form.get("code", "").split())[:12]
    name = pending.subject
    settings = console_settings(request.app[CONFIG])
    try:
        ok = await service.check_totp(request.app[ENGINE], name, code, settings, now)
    except Locked as exc:
        await _admin_login(request, name, outcome="locked")
        return await _code_page(
            request,
            pending,
            error=_locked_text(exc.retry_after),
            status=429,
            **{"Retry-After": str(exc.retry_after)},
        )
    if not ok:
        await _admin_login(request, name, outcome="refused", detail="wrong TOTP code")
        return await _code_page(request, pending, error="Codice errato o già usato.", status=401)
    resp = see_other("/console/")
    await console.pending.end(request, resp, now=now)
    await console.sessions.start(
        resp, tenant_id=None, subject=f"admin:{name}", data={"kind": "admin", "name": name}, now=now
    )
    await _admin_login(request, name, detail="password and TOTP")
    return resp


@handler
async def logout(request: web.Request) -> web.StreamResponse:
    op = await operator(request)
    resp = see_other("/console/accesso")
    if op is None:
        return resp
    form = await _form(request)
    _check_csrf(request, form, op.session)
    await _console(request).sessions.end(request, resp, now=_now(request))
    await _audit(
        request,
        tenant_id=op.tenant_id or ALL,
        actor=op.actor,
        action="console.logout",
        subject=op.subject,
    )
    return resp


# --- login of comune staff (SPID/CIE through the hub) ---------------------------------------


def return_path(tenant_id: str) -> str:
    return f"/console/t/{tenant_id}/accesso"


@handler
async def staff_login(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    tenant = config.tenant(request.match_info["tenant"])
    if tenant is None:
        raise _not_found(request)
    handoff = request.app[PLUGINS].pm.hook.hub_login_handoff(app=request.app)
    holder = web.Response()
    state = anonymous_csrf(request, holder, config)
    choices = []
    if handoff is not None:
        choices = await handoff.choices(
            tenant, return_to=public_url(config) + return_path(tenant.id), state=state
        )
    ctx = _base(request, None, tenant, "", "Accesso del personale")
    ctx.update(choices=choices, tenant=tenant)
    resp = render(_console(request).env, "staff_login.html", ctx)
    for key, morsel in holder.cookies.items():
        resp.cookies[key] = morsel
    return resp


@handler
async def staff_return(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    tenant = config.tenant(request.match_info["tenant"])
    if tenant is None:
        raise _not_found(request)
    code, state = request.query.get("code", ""), request.query.get("state", "")
    if (
        not code
        or len(code) > 200
        or not code.isprintable()
        or not csrf_valid(request, state, config, None)
    ):
        raise _bad(
            request, "Il ritorno dall'accesso non è valido o è scaduto: ricominci dall'accesso."
        )
    handoff = request.app[PLUGINS].pm.hook.hub_login_handoff(app=request.app)
    if handoff is None:
        raise Page(error_page(request, 503, "L'accesso con SPID e CIE non è attivo in questo hub."))
    now = _now(request)
    identity = await handoff.exchange(
        tenant.id, code, actor="console", purpose="console staff login", now=now
    )
    if identity is None or not identity.get("fiscal_code"):
        raise _bad(
            request,
            "Il codice di accesso non è valido o è già stato usato: ricominci dall'accesso.",
        )
    fiscal_code = str(identity["fiscal_code"]).upper()
    if fiscal_code.startswith("TINIT-"):
        fiscal_code = fiscal_code[6:]
    async with reading(request.app[ENGINE]) as conn:
        role = await service.staff_role(conn, config, tenant.id, fiscal_code)
    actor = f"console:staff:{fiscal_code}"
    if role is None:
        await _audit(
            request,
            tenant_id=tenant.id,
            actor=actor,
            action="console.login",
            subject=fiscal_code,
            outcome="refused",
            detail="not staff of this comune",
        )
        raise Page(
            error_page(
                request,
                403,
                "Questa persona non è tra il personale abilitato alla console di questo ente.",
            )
        )
    attrs = identity.get("attributes") or {}
    name = " ".join(str(attrs.get(k, "")) for k in ("name", "familyName")).strip() or fiscal_code
    resp = see_other(f"/console/t/{tenant.id}/")
    await _console(request).sessions.start(
        resp,
        tenant_id=tenant.id,
        subject=f"staff:{fiscal_code}",
        data={"kind": "staff", "name": name},
        now=now,
    )
    await _audit(
        request,
        tenant_id=tenant.id,
        actor=actor,
        action="console.login",
        subject=fiscal_code,
        detail=f"{identity.get('scheme', 'spid')} ({role})",
    )
    return resp


# --- a tenant's pages -----------------------------------------------------------------------


@handler
async def overview(request: web.Request) -> web.StreamResponse:
    op, tenant = await _tenant_scope(request)
    app = request.app
    today = _now(request).date()
    since, until = _range(request, today)
    status = await onboarding.status_rows(
        app[CONFIG], app[PLUGINS], engine=app[ENGINE], tenant_ids=[tenant.id]
    )
    cells = status[0]["platforms"] if status else {}
    async with reading(app[ENGINE]) as conn:
        counts = await store.counts_by_status(conn, tenant.id)
    charts = []
    lists = []
    filters = ConsoleFilters(day=today, since=since, until=until)
    for panel in panels(app):
        if panel.chart:
            view = await _view(app, panel, tenant.id, filters)
            charts.append((panel, view, bar_chart(panel.title, view.series, view.unit)))
        else:
            lists.append(panel)
    ctx = _base(request, op, tenant, "overview", f"Riepilogo: {tenant.name}")
    ctx.update(
        tenant=tenant,
        cells=cells,
        counts=counts,
        charts=charts,
        lists=lists,
        since=since,
        until=until,
    )
    return await _viewed(request, op, tenant.id, "overview.html", ctx)


STATUSES = ("pending", "running", "done", "failed", "cancelled")


@handler
async def outbox_page(request: web.Request) -> web.StreamResponse:
    op, tenant = await _tenant_scope(request)
    state = _text(request, "stato") or "failed"
    if state not in STATUSES:
        raise _bad(request, f"Lo stato deve essere uno tra: {', '.join(STATUSES)}.", op)
    page = _page(request)
    async with reading(request.app[ENGINE]) as conn:
        counts = await store.counts_by_status(conn, tenant.id)
        rows = [
            dict(r._mapping)
            for r in await conn.execute(
                sa.select(
                    outbox.c.id,
                    outbox.c.kind,
                    outbox.c.status,
                    outbox.c.attempts,
                    outbox.c.max_attempts,
                    outbox.c.last_error,
                    outbox.c.updated_at,
                    outbox.c.next_attempt_at,
                )
                .where(outbox.c.tenant_id == tenant.id, outbox.c.status == state)
                .order_by(outbox.c.id.desc())
                .offset(page * PAGE_SIZE)
                .limit(PAGE_SIZE + 1)
            )
        ]
    ctx = _base(request, op, tenant, "outbox", f"Coda dei lavori: {tenant.name}")
    ctx.update(
        tenant=tenant,
        counts=counts,
        state=state,
        statuses=STATUSES,
        rows=rows[:PAGE_SIZE],
        pager=_pager(request, page, len(rows) > PAGE_SIZE),
        can_retry=op.can_retry(),
        done=request.query.get("riprovato", "")[:20],
    )
    return await _viewed(request, op, tenant.id, "outbox.html", ctx)


@handler
async def outbox_retry(request: web.Request) -> web.StreamResponse:
    op, tenant = await _tenant_scope(request)
    raw = request.match_info["job"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # not "²"
        raise _not_found(request, op)
    job_id = int(raw)
    form = await _form(request)
    _check_csrf(request, form, op.session)
    if not op.can_retry():
        raise Page(
            error_page(
                request,
                403,
                "Il suo ruolo permette di vedere la coda, non di riprovare i lavori.",
                op,
            )
        )
    now = _now(request)
    async with request.app[ENGINE].begin() as conn:
        # the row locked until the commit: 20 retries at once re-queue it once, the others
        # then read it pending (409); store.retry alone reads the status without a lock
        owner = await conn.scalar(
            sa.select(outbox.c.tenant_id).where(outbox.c.id == job_id).with_for_update()
        )
        if owner != tenant.id:
            raise _not_found(request, op)
        try:
            await store.retry(conn, job_id, now=now, operator=op.actor[:100])
        except store.OperatorError as exc:
            raise Page(
                error_page(request, 409, f"Il lavoro {job_id} non si può riprovare: {exc}", op)
            ) from None
        await audit.record(
            conn,
            AuditEntry(
                tenant_id=tenant.id,
                actor=op.actor,
                action="console.outbox.retry",
                subject=f"outbox:{job_id}",
                purpose="operator console",
                sources="console",
                outcome="ok",
            ),
            at=now,
        )
    return see_other(
        f"/console/t/{tenant.id}/coda?{urlencode({'stato': 'failed', 'riprovato': job_id})}"
    )


async def _audit_search(
    request: web.Request, op: Operator, tenant: TenantConfig | None
) -> web.Response:
    filters = {name: _text(request, name) for name in ("ente", "attore", "azione", "soggetto")}
    today = _now(request).date()
    since = _day(request, "dal", today - timedelta(days=30))
    until = _day(request, "al", today)
    if since > until:
        raise _bad(request, "La data «dal» è successiva alla data «al».", op)
    page = _page(request)
    scope = tenant.id if tenant is not None else filters["ente"]
    start, end = ConsoleFilters(day=today, since=since, until=until).range()
    query = sa.select(audit_log).where(audit_log.c.at >= start, audit_log.c.at < end)
    if scope:
        query = query.where(audit_log.c.tenant_id == scope)
    if filters["attore"]:
        query = query.where(audit_log.c.actor.contains(filters["attore"], autoescape=True))
    if filters["azione"]:
        query = query.where(audit_log.c.action.startswith(filters["azione"], autoescape=True))
    if filters["soggetto"]:
        query = query.where(audit_log.c.subject == filters["soggetto"].upper())
    async with reading(request.app[ENGINE]) as conn:
        rows = [
            dict(r._mapping)
            for r in await conn.execute(
                query.order_by(audit_log.c.id.desc()).offset(page * PAGE_SIZE).limit(PAGE_SIZE + 1)
            )
        ]
    current = "audit" if tenant is not None else "audit-all"
    ctx = _base(request, op, tenant, current, "Registro delle attività")
    ctx.update(
        tenant=tenant,
        rows=rows[:PAGE_SIZE],
        f={k: v or "" for k, v in filters.items()},
        since=since.isoformat(),
        until=until.isoformat(),
        pager=_pager(request, page, len(rows) > PAGE_SIZE),
        action=request.path,
    )
    return await _viewed(
        request,
        op,
        tenant.id if tenant is not None else ALL,
        "audit.html",
        ctx,
        action="console.audit.search",
        subject=filters["soggetto"],
    )


@handler
async def audit_all(request: web.Request) -> web.StreamResponse:
    op = await _admin(request)
    return await _audit_search(request, op, None)


@handler
async def audit_tenant(request: web.Request) -> web.StreamResponse:
    op, tenant = await _tenant_scope(request)
    return await _audit_search(request, op, tenant)


@handler
async def panel_page(request: web.Request) -> web.StreamResponse:
    op, tenant = await _tenant_scope(request)
    panel = _panel(request.app, request.match_info["key"])
    if panel is None:
        raise _not_found(request, op)
    today = _now(request).date()
    day = _day(request, "giorno", today)
    since, until = _range(request, today, days=CHART_DAYS if panel.chart else 31)
    state = _text(request, "stato")
    if state is not None and state not in panel.statuses:
        allowed = ", ".join(panel.statuses) or "nessuno"
        raise _bad(request, f"Lo stato deve essere uno tra: {allowed}.", op)
    page = _page(request)
    filters = ConsoleFilters(day=day, since=since, until=until, status=state, page=page)
    view = await _view(request.app, panel, tenant.id, filters)
    ctx = _base(request, op, tenant, "", f"{panel.title}: {tenant.name}")
    ctx.update(
        tenant=tenant,
        panel=panel,
        view=view,
        day=day.isoformat(),
        since=since.isoformat(),
        until=until.isoformat(),
        state=state or "",
        chart=bar_chart(panel.title, view.series, view.unit) if panel.chart else None,
        pager=_pager(request, page, view.more),
    )
    return await _viewed(request, op, tenant.id, "panel.html", ctx)


@handler
async def console_root(request: web.Request) -> web.StreamResponse:
    return see_other("/console/")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console", console_root),
        web.get("/console/", index),
        web.get("/console/accesso", login_form),
        web.post("/console/accesso", login_submit),
        web.get("/console/accesso/codice", code_form),
        web.post("/console/accesso/codice", code_submit),
        web.post("/console/esci", logout),
        web.get("/console/registro", audit_all),
        web.get("/console/t/{tenant}/entra", staff_login),
        web.get("/console/t/{tenant}/accesso", staff_return),
        web.get("/console/t/{tenant}/", overview),
        web.get("/console/t/{tenant}/coda", outbox_page),
        web.post("/console/t/{tenant}/coda/{job}/riprova", outbox_retry),
        web.get("/console/t/{tenant}/registro", audit_tenant),
        web.get("/console/t/{tenant}/p/{key}", panel_page),
    ]


__all__ = ["CONSOLE", "Console", "return_path", "routes"]

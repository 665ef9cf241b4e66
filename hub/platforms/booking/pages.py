"""The citizen's booking pages, ``/t/{tenant}/sportello/prenota/...`` (Italian, Bootstrap
Italia, plain forms: no JavaScript needed), on the booking service the REST API uses.

The steps (C.SE.1.8, 2.2): 1. office and service, 2. day and time among the free slots,
3. the citizen's data and the reason (prefilled and the fiscal code fixed when logged in
with SPID or CIE at the front office; no login needed), 4. the summary before confirming
(C.SE.1.4), 5. the confirmation with the booking code, the ``.ics`` file and the way to
move or cancel. Moving and cancelling need the code and a second factor (the fiscal code
or the e-mail given at booking), under the per-code limit of wrong attempts; a logged-in
citizen's own appointment needs no second factor.

Forms carry a CSRF token (the session's, or a double-submit cookie before any login).
A tenant without ``[tenants.booking]`` answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from pydantic import ValidationError

from sportello.adapters.agenda.base import KIND as AGENDA_KIND
from sportello.adapters.agenda.base import AgendaAdapter, AgendaError
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SERVICES
from sportello.config import TenantConfig
from sportello.db import reading
from sportello.tenant_adapters import AdapterNotInstalled
from sportello.web import (
    CSRF_FIELD,
    WebSession,
    csrf_valid,
    environment,
    read_form,
)
from sportello.web.citizen import CitizenPage, citizen
from sportello.web.site import site

from . import ics, service
from .api_models import BookingRequest
from .settings import BookingOffice, BookingService, BookingTenantSettings, booking_settings

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
BASE = "/t/{tenant}/sportello/prenota"
STEPS = ["Ufficio e servizio", "Giorno e ora", "I tuoi dati", "Riepilogo", "Conferma"]
WEEK = 7
DAYS = ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica")
MONTHS = (
    "gennaio",
    "febbraio",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "settembre",
    "ottobre",
    "novembre",
    "dicembre",
)
#: the form's fields, their labels and what a refusal of each says
FIELDS = {
    "name": "Nome",
    "surname": "Cognome",
    "email": "E-mail",
    "phone": "Telefono (facoltativo)",
    "fiscal_code": "Codice fiscale (facoltativo)",
    "reason": "Motivo dell'appuntamento",
}
FIELD_ERRORS = {
    "name": "Scrivi il nome (al massimo 100 caratteri).",
    "surname": "Scrivi il cognome (al massimo 100 caratteri).",
    "email": "Scrivi un indirizzo e-mail valido, ad esempio nome@esempio.it.",
    "phone": "Scrivi un numero di telefono di sole cifre, ad esempio +39 333 1234567.",
    "fiscal_code": "Il codice fiscale non è valido: controllalo o lascia il campo vuoto.",
    "reason": "Scrivi il motivo dell'appuntamento (al massimo 500 caratteri).",
}

_ENVS = web.AppKey("booking_pages_envs", dict)


def install(app: web.Application) -> None:
    app[_ENVS] = {}


def _env(app: web.Application, branding: str = "") -> jinja2.Environment:
    """The pages' templates: the tenant's branding folder first (``hub_web_site``'s
    ``templates_dir``, the front office's), then ours."""
    envs: dict[str, jinja2.Environment] = app[_ENVS] if _ENVS in app else {}
    if branding not in envs:
        folders = [Path(branding)] if branding else []
        envs[branding] = environment(*folders, HERE / "templates")
    return envs[branding]


def _tenant(request: web.Request) -> tuple[TenantConfig, BookingTenantSettings]:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    settings = booking_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None:
        raise web.HTTPNotFound(text="no booking here")
    return tenant, settings


def base(tenant: TenantConfig) -> str:
    return BASE.format(tenant=tenant.id)


def local(moment: datetime) -> datetime:
    return moment.astimezone(service.ROME)


def day_label(day: date) -> str:
    return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def when_label(start: datetime) -> str:
    at = local(start)
    return f"{day_label(at.date())}, ore {at:%H:%M}"


class Page(CitizenPage):
    def render(
        self,
        tenant: TenantConfig,
        template: str,
        title: str,
        *,
        status: int = 200,
        **extra: Any,
    ) -> web.Response:
        header = site(self.request.app, tenant, self.request.path)
        ctx = {
            "site": header,
            **self.context(tenant, title, base(tenant)),
            "steps": STEPS,
            **extra,
        }
        env = _env(self.request.app, header["templates_dir"])
        return self.respond(env, template, ctx, status=status)


async def _page(request: web.Request, tenant: TenantConfig) -> Page:
    return Page(request, await citizen(request, tenant.id))


class AgendaDown(Exception):
    """The comune's agenda (``[tenants.adapters.booking]``) cannot be used now."""


def _agenda(request: web.Request, tenant: TenantConfig) -> AgendaAdapter | None:
    """The comune's agenda when the tenant names one (as the API uses it), else None: the
    hub's own tables."""
    try:
        agenda: AgendaAdapter | None = request.app[SERVICES].adapters.get(tenant, AGENDA_KIND)
    except (AdapterNotInstalled, ValueError, TypeError) as exc:
        raise AgendaDown(str(exc)[:200]) from None
    return agenda


async def _catalogue(
    request: web.Request, tenant: TenantConfig, settings: BookingTenantSettings
) -> tuple[list[Any], AgendaAdapter | None]:
    """The offices and their services (the agenda's, or ``[tenants.booking]``'s): both
    have ``id``, ``name``, ``address`` and ``services`` (``id``, ``name``, ``minutes``)."""
    agenda = _agenda(request, tenant)
    if agenda is None:
        return list(settings.offices), None
    try:
        return list(await agenda.offices()), agenda
    except AgendaError as exc:
        raise AgendaDown(type(exc).__name__) from None


def _pick(offices: list[Any], raw: str | None) -> tuple[Any, Any] | None:
    if not raw or "/" not in raw:
        return None
    office_id, service_id = raw.split("/", 1)
    office = next((o for o in offices if o.id == office_id), None)
    chosen = next((s for s in office.services if s.id == service_id), None) if office else None
    return (office, chosen) if office and chosen else None


def _names(offices: list[Any], office_id: str, service_id: str) -> tuple[Any, Any]:
    office = next((o for o in offices if o.id == office_id), None)
    chosen = next((s for s in office.services if s.id == service_id), None) if office else None
    return office, chosen


async def _free(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    agenda: AgendaAdapter | None,
    office_id: str,
    service_id: str,
    first: date,
    days: int,
    now: datetime,
) -> list[service.Slot]:
    if agenda is not None:
        return await service.agenda_slots(agenda, settings, office_id, service_id, first, days, now)
    async with reading(request.app[ENGINE]) as conn:
        return await service.free_slots(
            conn, tenant.id, settings, office_id, service_id, first, days, now
        )


def _start(raw: str | None) -> datetime | None:
    if not raw or len(raw) > 40:
        return None
    try:
        value = datetime.fromisoformat(raw)
        # an offset that moves it out of years 1-9999 overflows: no such slot either
        return value.astimezone(UTC) if value.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _error(
    page: Page, tenant: TenantConfig, title: str, text: str, *, status: int, back: str
) -> web.Response:
    return page.render(
        tenant, "booking/message.html", title, status=status, text=text, back_url=back
    )


# --- 1. office and service --------------------------------------------------------------------


async def choose(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    offices, _ = await _catalogue(request, tenant, settings)
    return page.render(
        tenant,
        "booking/choose.html",
        "Prenota un appuntamento",
        step=0,
        offices=offices,
        error=request.query.get("errore") == "servizio",
    )


# --- 2. day and time --------------------------------------------------------------------------


async def slots(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    offices, agenda = await _catalogue(request, tenant, settings)
    picked = _pick(offices, request.query.get("servizio"))
    if picked is None:
        raise web.HTTPSeeOther(base(tenant) + "/?errore=servizio")
    office, chosen = picked
    now = request.app[CLOCK].now()
    today = service.local_day(now)
    try:
        first = date.fromisoformat(request.query.get("dal", ""))
    except ValueError:
        first = today
    last = service.last_day(settings, now)
    first = min(max(first, today), last)
    found = await _free(request, tenant, settings, agenda, office.id, chosen.id, first, WEEK, now)
    days: dict[date, list[tuple[str, str]]] = {}
    for s in found:
        at = local(s.start)
        days.setdefault(at.date(), []).append((s.start.isoformat(), f"{at:%H:%M}"))
    after = first + timedelta(days=WEEK)
    before = first - timedelta(days=WEEK)
    key = f"{office.id}/{chosen.id}"
    return page.render(
        tenant,
        "booking/slots.html",
        "Scegli il giorno e l'ora",
        step=1,
        office=office,
        chosen=chosen,
        key=key,
        days=[(day_label(d), items) for d, items in sorted(days.items())],
        period=f"dal {day_label(first)} al {day_label(min(after - timedelta(days=1), last))}",
        next_url=(
            f"{base(tenant)}/orari?{urlencode({'servizio': key, 'dal': after.isoformat()})}"
            if after <= last
            else ""
        ),
        prev_url=(
            f"{base(tenant)}/orari?{urlencode({'servizio': key, 'dal': before.isoformat()})}"
            if first > today
            else ""
        ),
        error=request.query.get("errore") == "orario",
    )


# --- 3. the citizen's data --------------------------------------------------------------------


async def _slot_or_redirect(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    values: Mapping[str, Any],
    now: datetime,
) -> tuple[Any, Any, datetime]:
    offices, agenda = await _catalogue(request, tenant, settings)
    picked = _pick(offices, str(values.get("servizio") or ""))
    if picked is None:
        raise web.HTTPSeeOther(base(tenant) + "/?errore=servizio")
    office, chosen = picked
    start = _start(str(values.get("inizio") or ""))
    key = f"{office.id}/{chosen.id}"
    again = f"{base(tenant)}/orari?{urlencode({'servizio': key, 'errore': 'orario'})}"
    if start is None:
        raise web.HTTPSeeOther(again)
    try:
        if agenda is None:
            service.check_slot(settings, office, chosen, start, now)
        else:  # the agenda checks its own hours when booking
            service.check_window(settings, start, now)
    except service.BookingError:
        raise web.HTTPSeeOther(again) from None
    return office, chosen, start


def _prefill(session: WebSession | None) -> dict[str, str]:
    if session is None:
        return {}
    data = session.data
    return {
        "name": str(data.get("name") or ""),
        "surname": str(data.get("family_name") or ""),
        "email": str(data.get("email") or ""),
        "phone": str(data.get("phone") or ""),
        "fiscal_code": session.subject,
    }


def _data_page(
    page: Page,
    tenant: TenantConfig,
    office: BookingOffice,
    chosen: BookingService,
    start: datetime,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    status: int = 200,
) -> web.Response:
    return page.render(
        tenant,
        "booking/data.html",
        "I tuoi dati",
        status=status,
        step=2,
        office=office,
        chosen=chosen,
        key=f"{office.id}/{chosen.id}",
        start=start.isoformat(),
        when=when_label(start),
        values=values,
        errors=errors,
        labels=FIELDS,
        logged_in=page.session is not None,
        login_url=f"/t/{tenant.id}/sportello/?"
        + urlencode(
            {
                "next": f"{base(tenant)}/dati?"
                + urlencode({"servizio": f"{office.id}/{chosen.id}", "inizio": start.isoformat()})
            }
        ),
    )


async def data(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    now = request.app[CLOCK].now()
    if request.method == "POST":
        form = await _posted(request, page, tenant)
        if isinstance(form, web.Response):
            return form
        office, chosen, start = await _slot_or_redirect(request, tenant, settings, form, now)
        values = {k: str(form.get(k) or "") for k in FIELDS}
        if page.session is not None:
            values["fiscal_code"] = page.session.subject
    else:
        office, chosen, start = await _slot_or_redirect(
            request, tenant, settings, request.query, now
        )
        values = {k: "" for k in FIELDS} | _prefill(page.session)
    return _data_page(page, tenant, office, chosen, start, values, {})


def _unreadable(page: Page, tenant: TenantConfig) -> web.Response:
    return _error(
        page,
        tenant,
        "Modulo non leggibile",
        "Il modulo inviato non è leggibile: ricomincia la prenotazione.",
        status=400,
        back=base(tenant) + "/",
    )


def _expired(page: Page, tenant: TenantConfig) -> web.Response:
    return _error(
        page,
        tenant,
        "Pagina scaduta",
        "Il modulo era scaduto o è stato inviato da un'altra pagina: ricomincia la prenotazione.",
        status=403,
        back=base(tenant) + "/",
    )


async def _posted(
    request: web.Request, page: Page, tenant: TenantConfig
) -> Mapping[str, Any] | web.Response:
    """The posted form, or the page that refuses it (400 unreadable, 403 expired CSRF)."""
    form = await read_form(request)
    if form is None:
        return _unreadable(page, tenant)
    if not csrf_valid(request, form.get(CSRF_FIELD), request.app[CONFIG], page.session):
        return _expired(page, tenant)
    return form


def _code_factor(form: Mapping[str, Any]) -> tuple[str, str]:
    """The booking code and the second factor (fiscal code or e-mail) a form names."""
    return (
        str(form.get("codice") or "").strip()[:40],
        str(form.get("verifica") or "").strip()[:254],
    )


def _validate(
    form: Mapping[str, Any], session: WebSession | None
) -> tuple[dict[str, str], dict[str, str]]:
    values = {k: " ".join(str(form.get(k) or "").split()) for k in FIELDS}
    values["reason"] = str(form.get("reason") or "").strip()
    values["fiscal_code"] = values["fiscal_code"].replace(" ", "").upper()
    if session is not None:
        values["fiscal_code"] = session.subject  # the login's, not the form's
    errors: dict[str, str] = {}
    body = {
        "office_id": "x",
        "service_id": "x",
        "start": "2030-01-01T09:00:00+01:00",
        "name": values["name"],
        "surname": values["surname"],
        "email": values["email"],
        "reason": values["reason"],
        "fiscal_code": values["fiscal_code"] or None,
        "phone": values["phone"] or None,
    }
    try:
        BookingRequest.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in FIELD_ERRORS:
                errors.setdefault(name, FIELD_ERRORS[name])
    if values["fiscal_code"] and "fiscal_code" not in errors:
        from sportello.connectors.fiscal_code import is_person_code

        if not is_person_code(values["fiscal_code"]):
            errors["fiscal_code"] = FIELD_ERRORS["fiscal_code"]
    return values, errors


async def _filled(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    page: Page,
    now: datetime,
) -> tuple[Any, Any, datetime, dict[str, str]] | web.Response:
    """The posted slot and citizen's data (office, service, start, values), or the page that
    refuses them: 400/403, or the data form again with its errors (422)."""
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    office, chosen, start = await _slot_or_redirect(request, tenant, settings, form, now)
    values, errors = _validate(form, page.session)
    if errors:
        return _data_page(page, tenant, office, chosen, start, values, errors, status=422)
    return office, chosen, start, values


# --- 4. the summary ---------------------------------------------------------------------------


async def summary(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    now = request.app[CLOCK].now()
    filled = await _filled(request, tenant, settings, page, now)
    if isinstance(filled, web.Response):
        return filled
    office, chosen, start, values = filled
    return page.render(
        tenant,
        "booking/summary.html",
        "Riepilogo",
        step=3,
        office=office,
        chosen=chosen,
        key=f"{office.id}/{chosen.id}",
        start=start.isoformat(),
        when=when_label(start),
        values=values,
        labels=FIELDS,
    )


# --- 5. the booking and its confirmation ----------------------------------------------------


async def confirm(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    now = request.app[CLOCK].now()
    filled = await _filled(request, tenant, settings, page, now)
    if isinstance(filled, web.Response):
        return filled
    office, chosen, start, values = filled
    person = service.Citizen(
        name=values["name"],
        surname=values["surname"],
        email=values["email"],
        reason=values["reason"],
        fiscal_code=values["fiscal_code"] or None,
        phone=values["phone"] or None,
        logged_in=page.session is not None,
    )
    try:
        async with request.app[ENGINE].begin() as conn:
            booked = await service.book(
                conn,
                tenant_id=tenant.id,
                settings=settings,
                office_id=office.id,
                service_id=chosen.id,
                start=start,
                citizen=person,
                now=now,
                max_attempts=request.app[CONFIG].outbox.max_attempts,
                agenda=_agenda(request, tenant),
            )
    except service.SlotFull:
        key = f"{office.id}/{chosen.id}"
        raise web.HTTPSeeOther(
            f"{base(tenant)}/orari?{urlencode({'servizio': key, 'errore': 'orario'})}"
        ) from None
    except service.BookingError:
        return _error(
            page,
            tenant,
            "Prenotazione non riuscita",
            "Non è stato possibile prenotare questo orario: scegline un altro.",
            status=409,
            back=base(tenant) + "/",
        )
    # POST-redirect-GET: reloading the confirmation never books twice
    raise web.HTTPSeeOther(f"{base(tenant)}/{booked['code']}/confermata")


async def _row(request: web.Request, tenant: TenantConfig) -> Any:
    try:
        async with reading(request.app[ENGINE]) as conn:
            return await service.ics_data(conn, tenant.id, request.match_info["code"])
    except service.BookingError:
        raise web.HTTPNotFound(text="no such booking") from None


async def confirmed(request: web.Request) -> web.StreamResponse:
    """The confirmation (no personal data: the code is all the page knows)."""
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    row = await _row(request, tenant)
    offices, _ = await _catalogue(request, tenant, settings)
    office, chosen = _names(offices, row.office_id, row.service_id)
    code = service.display_code(row.code)
    return page.render(
        tenant,
        "booking/confirmed.html",
        "Prenotazione confermata",
        step=4,
        code=code,
        office=office,
        chosen=chosen,
        when=when_label(row.starts_at),
        status_label={"booked": "Prenotato", "cancelled": "Annullato"}.get(row.status, row.status),
        ics_url=f"{base(tenant)}/{code}/calendario.ics",
        manage_url=f"{base(tenant)}/gestisci?{urlencode({'codice': code})}",
        area_url=f"/t/{tenant.id}/sportello/area/appuntamenti",
        rating_url=f"/t/{tenant.id}/sportello/valutazione?servizio=prenotazione",
    )


async def calendar(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    row = await _row(request, tenant)
    code, body = ics.appointment(settings, tenant.id, row)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="appuntamento-{code}.ics"',
            "Cache-Control": "no-store",
        },
    )


# --- move and cancel ---------------------------------------------------------------------------


async def _verified(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    code: str,
    work: Callable[[Any], Awaitable[T]],
) -> T:
    """``work`` (which checks the second factor) under the per-code limit of wrong
    attempts, as the API does: the attempt is counted first, a right one resets it."""
    engine = request.app[ENGINE]
    now = request.app[CLOCK].now()
    async with engine.begin() as conn:
        taken = await service.take_attempt(conn, tenant.id, settings, code, now)
    try:
        async with engine.begin() as conn:
            result = await work(conn)
    except service.NotFound:
        async with engine.begin() as conn:
            await service.attempt_failed(conn, tenant.id, settings, code, taken, now)
        raise
    async with engine.begin() as conn:
        await service.attempt_succeeded(conn, tenant.id, code, now)
    return result


async def _attempt(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    page: Page,
    code: str,
    work: Callable[[Any], Awaitable[dict[str, Any]]],
) -> dict[str, Any] | web.Response:
    """``work`` under the limit of wrong attempts (:func:`_verified`), or the refusal page."""
    try:
        return await _verified(request, tenant, settings, code, work)
    except service.BookingError as exc:
        return _manage_refused(page, tenant, code, exc)


async def _read(
    request: web.Request,
    tenant: TenantConfig,
    settings: BookingTenantSettings,
    page: Page,
    code: str,
    verify: str,
    now: datetime,
) -> dict[str, Any] | web.Response:
    """The appointment the code and factor name (an audited read), or the refusal page."""
    actor = f"citizen:{page.session.subject}" if page.session else "citizen:booking-code"
    return await _attempt(
        request,
        tenant,
        settings,
        page,
        code,
        lambda conn: service.read(conn, tenant.id, code, verify, actor, now),
    )


async def _own_factor(
    request: web.Request, tenant: TenantConfig, session: WebSession | None, code: str
) -> str | None:
    """A logged-in citizen's own appointment needs no second factor: their fiscal code."""
    if session is None:
        return None
    try:
        async with reading(request.app[ENGINE]) as conn:
            row = await service.ics_data(conn, tenant.id, code)
    except service.BookingError:
        return None
    return session.subject if (row.fiscal_code or "").upper() == session.subject else None


def _manage_refused(
    page: Page, tenant: TenantConfig, code: str, exc: service.BookingError
) -> web.Response:
    if isinstance(exc, service.Locked):
        text = (
            "Troppi tentativi sbagliati per questo codice: riprova tra "
            f"{(exc.retry_after + 59) // 60} minuti."
        )
        status = 429
    elif isinstance(exc, service.NotFound):
        text = (
            "Nessuna prenotazione con questo codice e questo codice fiscale o e-mail: "
            "controlla i dati e riprova."
        )
        status = 404
    elif isinstance(exc, service.Unavailable):
        text = "Il calendario degli uffici non risponde ora: riprova tra qualche minuto."
        status = 503
    else:
        text = (
            "Questo appuntamento non si può più cambiare (è già iniziato, è stato annullato "
            "o l'orario non è più libero)."
        )
        status = 409
    return page.render(
        tenant,
        "booking/manage.html",
        "Gestisci la prenotazione",
        status=status,
        code=code,
        verify="",
        booking=None,
        error=text,
    )


async def manage(request: web.Request) -> web.StreamResponse:
    """The code (and second factor) form, then the appointment with move and cancel."""
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    if request.method == "POST":
        form = await _posted(request, page, tenant)
        if isinstance(form, web.Response):
            return form
        code, verify = _code_factor(form)
    else:
        code = request.query.get("codice", "").strip()[:40]
        verify = ""
    own = await _own_factor(request, tenant, page.session, code) if code else None
    verify = verify or own or ""
    if not code or not verify:
        return page.render(
            tenant,
            "booking/manage.html",
            "Gestisci la prenotazione",
            code=code,
            verify="",
            booking=None,
            error="",
        )
    now = request.app[CLOCK].now()
    found = await _read(request, tenant, settings, page, code, verify, now)
    if isinstance(found, web.Response):
        return found
    offices, _ = await _catalogue(request, tenant, settings)
    office, chosen = _names(offices, found["office_id"], found["service_id"])
    start = datetime.fromisoformat(found["start"])
    return page.render(
        tenant,
        "booking/manage.html",
        "Gestisci la prenotazione",
        code=found["code"],
        verify="" if own else verify,
        booking=found,
        office=office,
        chosen=chosen,
        when=when_label(start),
        changeable=found["status"] == "booked" and start > now,
        ics_url=f"{base(tenant)}/{found['code']}/calendario.ics",
        error="",
    )


async def cancel(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    code, verify = _code_factor(form)
    verify = verify or await _own_factor(request, tenant, page.session, code) or ""
    now = request.app[CLOCK].now()
    found = await _attempt(
        request,
        tenant,
        settings,
        page,
        code,
        lambda conn: service.cancel(
            conn,
            tenant.id,
            code,
            verify,
            now,
            settings=settings,
            max_attempts=request.app[CONFIG].outbox.max_attempts,
            agenda=_agenda(request, tenant),
        ),
    )
    if isinstance(found, web.Response):
        return found
    return page.render(
        tenant,
        "booking/message.html",
        "Prenotazione annullata",
        text=f"La prenotazione {found['code']} è stata annullata.",
        kind="success",
        back_url=base(tenant) + "/",
        back_label="Prenota un altro appuntamento",
    )


async def move(request: web.Request) -> web.StreamResponse:
    """The free slots of the appointment's service to move it to (POST: code, factor)."""
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    code, verify = _code_factor(form)
    own = await _own_factor(request, tenant, page.session, code)
    verify = verify or own or ""
    now = request.app[CLOCK].now()
    found = await _read(request, tenant, settings, page, code, verify, now)
    if isinstance(found, web.Response):
        return found
    start = _start(str(form.get("inizio") or ""))
    if start is not None:
        moved = await _attempt(
            request,
            tenant,
            settings,
            page,
            code,
            lambda conn: service.reschedule(
                conn,
                tenant_id=tenant.id,
                settings=settings,
                raw_code=code,
                verify=verify,
                start=start,
                now=now,
                max_attempts=request.app[CONFIG].outbox.max_attempts,
                agenda=_agenda(request, tenant),
            ),
        )
        if isinstance(moved, web.Response):
            return moved
        raise web.HTTPSeeOther(f"{base(tenant)}/{moved['code']}/confermata")
    offices, agenda = await _catalogue(request, tenant, settings)
    office, chosen = _names(offices, found["office_id"], found["service_id"])
    if office is None or chosen is None:
        return _manage_refused(page, tenant, code, service.Conflict("gone"))
    free = await _free(
        request,
        tenant,
        settings,
        agenda,
        office.id,
        chosen.id,
        service.local_day(now),
        min(settings.horizon_days, 14),
        now,
    )
    days: dict[date, list[tuple[str, str]]] = {}
    for s in free:
        at = local(s.start)
        days.setdefault(at.date(), []).append((s.start.isoformat(), f"{at:%H:%M}"))
    return page.render(
        tenant,
        "booking/move.html",
        "Sposta la prenotazione",
        code=found["code"],
        verify="" if own else verify,
        office=office,
        chosen=chosen,
        when=when_label(datetime.fromisoformat(found["start"])),
        days=[(day_label(d), items) for d, items in sorted(days.items())],
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    """The comune's agenda down (or refusing to list): a page that says so (503)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (AgendaDown, service.Unavailable):
            tenant, _ = _tenant(request)
            page = await _page(request, tenant)
            return _error(
                page,
                tenant,
                "Prenotazioni non disponibili",
                "Il calendario degli uffici non risponde ora: riprova tra qualche minuto.",
                status=503,
                back=f"/t/{tenant.id}/sportello/",
            )

    return guarded


def routes() -> list[web.RouteDef]:
    b = BASE
    return [
        web.get(b + "/", _guarded(choose)),
        web.get(b + "/orari", _guarded(slots)),
        web.get(b + "/dati", _guarded(data)),
        web.post(b + "/dati", _guarded(data)),
        web.post(b + "/riepilogo", _guarded(summary)),
        web.post(b + "/conferma", _guarded(confirm)),
        web.get(b + "/gestisci", _guarded(manage)),
        web.post(b + "/gestisci", _guarded(manage)),
        web.post(b + "/annulla", _guarded(cancel)),
        web.post(b + "/sposta", _guarded(move)),
        web.get(b + "/{code}/confermata", _guarded(confirmed)),
        web.get(b + "/{code}/calendario.ics", calendar),
    ]

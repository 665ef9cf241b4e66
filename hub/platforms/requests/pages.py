"""The citizen's request pages, ``/t/{tenant}/sportello/richieste/...`` (Italian, Bootstrap
Italia, plain forms: no JavaScript needed), and the rating page
``/t/{tenant}/sportello/valutazione?servizio=...`` any platform links to.

The flow (Designers Italia "Modello Comuni", criteria C.SE): the service card (office,
deadline, costs), then login with SPID or CIE (C.SE.1.1: no anonymous requests), the steps
of the card with their numbers visible and a way back (1.8), values prefilled from the
login and the registry (1.5), a draft saved at every step and on demand, resumed from the
card page or the personal area (1.6), the summary before sending (1.4), and the
acknowledgement with protocol number, intake date and deadline (1.10), also in the
personal area and on App IO (1.2), with the milestones that follow (1.9); then the rating
(1.7). Forms carry the session's CSRF token; a tenant without ``[tenants.requests]``
answers 404, and so does another tenant's or another citizen's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from sportello.appkeys import CLOCK, CONFIG, ENGINE, SERVICES
from sportello.config import TenantConfig
from sportello.web import (
    CSRF_FIELD,
    WebSession,
    csrf_valid,
    environment,
    read_form,
)
from sportello.web.citizen import CitizenPage, citizen, display_name
from sportello.web.site import site

from . import service
from .cards import STAMPED, use_label
from .settings import SERVICE_NAME, RequestsTenantSettings, ServiceCard, requests_settings

HERE = Path(__file__).resolve().parent
BASE = "/t/{tenant}/sportello/richieste"
RATE = "/t/{tenant}/sportello/valutazione"
_ENV = web.AppKey("requests_pages_env", jinja2.Environment)


def install(app: web.Application) -> None:
    app[_ENV] = environment(HERE / "templates")


def _env(app: web.Application) -> jinja2.Environment:
    return app[_ENV] if _ENV in app else environment(HERE / "templates")


def base(tenant: TenantConfig) -> str:
    return BASE.format(tenant=tenant.id)


def rating_url(tenant: TenantConfig, service_key: str) -> str:
    return RATE.format(tenant=tenant.id) + "?" + urlencode({"servizio": service_key})


def _tenant(request: web.Request) -> tuple[TenantConfig, RequestsTenantSettings]:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    settings = requests_settings(tenant)
    if tenant is None or settings is None:
        raise web.HTTPNotFound(text="no online requests here")
    return tenant, settings


def _card(request: web.Request, settings: RequestsTenantSettings) -> ServiceCard:
    card = settings.card(request.match_info["service"])
    if card is None:
        raise web.HTTPNotFound(text="no such service")
    return card


class Page(CitizenPage):
    def render(
        self, tenant: TenantConfig, template: str, title: str, *, status: int = 200, **extra: Any
    ) -> web.Response:
        ctx = {
            "site": site(self.request.app, tenant, self.request.path),
            **self.context(tenant, title, base(tenant)),
            **extra,
        }
        return self.respond(_env(self.request.app), template, ctx, status=status)

    def message(
        self,
        tenant: TenantConfig,
        title: str,
        text: str,
        *,
        status: int,
        back: str,
        back_label: str = "Torna ai servizi online",
        kind: str = "danger",
    ) -> web.Response:
        return self.render(
            tenant,
            "requests/message.html",
            title,
            status=status,
            text=text,
            back_url=back,
            back_label=back_label,
            kind=kind,
        )


async def _page(request: web.Request, tenant: TenantConfig) -> Page:
    return Page(request, await citizen(request, tenant.id))


def _login(tenant: TenantConfig, path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/t/{tenant.id}/sportello/?" + urlencode({"next": path}))


def _steps(card: ServiceCard) -> list[str]:
    return [s.title for s in card.steps] + ["Riepilogo", "Invio"]


def _expired(page: Page, tenant: TenantConfig) -> web.Response:
    return page.message(
        tenant,
        "Pagina scaduta",
        "Il modulo era scaduto o è stato inviato da un'altra pagina: torna indietro e riprova.",
        status=403,
        back=base(tenant) + "/",
    )


async def _signed_in(
    request: web.Request, *, back_to_card: bool = False
) -> tuple[TenantConfig, RequestsTenantSettings, ServiceCard, Page, WebSession]:
    """The tenant, settings, card, page and session of a logged-in citizen's page; without a
    login, to the login (then back here, or to the card's page with ``back_to_card``)."""
    tenant, settings = _tenant(request)
    card = _card(request, settings)
    page = await _page(request, tenant)
    if page.session is None:
        raise _login(tenant, f"{base(tenant)}/{card.id}/" if back_to_card else request.path)
    return tenant, settings, card, page, page.session


async def _posted(
    request: web.Request, page: Page, tenant: TenantConfig
) -> Mapping[str, Any] | web.Response:
    """The posted form, or the 403 page when it is unreadable or its CSRF token is wrong."""
    form = await read_form(request)
    if form is None or not csrf_valid(
        request, form.get(CSRF_FIELD), request.app[CONFIG], page.session
    ):
        return _expired(page, tenant)
    return form


# --- the catalogue and the card ---------------------------------------------------------------


async def catalogue(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    page = await _page(request, tenant)
    return page.render(tenant, "requests/list.html", "Richieste online", cards=settings.offered())


async def card_page(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    card = _card(request, settings)
    page = await _page(request, tenant)
    drafts: list[Any] = []
    if page.session is not None:
        async with request.app[ENGINE].connect() as conn:
            drafts = await service.drafts_of(conn, tenant.id, page.session.subject, card.id)
    return page.render(
        tenant,
        "requests/card.html",
        card.title,
        card=card,
        drafts=drafts,
        logged_in=page.session is not None,
        login_url=f"/t/{tenant.id}/sportello/?" + urlencode({"next": f"{base(tenant)}/{card.id}/"}),
        stamp=settings.stamp_duty,
        steps=_steps(card),
    )


async def start(request: web.Request) -> web.StreamResponse:
    tenant, _, card, page, session = await _signed_in(request, back_to_card=True)
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    now = request.app[CLOCK].now()
    cf = session.subject
    values = await service.prefill(request.app[SERVICES], tenant.id, card, cf, session.data, now)
    async with request.app[ENGINE].begin() as conn:
        ref = await service.create_draft(conn, tenant.id, card, cf, values, now)
    raise web.HTTPSeeOther(f"{base(tenant)}/{card.id}/{ref}/passo/1")


# --- the steps --------------------------------------------------------------------------------


async def _own(request: web.Request, tenant: TenantConfig, card: ServiceCard, page: Page) -> Any:
    """The session's own request of this card, or 404 (another tenant's, citizen's, card's)."""
    assert page.session is not None
    try:
        async with request.app[ENGINE].connect() as conn:
            row = await service.find(
                conn, tenant.id, request.match_info["ref"], page.session.subject
            )
    except service.NotFound:
        raise web.HTTPNotFound(text="no such request") from None
    if row.service != card.id:
        raise web.HTTPNotFound(text="no such request")
    return row


def _index(request: web.Request, card: ServiceCard) -> int:
    raw = request.match_info["n"]
    if not raw.isdigit() or not 1 <= int(raw) <= len(card.steps):
        raise web.HTTPNotFound(text="no such step")
    return int(raw) - 1


def _step_page(
    page: Page,
    tenant: TenantConfig,
    card: ServiceCard,
    row: Any,
    index: int,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    saved: bool = False,
    status: int = 200,
) -> web.Response:
    url = f"{base(tenant)}/{card.id}/{row.ref}"
    return page.render(
        tenant,
        "requests/step.html",
        f"{card.title}: {card.steps[index].title}",
        status=status,
        card=card,
        step=index,
        steps=_steps(card),
        fields=card.steps[index].fields,
        values=values,
        errors=errors,
        saved=saved,
        action=f"{url}/passo/{index + 1}",
        ref=row.ref,
    )


async def step(request: web.Request) -> web.StreamResponse:
    tenant, _, card, page, session = await _signed_in(request)
    index = _index(request, card)
    row = await _own(request, tenant, card, page)
    url = f"{base(tenant)}/{card.id}/{row.ref}"
    if row.status != "draft":
        raise web.HTTPSeeOther(url + "/")
    fixed = {"fiscal_code": session.subject}
    if request.method == "GET":
        values = service.data_of(row)
        errors: dict[str, str] = {}
        if "verifica" in request.query:
            wrong = service.check_all(card, values, fixed)
            if wrong is not None and wrong[0] == index:
                errors = wrong[1]
        shown = {f.name: values.get(f.name, "") for f in card.steps[index].fields}
        for name, value in fixed.items():
            if card.field(name) is not None and name in shown:
                shown[name] = value
        return _step_page(
            page, tenant, card, row, index, shown, errors, status=422 if errors else 200
        )
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    values, errors = service.check_step(card, index, form, fixed)
    action = str(form.get("azione") or "avanti")
    now = request.app[CLOCK].now()
    reached = index + 1 if action == "avanti" and not errors else index
    try:
        async with request.app[ENGINE].begin() as conn:
            await service.save_draft(conn, row, values, reached, now)
    except service.RequestError:
        raise web.HTTPSeeOther(url + "/") from None
    if action == "indietro":
        raise web.HTTPSeeOther(
            f"{url}/passo/{index}" if index > 0 else f"{base(tenant)}/{card.id}/"
        )
    if action == "salva":
        return _step_page(page, tenant, card, row, index, values, {}, saved=True)
    if errors:
        return _step_page(page, tenant, card, row, index, values, errors, status=422)
    if index + 1 < len(card.steps):
        raise web.HTTPSeeOther(f"{url}/passo/{index + 2}")
    raise web.HTTPSeeOther(f"{url}/riepilogo")


def _summary_rows(
    card: ServiceCard, data: Mapping[str, str]
) -> list[tuple[int, str, list[tuple[str, str]]]]:
    out = []
    for i, s in enumerate(card.steps):
        pairs = []
        for f in s.fields:
            value = data.get(f.name, "")
            if f.kind == "choice":
                value = dict(f.choices).get(value, value)
            pairs.append((f.label, value or "-"))
        out.append((i + 1, s.title, pairs))
    return out


async def summary(request: web.Request) -> web.StreamResponse:
    tenant, settings, card, page, session = await _signed_in(request)
    row = await _own(request, tenant, card, page)
    url = f"{base(tenant)}/{card.id}/{row.ref}"
    if row.status != "draft":
        raise web.HTTPSeeOther(url + "/")
    data = {**service.data_of(row), "fiscal_code": session.subject}
    wrong = service.check_all(card, data, {"fiscal_code": session.subject})
    if wrong is not None:
        raise web.HTTPSeeOther(f"{url}/passo/{wrong[0] + 1}?verifica=1")
    stamped = card.handler == "certificate" and data.get("use") == STAMPED
    return page.render(
        tenant,
        "requests/summary.html",
        f"{card.title}: riepilogo",
        card=card,
        step=len(card.steps),
        steps=_steps(card),
        rows=_summary_rows(card, data),
        url=url,
        stamped=stamped,
        stamp=settings.stamp_duty,
        no_online_stamp=stamped and settings.stamp_duty is None,
    )


async def send(request: web.Request) -> web.StreamResponse:
    tenant, settings, card, page, session = await _signed_in(request, back_to_card=True)
    row = await _own(request, tenant, card, page)
    url = f"{base(tenant)}/{card.id}/{row.ref}"
    form = await _posted(request, page, tenant)
    if isinstance(form, web.Response):
        return form
    if row.status != "draft":  # a second click: the acknowledgement, never a second request
        raise web.HTTPSeeOther(url + "/")
    try:
        await service.submit(
            request.app[SERVICES],
            tenant.id,
            settings,
            card,
            row.ref,
            session.subject,
            display_name(session),
            request.app[CLOCK].now(),
        )
    except service.RequestError as exc:
        if exc.status == 409:
            raise web.HTTPSeeOther(url + "/") from None
        if exc.status == 422 and exc.field and card.field(exc.field) is not None:
            index = service._step_of(card, exc.field)
            raise web.HTTPSeeOther(f"{url}/passo/{index + 1}?verifica=1") from None
        return page.message(
            tenant,
            "Invio non riuscito",
            "Non è stato possibile inviare la richiesta ora: la bozza è salvata, riprova più "
            "tardi." + (f" ({exc.detail})" if exc.status == 422 else ""),
            status=exc.status if exc.status in (422, 503) else 503,
            back=url + "/riepilogo",
            back_label="Torna al riepilogo",
        )
    raise web.HTTPSeeOther(url + "/")


# --- the acknowledgement, the notice and the certificate ---------------------------------------


async def detail(request: web.Request) -> web.StreamResponse:
    tenant, settings, card, page, _ = await _signed_in(request)
    row = await _own(request, tenant, card, page)
    url = f"{base(tenant)}/{card.id}/{row.ref}"
    if row.status == "draft":
        raise web.HTTPSeeOther(f"{url}/passo/{min(row.step, len(card.steps) - 1) + 1}")
    async with request.app[ENGINE].connect() as conn:
        milestones = await service.milestones_of(conn, row.id)
    data = service.data_of(row)
    return page.render(
        tenant,
        "requests/detail.html",
        f"{card.title}: richiesta {row.protocol_number}",
        card=card,
        row=row,
        status_label=service.STATUSES.get(row.status, row.status),
        milestones=milestones,
        url=url,
        use=use_label(data["use"]) if data.get("use") else "",
        stamp=settings.stamp_duty,
        rate_url=rating_url(tenant, f"requests.{card.id}"),
        payments_url=f"/t/{tenant.id}/sportello/area/pagamenti",
        area_url=f"/t/{tenant.id}/sportello/area/richieste",
    )


async def certificate_pdf(request: web.Request) -> web.StreamResponse:
    tenant, _, card, page, session = await _signed_in(request)
    row = await _own(request, tenant, card, page)
    url = f"{base(tenant)}/{card.id}/{row.ref}/"
    try:
        pdf = await service.certificate(
            request.app[SERVICES],
            tenant.id,
            row.ref,
            session.subject,
            request.app[CLOCK].now(),
        )
    except service.NotFound:
        raise web.HTTPNotFound(text="no certificate here") from None
    except service.RequestError as exc:
        text = {
            409: "Il certificato sarà disponibile appena l'imposta di bollo risulta pagata.",
            422: "L'anagrafe non può rilasciare questo certificato online: rivolgiti all'ufficio.",
        }.get(exc.status, "L'anagrafe non risponde ora: riprova più tardi.")
        return page.message(
            tenant,
            "Certificato non disponibile",
            text,
            status=exc.status,
            back=url,
            back_label="Torna alla richiesta",
        )
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="certificato-{row.ref}.pdf"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def notice_pdf(request: web.Request) -> web.StreamResponse:
    tenant, _, card, page, session = await _signed_in(request)
    row = await _own(request, tenant, card, page)
    if not row.notice_number:
        raise web.HTTPNotFound(text="no notice")
    services = request.app[SERVICES]
    plugins = services.plugins or services.adapters.plugins
    doc = await plugins.notice_document(
        services, tenant.id, row.notice_number, f"citizen:{session.subject}"
    )
    if doc is None or doc.debtor != session.subject:
        raise web.HTTPNotFound(text="no notice")
    return web.Response(
        body=doc.pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="avviso-{row.notice_number}.pdf"',
            "Cache-Control": "no-store",
        },
    )


# --- the rating (C.SE.1.7) --------------------------------------------------------------------


def _rating_tenant(request: web.Request) -> TenantConfig:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    if tenant is None:
        raise web.HTTPNotFound(text="no such tenant")
    return tenant


async def rate(request: web.Request) -> web.StreamResponse:
    """Two screens without JavaScript: the 1-5 stars, then the follow-up question that
    depends on them and the free text; stored when the second is sent."""
    tenant = _rating_tenant(request)
    page = await _page(request, tenant)
    posted: Mapping[str, Any] | None = await read_form(request) if request.method == "POST" else {}
    if posted is None:
        return _expired(page, tenant)
    form: Mapping[str, Any] = posted
    key = str(form.get("servizio") or request.query.get("servizio") or "")
    back = f"/t/{tenant.id}/sportello/"
    if not SERVICE_NAME.match(key):
        return page.message(
            tenant,
            "Valutazione",
            "Non è indicato quale servizio valutare: apri la valutazione dalla pagina del "
            "servizio.",
            status=400,
            back=back,
            back_label="Torna allo sportello",
        )
    ctx: dict[str, Any] = {
        "rate_action": RATE.format(tenant=tenant.id),
        "key": key,
        "question": service.EASE_QUESTION,
        "comment_max": service.COMMENT_MAX,
    }
    if request.method == "GET":
        return page.render(tenant, "requests/rate.html", "Valuta il servizio", **ctx, error="")
    if not csrf_valid(request, form.get(CSRF_FIELD), request.app[CONFIG], page.session):
        return _expired(page, tenant)
    raw = str(form.get("score") or "")
    score = int(raw) if raw in ("1", "2", "3", "4", "5") else 0
    if not score:
        return page.render(
            tenant,
            "requests/rate.html",
            "Valuta il servizio",
            status=422,
            **ctx,
            error="Scegli da 1 a 5 stelle.",
        )
    question, options = service.follow_ups(score)
    more: dict[str, Any] = {**ctx, "score": score, "follow_question": question, "options": options}
    if form.get("fase") != "2":
        return page.render(
            tenant, "requests/rate_more.html", "Valuta il servizio", **more, errors={}, values={}
        )
    follow = str(form.get("follow_up") or "") or None
    comment = str(form.get("comment") or "").strip() or None
    errors = {}
    if follow is not None and follow not in options:
        errors["follow_up"] = "Scegli una delle opzioni."
    if comment is not None and len(comment) > service.COMMENT_MAX:
        errors["comment"] = f"Al massimo {service.COMMENT_MAX} caratteri."
    if errors:
        return page.render(
            tenant,
            "requests/rate_more.html",
            "Valuta il servizio",
            status=422,
            **more,
            errors=errors,
            values={"follow_up": follow or "", "comment": comment or ""},
        )
    async with request.app[ENGINE].begin() as conn:
        await service.rate(conn, tenant.id, key, score, follow, comment, request.app[CLOCK].now())
    return page.message(
        tenant,
        "Grazie",
        "Grazie per la tua valutazione: ci aiuta a migliorare il servizio.",
        status=200,
        back=back,
        back_label="Torna allo sportello",
        kind="success",
    )


def routes() -> list[web.RouteDef]:
    b = BASE
    one = b + "/{service}/{ref}"
    return [
        web.get(b + "/", catalogue),
        web.get(b + "/{service}/", card_page),
        web.post(b + "/{service}/nuova", start),
        web.get(one + "/passo/{n}", step),
        web.post(one + "/passo/{n}", step),
        web.get(one + "/riepilogo", summary),
        web.post(one + "/invia", send),
        web.get(one + "/", detail),
        web.get(one + "/certificato.pdf", certificate_pdf),
        web.get(one + "/avviso.pdf", notice_pdf),
        web.get(RATE, rate),
        web.post(RATE, rate),
    ]

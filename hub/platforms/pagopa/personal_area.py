"""The personal area's "I miei pagamenti" (``hub_personal_area``) and its two citizen routes:

- the section lists the tenant's positions whose debtor is the citizen, each payment option
  with its notice number, amount, due date and state, and its receipt once the Node sent it
  (PSP, date, receipt id);
- ``GET /t/{tenant}/sportello/pagamenti/{nav}/avviso.pdf``: the notice PDF;
- ``POST /t/{tenant}/sportello/pagamenti/{nav}/paga``: a pagoPA Checkout cart for the notice,
  then the browser goes to Checkout and comes back to the section (``esito=ok|annullato|
  errore``). Nothing is marked paid here: only the receipt does that.

Both routes need the citizen's session of that tenant (``sportello.web.citizen``) and answer
404 for a notice that is not the citizen's (another person's, another tenant's). Every read
is audited as the citizen's read of their own data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from sportello import audit
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SESSION
from sportello.config import TenantConfig
from sportello.connectors.errors import ConnectorError, SigningError
from sportello.connectors.pagopa.checkout import PRODUCTION_BASE_URL as CHECKOUT_PRODUCTION_URL
from sportello.connectors.pagopa.checkout import (
    CartRequest,
    CheckoutClient,
    CheckoutNotice,
    ReturnUrls,
)
from sportello.db import reading
from sportello.web import CSRF_FIELD, csrf_valid, read_form
from sportello.web.area import AreaAction, AreaItem, AreaSection
from sportello.web.citizen import citizen

from .settings import pagopa_settings
from .tables import PAID, payment_options, positions, receipts

log = logging.getLogger("sportello.platforms.pagopa.personal_area")

ROME = ZoneInfo("Europe/Rome")
BASE = "/t/{tenant}/sportello/pagamenti/{nav}"
SECTION = "pagamenti"


def euro(cents: int) -> str:
    whole, rest = divmod(int(cents), 100)
    return f"{whole:,}".replace(",", ".") + f",{rest:02d} €"


async def _audit(
    engine: Any, tenant_id: str, fiscal_code: str, action: str, detail: str, now: datetime
) -> None:
    async with engine.begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=f"citizen:{fiscal_code}",
                action=action,
                subject=fiscal_code,
                purpose="personal area: the citizen's own payments",
                sources="hub",
                outcome="ok",
                detail=detail[:2000],
            ),
            at=now,
        )


class MyPayments:
    key = SECTION
    title = "I miei pagamenti"
    order = 20

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        from .store import effective_status, position_from_json

        settings = pagopa_settings(tenant)
        if settings is None:
            return AreaSection(self.key, self.title, empty="Il comune non usa pagoPA.")
        cf = fiscal_code.upper()
        async with reading(app[ENGINE]) as conn:
            rows = (
                await conn.execute(
                    select(positions)
                    .where(positions.c.tenant_id == tenant.id, positions.c.debtor_fiscal_code == cf)
                    .order_by(positions.c.created_at.desc(), positions.c.id.desc())
                    .limit(100)
                )
            ).all()
            ids = [r.id for r in rows]
            options = (
                (
                    await conn.execute(
                        select(payment_options)
                        .where(
                            payment_options.c.tenant_id == tenant.id,
                            payment_options.c.position_id.in_(ids),
                        )
                        .order_by(payment_options.c.id)
                    )
                ).all()
                if ids
                else []
            )
            paid = (
                (
                    await conn.execute(
                        select(receipts).where(
                            receipts.c.tenant_id == tenant.id,
                            receipts.c.position_id.in_(ids),
                            receipts.c.role == "creditor",
                        )
                    )
                ).all()
                if ids
                else []
            )
        by_receipt = {r.receipt_id: r for r in paid}
        items: list[AreaItem] = []
        payable_states = {"valid", "partially_paid"}  # DebtPositionStatus, lower case
        for row in rows:
            position = position_from_json(row.content)
            state = effective_status(row.status, position, now)
            described = {o.iuv: o for o in position.payment_options}
            for opt in (o for o in options if o.position_id == row.id):
                model = described.get(opt.iuv)
                title = model.description if model else position.company_name
                fields: list[tuple[str, str]] = [
                    ("Ente creditore", position.company_name),
                    ("Codice avviso", opt.nav),
                    ("Importo", euro(opt.amount)),
                    ("Scadenza", opt.due_date.astimezone(ROME).strftime("%d/%m/%Y")),
                ]
                if opt.installment_number:
                    fields.append(("Rata", str(opt.installment_number)))
                actions: list[AreaAction] = []
                url = BASE.format(tenant=tenant.id, nav=opt.nav)
                if opt.status == PAID:
                    status = "Pagato"
                    receipt = by_receipt.get(opt.receipt_id or "")
                    if receipt is not None:
                        fields += [
                            ("Ricevuta", receipt.receipt_id),
                            ("Pagato con", receipt.psp_company_name),
                            ("Importo pagato", euro(receipt.amount)),
                        ]
                else:
                    status = {
                        "valid": "Da pagare",
                        "partially_paid": "Da pagare",
                        "expired": "Scaduto",
                        "invalid": "Annullato",
                        "draft": "In preparazione",
                        "published": "In preparazione",
                    }.get(str(getattr(state, "value", state)).lower(), "Da pagare")
                    actions.append(AreaAction("Scarica l'avviso (PDF)", url + "/avviso.pdf"))
                    if (
                        str(getattr(state, "value", state)).lower() in payable_states
                        and settings.checkout_api_key is not None
                    ):
                        actions.append(AreaAction("Paga con pagoPA", url + "/paga", "POST"))
                items.append(
                    AreaItem(
                        title=title,
                        status=status,
                        when=opt.paid_at if opt.status == PAID else None,
                        fields=tuple(fields),
                        actions=tuple(actions),
                    )
                )
        await _audit(
            app[ENGINE], tenant.id, cf, "pagopa.area.read", f"{len(items)} payment(s)", now
        )
        return AreaSection(
            self.key, self.title, items=items, empty="Non hai pagamenti presso il comune."
        )


async def _mine(request: web.Request) -> tuple[TenantConfig, Any, Any, Any]:
    """The tenant, its pagoPA settings, the citizen's session and the notice (404 unless
    it is this citizen's, of this tenant)."""
    from .store import PagopaStore

    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    settings = pagopa_settings(tenant) if tenant is not None else None
    nav = request.match_info["nav"]
    if tenant is None or settings is None or not (len(nav) == 18 and nav.isdigit()):
        raise web.HTTPNotFound(text="no such notice")
    session = await citizen(request, tenant.id)
    if session is None:
        raise web.HTTPSeeOther(
            f"/t/{tenant.id}/sportello/?next=/t/{tenant.id}/sportello/area/{SECTION}"
        )
    store = PagopaStore(request.app[ENGINE], request.app[CONFIG], request.app[CLOCK])
    match = await store.find_option(tenant.id, nav)
    if match is None or match.position.fiscal_code.upper() != session.subject.upper():
        raise web.HTTPNotFound(text="no such notice")
    return tenant, settings, session, match


async def notice_pdf(request: web.Request) -> web.StreamResponse:
    from sportello.connectors.pagopa.notice_pdf import render_notice

    from .api import notice_creditor

    tenant, _settings, session, match = await _mine(request)
    pdf = await asyncio.to_thread(
        render_notice, match.position, creditor=notice_creditor(tenant, match.position)
    )
    now = request.app[CLOCK].now()
    await _audit(
        request.app[ENGINE],
        tenant.id,
        session.subject,
        "pagopa.notice.pdf",
        f"iupd {match.iupd}",
        now,
    )
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="avviso-{match.option.nav}.pdf"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _public(request: web.Request) -> str:
    config = request.app[CONFIG]
    if config.server.public_url:
        return str(config.server.public_url).rstrip("/")
    return f"http://{config.server.host}:{config.server.port}"


async def pay(request: web.Request) -> web.StreamResponse:
    """A Checkout cart for one notice, then Checkout."""
    from .station import fault_for
    from .store import effective_status

    tenant, settings, session, match = await _mine(request)
    form: Mapping[str, Any] = await read_form(request) or {}  # unreadable: refused below
    back = f"/t/{tenant.id}/sportello/area/{SECTION}"
    if not csrf_valid(request, form.get(CSRF_FIELD), request.app[CONFIG], session):
        raise web.HTTPSeeOther(back + "?esito=errore")
    now = request.app[CLOCK].now()
    if settings.checkout_api_key is None:
        raise web.HTTPSeeOther(back + "?esito=errore")
    if fault_for(match, effective_status(match.status, match.position, now)) is not None:
        raise web.HTTPSeeOther(back + "?esito=errore")
    option = next(o for o in match.position.payment_options if o.iuv == match.option.iuv)
    public = _public(request) + back
    cart = CartRequest(
        (
            CheckoutNotice(
                notice_number=match.option.nav,
                fiscal_code=settings.ec_fiscal_code,
                amount=option.amount,
                company_name=match.position.company_name,
                description=option.description,
            ),
        ),
        ReturnUrls(
            ok=public + "?esito=ok",
            cancel=public + "?esito=annullato",
            error=public + "?esito=errore",
        ),
        email_notice=match.position.email,
    )
    client = CheckoutClient(
        request.app[SESSION],
        settings.checkout_url or CHECKOUT_PRODUCTION_URL,
        api_key=settings.checkout_api_key.reveal,
    )
    try:
        redirect_url = await client.create_cart(cart)
    except (ConnectorError, SigningError) as exc:
        log.warning(
            "checkout cart refused", extra={"tenant": tenant.id, "error": type(exc).__name__}
        )
        raise web.HTTPSeeOther(back + "?esito=errore") from None
    await _audit(
        request.app[ENGINE],
        tenant.id,
        session.subject,
        "pagopa.area.pay",
        f"nav {match.option.nav}",
        now,
    )
    raise web.HTTPSeeOther(redirect_url)


def routes() -> list[web.RouteDef]:
    return [web.get(BASE + "/avviso.pdf", notice_pdf), web.post(BASE + "/paga", pay)]


def sources() -> list[Any]:
    return [MyPayments()]


#: ``sportello demo``: the sandbox IdP's Giulia Prova has a notice to pay in her area
DEMO_DEBTOR = ("PRVGLI85H55F205A", "Giulia Prova")


async def seed_demo_notice(app: web.Application) -> str | None:
    """One unpaid notice of the demo tenant for a sandbox identity, so the front office's
    "I miei pagamenti" has something to pay through Checkout (kept across restarts: the
    same IUPD and content each year). Returns its notice number."""
    from .operations import DEMO_IBAN
    from .store import PagopaStore, PagopaStoreError

    config = app[CONFIG]
    tenant = config.tenant("demo")
    settings = pagopa_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None or settings.checkout_api_key is None:
        return None
    now = app[CLOCK].now()
    due = datetime(now.year + 1, 1, 31, 12, tzinfo=ROME)
    text = f"TARI {now.year} (demo)"
    cf, name = DEMO_DEBTOR
    position = {
        "iupd": f"DEMO-AREA-TARI-{now.year}",
        "type": "F",
        "fiscal_code": cf,
        "full_name": name,
        "company_name": tenant.name,
        "payment_options": [
            {
                "amount": 8400,
                "description": text,
                "due_date": due,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 8400,
                        "organization_fiscal_code": settings.ec_fiscal_code,
                        "remittance_information": text,
                        "category": "9/0101101IM/",
                        "iban": DEMO_IBAN,
                    }
                ],
            }
        ],
    }
    try:
        stored = await PagopaStore(app[ENGINE], config, app[CLOCK]).create_position(
            "demo", position
        )
    except PagopaStoreError as exc:
        log.warning("demo: no notice for the front office (%s)", exc)
        return None
    return stored.options[0].nav

"""The citizen's journey through the front office in a real browser (Debian's Chromium driven
by Playwright), against the hub, the sandbox IdP, the pagoPA sandbox (Checkout and the Node,
which pays through the hub's station) and a page standing for the comune's own site, all on
127.0.0.1:

1. SPID: the front office's home, "Entra con SPID", the IdP chooser, the sandbox IdP's login,
   back to the personal area; my data (the comune's registry, each field with its source);
   my payments: "Paga con pagoPA", Checkout's page, "Paga", back with the receipt shown;
   an appointment booked logged in (prefilled, summary, confirmation with the code) and
   listed in "I miei appuntamenti"; "Esci": the session ends, the IdP's single logout, and
   the browser lands on the comune's site;
2. CIE: "Entra con CIE" straight to the IdP, back to the personal area;
3. a SPID anomaly (ErrorCode 22): the login platform's page links back to the comune's site;
4. an appointment booked without login.

Every page is checked with axe-core (no serious or critical violation: the npm package
``axe-core`` from ``npm ci``, injected into the page) and saved as a screenshot under
``var/artefacts/frontoffice/`` (the folder is printed). Skipped without chromium, without
the pagoPA specs (the station validates against them) or without ``node_modules/axe-core``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from factories import free_port, iban_with, spid_tenant
from pagopa_node import XSD_DIR

from sportello.app import CONFIG, ENGINE, create_app
from sportello.clock import SystemClock
from sportello.config import parse_config
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM
from sportello.sandbox.pagopa.app import DEFAULT_CHECKOUT_API_KEY
from sportello.sandbox.pagopa.app import create_app as pagopa_sandbox

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DEMO_SUAP = ROOT / "hub" / "demo" / "suap.json"
ARTEFACTS = ROOT / "var" / "artefacts" / "frontoffice"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000
TENANT = "comune"
EC = "00000000999"
CHECKOUT_ENV = "SPORTELLO_E2E_FO_CHECKOUT_KEY"
COMUNE_SITE_TITLE = "Comune di Prova - sito istituzionale"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not on PATH (apt-get install chromium); browsers are never downloaded",
    ),
    pytest.mark.skipif(
        not (XSD_DIR / "paForNode.xsd").is_file(), reason="pagoPA specs (shared/specs) not found"
    ),
    pytest.mark.skipif(not AXE.is_file(), reason="node_modules/axe-core missing: run npm ci"),
    pytest.mark.timeout(180),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")


@dataclass
class Env:
    hub: str
    idp: str
    comune: str
    nav: str
    app: Any = None

    @property
    def front(self) -> str:
        return f"{self.hub}/t/{TENANT}/sportello/"


def _registry_csv(path: Path) -> None:
    rows = ["fiscal_code;family_name;given_name;sex;birth_date;address;municipality_istat;email"]
    for who in DEFAULT_IDENTITIES[:3]:
        attrs = dict(who.attributes)
        rows.append(
            f"{who.code};{attrs['familyName']};{attrs['name']};F;1985-06-15;"
            f"Via della Prova {len(rows)};058091;{attrs.get('email', '')}"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _position(cf: str) -> dict[str, Any]:
    due = datetime.now(UTC) + timedelta(days=30)
    return {
        "iupd": "TARI-2027-1",
        "type": "F",
        "fiscal_code": cf,
        "full_name": "Giulia Prova",
        "company_name": "Comune di Prova",
        "payment_options": [
            {
                "amount": 8400,
                "description": "TARI 2027",
                "due_date": due.isoformat(),
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 8400,
                        "organization_fiscal_code": EC,
                        "remittance_information": "TARI 2027",
                        "category": "9/0101101IM/",
                        "iban": iban_with("05428", "000000123456"),
                    }
                ],
            }
        ],
    }


async def _comune_site(request: web.Request) -> web.Response:
    return web.Response(
        text=f"<!doctype html><html lang='it'><title>{COMUNE_SITE_TITLE}</title>"
        f"<h1 id='comune'>{COMUNE_SITE_TITLE}</h1></html>",
        content_type="text/html",
    )


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv(CHECKOUT_ENV, DEFAULT_CHECKOUT_API_KEY)
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    pay_server = TestServer(pagopa_sandbox(processing_delay=0, xsd_dir=XSD_DIR), host="127.0.0.1")
    comune_app = web.Application()
    comune_app.router.add_get("/", _comune_site)
    comune_server = TestServer(comune_app, host="127.0.0.1")
    for s in (idp_server, pay_server, comune_server):
        await s.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    pay = str(pay_server.make_url("")).rstrip("/")
    comune = str(comune_server.make_url("/"))
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    tenant = spid_tenant(tmp_path, hub_url=hub, idps=[idp], return_urls=[], tenant_id=TENANT)
    _registry_csv(tmp_path / "anagrafe.csv")
    # the demo's SUAP export (Giulia Prova's practice and its milestones)
    shutil.copyfile(DEMO_SUAP, tmp_path / "suap.json")
    hours = {d: ["08:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    tenant.update(
        {
            "fiscal_code": EC,
            "frontoffice": {"home_url": comune, "owner_name": "Regione di Prova"},
            "booking": {
                "offices": [
                    {
                        "id": "anagrafe",
                        "name": "Ufficio Anagrafe",
                        "address": "Piazza del Municipio 1",
                        "services": [
                            {"id": "cie", "name": "Carta d'identità elettronica", "minutes": 30}
                        ],
                        "hours": hours,
                    }
                ]
            },
            "pagopa": {
                "ec_fiscal_code": EC,
                "broker_id": EC,
                "station_id": EC + "_01",
                "segregation_code": "01",
                "mode": "station",
                "checkout_url": f"{pay}/checkout/ec/v1",
                "checkout_api_key": {"env": CHECKOUT_ENV},
            },
            "requests": {"stamp_duty": {"iban": iban_with("05428", "000000123456")}},
            "adapters": {
                "registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}},
                "suap": {"plugin": "json", "options": {"path": "suap.json"}},
            },
        }
    )
    config = parse_config(
        {
            "server": {"public_url": hub},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"},
            "outbox": {"workers": False},
            "idps": {"signing_certs": [FEDERATION_CERT_PEM.decode()]},
            "tenants": [tenant],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    app[XSD_KEY] = XSD_DIR
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        giulia = DEFAULT_IDENTITIES[1]
        store = PagopaStore(app[ENGINE], app[CONFIG], SystemClock())
        stored = await store.create_position(TENANT, _position(giulia.code))
        import aiohttp

        async with aiohttp.ClientSession() as http:
            station = {"url": f"{hub}/t/{TENANT}/pagopa/station", "broker_id": EC}
            async with http.post(
                f"{pay}/__sandbox/stations",
                json={EC: {**station, "station_id": EC + "_01"}},
            ) as resp:
                assert resp.status == 200, await resp.text()
        yield Env(hub, idp, comune, stored.options[0].nav, app)
    finally:
        await server.close()
        for s in (idp_server, pay_server, comune_server):
            await s.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _page(browser: Any, *, mobile: bool = False) -> Any:
    # bypass_csp: axe-core is injected as an inline script, which the hub's CSP forbids
    options: dict[str, Any] = {"locale": "it-IT", "bypass_csp": True}
    if mobile:
        options.update(viewport={"width": 412, "height": 823}, is_mobile=True)
    context = await browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


CHECKED: list[str] = []


async def check(page: Any, name: str, folder: Path = ARTEFACTS) -> None:
    """axe-core on the page (no serious or critical violation) and a screenshot."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{len(CHECKED):02d}-{name}.png"), full_page=True)
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name} ({page.url}): {bad}"
    CHECKED.append(name)


async def _spid_login(page: Any, env: Env, who: Any) -> None:
    await page.goto(env.front)
    await check(page, "home")
    await page.get_by_role("link", name="Entra con SPID").click()
    await page.wait_for_url(re.compile(r"/sportello/accedi/spid$"))
    await check(page, "spid-chooser")
    await page.locator(f'a[data-entity-id="{env.idp}/spid"]').click()
    await page.wait_for_url(f"{env.idp}/spid/sso**")
    row = page.locator("tr", has=page.locator("code", has_text=who.code))
    await row.get_by_role("button", name="Entra", exact=True).click()
    await page.wait_for_url(f"{env.front}area")
    await playwright_api.expect(page.locator("#fiscal-code")).to_have_text(who.code)


async def _book(page: Any, env: Env, *, logged_in: bool, shots: Path = ARTEFACTS) -> str:
    await page.goto(env.front + "prenota/")
    await check(page, "booking-service" + ("-login" if logged_in else ""), shots)
    await page.get_by_label(re.compile("Carta d'identità elettronica")).check(force=True)
    await page.get_by_role("button", name=re.compile("Avanti")).click()
    await page.wait_for_url(re.compile(r"/prenota/orari\?"))
    await check(page, "booking-slots", shots)
    await page.locator('input[name="inizio"]').first.check(force=True)
    await page.get_by_role("button", name=re.compile("Avanti")).click()
    await page.wait_for_url(re.compile(r"/prenota/dati\?"))
    if logged_in:
        # prefilled from the login; the fiscal code is the identity's, read only
        await playwright_api.expect(page.locator("#f-name")).to_have_value("Giulia")
        await playwright_api.expect(page.locator("#f-fiscal_code")).to_have_attribute(
            "readonly", ""
        )
    else:
        await page.fill("#f-name", "Mario")
        await page.fill("#f-surname", "Bianchi")
        await page.fill("#f-email", "mario.bianchi@example.it")
    await page.fill("#f-email", await page.input_value("#f-email") or "giulia@example.it")
    await page.fill("#f-reason", "Rinnovo della carta d'identità")
    await check(page, "booking-data", shots)
    await page.get_by_role("button", name=re.compile("riepilogo")).click()
    await playwright_api.expect(page.locator("#summary")).to_contain_text("Ufficio Anagrafe")
    await check(page, "booking-summary", shots)
    await page.get_by_role("button", name="Conferma la prenotazione").click()
    await page.wait_for_url(re.compile(r"/prenota/[A-Z0-9-]+/confermata$"))
    await check(page, "booking-confirmed", shots)
    code = await page.locator("#booking-code").inner_text()
    async with page.expect_download() as download:
        await page.get_by_role("link", name=re.compile(r"\.ics")).click()
    saved = await (await download.value).path()
    assert b"BEGIN:VEVENT" in await asyncio.to_thread(Path(saved).read_bytes)
    return str(code)


async def test_the_citizen_journey(env: Env, browser: Any) -> None:
    CHECKED.clear()
    giulia = DEFAULT_IDENTITIES[1]
    page = await _page(browser, mobile=True)
    await _spid_login(page, env, giulia)
    await check(page, "area")

    # my data: the comune's registry, each field with its source
    await page.get_by_role("link", name="I miei dati").first.click()
    await playwright_api.expect(page.locator("#items")).to_contain_text("Via della Prova")
    await playwright_api.expect(page.locator("#items")).to_contain_text("anagrafe del comune")
    await check(page, "my-data")

    # my payments: Checkout pays through the hub's station; the receipt is shown
    await page.goto(env.front + "area/pagamenti")
    await playwright_api.expect(page.locator("#items")).to_contain_text(env.nav)
    await check(page, "my-payments")
    await page.get_by_role("button", name="Paga con pagoPA").click()
    await page.wait_for_url(re.compile(r"/checkout/p/"))
    await page.get_by_role("button", name="Paga").click()
    await page.wait_for_url(re.compile(r"/area/pagamenti\?esito=ok"))
    await playwright_api.expect(page.locator("#items")).to_contain_text("Pagato")
    await playwright_api.expect(page.locator("#items")).to_contain_text("Ricevuta")
    await check(page, "my-payments-paid")

    # an appointment, logged in: in "I miei appuntamenti"
    code = await _book(page, env, logged_in=True)
    await page.goto(env.front + "area/appuntamenti")
    await playwright_api.expect(page.locator("#items")).to_contain_text(code)
    await check(page, "my-appointments")

    # logout: the session ends, the IdP's single logout, the comune's site
    await page.goto(env.front + "area")
    await page.get_by_role("button", name="Esci").click()
    await page.wait_for_url(env.comune)
    await playwright_api.expect(page.locator("#comune")).to_have_text(COMUNE_SITE_TITLE)
    await page.goto(env.front + "area")
    await page.wait_for_url(re.compile(r"/sportello/\?"))  # the login page again

    # CIE: straight to the IdP's login, then the personal area
    holder = next(i for i in DEFAULT_IDENTITIES if i.has_cie)
    cie = await _page(browser)
    await cie.goto(env.front)
    await cie.get_by_role("link", name="Entra con CIE").click()
    await cie.wait_for_url(f"{env.idp}/cie/sso**")
    row = cie.locator("tr", has=cie.locator("code", has_text=holder.code))
    await row.get_by_role("button", name="Entra", exact=True).click()
    await cie.wait_for_url(f"{env.front}area")
    await playwright_api.expect(cie.locator("#fiscal-code")).to_have_text(holder.code)

    # a SPID anomaly (here 22: the citizen refused to send the data) leads back to the
    # comune's site from the login platform's page
    refused = await _page(browser)
    await refused.goto(env.front + "accedi/spid")
    await refused.locator(f'a[data-entity-id="{env.idp}/spid"]').click()
    await refused.wait_for_url(f"{env.idp}/spid/sso**")
    await refused.get_by_label("Anomalia").select_option("22")
    await refused.get_by_role("button", name="Rispondi con anomalia").click()
    await refused.wait_for_url(f"{env.hub}/t/{TENANT}/spid/acs")
    await playwright_api.expect(refused.locator('#anomaly[data-code="22"]')).to_be_visible()
    await refused.locator("#back").click()
    await refused.wait_for_url(env.comune)

    # an appointment without login
    anonymous = await _page(browser, mobile=True)
    code = await _book(anonymous, env, logged_in=False)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    print(f"\nscreenshots and axe checks ({len(CHECKED)} pages) in {ARTEFACTS}")

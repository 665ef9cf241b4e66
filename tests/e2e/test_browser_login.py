"""SPID and CIE logins in a real browser: Debian's Chromium driven by Playwright, against the
hub and the sandbox IdP on two ports of 127.0.0.1 (same site, so the hub's SameSite=Lax
cookies come along on the IdP's cross-origin POST to the ACS over plain http).

The citizen's path, click by click: the demo comune application (``/t/{tenant}/app``), "Entra
con SPID" (or CIE), the hub's IdP chooser, the sandbox IdP's login page ("Entra" for a test
identity, or an anomaly), the auto-submitting form to the ACS, and the application's callback
page showing who logged in (or the hub's anomaly page).

Never downloads a browser: skipped when ``chromium`` is not on PATH.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from aiohttp.test_utils import TestServer
from factories import free_port, spid_tenant

from sportello.app import create_app
from sportello.config import parse_config
from sportello.connectors.spid.errors import SpidAnomaly
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 8_000
TENANT = "comune"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not on PATH (apt-get install chromium); browsers are never downloaded",
    ),
    pytest.mark.timeout(60),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")


@dataclass
class Env:
    hub: str
    idp: str

    @property
    def app_url(self) -> str:
        return f"{self.hub}/t/{TENANT}/app"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """The hub (SQLite) with one tenant whose return_urls list the demo app's callback, and
    the sandbox IdP; both on real sockets of 127.0.0.1."""
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    await idp_server.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    tenant = spid_tenant(
        tmp_path, hub_url=hub, idps=[idp], return_urls=[f"{hub}/t/{TENANT}/app/callback"]
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
    server = TestServer(create_app(config, apply_migrations=True), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Env(hub, idp)
    finally:
        await server.close()
        await idp_server.close()


@pytest.fixture
async def page(env: Env) -> AsyncIterator[Any]:
    """A fresh browser page (its own context: cookies start empty)."""
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="it-IT")
            context.set_default_timeout(TIMEOUT_MS)
            yield await context.new_page()
            await context.close()
        finally:
            await browser.close()


async def _to_idp_login_page(page: Any, env: Env, kind: str) -> None:
    """Demo app -> "Entra con SPID/CIE" -> hub chooser -> the sandbox IdP's login page."""
    label = {"spid": "SPID", "cie": "CIE"}[kind]
    await page.goto(env.app_url)
    await page.get_by_role("link", name=f"Entra con {label}").click()
    await page.wait_for_url(re.compile(rf"/t/{TENANT}/{kind}/login\?"))
    # no idp in the app's link: the hub shows its chooser, one button per trusted IdP
    await playwright_api.expect(page.locator("h1")).to_have_text(f"Entra con {label}")
    sandbox = page.locator(f'a[href*="idp={quote_plus(f"{env.idp}/{kind}")}"]')
    await playwright_api.expect(sandbox).to_have_count(1)
    await sandbox.click()
    await page.wait_for_url(f"{env.idp}/{kind}/sso**")
    await playwright_api.expect(page.locator("h1")).to_contain_text(f"Entra con {label}")


async def _shows_identity(page: Any, env: Env, identity: Any) -> None:
    await page.wait_for_url(re.compile(rf"^{re.escape(env.app_url)}/callback\?code="))
    await playwright_api.expect(page.locator("#fiscal-code")).to_have_text(identity.code)
    who = page.locator("#who")
    attrs = dict(identity.attributes)
    await playwright_api.expect(who).to_contain_text(f"{attrs['name']} {attrs['familyName']}")


async def _login(page: Any, env: Env, kind: str, identity: Any) -> None:
    await _to_idp_login_page(page, env, kind)
    row = page.locator("tr", has=page.locator("code", has_text=identity.code))
    await row.get_by_role("button", name="Entra", exact=True).click()
    # the IdP answers an auto-submitting form to the ACS; the hub 303s to the app callback
    await _shows_identity(page, env, identity)


async def test_spid_login_in_the_browser(env: Env, page: Any) -> None:
    person = DEFAULT_IDENTITIES[1]  # Giulia Prova, SpidL3
    await _login(page, env, "spid", person)
    # the hub's cookies worked on plain http: the browser cookie (SameSite=Lax) came along
    # on the IdP's cross-origin POST to the ACS, and the session cookie is set
    cookies = {c["name"]: c for c in await page.context.cookies(env.hub)}
    assert cookies["sportello_login"]["sameSite"] == "Lax"
    assert "sportello_session_spid" in cookies


async def test_spid_anomaly_in_the_browser(env: Env, page: Any) -> None:
    code = 22
    await _to_idp_login_page(page, env, "spid")
    await page.get_by_label("Anomalia").select_option(str(code))
    await page.get_by_role("button", name="Rispondi con anomalia").click()
    await page.wait_for_url(f"{env.hub}/t/{TENANT}/spid/acs")
    anomaly = page.locator(f'#anomaly[data-code="{code}"]')
    await playwright_api.expect(anomaly).to_have_text(SpidAnomaly(code).message)
    body = await page.content()
    assert html.escape(SpidAnomaly.MESSAGES[code], quote=False) in body
    assert "sportello_session_spid" not in {c["name"] for c in await page.context.cookies()}


async def test_cie_login_in_the_browser(env: Env, page: Any) -> None:
    holder = next(i for i in DEFAULT_IDENTITIES if i.has_cie)
    await _login(page, env, "cie", holder)

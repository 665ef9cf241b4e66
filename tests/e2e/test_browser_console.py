"""The operator console in a real browser: Debian's Chromium driven by Playwright, against
the hub and the sandbox IdP on two ports of 127.0.0.1.

- A software-house admin logs in with password and TOTP (enrolling on the way: the QR is
  shown), sees the tenants, retries a failed outbox job and searches the audit log.
- A comune staff member logs in with SPID through the sandbox IdP (the hub's own login,
  handed over to the console) and sees only their comune: another comune's page is 404.

Screenshots of each step are written to ``$SPORTELLO_E2E_ARTIFACTS`` (default: the test's
temporary folder). Never downloads a browser: skipped when ``chromium`` is not on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pyotp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from factories import free_port, spid_tenant, tenant

from sportello.app import ENGINE, create_app
from sportello.config import parse_config
from sportello.outbox import store
from sportello.platforms.console import service
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM
from sportello.schema import outbox

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 8_000
TENANT = "comune"
STAFF = DEFAULT_IDENTITIES[0]  # Mario Collaudo: staff of "comune"
PASSWORD = "a long console password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not on PATH (apt-get install chromium); browsers are never downloaded",
    ),
    pytest.mark.timeout(90),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
expect = playwright_api.expect


@dataclass
class Env:
    hub: str
    idp: str
    secret: str
    job: int
    shots: Path


def _artefacts(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("SPORTELLO_E2E_ARTIFACTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    await idp_server.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    comune = spid_tenant(tmp_path, hub_url=hub, idps=[idp], return_urls=[], kinds=("spid",))
    comune["console"] = {"staff": [{"fiscal_code": STAFF.code, "role": "tenant-admin"}]}
    config = parse_config(
        {
            "server": {"public_url": hub},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"},
            "outbox": {"workers": False},
            "idps": {"signing_certs": [FEDERATION_CERT_PEM.decode()]},
            "tenants": [comune, tenant("altro", name="Comune di Altro")],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    now = datetime.now(UTC)
    async with app[ENGINE].begin() as conn:
        made = await service.add_user(conn, "ops", PASSWORD, now=now, issuer="Sportello")
        await store.enqueue_many(
            conn,
            [store.NewJob(tenant_id=TENANT, kind="webhook.deliver", payload={"n": 1})],
            now=now,
            default_max_attempts=3,
        )
        job = int(await conn.scalar(sa.select(sa.func.max(outbox.c.id))))
        await conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == job)
            .values(status="failed", attempts=3, last_error="receiver answered 503")
        )
    shots = _artefacts(tmp_path)
    try:
        yield Env(hub, idp, made.secret, job, shots)
    finally:
        await server.close()
        await idp_server.close()


@pytest.fixture
async def page(env: Env) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="it-IT")
            context.set_default_timeout(TIMEOUT_MS)
            yield await context.new_page()
            await context.close()
        finally:
            await browser.close()


async def _shot(page: Any, env: Env, name: str) -> None:
    await page.screenshot(path=str(env.shots / f"console-{name}.png"), full_page=True)


async def test_admin_logs_in_retries_a_job_and_searches_the_audit_log(env: Env, page: Any) -> None:
    await page.goto(f"{env.hub}/console/")
    await page.wait_for_url(f"{env.hub}/console/accesso")
    await page.get_by_label("Nome utente").fill("ops")
    await page.get_by_label("Password").fill(PASSWORD)
    await _shot(page, env, "01-login")
    await page.get_by_role("button", name="Continua").click()
    await page.wait_for_url(f"{env.hub}/console/accesso/codice")
    # first login: the enrolment QR and the key
    await expect(page.get_by_role("img", name=re.compile("Codice QR"))).to_be_visible()
    await expect(page.locator("#totp-secret")).to_have_text(env.secret)
    await _shot(page, env, "02-enrolment")
    await page.get_by_label(re.compile("Codice di verifica")).fill(pyotp.TOTP(env.secret).now())
    await page.get_by_role("button", name="Accedi").click()
    await page.wait_for_url(f"{env.hub}/console/")
    tenants = page.locator("#tenants")
    await expect(tenants).to_contain_text("Comune di Altro")
    await expect(
        tenants.get_by_role("link", name=re.compile("Comune di Prova|comune"))
    ).to_have_count(1)
    await _shot(page, env, "03-tenants")
    # the failed job: one click on its row's failure count, one on "Riprova"
    await page.goto(f"{env.hub}/console/t/{TENANT}/coda?stato=failed")
    row = page.locator(f"#job-{env.job}")
    await expect(row).to_contain_text("receiver answered 503")
    await _shot(page, env, "04-outbox")
    await row.get_by_role("button", name=re.compile("Riprova")).click()
    await expect(page.get_by_role("status").filter(has_text=f"{env.job}")).to_contain_text(
        "di nuovo in coda"
    )
    await expect(page.locator(f"#job-{env.job}")).to_have_count(0)
    await _shot(page, env, "05-retried")
    # the audit log: the retry is there, found by action
    await page.goto(f"{env.hub}/console/registro")
    await page.get_by_label("Azione (inizio)").fill("console.outbox")
    await page.get_by_role("button", name="Cerca").click()
    await page.wait_for_url(re.compile(r"azione=console\.outbox"))
    audit = page.locator("#audit tbody tr")
    await expect(audit).to_have_count(1)
    await expect(audit).to_contain_text(f"outbox:{env.job}")
    await expect(audit).to_contain_text("console:admin:ops")
    await _shot(page, env, "06-audit")
    # logout
    await page.get_by_role("button", name="Esci").click()
    await page.wait_for_url(f"{env.hub}/console/accesso")


async def test_comune_staff_log_in_with_spid_and_see_only_their_comune(env: Env, page: Any) -> None:
    await page.goto(f"{env.hub}/console/t/{TENANT}/")
    await page.wait_for_url(f"{env.hub}/console/t/{TENANT}/entra")
    await _shot(page, env, "11-staff-login")
    await page.get_by_role("link", name="Entra con SPID").click()
    # the hub's IdP chooser, then the sandbox IdP's login page
    sandbox = page.locator(f'a[href*="idp={quote_plus(f"{env.idp}/spid")}"]')
    await expect(sandbox).to_have_count(1)
    await sandbox.click()
    await page.wait_for_url(f"{env.idp}/spid/sso**")
    person = page.locator("tr", has=page.locator("code", has_text=STAFF.code))
    await person.get_by_role("button", name="Entra", exact=True).click()
    # back through the ACS and the console's return to the comune's page
    await page.wait_for_url(f"{env.hub}/console/t/{TENANT}/")
    await expect(page.locator("#readiness")).to_be_visible()
    attrs = dict(STAFF.attributes)
    await expect(page.locator(".it-header-slim-wrapper")).to_contain_text(attrs["familyName"])
    await _shot(page, env, "12-staff-overview")
    # only their comune: the list of tenants sends them home, another comune is 404
    await page.goto(f"{env.hub}/console/")
    await page.wait_for_url(f"{env.hub}/console/t/{TENANT}/")
    response = await page.goto(f"{env.hub}/console/t/altro/")
    assert response is not None and response.status == 404
    await expect(page.locator("h1")).to_have_text("Pagina non trovata")
    response = await page.goto(f"{env.hub}/console/registro")
    assert response is not None and response.status == 404
    await _shot(page, env, "13-other-comune-404")
    # their own comune's outbox: a tenant-admin may retry
    await page.goto(f"{env.hub}/console/t/{TENANT}/coda")
    await expect(page.locator(f"#job-{env.job}").get_by_role("button")).to_have_count(1)

"""The demo shows what is built: the bundled demo configuration (``hub/demo/demo.toml``), the
hub and the sandboxes wired as ``sportello demo`` wires them (same setup functions, on free
ports), then what a newcomer tries: FdR reconciliation on the tenant ``demo``, a resident
known to both ANPR and the comune's registry, a company's SPID login, the IdP page on a
phone, a CIE login over OpenID Connect."""

from __future__ import annotations

import html
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer
from factories import free_port
from pagopa_node import XSD_DIR

from sportello.app import create_app
from sportello.cli.demo_setup import (
    demo_api_key,
    prepare_demo_platforms,
    prepare_demo_secrets,
    register_demo_pdnd_client,
    seed_demo,
)
from sportello.cli.main import demo_config_path
from sportello.config import HubConfig, load_config
from sportello.hookspecs import SandboxApp
from sportello.platforms.login import hub_demo_seed as onboard_demo_oidc
from sportello.platforms.pagopa.demo import register_demo_station
from sportello.platforms.pagopa.operations import reconcile_flows
from sportello.plugins import Plugins
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.pagopa.fdr import Ledger

COMPANY = next(i for i in DEFAULT_IDENTITIES if i.code[0].isdigit())  # a legal person
# In the ANPR sandbox's population (household F000002) and in hub/demo/anagrafe.csv.
BOTH = "CNTVCN80A23L781G"
DEMO_PORTS = {
    "hub": 8000,
    "idp": 8101,
    "pagopa": 8102,
    "io": 8103,
    "pdnd": 8104,
    "anpr": 8105,
    "oidc": 8106,
    "send": 8107,
    "inad": 8108,
    "email": 8109,
    "email-smtp": 8125,  # the e-mail sandbox's SMTP port
}


@dataclass
class Demo:
    config: HubConfig
    app: web.Application
    urls: dict[str, str]
    api_key: str

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.fixture(scope="session")
def demo_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the SAML keys (made once: RSA keys take time)."""
    return tmp_path_factory.mktemp("demo-data")


@pytest.fixture
async def demo(
    tmp_path: Path, demo_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Demo]:
    for name in list(os.environ):
        if name.startswith("SPORTELLO_DEMO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPORTELLO_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite'}")
    prepare_demo_secrets(demo_keys)
    ports = {name: free_port() for name in DEMO_PORTS}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    config = load_config(
        demo_config_path(),
        replace={f":{DEMO_PORTS[n]}": f":{ports[n]}" for n in DEMO_PORTS},
    )
    config = prepare_demo_platforms(config, demo_keys)
    specs: list[SandboxApp] = Plugins().sandbox_apps()
    servers = []
    for spec in specs:  # as `sportello demo` builds them
        server = TestServer(spec.build(urls), host="127.0.0.1", port=ports[spec.name])
        await server.start_server()
        servers.append(server)
    app = create_app(config, apply_migrations=True)
    hub = TestServer(app, host="127.0.0.1", port=ports["hub"])
    await hub.start_server()
    await register_demo_pdnd_client(config)
    # pagoPA's hub_demo_seed registers the station first (`sportello demo` runs it)
    await register_demo_station(config, urls["hub"])
    key_file = tmp_path / "demo-api-key.txt"
    await demo_api_key(app, key_file)
    # login's hub_demo_seed (`sportello demo` runs every plugin's once the sandboxes listen;
    # pagoPA's is left to the FdR test): the OIDC RP onboarded at the sandbox trust anchor
    await onboard_demo_oidc(app)
    try:
        yield Demo(config, app, urls, key_file.read_text())
    finally:
        await hub.close()
        for server in reversed(servers):
            await server.close()


@pytest.mark.skipif(
    not (XSD_DIR / "paForNode.xsd").is_file(), reason="pagoPA specs (shared/specs) not found"
)
async def test_fdr_reconciliation_works_on_the_demo_tenant(demo: Demo) -> None:
    await seed_demo(demo.app)  # as `sportello demo` does: pagoPA's hub_demo_seed
    async with aiohttp.ClientSession() as s:
        async with s.get(demo.urls["pagopa"] + "/__sandbox/fdr") as resp:
            flows = (await resp.json())["flows"]
    assert [f["receiver"]["organizationId"] for f in flows] == ["00000000999"]
    lines, failed = await reconcile_flows(demo.config, "demo", None, True)
    assert not failed, lines
    assert lines[0] == "flows: 1 listed, 1 reconciled, 0 already reconciled, 0 failed"
    assert "matched: 1" in lines
    assert lines[3].startswith("unmatched: 0 payments without receipt")
    # the next run has nothing new to read
    again, _ = await reconcile_flows(demo.config, "demo", None, False)
    assert again[0] == "flows: 1 listed, 0 reconciled, 1 already reconciled, 0 failed"


def test_a_restarted_fdr_sandbox_does_not_reuse_flow_ids() -> None:
    """A hub keeps what it reconciled; a sandbox started later numbers its flows after the
    ones an earlier run published, so the new flow is not taken for one already read."""
    from sportello.clock import FakeClock

    clock = FakeClock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    first = Ledger(clock, first_number=1)
    later = Ledger(clock, first_number=3601)
    assert first._next_id(_psp(), clock.now().date())[0].endswith("-00001")
    assert later._next_id(_psp(), clock.now().date())[0].endswith("-03601")


def _psp() -> Any:
    from sportello.sandbox.pagopa.node_model import DEFAULT_PSPS

    return DEFAULT_PSPS[0]


async def test_demo_registry_and_anpr_share_people(demo: Demo) -> None:
    url = f"{demo.urls['hub']}/api/v1/tenants/demo/residents/{BOTH}"
    headers = {"Authorization": f"Bearer {demo.api_key}"}
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, params={"purpose": "PROT.2026/1"}, headers=headers) as resp,
    ):
        body = await resp.json()
        assert resp.status == 200, body
    assert body["found"] and body["sources"] == ["anpr", "registry"]
    assert body["warnings"] == [], body["warnings"]
    fields = body["fields"]
    assert fields["family_name"] == {"value": "CONTE", "source": "anpr"}
    assert fields["id_anpr"]["source"] == "anpr"
    assert fields["email"] == {"value": "vincenzo.conte@example.org", "source": "registry"}
    assert fields["family_id"] == {"value": "F-DEMO-2", "source": "registry"}
    assert {f["source"] for f in fields.values() if f} == {"anpr", "registry"}


async def _idp_page(browser: aiohttp.ClientSession, demo: Demo) -> tuple[str, str]:
    """From the demo application's home to the sandbox IdP's login page: (txn, page)."""
    async with browser.get(f"{demo.urls['hub']}/t/demo/app") as resp:
        assert resp.status == 200
        page = await resp.text()
    link = html.unescape(re.findall(r'href="([^"]*/spid/login[^"]*)"', page)[0])
    login = yarl.URL(demo.urls["hub"] + link).update_query(idp=f"{demo.urls['idp']}/spid")
    async with browser.get(login, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    async with browser.get(yarl.URL(location, encoded=True)) as resp:
        assert resp.status == 200, resp.headers.get("X-Sandbox-Error")
        return resp.headers["X-Sandbox-Txn"], await resp.text()


async def test_company_login_greets_the_company_by_name(demo: Demo) -> None:
    async with demo.browser() as browser:
        txn, _ = await _idp_page(browser, demo)
        data = {"txn": txn, "format": "json", "identity": COMPANY.code}
        async with browser.post(f"{demo.urls['idp']}/spid/sso/answer", data=data) as resp:
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
        form = {"SAMLResponse": answer["SAMLResponse"], "RelayState": answer["RelayState"]}
        async with browser.post(answer["acs_url"], data=form) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.url.path == "/t/demo/app/callback"
            page = await resp.text()
    greeting = re.search(r'<p id="who">(.*?)</p>', page, re.S)
    assert greeting is not None, page
    assert "Benvenuto, <strong>Sandbox Servizi di Collaudo S.r.l.</strong>" in greeting.group(1)


async def test_idp_login_page_fits_a_phone(demo: Demo) -> None:
    async with demo.browser() as browser:
        _, page = await _idp_page(browser, demo)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


_ACTION = re.compile(r"action='([^']+)'")
_TXN = re.compile(r"name='txn' value='([^']+)'")
PERSON = DEFAULT_IDENTITIES[0]  # Mario Collaudo, who has a CIE


async def test_cie_login_over_oidc_greets_the_person_by_name(demo: Demo) -> None:
    """/t/demo/app offers CIE over OpenID Connect; the login goes through the sandbox CIE
    OP's login and consent pages and ends on the demo application, protocol oidc."""
    hub = demo.urls["hub"]
    async with aiohttp.ClientSession() as s, s.get(f"{hub}/readyz") as resp:
        assert resp.status == 200, await resp.text()  # the demo's RP is fully onboarded
    async with demo.browser() as browser:
        async with browser.get(f"{hub}/t/demo/app") as resp:
            assert resp.status == 200
            page = await resp.text()
        found = re.search(r'href="([^"]*)">Entra con CIE \(OpenID Connect\)</a>', page)
        assert found is not None, page
        assert "Entra con SPID (OpenID Connect)" in page  # the SPID OP too
        link = html.unescape(found.group(1))
        query = parse_qs(urlsplit(link).query)
        assert urlsplit(link).path == "/t/demo/oidc/login"
        assert query["provider"] == [f"{demo.urls['oidc']}/cie"]
        assert query["return_to"] == [f"{hub}/t/demo/app/callback"]
        async with browser.get(hub + link, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location = resp.headers["Location"]
        assert location.startswith(f"{demo.urls['oidc']}/cie/")
        async with browser.get(yarl.URL(location, encoded=True)) as resp:
            page = await resp.text()
            assert resp.status == 200, page
        txn, action = _TXN.search(page), _ACTION.search(page)
        assert txn and action, page
        form = {"txn": txn.group(1), "identity": PERSON.code}
        async with browser.post(action.group(1), data=form) as resp:
            page = await resp.text()
            assert resp.status == 200 and "Acconsento" in page, page
        action = _ACTION.search(page)
        assert action
        form = {"txn": txn.group(1), "decision": "accept"}
        async with browser.post(action.group(1), data=form, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            back = resp.headers["Location"]
        assert back.startswith(f"{hub}/t/demo/oidc/callback?")
        async with browser.get(yarl.URL(back, encoded=True)) as resp:
            page = await resp.text()
            assert resp.status == 200, page
            assert resp.url.path == "/t/demo/app/callback"
    greeting = re.search(r'<p id="who">(.*?)</p>', page, re.S)
    assert greeting is not None, page
    assert "Benvenuto, <strong>Mario Collaudo</strong>" in greeting.group(1)
    assert '<span id="fiscal-code">CLLMRA80A01H501C</span>' in greeting.group(1)
    assert '<span id="protocol">OpenID Connect</span>' in page
    assert "Accesso con CIE" in page


async def test_demo_tenant_sends_the_sample_fines_through_send_and_asks_inad(
    demo: Demo,
) -> None:
    """README "Sending a fine in the demo": the sample CSV imported with the command line
    reaches the SEND sandbox through the running hub's outbox (PDND voucher from the demo
    client, registered with SEND's and INAD's purposes); INAD answers for a recipient."""
    import asyncio

    from click.testing import CliRunner
    from sqlalchemy import select

    from sportello.app import ENGINE
    from sportello.cli.main import main
    from sportello.platforms.send.tables import send_notifications

    # as the README runs it, from a checkout (the installed copy may be links, which the
    # import refuses when they lead out of the documents folder)
    fines = Path(__file__).parents[2] / "hub" / "demo" / "fines.csv"
    args = ["send", "import", "demo", "--config", str(demo_config_path()), "--file", str(fines)]
    result = await asyncio.to_thread(CliRunner().invoke, main, args)
    assert result.exit_code == 0, result.output
    assert "3 notification(s) queued, 0 already queued" in result.stdout
    statuses: dict[str, str] = {}
    async with asyncio.timeout(60):
        while set(statuses.values()) != {"accepted"}:
            await asyncio.sleep(0.5)
            async with demo.app[ENGINE].connect() as conn:
                rows = await conn.execute(
                    select(send_notifications.c.pa_protocol_number, send_notifications.c.status)
                )
                statuses = {r.pa_protocol_number: r.status for r in rows}
            assert "failed" not in statuses.values() and "refused" not in statuses.values()
    assert sorted(statuses) == ["PL-2026-000001", "PL-2026-000002", "PL-2026-000003"]
    # each fine's pagoPA position made by the hub, its notice PDF attached to the payment
    from sportello.platforms.send.tables import send_payments

    async with demo.app[ENGINE].connect() as conn:
        attached = (await conn.execute(select(send_payments.c.document_idx))).scalars().all()
    assert len(attached) == 3 and None not in attached
    async with aiohttp.ClientSession() as s:
        async with s.get(demo.urls["send"] + "/__sandbox/notifications") as resp:
            records = (await resp.json())["notifications"]
        assert sorted(r["paProtocolNumber"] for r in records) == sorted(statuses)
        url = f"{demo.urls['hub']}/api/v1/tenants/demo/inad/SPSMRA73A24F205K"
        headers = {"Authorization": f"Bearer {demo.api_key}"}
        async with s.get(url, params={"purpose": "PL-2026-000001"}, headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 200, body
    assert body["addresses"][0]["address"] == "mario.esposito0@pec.sandbox.it"
    # the same file again sends nothing twice
    result = await asyncio.to_thread(CliRunner().invoke, main, args)
    assert result.exit_code == 0, result.output
    assert "0 notification(s) queued, 3 already queued" in result.stdout

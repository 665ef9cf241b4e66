"""Online requests and ratings: the whole C.SE flow through the pages (a citizen session
made with WebSessions, forms posted with their CSRF token), drafts and back navigation,
the certificate in bollo (pagoPA notice, paid, downloaded) and exempt, the residence
declaration handed to the registry through the outbox, milestones through the API
(Idempotency-Key, audited), protocol numbers under concurrency, tenant isolation (404 in
pages and API), hostile input (never a 500), and the ratings export (JSON and CSV).
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sportello import apikeys
from sportello.adapters.protocol.base import ProtocolEntry, ProtocolUnavailable
from sportello.adapters.registry.base import RegistryRefused, ResidenceDeclaration
from sportello.adapters.registry.csv_adapter import CsvRegistryAdapter
from sportello.app import CLOCK, CONFIG, ENGINE, SERVICES, create_app
from sportello.audit import audit_log
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.outbox import Job
from sportello.outbox.store import outbox
from sportello.platforms.io.tables import io_messages
from sportello.platforms.requests import console, service
from sportello.platforms.requests.jobs import residence_handler
from sportello.platforms.requests.personal_area import MyRequests
from sportello.platforms.requests.settings import RequestsTenantSettings
from sportello.platforms.requests.tables import requests_milestones, requests_requests
from sportello.web import WebSessions
from sportello.web.console import ConsoleFilters

DEMO_CSV = Path(__file__).resolve().parents[2] / "hub" / "demo" / "anagrafe.csv"
GIOVANNI = "VRDGNN70D04H501W"  # in the demo registry, family F-DEMO-1 with Laura
LAURA = "VRDLRA72E44H501K"
IO_SERVICE = "01DEMOSERVICE0000000000000"
EC = "00000000999"
IBAN = "IT60X0542811101000000123456"
# Monday 1 March 2027, 10:00 in Rome
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def tenant(tid: str, fiscal_code: str) -> dict[str, Any]:
    return {
        "id": tid,
        "name": f"Comune di {tid.title()}",
        "ipa_code": f"c_{tid[:4]}",
        "fiscal_code": fiscal_code,
        "cadastral_code": "Z999",
        "io": {
            "base_url": "http://127.0.0.1:9/api/v1",
            "services": [{"id": IO_SERVICE, "key": {"env": "X"}}],
        },
        "pagopa": {
            "ec_fiscal_code": fiscal_code,
            "broker_id": fiscal_code,
            "station_id": fiscal_code + "_01",
            "segregation_code": "01",
            "mode": "station",
        },
        "adapters": {
            "registry": {
                "plugin": "csv",
                "options": {"path": "anagrafe.csv", "comune": f"Comune di {tid.title()}"},
            }
        },
        "requests": {
            "io_service": IO_SERVICE,
            "stamp_duty": {"iban": IBAN},
            "deadlines": {"residenza": 45},
        },
    }


class Hub:
    def __init__(self, client: TestClient, app: web.Application, keys: dict[str, str]) -> None:
        self.client, self.app, self.keys = client, app, keys

    async def login(self, cf: str = GIOVANNI, tid: str = "demo") -> None:
        """A citizen session as the front office starts it after SPID/CIE (WebSessions)."""
        sessions = WebSessions(self.app[ENGINE], self.app[CONFIG], "sportello")
        carrier = web.Response()
        await sessions.start(
            carrier,
            tenant_id=tid,
            subject=cf,
            data={"name": "Giovanni", "family_name": "Verdi", "email": "gv@example.it"},
            now=self.app[CLOCK].now(),
        )
        self.client.session.cookie_jar.clear()
        self.client.session.cookie_jar.update_cookies(
            {"sportello-sportello": carrier.cookies["sportello-sportello"].value}
        )

    def auth(self, tid: str = "demo", key: str = "Idem") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tid]}", "Idempotency-Key": key}


@asynccontextmanager
async def running(tmp_path: Path, db_url: str, *, protocol: bool = False) -> AsyncIterator[Hub]:
    shutil.copy(DEMO_CSV, tmp_path / "anagrafe.csv")
    tenants = [tenant("demo", EC), tenant("altro", "00000000888")]
    if protocol:  # the comune's protocol register (its class is put in below)
        tenants[0]["adapters"]["protocol"] = {"plugin": "test"}
    config = parse_config(
        {
            "server": {"public_url": "http://hub.example"},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": tenants,
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    clock = FakeClock(NOW)
    app = create_app(config, apply_migrations=True, clock=clock)
    async with TestClient(TestServer(app)) as client:
        keys = {}
        async with app[ENGINE].begin() as conn:
            for tid in ("demo", "altro"):
                keys[tid] = await apikeys.create(
                    conn,
                    tenant_id=tid,
                    name="back office",
                    scopes=["read", "write", "personal_data"],
                    now=clock.now(),
                )
        yield Hub(client, app, keys)


@pytest.fixture
async def hub(tmp_path: Path, db_url: str) -> AsyncIterator[Hub]:
    async with running(tmp_path, db_url) as found:
        yield found


def csrf(body: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert found, "no CSRF token in the page"
    return found.group(1)


def value_of(body: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', body)
    return unescape(found.group(1)) if found else ""


async def page(hub: Hub, path: str, status: int = 200) -> str:
    resp = await hub.client.get(path, allow_redirects=False)
    body = await resp.text()
    assert resp.status == status, (path, resp.status, body[:500])
    return body


async def post(hub: Hub, path: str, form: dict[str, str], status: int = 303) -> Any:
    token = csrf(await page(hub, path if "/passo/" in path else path.rsplit("/", 1)[0] + "/"))
    resp = await hub.client.post(path, data={"csrf_token": token, **form}, allow_redirects=False)
    assert resp.status == status, (path, resp.status, (await resp.text())[:800])
    return resp


async def start(hub: Hub, service_id: str) -> str:
    """A new draft: the card page, "Inizia", the first step; the draft's base URL."""
    card = await page(hub, f"/t/demo/sportello/richieste/{service_id}/")
    resp = await hub.client.post(
        f"/t/demo/sportello/richieste/{service_id}/nuova",
        data={"csrf_token": csrf(card)},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert location.endswith("/passo/1")
    return location.removesuffix("/passo/1")


def shown(body: str) -> dict[str, str]:
    """What a browser would send of the form as shown: text inputs, checked radios,
    textareas."""
    out = {
        n: unescape(v)
        for n, v in re.findall(
            r'<input type="(?:text|email|tel|date)"[^>]* name="([^"]+)" value="([^"]*)"', body
        )
    }
    out.update(re.findall(r'type="radio" name="([^"]+)" id="[^"]*" value="([^"]*)" checked', body))
    for n, v in re.findall(r'<textarea[^>]* name="([^"]+)"[^>]*>([^<]*)</textarea>', body):
        out[n] = unescape(v)
    return out


async def step(hub: Hub, url: str, n: int, form: dict[str, str], action: str = "avanti") -> Any:
    """Step ``n`` posted as a browser would: the values shown, changed by ``form``."""
    body = await page(hub, f"{url}/passo/{n}")
    return await hub.client.post(
        f"{url}/passo/{n}",
        data={**shown(body), "csrf_token": csrf(body), "azione": action, **form},
        allow_redirects=False,
    )


async def send(hub: Hub, url: str) -> Any:
    body = await page(hub, f"{url}/riepilogo")
    return await hub.client.post(
        f"{url}/invia", data={"csrf_token": csrf(body)}, allow_redirects=False
    )


async def certificate(hub: Hub, use: str) -> str:
    url = await start(hub, "certificato")
    resp = await step(hub, url, 1, {"kind": "residenza_stato_famiglia", "use": use})
    assert resp.status == 303 and resp.headers["Location"] == f"{url}/passo/2"
    body = await page(hub, f"{url}/passo/2")
    # prefilled (C.SE.1.5): name from the login, e-mail from the registry, fiscal code fixed
    assert value_of(body, "given_name") == "Giovanni"
    assert value_of(body, "email") == "giovanni.verdi@example.org"
    assert re.search(rf'name="fiscal_code" value="{GIOVANNI}" readonly', body)
    resp = await step(
        hub,
        url,
        2,
        {
            "given_name": "Giovanni",
            "family_name": "Verdi",
            "fiscal_code": "XXXXXXXXXXXXXXXX",  # a fixed field: the login's wins
            "email": "giovanni.verdi@example.org",
        },
    )
    assert resp.status == 303 and resp.headers["Location"] == f"{url}/riepilogo"
    summary = await page(hub, f"{url}/riepilogo")
    assert "Riepilogo" in summary and GIOVANNI in summary and "XXXXXXXX" not in summary
    assert 'aria-current="step"' in summary and "Modifica" in summary
    resp = await send(hub, url)
    assert resp.status == 303 and resp.headers["Location"] == f"{url}/"
    return url


# --- the whole flow ---------------------------------------------------------------------------


async def test_certificate_in_bollo_paid_through_pagopa_then_downloaded(hub: Hub) -> None:
    await hub.login()
    url = await certificate(hub, "bollo")
    ack = await page(hub, f"{url}/")
    assert 'id="protocol">2027/0000001<' in ack  # the hub's numbering, per tenant and year
    assert "01/03/2027" in ack and 'id="deadline">04/03/2027<' in ack  # card: 3 days
    assert "stamp-due" in ack and "avviso" in ack
    assert "/t/demo/sportello/valutazione?servizio=requests.certificato" in ack
    # not paid yet: no certificate (409 page, not a 500)
    assert "imposta di bollo" in await page(hub, f"{url}/certificato.pdf", 409)
    async with hub.app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(requests_requests))).one()
        sent = (await conn.execute(sa.select(io_messages))).all()
    assert row.stamp == "due" and row.notice_number and len(row.notice_number) == 18
    assert len(sent) == 1 and sent[0].fiscal_code == GIOVANNI  # the second channel (1.2)
    notice = await hub.client.get(f"{url}/avviso.pdf")
    assert notice.status == 200 and (await notice.read()).startswith(b"%PDF")
    # the receipt arrives: pagopa tells every plugin (hub_notice_paid) in its transaction
    services = hub.app[SERVICES]
    plugins = services.plugins or services.adapters.plugins
    async with hub.app[ENGINE].begin() as conn:
        await plugins.notice_paid(
            conn,
            tenant_id="demo",
            notice_number=row.notice_number,
            creditor_tax_id=EC,
            amount=1600,
            paid_at=NOW,
            now=NOW,
        )
    pdf = await hub.client.get(f"{url}/certificato.pdf")
    body = await pdf.read()
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert body.startswith(b"%PDF") and b"DEMO - documento senza valore legale" in body
    assert b"Via Po 2" in body and LAURA.encode() in body  # residence and family
    again = await hub.client.get(f"{url}/certificato.pdf")
    assert await again.read() == body  # stored once, served again
    done = await page(hub, f"{url}/")
    assert "Imposta di bollo pagata" in done and "Certificato rilasciato" in done
    async with hub.app[ENGINE].connect() as conn:
        audits = (
            (
                await conn.execute(
                    sa.select(audit_log.c.action).where(audit_log.c.subject == GIOVANNI)
                )
            )
            .scalars()
            .all()
        )
    assert "requests.prefill.read" in audits and audits.count("requests.certificate.issue") == 1
    # the personal area's section (1.2, 1.9, 1.10)
    demo = hub.app[CONFIG].tenant("demo")
    assert demo is not None
    section = await MyRequests().section(hub.app, demo, GIOVANNI, now=NOW)
    [item] = section.items
    assert item.status == "Conclusa" and ("Numero di protocollo", "2027/0000001") in item.fields
    assert [m[0] for m in item.milestones][-1] == "Certificato rilasciato"


async def test_an_exempt_certificate_is_free_and_ready_at_once(hub: Hub) -> None:
    await hub.login()
    url = await certificate(hub, "pensione")
    ack = await page(hub, f"{url}/")
    assert "DPR 642/1972, Tabella B, art. 9" in ack and "stamp-due" not in ack
    pdf = await hub.client.get(f"{url}/certificato.pdf")
    assert pdf.status == 200 and b"DEMO" in await pdf.read()
    async with hub.app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(requests_requests))).one()
    assert row.stamp == "exempt" and row.notice_number is None and row.status == "completed"


async def test_requests_need_a_login(hub: Hub) -> None:
    card = await page(hub, "/t/demo/sportello/richieste/certificato/")
    assert 'id="login"' in card and "nuova" not in card
    resp = await hub.client.post(
        "/t/demo/sportello/richieste/certificato/nuova",
        data={"csrf_token": "x"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"].startswith("/t/demo/sportello/?next=")


async def test_drafts_are_saved_resumed_and_steps_go_back(hub: Hub) -> None:
    await hub.login()
    url = await start(hub, "residenza")
    # step 1 saved as a draft with a missing field: kept, no error shown
    resp = await step(hub, url, 1, {"birth_place": "Roma", "phone": ""}, action="salva")
    assert resp.status == 200 and "Bozza salvata" in await resp.text()
    resp = await step(hub, url, 1, {"birth_date": "1970-04-04", "birth_place": "Roma"})
    assert resp.status == 303 and resp.headers["Location"] == f"{url}/passo/2"
    # the card page lists the draft to resume (C.SE.1.6)
    card = await page(hub, "/t/demo/sportello/richieste/residenza/")
    ref = url.rsplit("/", 1)[1]
    assert f"Riprendi la bozza {ref}" in card
    # back from step 2 keeps what was typed there
    resp = await step(hub, url, 2, {"street": "Via Roma", "number": "7"}, action="indietro")
    assert resp.status == 303 and resp.headers["Location"] == f"{url}/passo/1"
    assert value_of(await page(hub, f"{url}/passo/2"), "street") == "Via Roma"
    # a bad field: 422 naming it, nothing lost
    resp = await step(hub, url, 2, {"street": "Via Roma", "number": "7", "moved_on": "31/02"})
    text = await resp.text()
    assert resp.status == 422 and "AAAA-MM-GG" in text and 'aria-invalid="true"' in text
    # a draft with a gap cannot be sent: the summary sends the citizen to the step
    resp = await hub.client.get(f"{url}/riepilogo", allow_redirects=False)
    assert resp.status == 303 and "/passo/2?verifica=1" in resp.headers["Location"]
    resp = await hub.client.post(f"{url}/invia", data={"csrf_token": "x"}, allow_redirects=False)
    assert resp.status == 403
    async with hub.app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(requests_requests))).one()
    assert row.status == "draft" and row.protocol_number is None


async def test_residence_declaration_reaches_the_registry_through_the_outbox(
    hub: Hub, tmp_path: Path
) -> None:
    await hub.login()
    url = await start(hub, "residenza")
    await step(hub, url, 1, {"birth_date": "1970-04-04", "birth_place": "Roma", "phone": ""})
    where = {
        "origin": "other_comune",
        "street": "Via Garibaldi",
        "number": "12",
        "floor": "2",
        "moved_on": "2027-02-20",
        "occupancy": "locazione",
        "occupancy_detail": "contratto registrato n. 123",
    }
    resp = await step(hub, url, 2, where)
    assert resp.status == 303
    bad = await step(hub, url, 3, {"movers": "Laura Verdi; nonvalido; coniuge"})
    assert bad.status == 422 and "codice fiscale" in await bad.text()
    resp = await step(hub, url, 3, {"movers": f"Laura Verdi; {LAURA.lower()}; coniuge"})
    assert resp.headers["Location"] == f"{url}/riepilogo"
    # the comune of origin is needed when coming from another comune (the card's rule)
    resp = await hub.client.get(f"{url}/riepilogo", allow_redirects=False)
    assert resp.headers["Location"] == f"{url}/passo/2?verifica=1"
    assert "Indica il comune" in await page(hub, f"{url}/passo/2?verifica=1", 422)
    await step(hub, url, 2, {**where, "previous_comune": "Torino"})
    resp = await send(hub, url)
    assert resp.status == 303
    token = csrf(await page(hub, f"{url}/"))
    # a second click on "Invia": the acknowledgement again, never a second request
    again = await hub.client.post(f"{url}/invia", data={"csrf_token": token}, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == f"{url}/"
    ack = await page(hub, f"{url}/")
    assert 'id="deadline">15/04/2027<' in ack  # 45 days
    async with hub.app[ENGINE].connect() as conn:
        jobs = (
            await conn.execute(sa.select(outbox).where(outbox.c.kind == "requests.residence"))
        ).all()
    assert len(jobs) == 1
    handle = residence_handler(hub.app[SERVICES])
    payload = json.loads(jobs[0].payload)
    job = Job(jobs[0].id, "demo", service.RESIDENCE_KIND, payload, jobs[0].idempotency_key, 1, 3)
    first = await handle(job)
    second = await handle(job)  # a retry: the same practice, no second milestone
    assert first is not None and second is not None and first.remote_id == second.remote_id
    ref = url.rsplit("/", 1)[1]
    written = json.loads((tmp_path / "registry-practices" / f"{ref}.json").read_text())
    assert written["declarant"] == GIOVANNI and written["previous_comune"] == "Torino"
    assert written["movers"] == [
        {"fiscal_code": LAURA, "full_name": "Laura Verdi", "relationship": "coniuge"}
    ]
    assert written["protocol_number"] == "2027/0000001"
    ack = await page(hub, f"{url}/")
    assert ack.count("Dichiarazione trasmessa") == 1 and "In lavorazione" in ack


# --- back office API --------------------------------------------------------------------------


async def test_milestones_through_the_api_idempotent_and_audited(hub: Hub) -> None:
    await hub.login()
    url = await certificate(hub, "pensione")
    ref = url.rsplit("/", 1)[1]
    base = f"/api/v1/tenants/demo/requests/{ref}"
    body = {"status": "in_progress", "label": "Presa in carico dall'ufficio"}
    one = await hub.client.post(base + "/milestones", json=body, headers=hub.auth(key="m1"))
    two = await hub.client.post(base + "/milestones", json=body, headers=hub.auth(key="m1"))
    assert one.status == two.status == 200, await one.text()
    assert await one.json() == await two.json()
    other = await hub.client.post(
        base + "/milestones", json={**body, "label": "x"}, headers=hub.auth(key="m1")
    )
    assert other.status == 422  # the key reused for another body
    done = await hub.client.post(
        base + "/milestones",
        json={"status": "completed", "label": "Conclusa"},
        headers=hub.auth(key="m2"),
    )
    assert done.status == 200
    late = await hub.client.post(base + "/milestones", json=body, headers=hub.auth(key="m3"))
    assert late.status == 409 and "status" in (await late.json())["detail"]
    got = await hub.client.get(base, headers=hub.auth())
    data = await got.json()
    assert got.status == 200 and data["status"] == "completed"
    assert [m["label"] for m in data["milestones"]].count("Presa in carico dall'ufficio") == 1
    assert data["data"]["use"] == "pensione"
    listed = await hub.client.get(
        "/api/v1/tenants/demo/requests?status=completed", headers=hub.auth()
    )
    assert [i["ref"] for i in (await listed.json())["items"]] == [ref]
    async with hub.app[ENGINE].connect() as conn:
        reads = (
            await conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "requests.api.read")
            )
        ).all()
    assert len(reads) == 2 and {r.subject for r in reads} == {GIOVANNI, "-"}
    async with hub.app[ENGINE].connect() as conn:
        q = sa.select(audit_log.c.outcome).where(audit_log.c.action == "requests.milestone")
        writes = (await conn.execute(q)).scalars().all()
    assert sorted(writes) == ["completed", "in_progress"]  # the replayed call wrote nothing
    assert "Presa in carico" in await page(hub, f"{url}/")  # the citizen sees it (1.9)


async def test_another_tenants_or_citizens_request_is_not_found(hub: Hub) -> None:
    await hub.login()
    url = await certificate(hub, "pensione")
    ref = url.rsplit("/", 1)[1]
    for path in ("/", "/passo/1", "/riepilogo", "/certificato.pdf", "/avviso.pdf"):
        await hub.login(tid="altro")
        await page(hub, f"/t/altro/sportello/richieste/certificato/{ref}{path}", 404)
        await hub.login(cf=LAURA)  # another citizen of the same comune
        await page(hub, f"{url}{path}", 404)
    await page(hub, f"/t/demo/sportello/richieste/residenza/{ref}/", 404)  # wrong card
    api = f"/api/v1/tenants/altro/requests/{ref}"
    assert (await hub.client.get(api, headers=hub.auth("altro"))).status == 404
    resp = await hub.client.post(
        api + "/milestones",
        json={"status": "completed", "label": "x"},
        headers=hub.auth("altro", "k"),
    )
    assert resp.status == 404
    resp = await hub.client.get(f"/api/v1/tenants/demo/requests/{ref}", headers=hub.auth("altro"))
    assert resp.status in (403, 404)  # another tenant's key on this tenant's path
    listed = await hub.client.get("/api/v1/tenants/altro/requests", headers=hub.auth("altro"))
    assert (await listed.json())["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/t/demo/sportello/richieste/nessuno/",
        "/t/nessuno/sportello/richieste/",
        "/t/demo/sportello/richieste/certificato/%00%ff/",
        "/t/demo/sportello/richieste/certificato/AAAAAAAAAA/passo/1",
        "/t/demo/sportello/richieste/certificato/" + "A" * 300 + "/",
        "/t/demo/sportello/valutazione",
        "/t/demo/sportello/valutazione?servizio=" + "x" * 100,
        "/t/demo/sportello/valutazione?servizio=%3Cscript%3E",
    ],
)
async def test_hostile_pages_are_never_500(hub: Hub, path: str) -> None:
    await hub.login()
    resp = await hub.client.get(path, allow_redirects=False)
    assert 400 <= resp.status < 500, (path, resp.status)


async def test_hostile_forms_and_queries_are_never_500(hub: Hub) -> None:
    await hub.login()
    url = await start(hub, "certificato")
    for n in ("0", "3", "-1", "x", "99999999999999999999"):
        assert (await hub.client.get(f"{url}/passo/{n}")).status == 404
    body = await page(hub, f"{url}/passo/1")
    for form in (
        {"kind": "altro", "use": "bollo"},
        {"kind": "x" * 5000, "use": "\x00"},
        {"kind": ["residenza", "stato_famiglia"]},
        {"azione": "boh"},
    ):
        resp = await hub.client.post(
            f"{url}/passo/1", data={"csrf_token": csrf(body), **form}, allow_redirects=False
        )
        assert resp.status in (303, 422), (form, resp.status)
    resp = await hub.client.post(f"{url}/passo/1", data={"kind": "residenza"})
    assert resp.status == 403  # no CSRF token
    auth = hub.auth()
    for query in (
        "requests?limit=0",
        "requests?limit=x",
        "requests?status=nope",
        "requests?after=zz",
        "ratings?from=2027-13-01",
        "ratings?from=yesterday",
        "ratings?to=",
        "ratings?from=2027-03-02&to=2027-03-01",
        "ratings?format=xml",
        "ratings?service=%3C%3E",
        "requests/%00",
    ):
        resp = await hub.client.get(f"/api/v1/tenants/demo/{query}", headers=auth)
        assert 400 <= resp.status < 500, (query, resp.status)
        assert resp.content_type == "application/problem+json"
    for raw in (
        b"",
        b"[]",
        b'{"status": "done", "label": "x"}',
        b'{"status": "completed"}',
        b"\xff",
    ):
        resp = await hub.client.post(
            "/api/v1/tenants/demo/requests/AAAAAAAAAA/milestones",
            data=raw,
            headers={**hub.auth(key=f"h{len(raw)}"), "Content-Type": "application/json"},
        )
        assert resp.status in (400, 404, 415), (raw, resp.status)
    resp = await hub.client.post(
        "/api/v1/tenants/demo/requests/AAAAAAAAAA/milestones",
        json={"status": "completed", "label": "x"},
        headers={"Authorization": auth["Authorization"]},
    )
    assert resp.status == 400  # no Idempotency-Key
    # forms the hub cannot decode (unknown charset, multipart without boundary): a page
    for target in (f"{url}/passo/1", f"{url}/invia", "/t/demo/sportello/valutazione"):
        for content_type, raw in (
            ("application/x-www-form-urlencoded; charset=nope", b"csrf_token=x"),
            ("multipart/form-data", b"--x\r\n\r\nv\r\n--x--\r\n"),
        ):
            resp = await hub.client.post(
                target, data=raw, headers={"Content-Type": content_type}, allow_redirects=False
            )
            assert resp.status in (400, 403, 404), (target, content_type, resp.status)


# --- protocol numbers ----------------------------------------------------------------------


async def test_protocol_numbers_are_unique_under_concurrency(engine) -> None:  # type: ignore[no-untyped-def]
    async def one(tenant_id: str, year: int) -> str:
        async with engine.begin() as conn:
            return await service.hub_protocol_number(conn, tenant_id, year)

    got = await asyncio.gather(*(one("demo", 2027) for _ in range(40)))
    assert sorted(got) == [f"2027/{n:07d}" for n in range(1, 41)]
    assert await one("altro", 2027) == "2027/0000001"  # per tenant
    assert await one("demo", 2028) == "2028/0000001"  # per year
    assert await one("demo", 2027) == "2027/0000041"


async def test_a_protocol_number_rolled_back_is_given_again(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await service.hub_protocol_number(conn, "demo", 2027)
            raise RuntimeError("the request's insert failed")
    async with engine.begin() as conn:
        assert await service.hub_protocol_number(conn, "demo", 2027) == "2027/0000001"


# --- ratings ----------------------------------------------------------------------------------


async def rate(hub: Hub, key: str, score: str, follow: str | None, comment: str = "") -> Any:
    path = "/t/demo/sportello/valutazione"
    first = await page(hub, f"{path}?servizio={key}")
    assert "Quanto è stato facile usare questo servizio?" in first
    assert first.count('type="radio" name="score"') == 5
    resp = await hub.client.post(
        path, data={"csrf_token": csrf(first), "servizio": key, "fase": "1", "score": score}
    )
    second = await resp.text()
    assert resp.status == 200, second
    form = {"csrf_token": csrf(second), "servizio": key, "fase": "2", "score": score}
    if follow is not None:
        form["follow_up"] = follow
    if comment:
        form["comment"] = comment
    return await hub.client.post(path, data=form)


async def test_ratings_are_stored_per_service_and_exported(hub: Hub) -> None:
    # no login needed: any platform's page links here (booking without login too)
    resp = await rate(hub, "requests.certificato", "5", "chiare")
    assert resp.status == 200 and "Grazie" in await resp.text()
    hub.app[CLOCK].advance(timedelta(days=2).total_seconds())  # type: ignore[attr-defined]
    resp = await rate(hub, "requests.certificato", "2", "tecnica", '=HYPERLINK("x") lento')
    assert resp.status == 200
    await rate(hub, "booking", "4", None)
    # the follow-up depends on the score: a negative option for 5 stars is refused
    assert (await rate(hub, "booking", "5", "non_chiare")).status == 422
    assert (await rate(hub, "booking", "1", "tecnica", "x" * 201)).status == 422
    path = "/t/demo/sportello/valutazione"
    first = await page(hub, f"{path}?servizio=booking")
    bad = await hub.client.post(
        path, data={"csrf_token": csrf(first), "servizio": "booking", "score": "9"}
    )
    assert bad.status == 422
    api = "/api/v1/tenants/demo/ratings"
    got = await (
        await hub.client.get(api + "?service=requests.certificato", headers=hub.auth())
    ).json()
    assert got["count"] == 2 and got["average"] == 3.5
    assert [(i["score"], i["follow_up"]) for i in got["items"]] == [(5, "chiare"), (2, "tecnica")]
    assert got["items"][1]["follow_up_label"] == "Ho avuto problemi tecnici"
    day = await (
        await hub.client.get(api + "?from=2027-03-01&to=2027-03-01", headers=hub.auth())
    ).json()
    assert [i["score"] for i in day["items"]] == [5]
    resp = await hub.client.get(
        api + "?format=csv&service=requests.certificato", headers=hub.auth()
    )
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["score"] for r in rows] == ["5", "2"]
    assert rows[1]["comment"].startswith("'=HYPERLINK")  # not a formula in a spreadsheet
    other = await (
        await hub.client.get("/api/v1/tenants/altro/ratings", headers=hub.auth("altro"))
    ).json()
    assert other["count"] == 0  # per tenant


async def test_every_page_has_one_main_heading(hub: Hub) -> None:
    """Found by the browser journey: the pages repeated the layout's <h1> (the page's title)
    with one of their own; a page has one main heading (WCAG 1.3.1, Designers Italia)."""
    await hub.login()
    done = await certificate(hub, "pensione")
    url = await start(hub, "certificato")
    assert (await step(hub, url, 1, {"kind": "residenza", "use": "scuola"})).status == 303
    assert (await step(hub, url, 2, {})).status == 303
    rating = "/t/demo/sportello/valutazione"
    first = await page(hub, f"{rating}?servizio=requests.certificato")
    more = await hub.client.post(
        rating,
        data={"csrf_token": csrf(first), "servizio": "x", "fase": "1", "score": "4"},
    )
    bodies = [
        await page(hub, "/t/demo/sportello/richieste/"),
        await page(hub, "/t/demo/sportello/richieste/certificato/"),
        await page(hub, f"{url}/passo/1"),
        await page(hub, f"{url}/riepilogo"),
        await page(hub, f"{done}/"),
        first,
        await more.text(),
        await page(hub, rating, 400),  # a message page
    ]
    for body in bodies:
        title = re.search(r"<title>(.*?) - ", body)
        assert title and body.count("<h1") == 1, (title, re.findall(r"<h1.*?</h1>", body))


# --- units ------------------------------------------------------------------------------------


def test_people_lines_and_settings_are_checked() -> None:
    movers = service.parse_people(f"\nLaura Verdi; {LAURA}; coniuge\n")
    assert movers[0].fiscal_code == LAURA
    for bad in ("Laura; coniuge", f"; {LAURA}; x", "Laura Verdi; ABC; coniuge"):
        with pytest.raises(ValueError, match="riga 1"):
            service.parse_people(bad)
    with pytest.raises(ValueError, match="deadlines"):
        RequestsTenantSettings.model_validate({"deadlines": {"nessuno": 3}})
    with pytest.raises(ValueError, match="services"):
        RequestsTenantSettings.model_validate({"services": ["passaporto"]})
    own = RequestsTenantSettings.model_validate(
        {
            "services": ["certificato"],
            "office": "Sportello polifunzionale",
            "cards": [
                {
                    "id": "passo-carrabile",
                    "title": "Passo carrabile",
                    "description": "Richiesta di passo carrabile",
                    "deadline_days": 60,
                    "steps": [{"title": "Dove", "fields": [{"name": "street", "label": "Via"}]}],
                }
            ],
        }
    )
    assert [c.id for c in own.offered()] == ["certificato", "passo-carrabile"]
    assert own.card("residenza") is None
    card = own.card("certificato")
    assert card is not None and card.office == "Sportello polifunzionale"


async def test_console_panels_show_only_the_tenants_requests(hub: Hub) -> None:
    await hub.login()
    await certificate(hub, "pensione")
    await rate(hub, "requests.certificato", "4", "complete")
    day = date(2027, 3, 1)
    filters = ConsoleFilters(day=day, since=day, until=day)
    listed, chart = console.PANELS
    view = await listed.rows(hub.app, "demo", filters)
    assert [r[1] for r in view.rows] == ["2027/0000001"]
    assert (await listed.rows(hub.app, "altro", filters)).rows == []
    drawn = await chart.rows(hub.app, "demo", filters)
    assert drawn.series == [("01/03", 1)]
    async with hub.app[ENGINE].connect() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).select_from(requests_milestones))
        ).scalar()
    assert count == 1  # received (the certificate is issued at its first download)


# --- the protocol adapter and the registry's refusals -----------------------------------------


class Register:
    """A comune's protocol register (the ``protocol`` adapter kind), as a test double."""

    name = "test"

    def __init__(self) -> None:
        self.down = False
        self.seen: dict[str, ProtocolEntry] = {}

    async def register(self, *, reference: str, **_: Any) -> ProtocolEntry:
        if self.down:
            raise ProtocolUnavailable("timeout")
        entry = self.seen.get(reference) or ProtocolEntry(
            number=f"PROT-{len(self.seen) + 1}", registered_at=NOW + timedelta(minutes=5)
        )
        self.seen[reference] = entry
        return entry

    async def close(self) -> None:
        pass


async def test_the_comunes_protocol_register_numbers_the_request(
    tmp_path: Path, db_url: str
) -> None:
    async with running(tmp_path, db_url, protocol=True) as hub:
        await _numbered_by_the_register(hub)


async def _numbered_by_the_register(hub: Hub) -> None:
    await hub.login()
    url = await start(hub, "certificato")
    await step(hub, url, 1, {"kind": "residenza", "use": "scuola"})
    await step(hub, url, 2, {})
    resp = await send(hub, url)  # the adapter "test" is not installed: 503, not 500
    assert resp.status == 503 and "la bozza è salvata" in await resp.text()
    register = Register()
    hub.app[SERVICES].adapters.put("demo", "protocol", register)
    register.down = True
    resp = await send(hub, url)
    assert resp.status == 503 and "la bozza è salvata" in await resp.text()
    async with hub.app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(requests_requests))).one()
    assert row.status == "draft" and row.protocol_number is None  # nothing half-written
    register.down = False
    assert (await send(hub, url)).status == 303
    ack = await page(hub, f"{url}/")
    assert 'id="protocol">PROT-1<' in ack and "alle 10:05" in ack  # the register's instant


async def test_the_registry_refuses_what_it_cannot_issue(tmp_path: Path) -> None:
    shutil.copy(DEMO_CSV, tmp_path / "anagrafe.csv")
    adapter = CsvRegistryAdapter({"path": "anagrafe.csv"}, base_dir=tmp_path)
    with pytest.raises(RegistryRefused, match="not a resident"):
        await adapter.issue_certificate("RSSMRA80A01H501U", "residenza")
    with pytest.raises(RegistryRefused, match="unknown certificate kind"):
        await adapter.issue_certificate(GIOVANNI, "nascita")
    pdf = await adapter.issue_certificate(GIOVANNI.lower(), "stato_famiglia")
    assert b"STATO DI FAMIGLIA" in pdf and LAURA.encode() in pdf
    first = ResidenceDeclaration(
        reference="ABCDEFGHIJ",
        protocol_number="2027/0000001",
        declarant=GIOVANNI,
        given_name="Giovanni",
        family_name="Verdi",
        origin="same_comune",
        street="Via Roma",
        number="1",
        moved_on=date(2027, 2, 1),
        occupancy="proprietario",
    )
    practice = await adapter.declare_residence_change(first)
    assert await adapter.declare_residence_change(first) == practice  # a retry
    with pytest.raises(RegistryRefused, match="another declaration"):
        await adapter.declare_residence_change(first.model_copy(update={"number": "2"}))


def test_cli_exports_the_ratings_as_csv(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sportello import migrate
    from sportello.cli.main import main as cli
    from sportello.config import DatabaseSettings
    from sportello.db import create_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[database]\nurl = "{url}"\n\n[[tenants]]\nid = "demo"\nname = "Comune"\n'
        'ipa_code = "c_z999"\nfiscal_code = "00000000999"\ncadastral_code = "Z999"\n'
    )

    async def seed() -> None:
        engine = create_engine(DatabaseSettings(url=url))
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await service.rate(conn, "demo", "booking", 5, "chiare", None, NOW)
            await service.rate(conn, "demo", "requests.residenza", 1, "altro", "lento", NOW)
            await service.rate(conn, "altro", "booking", 3, None, None, NOW)
        await engine.dispose()

    asyncio.run(seed())
    result = CliRunner().invoke(
        cli, ["requests", "ratings", "demo", "--config", str(toml), "--service", "booking"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["service"], r["score"], r["follow_up"]) for r in rows] == [
        ("booking", "5", "chiare")
    ]
    result = CliRunner().invoke(
        cli, ["requests", "ratings", "demo", "--config", str(toml), "--from", "2027-03-02"]
    )
    assert result.exit_code == 0 and len(result.output.splitlines()) == 1  # the header only

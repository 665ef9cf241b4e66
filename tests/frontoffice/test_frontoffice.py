"""The citizen's front office and booking pages, without a browser (the browser journey is
tests/e2e/test_browser_frontoffice.py): the login return (state, one-time code, session,
audit), the personal area's sections (a platform down is said, never "nothing"), tenant
isolation, logout, and the booking steps with and without login, on SQLite and PostgreSQL.

The login platform is replaced by a fake ``hub_login_handoff`` (its real exchange needs a
SAML login, which the browser test does through the sandbox IdP)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from factories import iban_with

from sportello.app import ENGINE, create_app
from sportello.appkeys import CLOCK, CONFIG
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.hookspecs import hookimpl
from sportello.platforms.pagopa.store import PagopaStore
from sportello.plugins import Plugins
from sportello.schema import audit_log, web_sessions
from sportello.web.area import AreaSection
from sportello.web.handoff import IdpChoice, LoginChoice

# Monday 1 March 2027, 09:00 in Rome
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
ANNA = "RSSMRA80A01H501U"
OTHER = "VRDGPP70B02F205Z"
EC = "00000000999"
HOURS = {d: ["09:00-12:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
BOOKING: dict[str, Any] = {
    "offices": [
        {
            "id": "anagrafe",
            "name": "Ufficio Anagrafe",
            "address": "Piazza del Municipio 1",
            "services": [
                {"id": "cie", "name": "Carta d'identità elettronica", "minutes": 30},
            ],
            "hours": HOURS,
        }
    ],
    "horizon_days": 30,
}


class FakeLogin:
    """The login platform's handoff, with codes ``good-<fiscal code>`` usable once."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    @hookimpl
    def hub_login_handoff(self, app: Any) -> Any:
        return self

    @hookimpl
    def hub_login_return_paths(self) -> list[str]:
        return []

    async def choices(self, tenant: Any, *, return_to: str, state: str) -> list[LoginChoice]:
        idps = tuple(
            IdpChoice(name=f"IdP {n}", entity_id=f"https://idp{n}.example", url=f"/idp{n}")
            for n in range(3)
        )
        return [
            LoginChoice("spid", "saml", "Entra con SPID", f"/t/{tenant.id}/spid/login", idps),
            LoginChoice("cie", "saml", "Entra con CIE", f"/t/{tenant.id}/cie/login?x=1", idps[:1]),
        ]

    async def exchange(
        self, tenant_id: str, code: str, *, actor: str, purpose: str, now: datetime
    ) -> dict[str, Any] | None:
        if not code.startswith("good-") or code in self.used:
            return None
        self.used.add(code)
        return {
            "scheme": "spid",
            "protocol": "saml",
            "level": 2,
            "fiscal_code": code.removeprefix("good-").split("#")[0],
            "attributes": {"name": "Anna", "familyName": "Rossi", "email": "anna@example.it"},
        }


class Broken:
    """A section whose platform is down."""

    key, title, order = "rotta", "Sezione rotta", 99

    async def section(self, app: Any, tenant: Any, fiscal_code: str, *, now: datetime) -> Any:
        raise ConnectionError("down")


class Echo:
    """A section that shows whose data it was asked for."""

    key, title, order = "eco", "Eco", 98

    async def section(self, app: Any, tenant: Any, fiscal_code: str, *, now: datetime) -> Any:
        from sportello.web.area import AreaItem

        return AreaSection(
            self.key, self.title, items=[AreaItem(title=f"{tenant.id}:{fiscal_code}")]
        )


class Extra:
    @hookimpl
    def hub_personal_area(self) -> list[Any]:
        return [Broken(), Echo()]


def tenant(tid: str, fiscal_code: str) -> dict[str, Any]:
    return {
        "id": tid,
        "name": f"Comune di {tid.title()}",
        "ipa_code": f"c_{tid[:4]}",
        "fiscal_code": fiscal_code,
        "cadastral_code": "Z999",
        "frontoffice": {"home_url": "https://www.comune.example.it/", "logo_url": "/logo.png"},
        "booking": BOOKING,
        "pagopa": {
            "ec_fiscal_code": fiscal_code,
            "broker_id": fiscal_code,
            "station_id": fiscal_code + "_01",
            "segregation_code": "01",
            "mode": "station",
            "checkout_url": "http://127.0.0.1:9/checkout/ec/v1",  # never reached here
            "checkout_api_key": {"env": "SPORTELLO_TEST_FO_CHECKOUT"},
        },
    }


SUAP_EXPORT = {
    "practices": [
        {
            "id": "SUAP-2027-001",
            "applicant_fiscal_code": ANNA,
            "title": "Apertura di un bar",
            "kind": "SCIA",
            "submitted_at": "2027-02-01T09:00:00+01:00",
            "protocol_number": "2027/0000123",
            "deadline": "2027-03-03",
            "events": [
                {"status": "Ricevuta", "at": "2027-02-01T09:00:00+01:00"},
                {"status": "In istruttoria", "at": "2027-02-10T10:00:00+01:00", "note": "ok"},
            ],
        },
        {
            "id": "SUAP-2027-002",
            "applicant_fiscal_code": OTHER,
            "title": "Pratica di un altro",
            "kind": "SCIA",
            "submitted_at": "2027-02-02T09:00:00+01:00",
            "events": [{"status": "Ricevuta", "at": "2027-02-02T09:00:00+01:00"}],
        },
    ]
}


@pytest.fixture
async def hub(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    (tmp_path / "suap.json").write_text(json.dumps(SUAP_EXPORT), encoding="utf-8")
    demo = tenant("demo", EC)
    (tmp_path / "anagrafe.csv").write_text(
        "fiscal_code;family_name;given_name;birth_date;address;municipality_istat\n"
        f"{ANNA};Rossi;Anna;1980-01-01;Via Roma 1;058091\n",
        encoding="utf-8",
    )
    demo["adapters"] = {
        "suap": {"plugin": "json", "options": {"path": "suap.json"}},
        "registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}},
    }
    # "altro" is branded: a software house's own header, found before the built-in one
    (tmp_path / "brand" / "web").mkdir(parents=True)
    (tmp_path / "brand" / "web" / "base.html").write_text(
        '<!doctype html><html lang="it"><title>{{ title }}</title><body>'
        '<p id="brand">Marchio di {{ site.name }}</p><main>{% block content %}{% endblock %}'
        "</main></body></html>",
        encoding="utf-8",
    )
    branded = tenant("altro", "00000000888")
    branded["frontoffice"]["templates_dir"] = "brand"
    config = parse_config(
        {
            "server": {"public_url": "http://hub.example"},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "plugins": {"disabled": ["login"]},
            "tenants": [demo, branded],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    plugins = Plugins(config.plugins.disabled)
    plugins.register(FakeLogin(), "fakelogin")
    plugins.register(Extra(), "extra")
    app = create_app(config, plugins=plugins, clock=FakeClock(NOW), apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        yield client


async def login(client: TestClient, tid: str = "demo", cf: str = ANNA) -> None:
    home = await client.get(f"/t/{tid}/sportello/")
    assert home.status == 200
    state = home.cookies["sportello-fo-state"].value
    resp = await client.get(
        f"/t/{tid}/sportello/accesso",
        params={"code": f"good-{cf}", "state": state},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"/t/{tid}/sportello/area"


def csrf(body: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert found, "no CSRF token in the page"
    return found.group(1)


def hidden(body: str, form_action: str) -> dict[str, str]:
    """The fields of the form posting to ``form_action``."""
    start = body.index(f'action="{form_action}"')
    chunk = body[start : body.index("</form>", start)]
    return {
        n: unescape(v)
        for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', chunk)
    }


async def test_home_shows_the_comune_and_the_login_buttons(hub: TestClient) -> None:
    resp = await hub.get("/t/demo/sportello/")
    body = await resp.text()
    assert resp.status == 200
    assert "Comune di Demo" in body and 'src="/logo.png"' in body
    assert "Entra con SPID" in body and "Entra con CIE" in body
    assert 'href="/idp0"' in body  # CIE straight to its (one) IdP
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "<script>" not in body and " style=" not in body  # nothing inline for CSP
    chooser = await (await hub.get("/t/demo/sportello/accedi/spid")).text()
    assert all(f"IdP {n}" in chooser for n in range(3))
    assert "Non hai SPID?" in chooser
    # no front office for an unknown tenant
    assert (await hub.get("/t/nessuno/sportello/")).status == 404


async def test_login_starts_an_audited_session_and_the_area_opens(hub: TestClient) -> None:
    await login(hub)
    area = await hub.get("/t/demo/sportello/area")
    body = await area.text()
    assert area.status == 200 and ANNA in body and "Anna Rossi" in body
    for key in ("pagamenti", "appuntamenti", "messaggi", "notifiche", "rotta", "eco"):
        assert f'href="/t/demo/sportello/area/{key}"' in body
    engine = hub.server.app[ENGINE]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.action, audit_log.c.subject).where(
                    audit_log.c.action == "frontoffice.login"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("frontoffice.login", ANNA)]


async def test_a_refused_login_leads_back(hub: TestClient) -> None:
    home = await hub.get("/t/demo/sportello/")
    state = home.cookies["sportello-fo-state"].value
    wrong_state = await hub.get(
        "/t/demo/sportello/accesso", params={"code": f"good-{ANNA}", "state": "x" * 22}
    )
    assert wrong_state.status == 400
    assert 'href="/t/demo/sportello/"' in await wrong_state.text()
    used = await hub.get("/t/demo/sportello/accesso", params={"code": "bad", "state": state})
    assert used.status == 400 and "Riprova" in await used.text()
    assert (await hub.get("/t/demo/sportello/area", allow_redirects=False)).status == 303


async def test_a_section_that_fails_says_so_and_reads_by_tenant_and_person(
    hub: TestClient,
) -> None:
    await login(hub)
    broken = await hub.get("/t/demo/sportello/area/rotta")
    assert broken.status == 200 and "non è disponibile" in await broken.text()
    echo = await (await hub.get("/t/demo/sportello/area/eco")).text()
    assert f"demo:{ANNA}" in echo
    assert (await hub.get("/t/demo/sportello/area/nulla")).status == 404


async def test_a_session_of_one_tenant_is_none_on_another(hub: TestClient) -> None:
    await login(hub, "demo")
    resp = await hub.get("/t/altro/sportello/area", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/t/altro/sportello/?")
    pdf = await hub.get(
        "/t/altro/sportello/pagamenti/301000000000000000/avviso.pdf", allow_redirects=False
    )
    assert pdf.status == 303  # no session there: to the login, never the notice


async def test_payments_section_and_notice_are_the_citizens_own(hub: TestClient) -> None:
    app = hub.server.app
    store = PagopaStore(app[ENGINE], app[CONFIG], FakeClock(NOW))
    mine = await store.create_position("demo", _position("P-1", ANNA))
    theirs = await store.create_position("demo", _position("P-2", OTHER))
    await login(hub)
    body = await (await hub.get("/t/demo/sportello/area/pagamenti")).text()
    assert mine.options[0].nav in body and "84,00 €" in body and "Da pagare" in body
    assert f'action="/t/demo/sportello/pagamenti/{mine.options[0].nav}/paga"' in body
    assert theirs.options[0].nav not in body
    pdf = await hub.get(f"/t/demo/sportello/pagamenti/{mine.options[0].nav}/avviso.pdf")
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF-")
    other = await hub.get(f"/t/demo/sportello/pagamenti/{theirs.options[0].nav}/avviso.pdf")
    assert other.status == 404
    async with app[ENGINE].connect() as conn:
        actions = {
            r.action
            for r in await conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.subject == ANNA)
            )
        }
    assert {"pagopa.area.read", "pagopa.notice.pdf"} <= actions


def _position(iupd: str, cf: str) -> dict[str, Any]:
    due = NOW + timedelta(days=30)
    return {
        "iupd": iupd,
        "type": "F",
        "fiscal_code": cf,
        "full_name": "Anna Rossi",
        "company_name": "Comune di Demo",
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


async def test_logout_needs_the_token_and_ends_the_session(hub: TestClient) -> None:
    await login(hub)
    body = await (await hub.get("/t/demo/sportello/area")).text()
    refused = await hub.post("/t/demo/sportello/esci", data={"csrf_token": "nope"})
    assert refused.status == 403
    resp = await hub.post(
        "/t/demo/sportello/esci", data={"csrf_token": csrf(body)}, allow_redirects=False
    )
    assert resp.status == 303
    target = urlsplit(resp.headers["Location"])
    assert target.path == "/t/demo/spid/logout"  # then the IdP's logout
    assert parse_qs(target.query)["return_to"] == ["http://hub.example/t/demo/sportello/uscita"]
    back = await hub.get("/t/demo/sportello/uscita", allow_redirects=False)
    assert back.headers["Location"] == "https://www.comune.example.it/"
    assert (await hub.get("/t/demo/sportello/area", allow_redirects=False)).status == 303
    async with hub.server.app[ENGINE].connect() as conn:
        revoked = (await conn.execute(sa.select(web_sessions.c.revoked_at))).scalars().all()
    assert revoked and all(r is not None for r in revoked)


async def _book(hub: TestClient, fields: dict[str, str]) -> tuple[str, str]:
    """Steps 1 to 5; the booking code and the confirmation page."""
    b = "/t/demo/sportello/prenota"
    first = await hub.get(b + "/")
    assert first.status == 200 and "Ufficio Anagrafe" in await first.text()
    slots = await hub.get(b + "/orari", params={"servizio": "anagrafe/cie"})
    page = await slots.text()
    assert slots.status == 200
    start = re.findall(r'name="inizio" id="[^"]+" value="([^"]+)"', page)[0]
    form = await hub.get(b + "/dati", params={"servizio": "anagrafe/cie", "inizio": start})
    page = await form.text()
    token = csrf(page)
    posted = {"csrf_token": token, "servizio": "anagrafe/cie", "inizio": start, **fields}
    bad = await hub.post(b + "/riepilogo", data={**posted, "email": "non-una-mail"})
    assert bad.status == 422 and 'aria-invalid="true"' in await bad.text()
    summary = await hub.post(b + "/riepilogo", data=posted)
    page = await summary.text()
    assert summary.status == 200 and "Conferma la prenotazione" in page
    confirm = hidden(page, b + "/conferma")
    done = await hub.post(b + "/conferma", data=confirm)
    page = await done.text()
    assert done.status == 200, page
    code = re.search(r'id="booking-code">([A-Z0-9-]+)<', page)
    assert code
    return code.group(1), page


async def test_booking_without_login(hub: TestClient) -> None:
    fields = {
        "name": "Mario",
        "surname": "Bianchi",
        "email": "mario@example.it",
        "phone": "",
        "fiscal_code": "",
        "reason": "Prima carta d'identità",
    }
    code, page = await _book(hub, fields)
    assert "lunedì 1 marzo 2027, ore 09:30" in page or "ore" in page
    ics = await hub.get(f"/t/demo/sportello/prenota/{code}/calendario.ics")
    assert ics.status == 200 and b"BEGIN:VEVENT" in await ics.read()
    b = "/t/demo/sportello/prenota"
    manage = await (await hub.get(b + "/gestisci", params={"codice": code})).text()
    token = csrf(manage)
    wrong = await hub.post(
        b + "/gestisci", data={"csrf_token": token, "codice": code, "verifica": "x@y.it"}
    )
    assert wrong.status == 404
    right = await hub.post(
        b + "/gestisci", data={"csrf_token": token, "codice": code, "verifica": "mario@example.it"}
    )
    page = await right.text()
    assert right.status == 200 and "Mario Bianchi" in page
    cancelled = await hub.post(b + "/annulla", data=hidden(page, b + "/annulla"))
    assert cancelled.status == 200 and "annullata" in await cancelled.text()
    # the same code on another tenant's pages is nobody's
    assert (await hub.get(f"/t/altro/sportello/prenota/{code}/confermata")).status == 404


async def test_booking_moved_from_the_manage_page(hub: TestClient) -> None:
    fields = {"name": "Anna", "surname": "Verdi", "email": "anna@example.it"}
    fields |= {"phone": "", "fiscal_code": "", "reason": "Rinnovo della carta"}
    code, _ = await _book(hub, fields)
    b = "/t/demo/sportello/prenota"
    token = csrf(await (await hub.get(b + "/gestisci", params={"codice": code})).text())
    wrong = await hub.post(
        b + "/sposta", data={"csrf_token": token, "codice": code, "verifica": "x@y.it"}
    )
    assert wrong.status == 404
    manage = await hub.post(
        b + "/gestisci", data={"csrf_token": token, "codice": code, "verifica": "anna@example.it"}
    )
    move = await hub.post(b + "/sposta", data=hidden(await manage.text(), b + "/sposta"))
    page = await move.text()
    assert move.status == 200 and "Sposta la prenotazione" in page
    starts = re.findall(r'name="inizio" id="[^"]+" value="([^"]+)"', page)
    assert len(starts) > 1
    moved = await hub.post(
        b + "/sposta",
        data={**hidden(page, b + "/sposta"), "inizio": starts[-1]},
        allow_redirects=False,
    )
    assert moved.status == 303 and moved.headers["Location"].endswith("/confermata")


async def test_booking_logged_in_is_prefilled_and_in_the_area(hub: TestClient) -> None:
    await login(hub)
    b = "/t/demo/sportello/prenota"
    slots = await (await hub.get(b + "/orari", params={"servizio": "anagrafe/cie"})).text()
    start = re.findall(r'name="inizio" id="[^"]+" value="([^"]+)"', slots)[0]
    form = await (
        await hub.get(b + "/dati", params={"servizio": "anagrafe/cie", "inizio": start})
    ).text()
    assert 'value="Anna"' in form and f'value="{ANNA}" readonly' in form
    fields = {
        "name": "Anna",
        "surname": "Rossi",
        "email": "anna@example.it",
        "phone": "",
        "fiscal_code": OTHER,  # ignored: the login's fiscal code is used
        "reason": "Rinnovo",
    }
    code, _ = await _book(hub, fields)
    area = await (await hub.get("/t/demo/sportello/area/appuntamenti")).text()
    assert code in area and "Prenotato" in area
    # the logged-in citizen manages their own appointment without a second factor
    own = await hub.get(b + "/gestisci", params={"codice": code})
    assert own.status == 200 and "Annulla la prenotazione" in await own.text()


async def test_an_expired_session_says_so_and_comes_back(hub: TestClient) -> None:
    await login(hub)
    clock = hub.server.app[CLOCK]
    assert isinstance(clock, FakeClock)
    clock.advance(31 * 60)  # past the session's idle time-out
    resp = await hub.get("/t/demo/sportello/area/pagamenti", allow_redirects=False)
    assert resp.status == 303
    target = resp.headers["Location"]
    assert "sessione=scaduta" in target
    assert parse_qs(urlsplit(target).query)["next"] == ["/t/demo/sportello/area/pagamenti"]
    home = await hub.get(target)
    page = await home.text()
    assert "La sessione è scaduta" in page and "Entra con SPID" in page
    # a new login goes back to the page asked
    state = home.cookies["sportello-fo-state"].value
    back = await hub.get(
        "/t/demo/sportello/accesso",
        params={"code": f"good-{ANNA}#2", "state": state},
        allow_redirects=False,
    )
    assert back.status == 303
    assert back.headers["Location"] == "/t/demo/sportello/area/pagamenti"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/t/demo/sportello/accesso", None),
        ("GET", "/t/demo/sportello/accesso?code=" + "x" * 5000 + "&state=y", None),
        ("GET", "/t/demo/sportello/?next=//evil.example/", None),
        ("GET", "/t/demo/sportello/prenota/orari?servizio=nulla/nulla&dal=ieri", None),
        ("GET", "/t/demo/sportello/prenota/orari?servizio=anagrafe/cie&dal=9999-99-99", None),
        ("GET", "/t/demo/sportello/prenota/dati?servizio=anagrafe/cie&inizio=domani", None),
        ("GET", "/t/demo/sportello/prenota/dati?servizio=anagrafe/cie&inizio=2027-03-01T23", None),
        ("GET", "/t/demo/sportello/prenota/ZZZZ/confermata", None),
        ("GET", "/t/demo/sportello/prenota/gestisci?codice=%00%01", None),
        ("POST", "/t/demo/sportello/prenota/conferma", {"servizio": "anagrafe/cie"}),
        ("POST", "/t/demo/sportello/prenota/annulla", {"codice": "x"}),
        ("POST", "/t/demo/sportello/esci", {}),
        ("GET", "/t/demo/sportello/pagamenti/abc/avviso.pdf", None),
        ("POST", "/t/demo/sportello/pagamenti/301000000000000000/paga", {}),
    ],
)
async def test_no_input_gets_a_500(
    hub: TestClient, method: str, path: str, data: dict[str, str] | None
) -> None:
    resp = await hub.request(method, path, data=data, allow_redirects=False)
    assert resp.status < 500, await resp.text()
    if resp.status in (302, 303):
        # never leads off the hub (an open redirect)
        assert resp.headers["Location"].startswith(("/", "https://www.comune.example.it/"))


async def test_the_demo_notice_is_seeded_once(hub: TestClient) -> None:
    from sportello.platforms.pagopa.personal_area import DEMO_DEBTOR, seed_demo_notice

    app = hub.server.app
    first = await seed_demo_notice(app)
    assert first is not None and await seed_demo_notice(app) == first  # kept across restarts
    await login(hub, cf=DEMO_DEBTOR[0])
    body = await (await hub.get("/t/demo/sportello/area/pagamenti")).text()
    assert first in body and "Paga con pagoPA" in body


async def test_practices_messages_and_notifications_are_the_citizens_own(
    hub: TestClient,
) -> None:
    from sportello.platforms.io.tables import io_messages
    from sportello.platforms.send.tables import send_events, send_notifications

    app = hub.server.app
    async with app[ENGINE].begin() as conn:
        for tid, cf, subject in (
            ("demo", ANNA, "Promemoria TARI"),
            ("demo", OTHER, "Messaggio di un altro"),
            ("altro", ANNA, "Messaggio di un altro comune"),
        ):
            await conn.execute(
                io_messages.insert().values(
                    tenant_id=tid,
                    service_id="S",
                    fiscal_code=cf,
                    content=json.dumps({"subject": subject, "markdown": "Testo " * 20}),
                    feature_level_type="STANDARD",
                    expedition_at=NOW,
                    status="processed",
                    attempts=1,
                    created_at=NOW,
                    updated_at=NOW,
                    sent_at=NOW,
                )
            )
            await conn.execute(
                send_notifications.insert().values(
                    tenant_id=tid,
                    pa_protocol_number=f"PROT-{tid}-{cf}",
                    idempotence_token="t",
                    subject=f"Multa: {subject}",
                    request="{}",
                    recipients=json.dumps([cf]),
                    status="accepted",
                    iun=f"IUN-{tid}-{cf[:4]}",
                    send_status="DELIVERED",
                    created_by="test",
                    created_at=NOW,
                    updated_at=NOW,
                    accepted_at=NOW,
                )
            )
        await conn.execute(
            send_events.insert().values(
                tenant_id="demo",
                event_id="e1",
                iun=f"IUN-demo-{ANNA[:4]}",
                new_status="DELIVERING",
                element="{}",
                received_at=NOW,
            )
        )
    await login(hub)
    practices = await (await hub.get("/t/demo/sportello/area/pratiche")).text()
    assert "Apertura di un bar" in practices and "SUAP-2027-001" in practices
    assert "In istruttoria: ok" in practices and "Ricevuta" in practices  # milestones
    # C.SE.1.10: intake date, protocol number and deadline
    assert "2027/0000123" in practices and "03/03/2027" in practices
    assert "01/02/2027" in practices
    assert "Pratica di un altro" not in practices
    messages = await (await hub.get("/t/demo/sportello/area/messaggi")).text()
    assert "Promemoria TARI" in messages and "Consegnato" in messages
    assert "di un altro" not in messages
    notices = await (await hub.get("/t/demo/sportello/area/notifiche")).text()
    assert f"PROT-demo-{ANNA}" in notices and "Consegnata" in notices and "In consegna" in notices
    assert "di un altro" not in notices
    async with app[ENGINE].connect() as conn:
        actions = {
            r.action
            for r in await conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.subject == ANNA)
            )
        }
    assert {"suap.practices", "io.area.read", "send.area.read"} <= actions


async def test_my_data_say_where_each_field_comes_from(hub: TestClient) -> None:
    await login(hub)
    page = await (await hub.get("/t/demo/sportello/area/dati")).text()
    assert "Via Roma 1 (fonte: anagrafe del comune)" in page
    assert "01/01/1980 (fonte: anagrafe del comune)" in page
    hub.session.cookie_jar.clear()
    await login(hub, cf=OTHER)  # not in the registry: said, not an empty page
    page = await (await hub.get("/t/demo/sportello/area/dati")).text()
    assert "Non risulti nell'anagrafe" in unescape(page)
    async with hub.server.app[ENGINE].connect() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.outcome).where(
                    audit_log.c.action == "resident.lookup"
                )
            )
        ).all()
    expected = [(f"citizen:{ANNA}", "ok"), (f"citizen:{OTHER}", "not_found")]
    assert sorted(map(tuple, rows)) == expected


async def test_a_branded_tenant_has_its_own_header_on_every_page(hub: TestClient) -> None:
    for path in ("/t/altro/sportello/", "/t/altro/sportello/prenota/"):
        page = await (await hub.get(path)).text()
        assert '<p id="brand">Marchio di Comune di Altro</p>' in page, path
    plain = await (await hub.get("/t/demo/sportello/prenota/")).text()
    assert "Marchio" not in plain and "it-header-wrapper" in plain


@pytest.fixture
async def agenda_hub(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    from sportello.adapter_kit.agenda_contract import canonical_agenda
    from sportello.adapters.agenda.sqlite_adapter import SqliteAgenda

    SqliteAgenda.load(tmp_path / "agenda.sqlite", canonical_agenda())
    demo = tenant("demo", EC)
    demo["adapters"] = {"booking": {"plugin": "sqlite", "options": {"path": "agenda.sqlite"}}}
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": [demo]},
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    now = datetime(2030, 3, 14, 8, tzinfo=UTC)
    app = create_app(config, clock=FakeClock(now), apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        yield client, tmp_path / "agenda.sqlite"


async def test_the_pages_book_in_the_comunes_agenda(agenda_hub) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    hub, path = agenda_hub
    b = "/t/demo/sportello/prenota"
    first = await (await hub.get(b + "/")).text()
    assert "Ufficio Tecnico" in first  # the agenda's offices, not [tenants.booking]'s
    slots = await (
        await hub.get(b + "/orari", params={"servizio": "anagrafe/residenza", "dal": "2030-03-18"})
    ).text()
    start = re.findall(r'name="inizio" id="[^"]+" value="([^"]+)"', slots)[0]
    assert start == "2030-03-18T08:00:00+00:00"
    form = await (
        await hub.get(b + "/dati", params={"servizio": "anagrafe/residenza", "inizio": start})
    ).text()
    posted = {
        "csrf_token": csrf(form),
        "servizio": "anagrafe/residenza",
        "inizio": start,
        "name": "Mario",
        "surname": "Bianchi",
        "email": "mario@example.it",
        "phone": "",
        "fiscal_code": "",
        "reason": "Residenza",
    }
    done = await hub.post(b + "/conferma", data=posted)
    page = await done.text()
    assert done.status == 200 and "Cambio di residenza" in page
    code = re.search(r'id="booking-code">([A-Z0-9-]+)<', page)
    assert code
    held = sqlite3.connect(path).execute("SELECT reference, surname FROM appointments").fetchall()
    assert held == [(code.group(1).replace("-", ""), "Bianchi")]
    again = await hub.post(b + "/conferma", data=posted, allow_redirects=False)
    assert again.status == 303 and "errore=orario" in again.headers["Location"]  # one seat
    path.unlink()  # the agenda gone: said, never a 500
    down = await hub.get(b + "/")
    assert down.status == 503 and "non risponde" in await down.text()


async def test_the_saml_logout_goes_back_only_where_a_login_may(tmp_path: Path) -> None:
    from factories import spid_tenant

    hub_url = "http://hub.example"
    sp = spid_tenant(tmp_path, hub_url=hub_url, idps=["http://127.0.0.1:9"], return_urls=[])
    sp["frontoffice"] = {}
    config = parse_config(
        {
            "server": {"public_url": hub_url},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite'}"},
            "outbox": {"workers": False},
            "tenants": [sp],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, clock=FakeClock(NOW), apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        ours = f"{hub_url}/t/comune/sportello/uscita"  # hub_login_return_paths
        for kind in ("spid", "cie"):
            back = await client.get(
                f"/t/comune/{kind}/logout", params={"return_to": ours}, allow_redirects=False
            )
            assert back.status == 303 and back.headers["Location"] == ours
            evil = await client.get(
                f"/t/comune/{kind}/logout",
                params={"return_to": "https://evil.example/"},
                allow_redirects=False,
            )
            assert evil.status == 200 and "evil" not in await evil.text()  # the plain page

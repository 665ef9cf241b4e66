"""The operator console (``/console/``): admins' password and TOTP with an atomic limit on
wrong attempts, comune staff seeing only their tenant (404 on every route of another, on
SQLite and PostgreSQL), CSRF on every POST, no 500 for any filter, retry of a failed outbox
job, the audit log search, the panels other platforms contribute and their charts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from factories import tenant

from sportello.app import ENGINE, create_app
from sportello.cli.main import main as cli
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.outbox import store
from sportello.platforms.console import pages, service
from sportello.platforms.console.settings import ConsoleSettings
from sportello.platforms.console.tables import console_attempts
from sportello.schema import audit_log, outbox

T0 = datetime(2026, 12, 7, 9, 0, 5, tzinfo=UTC)
STAFF_UNO = "RSSMRA80A01H501U"
ADMIN_UNO = "VRDGPP70B02F205X"
STAFF_DUE = "BNCLRA85C43L219Y"
PASSWORD = "correct horse battery"
DOC = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text("utf-8")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Hub:
    client: TestClient
    clock: FakeClock
    secret: str

    @property
    def app(self) -> web.Application:
        return self.client.app  # type: ignore[return-value]


def _config(db_url: str, tmp_path: Path, **console: Any) -> Any:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "console": {"max_attempts": 3, "lock_minutes": 10, **console},
            "tenants": [
                tenant(
                    "uno",
                    name="Comune di Uno",
                    console={
                        "staff": [
                            {"fiscal_code": STAFF_UNO.lower()},
                            {"fiscal_code": ADMIN_UNO, "role": "tenant-admin"},
                        ]
                    },
                ),
                tenant(
                    "due", name="Comune di Due", console={"staff": [{"fiscal_code": STAFF_DUE}]}
                ),
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )


@pytest.fixture
async def hub(db_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    clock = FakeClock(T0)
    app = create_app(_config(db_url, tmp_path), clock=clock, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            made = await service.add_user(conn, "ops", PASSWORD, now=T0, issuer="Test")
        yield Hub(client, clock, made.secret)


def _token(body: str) -> str:
    found = CSRF.search(body)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _code(hub: Hub, offset: int = 0) -> str:
    return pyotp.TOTP(hub.secret).at(hub.clock.now() + timedelta(seconds=offset))


async def _admin_login(hub: Hub) -> None:
    page = await hub.client.get("/console/accesso")
    r = await hub.client.post(
        "/console/accesso",
        data={"csrf_token": _token(await page.text()), "name": "ops", "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/console/accesso/codice"
    page = await hub.client.get("/console/accesso/codice")
    r = await hub.client.post(
        "/console/accesso/codice",
        data={"csrf_token": _token(await page.text()), "code": _code(hub)},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/console/", await r.text()


async def _staff_session(hub: Hub, tenant_id: str, fiscal_code: str) -> None:
    """A staff member's console session, as ``staff_return`` starts it after a SPID login
    (the SPID login itself runs in tests/e2e/test_browser_console.py)."""
    resp = web.Response()
    await hub.app[pages.CONSOLE].sessions.start(
        resp,
        tenant_id=tenant_id,
        subject=f"staff:{fiscal_code}",
        data={"kind": "staff", "name": fiscal_code},
        now=hub.clock.now(),
    )
    hub.client.session.cookie_jar.update_cookies(
        {"sportello-console": resp.cookies["sportello-console"].value}
    )


async def _failed_job(hub: Hub, tenant_id: str) -> int:
    async with hub.app[ENGINE].begin() as conn:
        await store.enqueue_many(
            conn,
            [store.NewJob(tenant_id=tenant_id, kind="webhook.deliver", payload={"x": 1})],
            now=T0,
            default_max_attempts=3,
        )
        job_id = await conn.scalar(sa.select(sa.func.max(outbox.c.id)))
        await conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == job_id)
            .values(status="failed", attempts=3, last_error="HTTP 500 from the receiver")
        )
    return int(job_id)


# --- accounts -------------------------------------------------------------------------------


def test_passwords_are_salted_scrypt_and_checked() -> None:
    a, b = "00" * 16, "11" * 16
    assert service.hash_password("secret pass", a) != service.hash_password("secret pass", b)
    stored = service.hash_password("secret pass", a)
    assert len(stored) == 64 and "secret" not in stored
    assert service.verify_password("secret pass", a, stored)
    assert not service.verify_password("secret pasS", a, stored)


async def test_admin_logs_in_with_password_and_totp(hub: Hub) -> None:
    # the password alone gives no console session
    page = await hub.client.get("/console/accesso")
    token = _token(await page.text())
    r = await hub.client.post(
        "/console/accesso", data={"csrf_token": token, "name": "ops", "password": "nope"}
    )
    assert r.status == 401 and "Nome utente o password errati" in await r.text()
    r = await hub.client.post(
        "/console/accesso",
        data={"csrf_token": token, "name": "ops", "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303
    assert (await hub.client.get("/console/", allow_redirects=False)).status == 303
    # enrolment: the QR (an inline SVG data URI under img-src data:) until the first code
    page = await hub.client.get("/console/accesso/codice")
    body = await page.text()
    assert 'src="data:image/svg+xml;base64,' in body and hub.secret in body
    r = await hub.client.post(
        "/console/accesso/codice", data={"csrf_token": _token(body), "code": "000000"}
    )
    assert r.status == 401
    code = _code(hub)
    r = await hub.client.post(
        "/console/accesso/codice",
        data={"csrf_token": _token(body), "code": code},
        allow_redirects=False,
    )
    assert r.status == 303
    home = await hub.client.get("/console/")
    text = await home.text()
    assert home.status == 200 and "Comune di Uno" in text and "Comune di Due" in text
    # the same code is not accepted twice (a second login within the same 30 seconds)
    hub.client.session.cookie_jar.clear()
    page = await hub.client.get("/console/accesso")
    await hub.client.post(
        "/console/accesso",
        data={"csrf_token": _token(await page.text()), "name": "ops", "password": PASSWORD},
    )
    page = await hub.client.get("/console/accesso/codice")
    assert "data:image/svg+xml" not in await page.text()  # enrolled: no QR any more
    r = await hub.client.post(
        "/console/accesso/codice", data={"csrf_token": _token(await page.text()), "code": code}
    )
    assert r.status == 401 and "già usato" in await r.text()
    async with hub.app[ENGINE].connect() as conn:
        logins = (
            await conn.execute(
                sa.select(audit_log.c.outcome, audit_log.c.detail)
                .where(audit_log.c.action == "console.login")
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [o for o, _ in logins] == ["refused", "refused", "ok", "refused"]


async def test_logout_and_idle_timeout_end_the_session(hub: Hub) -> None:
    await _admin_login(hub)
    assert (await hub.client.get("/console/", allow_redirects=False)).status == 200
    hub.clock.advance(31 * 60)  # idle past [console] idle_minutes
    r = await hub.client.get("/console/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/accesso"
    hub.clock.advance(60)
    await _admin_login(hub)
    home = await hub.client.get("/console/")
    token = _token(await home.text())
    r = await hub.client.post("/console/esci", data={"csrf_token": "x"})
    assert r.status == 403  # a logout needs the session's CSRF token too
    r = await hub.client.post("/console/esci", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 303
    assert (await hub.client.get("/console/", allow_redirects=False)).status == 303
    async with hub.app[ENGINE].connect() as conn:
        actions = (
            await conn.scalars(
                sa.select(audit_log.c.action).where(audit_log.c.actor == "console:admin:ops")
            )
        ).all()
    assert "console.logout" in actions and actions.count("console.login") == 2


async def test_wrong_attempts_lock_the_account_with_retry_after(hub: Hub) -> None:
    page = await hub.client.get("/console/accesso")
    token = _token(await page.text())

    async def attempt(password: str) -> Any:
        return await hub.client.post(
            "/console/accesso", data={"csrf_token": token, "name": "ops", "password": password}
        )

    for _ in range(3):
        assert (await attempt("wrong")).status == 401
    locked = await attempt(PASSWORD)  # even the right password, while locked
    assert locked.status == 429 and locked.headers["Retry-After"] == "600"
    hub.clock.advance(601)
    r = await hub.client.post(
        "/console/accesso",
        data={"csrf_token": token, "name": "ops", "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303
    # a name no account can have (control characters): refused, nothing stored
    r = await hub.client.post(
        "/console/accesso", data={"csrf_token": token, "name": "a\x00b", "password": "x"}
    )
    assert r.status == 401
    # a name that is no account is counted the same way (no telling names apart)
    for _ in range(3):
        r = await hub.client.post(
            "/console/accesso", data={"csrf_token": token, "name": "ghost", "password": "x"}
        )
        assert r.status == 401
    assert (
        await hub.client.post(
            "/console/accesso", data={"csrf_token": token, "name": "ghost", "password": "x"}
        )
    ).status == 429


async def test_concurrent_wrong_attempts_never_pass_the_limit(hub: Hub) -> None:
    """Twenty wrong passwords at once: at most max_attempts are checked, the rest locked."""
    settings = ConsoleSettings(max_attempts=3, lock_minutes=10)
    engine = hub.app[ENGINE]

    async def one() -> str:
        try:
            row = await service.check_password(engine, "ops", "wrong", settings, T0)
        except service.Locked:
            return "locked"
        return "checked" if row is None else "accepted"

    outcomes = await asyncio.gather(*(one() for _ in range(20)))
    assert outcomes.count("checked") == 3 and outcomes.count("locked") == 17
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(console_attempts))).one()
    assert row.locked_until == T0 + timedelta(minutes=10)


# --- isolation --------------------------------------------------------------------------------


def _tenant_routes() -> list[tuple[str, str]]:
    """Every console route of a tenant that needs a session (the staff login entry and its
    return are where a session starts)."""
    found = []
    for route in pages.routes():
        path = route.path  # type: ignore[attr-defined]
        if "{tenant}" not in path or path.endswith(("/entra", "/accesso")):
            continue
        found.append((route.method, path))  # type: ignore[attr-defined]
    return found


def _fill(path: str, tenant_id: str, job: int, key: str = "pagopa-positions") -> str:
    return path.replace("{tenant}", tenant_id).replace("{job}", str(job)).replace("{key}", key)


def _walk(routes: list[tuple[str, str]], app: web.Application) -> list[tuple[str, str, str]]:
    """Each route once, and the panel route once per panel (every platform's)."""
    keys = [p.key for p in pages.panels(app)]
    assert len(keys) >= 9
    return [
        (method, path, key)
        for method, path in routes
        for key in (keys if "{key}" in path else ["-"])
    ]


async def test_staff_of_another_tenant_get_404_on_every_console_route(hub: Hub) -> None:
    routes = _tenant_routes()
    assert len(routes) >= 5
    job_due = await _failed_job(hub, "due")
    # unauthenticated: sent to the staff login of that comune (GET) or refused (POST)
    for method, path in routes:
        r = await hub.client.request(method, _fill(path, "due", job_due), allow_redirects=False)
        assert r.status in (303, 403), (method, path, r.status)
        if method == "GET":
            assert r.headers["Location"] == "/console/t/due/entra"
    await _staff_session(hub, "uno", ADMIN_UNO)  # a tenant-admin of uno: may retry at uno
    home = await hub.client.get("/console/t/uno/")
    token = _token(await home.text())
    for method, path, key in _walk(routes, hub.app):
        r = await hub.client.request(
            method,
            _fill(path, "due", job_due, key),
            data={"csrf_token": token} if method == "POST" else None,
            allow_redirects=False,
        )
        assert r.status == 404, (method, path, key, r.status)
        assert "Comune di Due" not in await r.text()
    # the admin-wide pages are not theirs either
    for path in ("/console/registro", "/console/"):
        r = await hub.client.get(path, allow_redirects=False)
        assert r.status in (303, 404)
        if r.status == 303:
            assert r.headers["Location"] == "/console/t/uno/"
    # their own tenant's pages answer (a job of "due" is not found through "uno")
    for method, path, key in _walk(routes, hub.app):
        if method == "GET":
            r = await hub.client.get(_fill(path, "uno", job_due, key))
            assert r.status == 200, (path, key, await r.text())
    r = await hub.client.post(f"/console/t/uno/coda/{job_due}/riprova", data={"csrf_token": token})
    assert r.status == 404
    async with hub.app[ENGINE].connect() as conn:
        assert await conn.scalar(sa.select(outbox.c.status).where(outbox.c.id == job_due)) == (
            "failed"
        )
    # an admin sees both
    hub.client.session.cookie_jar.clear()
    await _admin_login(hub)
    for tenant_id in ("uno", "due"):
        r = await hub.client.get(f"/console/t/{tenant_id}/")
        assert r.status == 200


async def test_unknown_tenants_and_panels_are_404(hub: Hub) -> None:
    await _admin_login(hub)
    unknown = ("/console/t/nessuno/", "/console/t/uno/p/nessuno", "/console/t/uno/coda/x/riprova")
    for path in unknown:
        method = "POST" if path.endswith("riprova") else "GET"
        r = await hub.client.request(method, path)
        assert r.status == 404, path
    r = await hub.client.get("/console/t/nessuno/entra")
    assert r.status == 404


async def test_a_staff_member_removed_loses_access_at_once(hub: Hub) -> None:
    await _staff_session(hub, "uno", "MNNLCU90A01H501Z")  # not in uno's staff
    r = await hub.client.get("/console/t/uno/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/t/uno/entra"
    async with hub.app[ENGINE].begin() as conn:
        await service.add_staff(conn, "uno", "MNNLCU90A01H501Z", "staff", now=T0)
    assert (await hub.client.get("/console/t/uno/")).status == 200
    async with hub.app[ENGINE].begin() as conn:
        assert await service.remove_staff(conn, "uno", "mnnlcu90a01h501z")
    assert (await hub.client.get("/console/t/uno/", allow_redirects=False)).status == 303


# --- input, CSRF, actions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "/console/t/uno/registro?dal=ieri",
        "/console/t/uno/registro?dal=2026-12-07&al=2026-01-01",
        "/console/t/uno/registro?attore=" + "x" * 500,
        "/console/t/uno/registro?pagina=-1",
        "/console/t/uno/registro?pagina=99999999999999999999",
        "/console/registro?al=2026-13-45",
        "/console/t/uno/coda?stato=sparito",
        "/console/t/uno/p/pagopa-positions?stato=PAGATISSIMO",
        "/console/t/uno/p/booking-day?giorno=2026-02-30",
        "/console/t/uno/p/io-messages?dal=2020-01-01&al=2026-12-07",
        "/console/t/uno/?dal=%00",
        "/console/?q=" + "%C3%A8" * 200,
        "/console/registro?attore=%00",
        "/console/t/uno/registro?soggetto=a%0Ab",
        "/console/t/uno/p/send-notifications?stato=%00",
    ],
)
async def test_bad_filters_are_a_400_page_never_a_500(hub: Hub, query: str) -> None:
    await _admin_login(hub)
    r = await hub.client.get(query)
    assert r.status == 400, (query, r.status)
    assert r.headers["Content-Type"].startswith("text/html")
    assert "alert-danger" in await r.text()


async def test_every_post_needs_the_csrf_token(hub: Hub) -> None:
    r = await hub.client.post("/console/accesso", data={"name": "ops", "password": PASSWORD})
    assert r.status == 403
    await _admin_login(hub)
    job = await _failed_job(hub, "uno")
    r = await hub.client.post(f"/console/t/uno/coda/{job}/riprova", data={"csrf_token": "bad"})
    assert r.status == 403
    async with hub.app[ENGINE].connect() as conn:
        assert await conn.scalar(sa.select(outbox.c.status).where(outbox.c.id == job)) == "failed"


async def test_retry_requeues_a_failed_job_and_is_audited(hub: Hub) -> None:
    job = await _failed_job(hub, "uno")
    await _staff_session(hub, "uno", STAFF_UNO)  # role staff: may look, not retry
    page = await hub.client.get("/console/t/uno/coda?stato=failed")
    body = await page.text()
    assert f'id="job-{job}"' in body and "HTTP 500 from the receiver" in body
    assert "riprova" not in body
    r = await hub.client.post(
        f"/console/t/uno/coda/{job}/riprova", data={"csrf_token": _token(body)}
    )
    assert r.status == 403
    hub.client.session.cookie_jar.clear()
    await _admin_login(hub)
    page = await hub.client.get("/console/t/uno/coda")
    r = await hub.client.post(
        f"/console/t/uno/coda/{job}/riprova",
        data={"csrf_token": _token(await page.text())},
        allow_redirects=False,
    )
    assert r.status == 303
    async with hub.app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(outbox).where(outbox.c.id == job))).one()
        entry = (
            await conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "console.outbox.retry")
            )
        ).one()
    assert row.status == "pending" and row.max_attempts == 6
    assert entry.tenant_id == "uno" and entry.subject == f"outbox:{job}"
    assert entry.actor == "console:admin:ops"
    # a second retry of a job no longer failed is refused, not a 500
    page = await hub.client.get("/console/t/uno/coda")
    r = await hub.client.post(
        f"/console/t/uno/coda/{job}/riprova", data={"csrf_token": _token(await page.text())}
    )
    assert r.status == 409


async def test_the_audit_log_search_filters_and_pages(hub: Hub) -> None:
    from sportello.audit import AuditEntry, record

    async with hub.app[ENGINE].begin() as conn:
        for i in range(60):
            await record(
                conn,
                AuditEntry(
                    tenant_id="uno" if i % 2 else "due",
                    actor=f"api:key{i % 3}",
                    action="anpr.lookup",
                    subject="RSSMRA80A01H501U" if i < 10 else "BNCLRA85C43L219Y",
                    purpose="test",
                    sources="anpr",
                    outcome="ok",
                ),
                at=T0 - timedelta(days=i),
            )
    await _admin_login(hub)
    r = await hub.client.get("/console/registro?ente=uno&azione=anpr&dal=2026-01-01")
    body = await r.text()
    assert r.status == 200 and body.count("<td>anpr.lookup</td>") == 30
    r = await hub.client.get(
        "/console/registro?soggetto=rssmra80a01h501u&attore=key1&dal=2026-01-01"
    )
    body = await r.text()
    # i < 10 with i % 3 == 1: 1, 4, 7
    assert body.count("<td>anpr.lookup</td>") == 3
    r = await hub.client.get("/console/registro?azione=anpr&dal=2026-01-01")
    body = await r.text()
    assert body.count("<td>anpr.lookup</td>") == 50 and "Pagina successiva" in body
    r = await hub.client.get("/console/registro?azione=anpr&dal=2026-01-01&pagina=1")
    assert (await r.text()).count("<td>anpr.lookup</td>") == 10
    # the searches themselves are audited
    async with hub.app[ENGINE].connect() as conn:
        n = await conn.scalar(
            sa.select(sa.func.count()).where(audit_log.c.action == "console.audit.search")
        )
    assert n == 4


async def test_panels_and_charts_show_only_the_tenants_rows(hub: Hub) -> None:
    from sportello.platforms.login.tables import login_sessions

    async with hub.app[ENGINE].begin() as conn:
        for i, (tenant_id, days_ago) in enumerate(
            [("uno", 0), ("uno", 0), ("uno", 2), ("due", 0), ("due", 1)]
        ):
            at = T0 - timedelta(days=days_ago)
            await conn.execute(
                sa.insert(login_sessions).values(
                    session_id=f"s{i}",
                    tenant_id=tenant_id,
                    kind="spid",
                    idp_entity_id="https://idp",
                    name_id="n",
                    name_qualifier="q",
                    session_index="i",
                    level=2,
                    created_at=at,
                    expires_at=at + timedelta(hours=1),
                    ended_at=None,
                )
            )
    await _staff_session(hub, "uno", STAFF_UNO)
    r = await hub.client.get("/console/t/uno/p/login-logins?dal=2026-12-01&al=2026-12-07")
    body = await r.text()
    assert r.status == 200 and "<svg" in body and 'role="img"' in body
    assert "3 accessi in tutto" in body  # uno's, not due's
    assert "<tr><td>07/12</td><td>2</td></tr>" in body
    assert "<tr><td>05/12</td><td>1</td></tr>" in body
    overview = await hub.client.get("/console/t/uno/")
    text = await overview.text()
    for title in ("Pagamenti pagoPA al giorno", "Messaggi App IO inviati al giorno"):
        assert title in text
    for key in (
        "pagopa-positions",
        "pagopa-receipts",
        "pagopa-reconciliation",
        "io-campaigns",
        "send-notifications",
        "booking-day",
    ):
        assert f"/console/t/uno/p/{key}" in text
        r = await hub.client.get(f"/console/t/uno/p/{key}")
        assert r.status == 200, key


# --- the CLI --------------------------------------------------------------------------------


def test_cli_adds_an_admin_and_prints_the_secret_once(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite"
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n\n'
        '[[tenants]]\nid = "uno"\nname = "Comune di Uno"\nipa_code = "c_x"\n'
        'fiscal_code = "00000000000"\ncadastral_code = "H501"\n'
    )
    runner = CliRunner()
    add = ["console", "user", "add", "--admin", "anna", "--config", str(cfg)]
    assert runner.invoke(cli, ["db", "upgrade", "--config", str(cfg)]).exit_code == 0
    r = runner.invoke(
        cli,
        [*add, "--password-stdin", "--no-qr"],
        input="a long enough password\n",
    )
    assert r.exit_code == 0, r.output
    secret = re.search(r"TOTP secret .*: ([A-Z2-7]+)", r.output)
    assert secret and "otpauth://totp/" in r.output
    again = runner.invoke(
        cli,
        [*add, "--password-stdin"],
        input="a long enough password\n",
    )
    assert again.exit_code == 2 and "exists" in again.output
    listed = runner.invoke(cli, ["console", "user", "list", "--config", str(cfg)])
    assert "anna\tadmin\tnot enrolled" in listed.output and secret.group(1) not in listed.output
    r = runner.invoke(
        cli,
        [
            "console",
            "staff",
            "add",
            "uno",
            "rssmra80a01h501u",
            "--role",
            "tenant-admin",
            "--config",
            str(cfg),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["console", "staff", "list", "uno", "--config", str(cfg)])
    assert "uno\tRSSMRA80A01H501U\ttenant-admin\tcli" in r.output
    bad = runner.invoke(cli, ["console", "staff", "add", "uno", "nope", "--config", str(cfg)])
    assert bad.exit_code == 2


async def test_the_demo_has_a_console_admin_and_staff(hub: Hub) -> None:
    from sportello.cli.main import demo_config_path
    from sportello.config import load_config
    from sportello.platforms import console
    from sportello.platforms.console.settings import console_tenant_settings

    demo = load_config(demo_config_path()).tenant("demo")
    assert demo is not None
    settings = console_tenant_settings(demo)
    assert settings is not None and settings.staff[0].role == "tenant-admin"
    await console.hub_demo_seed(hub.app)
    await console.hub_demo_seed(hub.app)  # once: a second start keeps the account
    hub.secret = console.DEMO_TOTP_SECRET  # what docs/console.md tells the demo's user
    page = await hub.client.get("/console/accesso")
    r = await hub.client.post(
        "/console/accesso",
        data={
            "csrf_token": _token(await page.text()),
            "name": console.DEMO_ADMIN,
            "password": console.DEMO_PASSWORD,
        },
        allow_redirects=False,
    )
    assert r.status == 303
    page = await hub.client.get("/console/accesso/codice")
    r = await hub.client.post(
        "/console/accesso/codice",
        data={"csrf_token": _token(await page.text()), "code": _code(hub)},
        allow_redirects=False,
    )
    assert r.status == 303
    assert console.DEMO_PASSWORD in DOC and console.DEMO_TOTP_SECRET in DOC


async def test_platform_panels_show_progress_payments_and_the_day(hub: Hub) -> None:
    """App IO progress, pagoPA receipts and the payments chart, the day's appointments:
    each panel shows the tenant's rows and never the other tenant's."""
    from sportello.platforms.booking.tables import booking_appointments
    from sportello.platforms.io.tables import io_campaigns, io_messages
    from sportello.platforms.pagopa.tables import receipts

    async with hub.app[ENGINE].begin() as conn:
        for tenant_id, statuses in (
            ("uno", ["sent", "sent", "processed", "queued"]),
            ("due", ["sent"]),
        ):
            campaign = (
                await conn.execute(
                    sa.insert(io_campaigns)
                    .values(
                        tenant_id=tenant_id,
                        service_id="svc",
                        name=f"TARI {tenant_id}",
                        subject_template="s",
                        markdown_template="m",
                        source="tari.csv",
                        rows_total=len(statuses),
                        created_by="test",
                        created_at=T0,
                    )
                    .returning(io_campaigns.c.id)
                )
            ).scalar_one()
            for i, status in enumerate(statuses):
                await conn.execute(
                    sa.insert(io_messages).values(
                        tenant_id=tenant_id,
                        service_id="svc",
                        campaign_id=campaign,
                        row_number=i + 1,
                        fiscal_code=STAFF_UNO,
                        content="{}",
                        feature_level_type="STANDARD",
                        expedition_at=T0,
                        status=status,
                        attempts=1,
                        created_at=T0,
                        updated_at=T0,
                        sent_at=T0 if status != "queued" else None,
                    )
                )
        for i, (tenant_id, cents, days_ago) in enumerate(
            [("uno", 12_345, 0), ("uno", 100, 1), ("due", 99_999, 0)]
        ):
            at = T0 - timedelta(days=days_ago)
            await conn.execute(
                sa.insert(receipts).values(
                    tenant_id=tenant_id,
                    receipt_id=f"R-{tenant_id}-{i}",
                    nav=f"30100000000000000{i}",
                    iuv=f"0100000000000000{i}",
                    amount=cents,
                    outcome="OK",
                    id_psp="PSP",
                    psp_company_name="Banca di Prova",
                    payment_date_time=at,
                    stand_in=False,
                    version=2,
                    raw_xml="<x/>",
                    data="{}",
                    received_at=at,
                    forward_status="forwarded",
                )
            )
        for i, (tenant_id, name) in enumerate([("uno", "Giulia"), ("due", "Ettore")]):
            start = T0.replace(hour=8, minute=30)  # 09:30 in Rome
            await conn.execute(
                sa.insert(booking_appointments).values(
                    tenant_id=tenant_id,
                    code=f"ABCD{i}",
                    office_id="anagrafe",
                    service_id="cie",
                    starts_at=start,
                    ends_at=start + timedelta(minutes=20),
                    status="booked",
                    name=name,
                    surname="Prova",
                    email="x@example.org",
                    reason="CIE",
                    logged_in=0,
                    version=1,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    await _staff_session(hub, "uno", STAFF_UNO)
    body = await (await hub.client.get("/console/t/uno/p/io-campaigns")).text()
    assert "TARI uno" in body and "TARI due" not in body
    assert "<td>3 (75%)</td>" in body  # 3 of 4 messages concluded
    body = await (await hub.client.get("/console/t/uno/p/io-campaigns?stato=in-progress")).text()
    assert "TARI uno" in body
    body = await (await hub.client.get("/console/t/uno/p/io-campaigns?stato=done")).text()
    assert "TARI uno" not in body
    body = await (await hub.client.get("/console/t/uno/p/pagopa-receipts")).text()
    assert "123,45 €" in body and "R-uno-1" in body and "R-due" not in body
    body = await (
        await hub.client.get("/console/t/uno/p/pagopa-payments?dal=2026-12-05&al=2026-12-07")
    ).text()
    assert "2 pagamenti in tutto" in body and "999,99" not in body
    body = await (await hub.client.get("/console/t/uno/p/booking-day?giorno=2026-12-07")).text()
    assert "<td>09:30</td>" in body and "Giulia Prova" in body and "Ettore" not in body
    body = await (await hub.client.get("/console/t/uno/p/booking-day?giorno=2026-12-08")).text()
    assert "Nessun appuntamento" in body

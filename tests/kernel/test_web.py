"""The web layer shared by the front office and the console: the UI kit served by the hub
(immutable, versioned, no path escape), the page headers, browser sessions in the database
(expiry, idle time-out, logout on every replica, cookie token never stored) and CSRF."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from sportello.app import create_app
from sportello.config import parse_config
from sportello.schema import web_sessions
from sportello.web import WebSessions, anonymous_csrf, assets, csrf_valid, environment, render

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
async def hub(tmp_path):  # type: ignore[no-untyped-def]
    config = parse_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'h.sqlite'}"},
            "outbox": {"workers": False},
        }
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.skipif(not assets.kit_installed(), reason="`make install` copies the UI kit")
async def test_the_kit_is_served_versioned_and_immutable(hub: TestClient) -> None:
    resp = await hub.get(assets.url("kit/css/bootstrap-italia.min.css"))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/css")
    assert "immutable" in resp.headers["Cache-Control"]
    assert b".it-header-wrapper" in await resp.read()
    font = await hub.get(
        assets.url("kit/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-regular.woff2")
    )
    assert font.status == 200 and font.headers["Content-Type"] == "font/woff2"
    # another version (an old page after an upgrade, a guess) is not served
    stale = await hub.get("/static/0.0.0-x/sportello.css")
    assert stale.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "..%2f..%2fconfig.py",
        "%2e%2e/%2e%2e/app.py",
        "kit/../../pages.py",
        "/etc/passwd",
        "nope.css",
    ],
)
async def test_no_file_outside_the_static_folder(hub: TestClient, path: str) -> None:
    resp = await hub.get(f"/static/{assets.version()}/{path}")
    assert resp.status == 404
    assert b"import" not in await resp.read()


def test_pages_escape_and_carry_the_security_headers() -> None:
    env = environment()
    site = {"name": "Comune di <b>Prova</b>", "home_url": "/", "nav": [("Home", "/", True)]}
    resp = render(
        env, "web/error.html", {"site": site, "title": "Errore", "message": "<script>x</script>"}
    )
    body = resp.text or ""
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body
    assert "Comune di &lt;b&gt;Prova&lt;/b&gt;" in body
    assert '<html lang="it">' in body and 'href="#main-content"' in body
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    with pytest.raises(jinja2.UndefinedError):  # an error, not an empty string
        render(env, "web/error.html", {"site": site, "title": "x"})


def _request(cookies: dict[str, str]) -> web.Request:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return make_mocked_request("GET", "/", headers={"Cookie": header} if header else {})


def _cookie(resp: web.StreamResponse, name: str) -> str:
    return resp.cookies[name].value


async def test_sessions_start_load_expire_and_end(engine: Any) -> None:
    config = parse_config({})
    citizens = WebSessions(
        engine, config, "sportello", lifetime=timedelta(hours=2), idle=timedelta(minutes=30)
    )
    console = WebSessions(engine, config, "console")
    resp = web.Response()
    started = await citizens.start(
        resp, tenant_id="demo", subject="RSSMRA80A01H501U", data={"name": "Mario"}, now=T0
    )
    token = _cookie(resp, "sportello-sportello")
    morsel = resp.cookies["sportello-sportello"]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    # only the token's digest is stored
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(web_sessions.c.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored
    loaded = await citizens.load(
        _request({"sportello-sportello": token}), now=T0 + timedelta(minutes=5)
    )
    assert loaded is not None and loaded.subject == "RSSMRA80A01H501U"
    assert loaded.data == {"name": "Mario"} and loaded.csrf == started.csrf
    # the console does not accept a citizen's cookie, even copied under its name
    assert await console.load(_request({"sportello-console": token}), now=T0) is None
    # a made-up or over-long token
    assert await citizens.load(_request({"sportello-sportello": "x" * 43}), now=T0) is None
    assert await citizens.load(_request({"sportello-sportello": "x" * 500}), now=T0) is None
    # idle: used at +5 min, so alive at +34 and gone after 30 idle minutes
    assert await citizens.load(
        _request({"sportello-sportello": token}), now=T0 + timedelta(minutes=34)
    )
    assert (
        await citizens.load(
            _request({"sportello-sportello": token}), now=T0 + timedelta(minutes=65)
        )
        is None
    )
    # absolute end
    resp2 = web.Response()
    await citizens.start(resp2, tenant_id="demo", subject="X", data={}, now=T0)
    token2 = _cookie(resp2, "sportello-sportello")
    for minutes in range(20, 120, 20):
        assert await citizens.load(
            _request({"sportello-sportello": token2}), now=T0 + timedelta(minutes=minutes)
        )
    assert (
        await citizens.load(
            _request({"sportello-sportello": token2}), now=T0 + timedelta(minutes=121)
        )
        is None
    )
    # logout revokes on the server (a copy of the cookie is useless afterwards)
    resp3 = web.Response()
    await citizens.start(resp3, tenant_id="demo", subject="Y", data={}, now=T0)
    token3 = _cookie(resp3, "sportello-sportello")
    out = web.Response()
    await citizens.end(
        _request({"sportello-sportello": token3}), out, now=T0 + timedelta(minutes=1)
    )
    assert out.cookies["sportello-sportello"]["max-age"] == "0"
    assert (
        await citizens.load(
            _request({"sportello-sportello": token3}), now=T0 + timedelta(minutes=2)
        )
        is None
    )


async def test_revoke_every_session_of_a_subject(engine: Any) -> None:
    config = parse_config({})
    staff = WebSessions(engine, config, "console")
    tokens = []
    for _ in range(3):
        resp = web.Response()
        await staff.start(resp, tenant_id=None, subject="op1", data={}, now=T0)
        tokens.append(_cookie(resp, "sportello-console"))
    other = web.Response()
    await staff.start(other, tenant_id=None, subject="op2", data={}, now=T0)
    assert await staff.revoke_subject("op1", now=T0) == 3
    for token in tokens:
        assert await staff.load(_request({"sportello-console": token}), now=T0) is None
    assert await staff.load(
        _request({"sportello-console": _cookie(other, "sportello-console")}), now=T0
    )


async def test_csrf_session_token_and_anonymous_double_submit(engine: Any) -> None:
    config = parse_config({})
    citizens = WebSessions(engine, config, "sportello")
    resp = web.Response()
    session = await citizens.start(resp, tenant_id="demo", subject="S", data={}, now=T0)
    req = _request({})
    assert csrf_valid(req, session.csrf, config, session)
    for bad in ("", None, session.csrf[:-1], session.csrf + "x", ["list"]):
        assert not csrf_valid(req, bad, config, session)
    # before a login: the form's value must equal the browser's cookie
    first = web.Response()
    value = anonymous_csrf(_request({}), first, config)
    cookie = first.cookies["sportello-csrf"].value
    assert cookie == value
    with_cookie = _request({"sportello-csrf": cookie})
    again = web.Response()
    assert (
        anonymous_csrf(with_cookie, again, config) == value
        and "sportello-csrf" not in again.cookies
    )
    assert csrf_valid(with_cookie, value, config, None)
    assert not csrf_valid(_request({}), value, config, None)  # no cookie: a cross-site post
    assert not csrf_valid(_request({"sportello-csrf": "a" * 43}), value, config, None)


def test_https_cookies_are_host_prefixed_and_secure() -> None:
    config = parse_config({"server": {"public_url": "https://hub.example.it"}})
    resp = web.Response()
    anonymous_csrf(_request({}), resp, config)
    morsel = resp.cookies["__Host-sportello-csrf"]
    assert morsel["secure"] and morsel["path"] == "/"


@pytest.mark.skipif(not assets.kit_installed(), reason="`make install` copies the UI kit")
async def test_text_assets_are_served_compressed(hub: TestClient) -> None:
    import gzip

    path = "kit/css/bootstrap-italia.min.css"
    plain = await hub.get(assets.url(path), headers={"Accept-Encoding": "identity"})
    raw = await plain.read()
    packed = await hub.get(
        assets.url(path), headers={"Accept-Encoding": "gzip, br"}, auto_decompress=False
    )
    body = await packed.read()
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "immutable" in packed.headers["Cache-Control"]
    assert len(body) < len(raw) / 4 and gzip.decompress(body) == raw
    font = await hub.get(
        assets.url("kit/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-regular.woff2"),
        headers={"Accept-Encoding": "gzip"},
    )
    assert "Content-Encoding" not in font.headers  # already compressed


def test_pages_can_leave_out_the_kit_script_and_show_dates_in_rome() -> None:
    env = environment()
    site = {"name": "Comune", "home_url": "/", "nav": []}
    with_script = render(env, "web/error.html", {"site": site, "title": "T", "message": "m"})
    without = render(
        env, "web/error.html", {"site": site, "title": "T", "message": "m", "kit_script": False}
    )
    assert "bootstrap-italia.bundle" not in (without.text or "")
    if assets.kit_installed():
        assert "bootstrap-italia.bundle" in (with_script.text or "")
    it_date = env.filters["it_date"]
    assert it_date(datetime(2026, 7, 1, 8, 30, tzinfo=UTC)) == "01/07/2026 alle 10:30"
    assert it_date(datetime(2026, 12, 1, 8, 30, tzinfo=UTC)) == "01/12/2026 alle 09:30"

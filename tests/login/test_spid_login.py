"""SPID and CIE logins end to end over real sockets: the hub as SP, the sandbox IdP, a browser
played by an aiohttp client with a cookie jar. Covers what spid-sp-test does not: replay of an
accepted response, an InResponseTo from another browser, unsolicited responses, the handoff
code (once, audited), anomaly pages, and logout both ways."""

from __future__ import annotations

import base64
import html
import re
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from factories import free_port, spid_tenant
from sqlalchemy import select

from sportello import apikeys
from sportello.app import CLOCK, CONFIG, ENGINE, create_app
from sportello.config import parse_config
from sportello.platforms.login.tables import login_sessions
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM
from sportello.sandbox.idp.outbound import logout_request
from sportello.sandbox.idp.state import STATE as IDP_STATE
from sportello.sandbox.idp.xmlutil import deflate_b64, sign_query, tostring
from sportello.schema import audit_log

PERSON = DEFAULT_IDENTITIES[0].code  # Mario Collaudo, SPID level 3


STRONG = "https://app.comune.example/strong"  # a return URL registered with level 3


class Env:
    def __init__(self, hub: str, idp: str, app: Any, api_key: str, idp_b: Any = None) -> None:
        self.hub, self.idp, self.app, self.api_key = hub, idp, app, api_key
        self.idp_b = idp_b  # a second trusted SPID IdP (its TestServer)
        self.idp_a_server: Any = None  # the first one's TestServer

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.fixture
async def env(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    await idp_server.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    idp_b_server = TestServer(idp_sandbox(), host="127.0.0.1")
    await idp_b_server.start_server()
    idp_b = str(idp_b_server.make_url("")).rstrip("/")
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    tenant = spid_tenant(
        tmp_path,
        hub_url=hub,
        idps=[idp, idp_b],
        return_urls=["https://app.comune.example/callback", STRONG],
        return_url_levels={STRONG: 3},
    )
    tenant["webhooks"] = [{"url": "http://127.0.0.1:9/hook", "events": ["spid.*", "cie.*"]}]
    config = parse_config(
        {
            "server": {"public_url": hub},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "idps": {"signing_certs": [FEDERATION_CERT_PEM.decode()]},
            "tenants": [tenant],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with app[ENGINE].begin() as conn:
        key = await apikeys.create(
            conn,
            tenant_id="comune",
            name="app",
            scopes=["personal_data"],
            now=app[CLOCK].now(),
        )
    env = Env(hub, idp, app, key, idp_b_server)
    env.idp_a_server = idp_server
    yield env
    await server.close()
    await idp_server.close()
    await idp_b_server.close()


async def _start(browser: aiohttp.ClientSession, env: Env, kind: str = "spid", **query: str) -> str:
    """Login at the hub, land on the IdP's page; returns the IdP transaction id."""
    params = {"idp": f"{env.idp}/{kind}", **query}
    async with browser.get(
        f"{env.hub}/t/comune/{kind}/login", params=params, allow_redirects=False
    ) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    async with browser.get(yarl.URL(location, encoded=True)) as page:
        assert page.status == 200, page.headers.get("X-Sandbox-Error")
        return page.headers["X-Sandbox-Txn"]


async def _answer(
    browser: aiohttp.ClientSession, env: Env, txn: str, kind: str = "spid", **form: str
) -> dict[str, Any]:
    data = {"txn": txn, "format": "json", **form}
    if "anomaly" not in form:
        data.setdefault("identity", PERSON)
    async with browser.post(f"{env.idp}/{kind}/sso/answer", data=data) as resp:
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def _acs(
    browser: aiohttp.ClientSession, answer: dict[str, Any], follow: bool = False
) -> aiohttp.ClientResponse:
    resp = await browser.post(
        answer["acs_url"],
        data={"SAMLResponse": answer["SAMLResponse"], "RelayState": answer["RelayState"]},
        allow_redirects=follow,
    )
    await resp.read()
    return resp


async def test_login_accepted_then_replay_refused(env: Env) -> None:
    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env))
        resp = await _acs(browser, answer, follow=True)
        assert resp.status == 200
        assert "Accesso effettuato" in await resp.text()
        again = await _acs(browser, answer, follow=True)
        assert again.status == 403
        assert "già" in await again.text() or "replay" in await again.text()


async def test_response_from_another_browser_is_refused(env: Env) -> None:
    async with env.browser() as victim, env.browser() as attacker:
        answer = await _answer(victim, env, await _start(victim, env))
        resp = await _acs(attacker, answer)
        assert resp.status == 403
        assert "another browser" in await resp.text()
        # the victim's own browser can still complete it
        assert (await _acs(victim, answer, follow=True)).status == 200


async def test_unsolicited_response_is_refused(env: Env) -> None:
    async with env.browser() as browser:
        txn = await _start(browser, env)
        async with browser.post(
            f"{env.idp}/__sandbox/faults", json={"faults": ["wrong_in_response_to"], "count": 1}
        ) as r:
            assert r.status < 300
        resp = await _acs(browser, await _answer(browser, env, txn))
        assert resp.status == 403


@pytest.mark.parametrize(
    "fault", ["unsigned_assertion", "wrong_audience", "expired", "sha1_signature", "foreign_key"]
)
async def test_tampered_responses_are_refused(env: Env, fault: str) -> None:
    async with env.browser() as browser:
        txn = await _start(browser, env)
        async with browser.post(
            f"{env.idp}/__sandbox/faults", json={"faults": [fault], "count": 1}
        ) as r:
            assert r.status < 300
        resp = await _acs(browser, await _answer(browser, env, txn))
        assert resp.status in (400, 403), fault


@pytest.mark.parametrize("code", [19, 20, 21, 22, 23, 25])
async def test_anomaly_shows_the_prescribed_message(env: Env, code: int) -> None:
    from sportello.connectors.spid.errors import SpidAnomaly

    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env), anomaly=str(code))
        resp = await _acs(browser, answer)
        assert resp.status == 403
        body = await resp.text()
        assert f'data-code="{code}"' in body
        assert html.escape(SpidAnomaly(code).message) in body


async def test_handoff_code_is_exchanged_once_and_audited(env: Env) -> None:
    async with env.browser() as browser:
        txn = await _start(
            browser, env, return_to="https://app.comune.example/callback", state="xyz"
        )
        resp = await _acs(browser, await _answer(browser, env, txn))
        assert resp.status == 303
        target = urlsplit(resp.headers["Location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == (
            "https://app.comune.example/callback"
        )
        query = parse_qs(target.query)
        assert query["state"] == ["xyz"]
        code = query["code"][0]
    async with aiohttp.ClientSession() as app_server:
        headers = {"Authorization": f"Bearer {env.api_key}", "Idempotency-Key": "x1"}
        url = f"{env.hub}/api/v1/tenants/comune/logins/exchange"
        async with app_server.post(url, json={"code": code}, headers=headers) as r:
            assert r.status == 200, await r.text()
            identity = await r.json()
        assert identity["fiscal_code"] == PERSON
        assert identity["level"] == 2 and identity["scheme"] == "spid"
        assert identity["attributes"]["familyName"]
        async with app_server.post(url, json={"code": code}, headers=headers) as r:
            assert r.status == 404
    async with env.app[ENGINE].connect() as conn:
        rows = (await conn.execute(select(audit_log).where(audit_log.c.subject == PERSON))).all()
    assert [r.action for r in rows] == ["spid.login.exchange"]


async def test_return_to_must_be_registered(env: Env) -> None:
    async with (
        env.browser() as browser,
        browser.get(
            f"{env.hub}/t/comune/spid/login",
            params={"idp": f"{env.idp}/spid", "return_to": "https://evil.example/cb"},
            allow_redirects=False,
        ) as resp,
    ):
        assert resp.status == 400


async def test_sp_initiated_logout(env: Env) -> None:
    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env))
        assert (await _acs(browser, answer, follow=True)).status == 200
        async with browser.get(f"{env.hub}/t/comune/spid/logout", allow_redirects=False) as r:
            assert r.status == 302
            to_idp = r.headers["Location"]
        async with browser.get(yarl.URL(to_idp, encoded=True), allow_redirects=False) as r:
            assert r.status in (302, 303), r.headers.get("X-Sandbox-Error")
            back = r.headers["Location"]
        async with browser.get(yarl.URL(back, encoded=True)) as r:
            assert r.status == 200, await r.text()
            assert "Disconnessione" in await r.text()
    async with env.app[ENGINE].connect() as conn:
        ended = (await conn.execute(select(login_sessions.c.ended_at))).scalars().all()
    assert ended and all(e is not None for e in ended)


async def test_idp_initiated_logout(env: Env) -> None:
    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env))
        assert (await _acs(browser, answer, follow=True)).status == 200
        index = answer["session_index"]
        async with browser.post(
            f"{env.idp}/spid/sessions/{index}/logout", allow_redirects=False
        ) as r:
            assert r.status in (302, 303)
            to_sp = r.headers["Location"]
        async with browser.get(yarl.URL(to_sp, encoded=True), allow_redirects=False) as r:
            assert r.status in (302, 303), await r.text()
            back = r.headers["Location"]
        async with browser.get(yarl.URL(back, encoded=True)) as r:
            assert r.status == 200
            assert r.headers.get("X-Sandbox-Logout", "").endswith("Success")
    async with env.app[ENGINE].connect() as conn:
        ended = (await conn.execute(select(login_sessions.c.ended_at))).scalars().all()
    assert ended == [e for e in ended if e is not None] and ended


async def test_cie_login_and_local_logout(env: Env) -> None:
    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env, kind="cie"), kind="cie")
        resp = await _acs(browser, answer, follow=True)
        assert resp.status == 200, await resp.text()
        async with browser.get(f"{env.hub}/t/comune/cie/logout", allow_redirects=False) as r:
            assert r.status == 200
            assert "Disconnessione" in await r.text()


async def test_metadata_is_served_signed(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        for kind in ("spid", "cie"):
            async with s.get(f"{env.hub}/t/comune/{kind}/metadata") as r:
                assert r.status == 200
                assert r.content_type == "application/samlmetadata+xml"
                assert b"Signature" in await r.read()
        async with s.get(f"{env.hub}/t/nobody/spid/metadata") as r:
            assert r.status == 404


async def test_a_login_is_announced_by_webhook_without_personal_data(env: Env) -> None:
    from sportello.schema import outbox

    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env))
        assert (await _acs(browser, answer, follow=True)).status == 200
    async with env.app[ENGINE].connect() as conn:
        jobs = (await conn.execute(select(outbox.c.kind, outbox.c.payload))).all()
    payloads = [str(p) for k, p in jobs if k == "webhook"]
    assert len(payloads) == 1 and "spid.login" in payloads[0]
    assert PERSON not in payloads[0]


def _requested_level(location: str) -> int:
    """The SpidL<n> of the AuthnRequest in a Redirect-binding Location."""
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    found = re.search(rb"https://www.spid.gov.it/SpidL(\d)", xml)
    assert found is not None, xml
    return int(found.group(1))


async def test_the_browser_cannot_lower_the_level(env: Env) -> None:
    """The tenant's level (2) and a return URL's level (3) are minimums: a lower ``level``
    in the query is refused before any AuthnRequest leaves; a higher one is fine."""
    cases: list[tuple[dict[str, str], int | None]] = [
        ({"level": "1"}, None),
        ({}, 2),
        ({"level": "3"}, 3),
        ({"return_to": STRONG, "level": "2"}, None),
        ({"return_to": STRONG, "level": "1"}, None),
        ({"return_to": STRONG}, 3),
    ]
    async with env.browser() as browser:
        for query, expected in cases:
            params = {"idp": f"{env.idp}/spid", **query}
            async with browser.get(
                f"{env.hub}/t/comune/spid/login", params=params, allow_redirects=False
            ) as resp:
                if expected is None:
                    assert resp.status == 400, query
                    assert "inferiore al minimo" in await resp.text()
                    assert "Location" not in resp.headers
                else:
                    assert resp.status == 302, (query, await resp.text())
                    assert _requested_level(resp.headers["Location"]) == expected, query


async def _session_row(env: Env) -> dict[str, Any]:
    async with env.app[ENGINE].connect() as conn:
        return dict((await conn.execute(select(login_sessions))).mappings().one())


async def _idp_logout(
    env: Env, server: Any, name_id: str, session_index: str | None
) -> aiohttp.ClientResponse:
    """An IdP-initiated LogoutRequest, correctly signed by the IdP behind ``server``."""
    base = str(server.make_url("")).rstrip("/")
    slo = f"{env.hub}/t/comune/spid/slo"
    message = logout_request(
        idp_entity_id=f"{base}/spid",
        destination=slo,
        name_id=name_id,
        session_index=session_index or "unused",
        now=env.app[CLOCK].now(),
    )
    if session_index is None:
        for node in message.findall("{urn:oasis:names:tc:SAML:2.0:protocol}SessionIndex"):
            message.remove(node)
    key = server.app[IDP_STATE].keys["spid"].key_pem
    query = sign_query("SAMLRequest", deflate_b64(tostring(message)), None, key)
    async with (
        aiohttp.ClientSession() as s,
        s.get(yarl.URL(f"{slo}?{query}", encoded=True), allow_redirects=False) as resp,
    ):
        await resp.read()
        return resp


async def test_a_logout_signed_by_another_idp_ends_no_session(env: Env) -> None:
    """IdP B (trusted, its signature valid) names the NameID and SessionIndex of a session
    made through IdP A: the hub answers B but the session stays; with no SessionIndex
    either. The same request from IdP A ends it."""
    async with env.browser() as browser:
        answer = await _answer(browser, env, await _start(browser, env))
        assert (await _acs(browser, answer, follow=True)).status == 200
    row = await _session_row(env)
    assert row["idp_entity_id"] == f"{env.idp}/spid"
    idp_b = str(env.idp_b.make_url("")).rstrip("/")
    for index in (row["session_index"], None):
        resp = await _idp_logout(env, env.idp_b, row["name_id"], index)
        assert resp.status == 302, await resp.text()  # B's signature was accepted ...
        assert resp.headers["Location"].startswith(f"{idp_b}/spid/slo")
        assert (await _session_row(env))["ended_at"] is None  # ... but A's session lives on
    resp = await _idp_logout(env, env.idp_a_server, row["name_id"], None)
    assert resp.status == 302
    assert (await _session_row(env))["ended_at"] is not None


async def test_a_planted_login_cookie_is_never_used(env: Env) -> None:
    """The attacker plants a browser cookie value they know (made up, or shaped like the
    hub's with a forged MAC); the hub issues its own instead, and a response posted with
    the planted value is refused."""
    hub = yarl.URL(env.hub)
    async with env.browser() as victim, env.browser() as attacker:
        planted = "attacker-chosen-value-" + "A" * 30
        victim.cookie_jar.update_cookies({"sportello_login": planted}, response_url=hub)
        answer = await _answer(victim, env, await _start(victim, env))
        issued = {c.key: c.value for c in victim.cookie_jar}["sportello_login"]
        assert issued != planted
        forged = issued.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        for value in (planted, forged):
            attacker.cookie_jar.update_cookies({"sportello_login": value}, response_url=hub)
            assert (await _acs(attacker, answer)).status == 403, value
        assert (await _acs(victim, answer, follow=True)).status == 200


async def test_html_pages_carry_a_content_security_policy(env: Env) -> None:
    async with env.browser() as browser:
        for path, params in (
            ("/t/comune/spid/login", {}),  # the IdP chooser
            ("/t/comune/spid/login", {"idp": "https://unknown.example"}),  # a refusal
            ("/t/comune/spid/done", {"level": "2"}),
            ("/t/comune/spid/logout", {}),
        ):
            async with browser.get(f"{env.hub}{path}", params=params) as resp:
                assert resp.content_type == "text/html", path
                csp = resp.headers.get("Content-Security-Policy", "")
                assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
                assert "script-src" not in csp, path  # no script runs on these pages


async def test_under_https_cookies_are_host_prefixed_and_secure(env: Env) -> None:
    """With an https public URL: ``__Host-`` cookies (Secure, Path=/, no Domain), for the
    login and for the demo application's state cookie too."""
    public = "https://hub.example"
    config = env.app[CONFIG]
    tenant = config.tenants[0]
    spid = tenant.spid.model_copy(
        update={"return_urls": [*tenant.spid.return_urls, f"{public}/t/comune/app/callback"]}
    )
    config = config.model_copy(
        update={
            "server": config.server.model_copy(update={"public_url": public}),
            "tenants": [tenant.model_copy(update={"spid": spid})],
        }
    )
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            url = server.make_url("/t/comune/spid/login")
            async with s.get(url, params={"idp": f"{env.idp}/spid"}, allow_redirects=False) as r:
                assert r.status == 302
                login = r.cookies["__Host-sportello_login"]
            async with s.get(server.make_url("/t/comune/app")) as r:
                assert r.status == 200
                assert "Content-Security-Policy" in r.headers
                state = r.cookies["__Host-sportello_demo_state"]
        for cookie in (login, state):
            assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]
            assert cookie["httponly"]
        assert "sportello_login" not in {c.key for c in s.cookie_jar}
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("acs", "application/x-www-form-urlencoded; charset=nope", b"SAMLResponse=x"),
        ("acs", "application/x-www-form-urlencoded; charset=utf-8", b"SAMLResponse=%ff%fe"),
        ("acs", "multipart/form-data", b"--x\r\n\r\nSAMLResponse\r\n--x--\r\n"),
        ("slo", "application/x-www-form-urlencoded; charset=nope", b"SAMLRequest=x"),
        ("slo", "multipart/form-data; boundary=x", b"--x\r\n\r\nv\r\n--x--\r\n"),
    ],
)
async def test_an_unreadable_form_is_a_400_not_a_500(
    env: Env, path: str, content_type: str, body: bytes
) -> None:
    """A form the hub cannot decode (unknown charset, bytes that are not UTF-8, multipart
    without a boundary or a part's name) is refused with a page, never a server error."""
    async with aiohttp.ClientSession() as browser:
        async with browser.post(
            f"{env.hub}/t/comune/spid/{path}",
            data=body,
            headers={"Content-Type": content_type},
        ) as resp:
            # 400 when the form cannot be decoded; a form that decodes to nonsense is a
            # refused response (403, "not base64"): a page either way
            assert resp.status in (400, 403), await resp.text()
            assert "text/html" in resp.headers["Content-Type"]

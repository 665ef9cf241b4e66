"""SPID and CIE logins end to end over real sockets: the hub as SP, the sandbox IdP, a browser
played by an aiohttp client with a cookie jar. Covers what spid-sp-test does not: replay of an
accepted response, an InResponseTo from another browser, unsolicited responses, the handoff
code (once, audited), anomaly pages, and logout both ways."""

from __future__ import annotations

import html
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.spid.keys import make_sp_certificate
from sportello.login_keys import write_keys
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.schema import audit_log, login_sessions

PERSON = DEFAULT_IDENTITIES[0].code  # Mario Collaudo, SPID level 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Env:
    def __init__(self, hub: str, idp: str, app: Any, api_key: str) -> None:
        self.hub, self.idp, self.app, self.api_key = hub, idp, app, api_key

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.fixture
async def env(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    await idp_server.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    port = _free_port()
    hub = f"http://127.0.0.1:{port}"
    tenant: dict[str, Any] = {
        "id": "comune",
        "name": "Comune di Prova",
        "ipa_code": "c_z999",
        "fiscal_code": "00000000999",
        "cadastral_code": "Z999",
    }
    for kind in ("spid", "cie"):
        keys_dir = tmp_path / "keys" / kind
        key, cert = make_sp_certificate(
            entity_id=f"{hub}/t/comune/{kind}/metadata",
            organization_name="Comune di Prova",
            common_name="Comune di Prova",
            locality="Z999",
            ipa_code="c_z999",
            key_size=2048,
        )
        write_keys(keys_dir, key, cert, rotate=False)
        tenant[kind] = {
            "keys_dir": str(keys_dir),
            "contact_email": "protocollo@comune.prova.it",
            "contact_phone": "+390612345678",
            "idp_metadata": [f"{idp}/{kind}/metadata"],
            "return_urls": ["https://app.comune.example/callback"],
            "level": 2 if kind == "spid" else 3,
            "province": "RM",
        }
    tenant["webhooks"] = [{"url": "http://127.0.0.1:9/hook", "events": ["spid.*", "cie.*"]}]
    config = parse_config(
        {
            "server": {"public_url": hub},
            "database": {"url": db_url},
            "outbox": {"workers": False},
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
    yield Env(hub, idp, app, key)
    await server.close()
    await idp_server.close()


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

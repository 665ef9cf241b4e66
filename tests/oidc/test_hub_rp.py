"""The hub as a SPID/CIE OpenID Connect relying party per tenant (``/t/{tenant}/oidc/...``),
end to end over real sockets against the federation twin: the tenant's keys made by
``sportello keys oidc``, its entity configuration fetched and trusted by the twin's trust
anchor (``/__sandbox/register``), a browser (aiohttp with a cookie jar) through the OP's
login and consent pages, the callback, and the application's server exchanging the
one-time code for the identity as it does for SAML logins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt as pyjwt
import pytest
import yarl
from click.testing import CliRunner
from factories import free_port, tenant
from sqlalchemy import select

from sportello.app import ENGINE
from sportello.cli.main import main as cli
from sportello.config import parse_config
from sportello.platforms.login.oidc_routes import OIDC
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.schema import audit_log, outbox

from .conftest import _ACTION, _TXN, OP_MARK, anchor_jwks, serve_hub, set_faults
from .conftest import at_provider as _at_provider

MARIO = DEFAULT_IDENTITIES[0]  # SpidL3, has a CIE
RETURN = "https://app.comune.example/callback"
SITE = "https://www.comune.example.it/"


@dataclass
class Hub:
    url: str
    twin: str
    app: Any
    api_key: str
    keys_dir: Path
    toml: Path

    @property
    def rp(self) -> str:
        return f"{self.url}/t/comune/oidc"

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _toml(value: Any) -> str:
    return json.dumps(value)  # TOML basic strings and arrays of strings are JSON's


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, twin: str) -> Any:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    await anchor_jwks(twin, tmp_path / "ta-jwks.json")
    oidc = {
        "keys_dir": "keys/oidc",
        "trust_anchor": f"{twin}/ta",
        "trust_anchor_jwks": "ta-jwks.json",
        "providers": {"cie": [f"{twin}/cie"], "spid": [f"{twin}/spid"]},
        "provider_trust_marks": [OP_MARK.format(twin=twin)],
        "contacts": ["protocollo@pec.comune.example.it"],
        "organization_url": SITE,
        "return_urls": [RETURN],
        "allow_http": True,
    }
    # the keys are made by the CLI from the same configuration, as an operator would
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[server]\npublic_url = "{url}"\n[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/c.db"\n'
        '[[tenants]]\nid = "comune"\nname = "Comune di Prova"\nipa_code = "c_x000"\n'
        'fiscal_code = "00000000000"\ncadastral_code = "X000"\n[tenants.oidc]\n'
        + "".join(f"{k} = {_toml(v)}\n" for k, v in oidc.items() if k != "providers")
        + "[tenants.oidc.providers]\n"
        + "".join(f"{k} = {_toml(v)}\n" for k, v in oidc["providers"].items())  # type: ignore[attr-defined]
    )
    made = CliRunner().invoke(cli, ["keys", "oidc", "--config", str(toml), "--tenant", "comune"])
    assert made.exit_code == 0, made.output
    config = parse_config(
        {
            "server": {"public_url": url},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                tenant(
                    "comune",
                    oidc=oidc,
                    webhooks=[{"url": "http://127.0.0.1:9/hook", "events": ["spid.*", "cie.*"]}],
                ),
                tenant("altro", oidc={**oidc, "keys_dir": "keys/altro"}),
            ],
        },
        source=str(toml),
        base_dir=tmp_path,
    )
    made = CliRunner().invoke(cli, ["keys", "oidc", "--config", str(toml), "--tenant", "comune"])
    assert made.exit_code != 0 and "--rotate" in made.output  # never overwritten silently
    from sportello.platforms.login.oidc_keys import make_or_rotate

    make_or_rotate(tmp_path / "keys/altro", rotate=False, now=_now(), overlap=_day())
    server, key = await serve_hub(config, port)
    app = server.app
    # onboarding: the trust anchor fetches the RP's entity configuration, issues a trust mark
    async with aiohttp.ClientSession() as http:
        for tid, keys in (("comune", "keys/oidc"), ("altro", "keys/altro")):
            entity = f"{url}/t/{tid}/oidc"
            async with http.post(f"{twin}/__sandbox/register", json={"entity_id": entity}) as r:
                assert r.status == 200, await r.text()
                marks = (await r.json())["trust_marks"]
            (tmp_path / keys / "trust_marks.json").write_text(json.dumps(marks))
    try:
        yield Hub(url, twin, app, key, tmp_path / "keys/oidc", toml)
    finally:
        await server.close()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _day() -> Any:
    from datetime import timedelta

    return timedelta(days=1)


async def _to_provider(
    browser: aiohttp.ClientSession, hub: Hub, scheme: str, *, tenant_id: str = "comune"
) -> str:
    """Start at the hub; the URL of the OP's authorization endpoint it redirected to."""
    params = {"provider": f"{hub.twin}/{scheme}", "return_to": RETURN, "state": "app-xyz"}
    async with browser.get(
        f"{hub.url}/t/{tenant_id}/oidc/login", params=params, allow_redirects=False
    ) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def _callback(browser: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with browser.get(yarl.URL(url, encoded=True), allow_redirects=False) as resp:
        await resp.read()
        return resp


async def _exchange(hub: Hub, code: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {hub.api_key}", "Idempotency-Key": code[:20]}
    async with (
        aiohttp.ClientSession() as app_server,
        app_server.post(
            f"{hub.url}/api/v1/tenants/comune/logins/exchange", json={"code": code}, headers=headers
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("scheme", ["cie", "spid"])
async def test_login_hands_the_identity_over_like_saml(hub: Hub, scheme: str) -> None:
    async with hub.browser() as browser:
        location = await _to_provider(browser, hub, scheme)
        query = parse_qs(urlsplit(location).query)
        assert location.startswith(f"{hub.twin}/{scheme}/")
        assert query["client_id"] == [hub.rp] and query["code_challenge_method"] == ["S256"]
        request = pyjwt.decode(query["request"][0], options={"verify_signature": False})
        assert request["acr_values"] == "https://www.spid.gov.it/SpidL2"
        assert request["redirect_uri"] == f"{hub.rp}/callback"
        assert "https://attributes.eid.gov.it/fiscal_number" in request["claims"]["userinfo"]
        callback = await _at_provider(browser, location, MARIO.code)
        assert callback.startswith(f"{hub.rp}/callback?")
        resp = await _callback(browser, callback)
        assert resp.status == 303
        target = urlsplit(resp.headers["Location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN
        back = parse_qs(target.query)
        assert back["state"] == ["app-xyz"]
    status, identity = await _exchange(hub, back["code"][0])
    assert status == 200, identity
    assert identity["scheme"] == scheme and identity["protocol"] == "oidc"
    assert identity["fiscal_code"] == MARIO.code and identity["level"] >= 2
    assert identity["idp"] == f"{hub.twin}/{scheme}"
    assert identity["attributes"]["given_name"] == "Mario"
    assert (await _exchange(hub, back["code"][0]))[0] == 404  # once
    async with hub.app[ENGINE].connect() as conn:
        actions = (
            (
                await conn.execute(
                    select(audit_log.c.action).where(audit_log.c.subject == MARIO.code)
                )
            )
            .scalars()
            .all()
        )
        jobs = (await conn.execute(select(outbox.c.kind, outbox.c.payload))).all()
    assert actions == [f"{scheme}.login.exchange"]
    hooks = [str(p) for k, p in jobs if k == "webhook"]
    assert len(hooks) == 1 and f"{scheme}.login" in hooks[0] and MARIO.code not in hooks[0]


async def test_entity_configuration_is_a_valid_signed_entity_statement(hub: Hub) -> None:
    from sportello.connectors.oidc.federation import parse_statement, verify_statement

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hub.rp}/.well-known/openid-federation") as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/entity-statement+jwt"
        body = await resp.text()
    statement = parse_statement(body)
    assert statement.iss == statement.sub == hub.rp
    verify_statement(body, statement.jwks, now=_now().timestamp())  # self-signed, federation key
    claims = statement.claims
    assert claims["authority_hints"] == [f"{hub.twin}/ta"]
    assert claims["trust_marks"] and claims["trust_marks"][0]["id"].startswith(f"{hub.twin}/ta/")
    rp = claims["metadata"]["openid_relying_party"]
    assert rp["client_id"] == hub.rp and rp["redirect_uris"] == [f"{hub.rp}/callback"]
    assert rp["client_registration_types"] == ["automatic"] and rp["response_types"] == ["code"]
    fed_kids = {k["kid"] for k in claims["jwks"]["keys"]}
    core_kids = {k["kid"] for k in rp["jwks"]["keys"]}
    assert fed_kids and core_kids and not fed_kids & core_kids  # federation keys are distinct
    assert claims["metadata"]["federation_entity"]["homepage_uri"] == SITE


async def test_key_rotation_keeps_the_old_keys_published(hub: Hub) -> None:
    async def published() -> tuple[set[str], set[str]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{hub.rp}/.well-known/openid-federation") as resp,
        ):
            claims = pyjwt.decode(await resp.text(), options={"verify_signature": False})
        rp = claims["metadata"]["openid_relying_party"]
        return {k["kid"] for k in claims["jwks"]["keys"]}, {k["kid"] for k in rp["jwks"]["keys"]}

    fed, core = await published()
    args = ["keys", "oidc", "--config", str(hub.toml), "--tenant", "comune", "--rotate"]
    made = CliRunner().invoke(cli, args)
    assert made.exit_code == 0, made.output
    new_fed, new_core = await published()
    assert fed < new_fed and core < new_core  # old keys still there, new ones added
    # the new federation key is registered with the trust anchor (the operator's step), and a
    # login completes, signed with the new keys
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{hub.twin}/__sandbox/register", json={"entity_id": hub.rp}) as r,
    ):
        assert r.status == 200
    async with hub.browser() as browser:
        callback = await _at_provider(browser, await _to_provider(browser, hub, "cie"), MARIO.code)
        assert (await _callback(browser, callback)).status == 303


async def test_replayed_state_is_refused(hub: Hub) -> None:
    async with hub.browser() as browser:
        callback = await _at_provider(browser, await _to_provider(browser, hub, "cie"), MARIO.code)
        assert (await _callback(browser, callback)).status == 303
        again = await _callback(browser, callback)  # the same state (and code) a second time
        assert again.status == 403
        assert "replay" in await again.text()  # refused by the hub before the OP sees the code
        # another state/nonce pair never seen by the hub
        forged = callback.replace("state=", "state=x", 1)
        assert (await _callback(browser, forged)).status == 403


async def test_code_reuse_is_refused(hub: Hub) -> None:
    """A code obtained for one login, replayed inside a fresh login of the same browser."""
    async with hub.browser() as browser:
        first = await _at_provider(browser, await _to_provider(browser, hub, "spid"), MARIO.code)
        assert (await _callback(browser, first)).status == 303
        await _to_provider(browser, hub, "spid")
        second = await _at_provider(browser, await _to_provider(browser, hub, "spid"), MARIO.code)
        old_code = parse_qs(urlsplit(first).query)["code"][0]
        new = parse_qs(urlsplit(second).query)
        replay = f"{hub.rp}/callback?code={old_code}&state={new['state'][0]}&iss={new['iss'][0]}"
        resp = await _callback(browser, replay)
        assert resp.status == 403
        assert "invalid_grant" in await resp.text()  # the OP refused the old code
        spent = await _callback(browser, second)
        assert spent.status == 403 and "replay" in await spent.text()  # that state is spent


async def test_downgraded_acr_is_refused_with_a_way_back(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, "downgrade_acr")
    async with hub.browser() as browser:
        callback = await _at_provider(browser, await _to_provider(browser, hub, "spid"), MARIO.code)
        async with browser.get(yarl.URL(callback, encoded=True), allow_redirects=False) as resp:
            assert resp.status == 403
            page = await resp.text()
    assert "acr" in page and f'href="{SITE}"' in page and "Torna al sito del comune" in page
    async with hub.app[ENGINE].connect() as conn:
        assert not (await conn.execute(select(outbox.c.kind))).all()  # no login announced


async def test_another_tenants_cookie_is_refused(hub: Hub) -> None:
    """The login cookie is bound to the tenant: one issued by another comune's RP on the same
    hub does not finish this comune's login."""
    async with hub.browser() as browser:
        location = await _to_provider(browser, hub, "cie")
        callback = await _at_provider(browser, location, MARIO.code)
        jar = {c.key: c.value for c in browser.cookie_jar}
    async with hub.browser() as other:
        await _to_provider(other, hub, "cie", tenant_id="altro")
        altro = {c.key: c.value for c in other.cookie_jar}
    assert altro["sportello_oidc"] != jar["sportello_oidc"]
    async with aiohttp.ClientSession(cookies={"sportello_oidc": altro["sportello_oidc"]}) as s:
        resp = await _callback(s, callback)
        assert resp.status == 403
    async with hub.browser() as stranger:  # no cookie at all
        assert (await _callback(stranger, callback)).status == 403


async def test_bad_requests_get_an_error_page(hub: Hub) -> None:
    async with hub.browser() as browser:
        for params in (
            {"provider": "https://op.evil.example"},
            {"provider": f"{hub.twin}/cie", "return_to": "https://evil.example/cb"},
            {"provider": f"{hub.twin}/cie", "state": "x" * 201},
        ):
            async with browser.get(f"{hub.rp}/login", params=params, allow_redirects=False) as resp:
                assert resp.status == 400
                assert "Accesso non riuscito" in await resp.text()
        async with browser.get(f"{hub.rp}/callback", allow_redirects=False) as resp:
            assert resp.status == 400
        async with browser.get(f"{hub.url}/t/nobody/oidc/login") as resp:
            assert resp.status == 404


def test_config_problems_name_what_is_missing(tmp_path: Path) -> None:
    from sportello.platforms.login import hub_config_problems

    config = parse_config(
        {
            "tenants": [
                tenant(
                    "comune",
                    oidc={
                        "keys_dir": "nokeys",
                        "trust_anchor": "https://ta.example",
                        "trust_anchor_jwks": "nojwks.json",
                        "contacts": ["a@b.it"],
                    },
                )
            ]
        },
        base_dir=tmp_path,
    )
    problems = hub_config_problems(config=config, tenant=config.tenants[0], app=None)
    text = "\n".join(p for k, p in problems if k == "oidc")
    assert "public_url" in text and "sportello keys oidc" in text
    assert "trust_anchor_jwks" in text and "providers" in text


async def test_provider_errors_and_broken_chains_end_on_the_error_page(hub: Hub) -> None:
    anna = next(i for i in DEFAULT_IDENTITIES if i.max_level == 1)  # below the tenant's level 2
    async with hub.browser() as browser:
        location = await _to_provider(browser, hub, "spid")
        async with browser.get(yarl.URL(location, encoded=True)) as resp:
            page = await resp.text()
        txn, action = _TXN.search(page), _ACTION.search(page)
        assert txn and action
        form = {"txn": txn.group(1), "identity": anna.code}
        async with browser.post(action.group(1), data=form, allow_redirects=False) as resp:
            assert resp.status == 302
            callback = resp.headers["Location"]
        assert "error=access_denied" in callback
        async with browser.get(yarl.URL(callback, encoded=True), allow_redirects=False) as resp:
            assert resp.status == 403
            assert "access_denied" in await resp.text() and f'href="{SITE}"' in await resp.text()
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, "broken_chain")
    hub.app[OIDC]._resolvers.clear()  # a cold chain (the cached one would still be valid)
    async with (
        hub.browser() as browser,
        browser.get(
            f"{hub.rp}/login", params={"provider": f"{hub.twin}/cie"}, allow_redirects=False
        ) as resp,
    ):
        assert resp.status == 502
        assert f'href="{SITE}"' in await resp.text()

"""OpenID Connect logout at the hub (``/t/{tenant}/oidc/logout``): the local session ends and
the access token is revoked at the OP's revocation endpoint (RFC 7009, ``private_key_jwt``),
checked on the twin's record and by the twin's userinfo refusing the token afterwards; and
the twin's revocation endpoint itself (client authentication, foreign tokens)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from sportello.app import ENGINE
from sportello.appkeys import SERVICES
from sportello.connectors.oidc.errors import ProviderError
from sportello.connectors.oidc.keys import generate_key
from sportello.connectors.oidc.rp import OidcRelyingParty, Provider
from sportello.outbox import Delivery, Job
from sportello.platforms.login.oidc_keys import read_keys
from sportello.platforms.login.oidc_logout import REVOKE_KIND, oidc_revoke_handler
from sportello.platforms.login.oidc_routes import OIDC
from sportello.platforms.login.oidc_sessions import unseal
from sportello.platforms.login.tables import login_sessions, oidc_sessions
from sportello.schema import outbox

from . import test_hub_rp
from .conftest import Rp, browser_login, free_port, provider
from .test_hub_rp import (
    MARIO,
    RETURN,
    SITE,
    Hub,
    _at_provider,
    _callback,
    _to_provider,
)

hub = test_hub_rp.hub  # the fixture, shared

COOKIE = "sportello_session_oidc"


async def _logged_in(hub: Hub, scheme: str = "cie") -> str:
    """A completed login at the hub; the browser's OIDC session cookie."""
    async with hub.browser() as browser:
        callback = await _at_provider(browser, await _to_provider(browser, hub, scheme), MARIO.code)
        assert (await _callback(browser, callback)).status == 303
        jar = {c.key: c.value for c in browser.cookie_jar}
    return jar[COOKIE]


async def _row(hub: Hub, session_id: str) -> dict[str, Any]:
    async with hub.app[ENGINE].connect() as conn:
        row = (
            (
                await conn.execute(
                    select(oidc_sessions, login_sessions.c.ended_at)
                    .join(login_sessions, login_sessions.c.session_id == oidc_sessions.c.session_id)
                    .where(oidc_sessions.c.session_id == session_id)
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


async def _logout(
    hub: Hub, session_id: str | None, *, tenant_id: str = "comune", **params: str
) -> tuple[int, str, str]:
    cookies = {COOKIE: session_id} if session_id else {}
    async with (
        aiohttp.ClientSession(cookies=cookies) as browser,
        browser.get(
            f"{hub.url}/t/{tenant_id}/oidc/logout", params=params, allow_redirects=False
        ) as resp,
    ):
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def _twin_log(hub: Hub, event: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{hub.twin}/__sandbox/log") as resp:
        return [e for e in await resp.json() if e["event"] == event]


async def _userinfo_status(hub: Hub, token: str, scheme: str = "cie") -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{hub.twin}/{scheme}/userinfo", headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        return resp.status


def _access_token(hub: Hub, row: dict[str, Any]) -> str:
    sealed = row["access_token"]
    assert sealed and len(sealed.split(".")) == 5  # kept as a JWE, never in clear
    return unseal(read_keys(hub.keys_dir), sealed)


@pytest.mark.parametrize("scheme", ["cie", "spid"])
async def test_logout_revokes_the_access_token_and_goes_back(hub: Hub, scheme: str) -> None:
    session_id = await _logged_in(hub, scheme)
    row = await _row(hub, session_id)
    assert row["ended_at"] is None and row["provider"] == f"{hub.twin}/{scheme}"
    token = _access_token(hub, row)
    assert token not in row["access_token"]
    assert await _userinfo_status(hub, token, scheme) == 200  # the token works before logout
    status, location, _ = await _logout(hub, session_id, return_to=RETURN)
    assert status == 303 and location == RETURN
    row = await _row(hub, session_id)
    assert row["ended_at"] is not None and row["revoked_at"] is not None
    assert row["access_token"] is None and row["revoke_error"] is None  # nothing left to leak
    [revocation] = await _twin_log(hub, "revocation")
    assert revocation == {
        "event": "revocation",
        "op": scheme,
        "client_id": hub.rp,
        "jti": revocation["jti"],
        "revoked": True,
    }
    assert await _userinfo_status(hub, token, scheme) == 401  # refused at the OP afterwards


async def test_a_replayed_logout_is_harmless(hub: Hub) -> None:
    session_id = await _logged_in(hub)
    assert (await _logout(hub, session_id))[:2] == (303, SITE)  # default: the comune's site
    status, location, _ = await _logout(hub, session_id)  # the same cookie again
    assert (status, location) == (303, SITE)
    assert len(await _twin_log(hub, "revocation")) == 1  # revoked once
    assert (await _logout(hub, "x" * 43))[:2] == (303, SITE)  # an unknown session: nothing
    assert (await _logout(hub, None))[:2] == (303, SITE)


async def test_logout_of_another_tenants_session_is_refused(hub: Hub) -> None:
    session_id = await _logged_in(hub)
    status, _, page = await _logout(hub, session_id, tenant_id="altro")
    assert status == 403 and "Accesso non riuscito" in page and f'href="{SITE}"' in page
    row = await _row(hub, session_id)
    assert row["ended_at"] is None and row["access_token"]  # untouched
    assert not await _twin_log(hub, "revocation")
    assert await _userinfo_status(hub, _access_token(hub, row)) == 200


async def test_a_return_to_outside_the_tenants_list_is_refused(hub: Hub) -> None:
    session_id = await _logged_in(hub)
    status, _, page = await _logout(hub, session_id, return_to="https://evil.example/")
    assert status == 400 and "return_to" in page
    assert (await _row(hub, session_id))["ended_at"] is None


async def test_provider_down_ends_the_local_session_and_says_so(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = await _logged_in(hub)
    service = hub.app[OIDC]
    real = service.provider
    dead = f"http://127.0.0.1:{free_port()}/revocation"  # nothing listens there

    async def unreachable(tenant: Any, entity_id: str) -> Provider:
        return dataclasses.replace(await real(tenant, entity_id), revocation_endpoint=dead)

    monkeypatch.setattr(service, "provider", unreachable)
    status, _, page = await _logout(hub, session_id, return_to=RETURN)
    assert status == 502
    assert "sessione sul servizio del comune è chiusa" in page and "non ha confermato" in page
    assert f'href="{RETURN}"' in page  # the way back
    row = await _row(hub, session_id)
    assert row["ended_at"] is not None and row["revoked_at"] is None
    assert row["revoke_error"] and row["revoke_error"].startswith("http")
    assert not await _twin_log(hub, "revocation")
    assert "riproveremo" in page
    # the session is over all the same: a second logout has nothing left to do
    assert (await _logout(hub, session_id, return_to=RETURN))[:2] == (303, RETURN)
    # the revocation was queued in the outbox (session ID only, one job per session), and
    # its handler revokes once the OP answers again
    monkeypatch.undo()
    async with hub.app[ENGINE].connect() as conn:
        [row_job] = (
            (await conn.execute(select(outbox).where(outbox.c.kind == REVOKE_KIND)))
            .mappings()
            .all()
        )
    assert row_job["idempotency_key"] == f"oidc.revoke:{session_id}"
    payload = json.loads(row_job["payload"])
    assert payload == {"session_id": session_id}
    token = _access_token(hub, await _row(hub, session_id))
    job = Job(row_job["id"], "comune", REVOKE_KIND, payload, row_job["idempotency_key"], 1, 12)
    handle = oidc_revoke_handler(hub.app[SERVICES])
    assert await handle(job) == Delivery()
    row = await _row(hub, session_id)
    assert row["revoked_at"] is not None and row["access_token"] is None
    assert row["revoke_error"] is None
    assert len(await _twin_log(hub, "revocation")) == 1
    assert await _userinfo_status(hub, token) == 401
    assert await handle(job) == Delivery()  # a second delivery: nothing left, no call
    assert len(await _twin_log(hub, "revocation")) == 1


# -- the twin's revocation endpoint ----------------------------------------------------------


async def test_twin_revocation_requires_the_clients_own_key(rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "cie")
    params, pending = await browser_login(rp, op, MARIO.code)
    result = await rp.client.complete(op, params, pending)
    token = result.tokens.access_token
    assert op.revocation_endpoint
    async with aiohttp.ClientSession() as http:
        # no client assertion at all
        form = {"token": token, "client_id": rp.entity_id}
        async with http.post(op.revocation_endpoint, data=form) as resp:
            assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
        # an assertion signed with a key the RP's metadata does not list
        settings = dataclasses.replace(rp.settings, signing_key=generate_key())
        with pytest.raises(ProviderError) as info:
            await OidcRelyingParty(http, settings).revoke(op, token)
        assert info.value.check == "invalid_client" and info.value.status == 401
        # a replayed assertion (same jti)
        assertion = rp.client.client_assertion(op.revocation_endpoint)
        form = {
            "token": token,
            "client_id": rp.entity_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        async with http.post(op.revocation_endpoint, data=form) as resp:
            assert resp.status == 200
        async with http.post(op.revocation_endpoint, data=form) as resp:
            assert resp.status == 401
    # the first, authenticated request did revoke; unknown tokens get 200 as well
    with pytest.raises(ProviderError):
        await rp.client.userinfo(op, token, subject=result.id_token.sub)
    await rp.client.revoke(op, "not-a-token")
    await rp.client.revoke(op, token)  # already revoked: 200


async def test_twin_does_not_revoke_another_clients_token(
    rp: Rp, twin: str, http: aiohttp.ClientSession
) -> None:
    """A second RP, onboarded too, cannot revoke the first one's token."""
    op = await provider(rp, twin, "spid")
    params, pending = await browser_login(rp, op, MARIO.code)
    result = await rp.client.complete(op, params, pending)
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from sportello.connectors.oidc.federation import RpFederationConfig, rp_entity_configuration
    from sportello.connectors.oidc.keys import generate_rp_keys
    from sportello.connectors.oidc.rp import RelyingPartySettings

    port = free_port()
    other_id = f"http://127.0.0.1:{port}/rp"
    keys = generate_rp_keys()
    config = RpFederationConfig(
        other_id, [f"{other_id}/callback"], "Altro", ["a@b.it"], [f"{twin}/ta"]
    )

    async def configuration(_request: web.Request) -> web.Response:
        from datetime import UTC, datetime

        body = rp_entity_configuration(config, keys, datetime.now(UTC))
        return web.Response(text=body, content_type="application/entity-statement+jwt")

    app = web.Application()
    app.router.add_get("/rp/.well-known/openid-federation", configuration)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with http.post(f"{twin}/__sandbox/register", json={"entity_id": other_id}) as r:
            config.trust_marks = (await r.json())["trust_marks"]
        other = OidcRelyingParty(
            http,
            RelyingPartySettings(
                other_id, f"{other_id}/callback", keys.signing.active, keys.decryption_keys()
            ),
        )
        await other.revoke(op, result.tokens.access_token)  # 200, nothing said
    finally:
        await server.close()
    claims = await rp.client.userinfo(op, result.tokens.access_token, subject=result.id_token.sub)
    assert claims["sub"] == result.id_token.sub  # still valid
    async with http.get(f"{twin}/__sandbox/log") as resp:
        [entry] = [e for e in await resp.json() if e["event"] == "revocation"]
    assert entry["client_id"] == other_id and entry["revoked"] is False


async def test_a_session_whose_token_was_not_kept_still_ends(hub: Hub) -> None:
    session_id = await _logged_in(hub)
    async with hub.app[ENGINE].begin() as conn:
        await conn.execute(oidc_sessions.delete().where(oidc_sessions.c.session_id == session_id))
    status, _, page = await _logout(hub, session_id, return_to=RETURN)
    assert status == 502 and "non ha confermato" in page and "riproveremo" not in page
    async with hub.app[ENGINE].connect() as conn:
        ended = (
            await conn.execute(
                select(login_sessions.c.ended_at).where(login_sessions.c.session_id == session_id)
            )
        ).scalar_one()
        jobs = (await conn.execute(select(outbox.c.kind))).scalars().all()
    assert ended is not None and REVOKE_KIND not in jobs

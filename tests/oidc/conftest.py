"""The OIDC federation twin and a relying party served on real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from sportello import apikeys
from sportello.app import CLOCK, ENGINE
from sportello.app import create_app as create_hub
from sportello.config import HubConfig
from sportello.connectors.oidc.federation import (
    RpFederationConfig,
    TrustAnchor,
    TrustChainResolver,
    rp_entity_configuration,
)
from sportello.connectors.oidc.keys import RpKeys, generate_rp_keys
from sportello.connectors.oidc.rp import (
    OidcRelyingParty,
    PendingAuthorization,
    Provider,
    RelyingPartySettings,
    build_authorization_request,
)
from sportello.sandbox.oidc.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def twin() -> AsyncIterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = TestServer(create_app(base_url=base), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield base
    finally:
        await server.close()


async def anchor_jwks(twin: str, path: Path) -> dict[str, Any]:
    """The twin TA's federation JWKS, read from its entity configuration (as an operator copies
    it) and written to ``path`` for the hub's ``trust_anchor_jwks``."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{twin}/ta/.well-known/openid-federation") as resp:
            ta = pyjwt.decode(await resp.text(), options={"verify_signature": False})
    jwks: dict[str, Any] = ta["jwks"]
    await asyncio.to_thread(path.write_text, json.dumps(jwks))
    return jwks


async def serve_hub(config: HubConfig, port: int) -> tuple[TestServer, str]:
    """The hub of ``config`` on ``port`` (database migrated) and an API key of tenant
    ``comune`` with scope ``personal_data``; the caller closes the server."""
    app = create_hub(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with app[ENGINE].begin() as conn:
        key = await apikeys.create(
            conn, tenant_id="comune", name="app", scopes=["personal_data"], now=app[CLOCK].now()
        )
    return server, key


async def anchor_of(http: aiohttp.ClientSession, twin: str) -> TrustAnchor:
    """The twin TA's keys, taken "out of band" (as an operator copies them from AgID/MinInterno)."""
    import jwt as pyjwt

    async with http.get(f"{twin}/ta/.well-known/openid-federation") as resp:
        claims = pyjwt.decode(await resp.text(), options={"verify_signature": False})
    return TrustAnchor(f"{twin}/ta", claims["jwks"])


async def set_faults(http: aiohttp.ClientSession, twin: str, *names: str) -> None:
    async with http.post(f"{twin}/__sandbox/faults", json={"faults": list(names)}) as resp:
        assert resp.status == 200, await resp.text()


@dataclass
class Rp:
    entity_id: str
    config: RpFederationConfig
    keys: RpKeys
    settings: RelyingPartySettings
    client: OidcRelyingParty
    resolver: TrustChainResolver
    anchor: TrustAnchor


@pytest.fixture
async def rp(http: aiohttp.ClientSession, twin: str) -> AsyncIterator[Rp]:
    """A relying party with its entity configuration on its own socket, onboarded at the TA."""
    port = free_port()
    entity_id = f"http://127.0.0.1:{port}/rp"
    keys = generate_rp_keys()
    config = RpFederationConfig(
        entity_id=entity_id,
        redirect_uris=[f"{entity_id}/callback"],
        organization_name="Comune di Prova",
        contacts=["protocollo@pec.comune.example.it"],
        authority_hints=[f"{twin}/ta"],
        homepage_uri="https://comune.example.it",
    )

    async def configuration(_request: web.Request) -> web.Response:
        body = rp_entity_configuration(config, keys, datetime.now(UTC))
        return web.Response(text=body, content_type="application/entity-statement+jwt")

    app = web.Application()
    app.router.add_get("/rp/.well-known/openid-federation", configuration)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with http.post(f"{twin}/__sandbox/register", json={"entity_id": entity_id}) as resp:
        assert resp.status == 200, await resp.text()
        config.trust_marks = (await resp.json())["trust_marks"]
    anchor = await anchor_of(http, twin)
    settings = RelyingPartySettings(
        entity_id, config.redirect_uris[0], keys.signing.active, keys.decryption_keys()
    )
    resolver = TrustChainResolver(http, [anchor], allow_http=True)
    try:
        yield Rp(
            entity_id, config, keys, settings, OidcRelyingParty(http, settings), resolver, anchor
        )
    finally:
        await server.close()


OP_MARK = "{twin}/ta/openid_provider/public/"


async def provider(rp: Rp, twin: str, scheme: str) -> Provider:
    chain = await rp.resolver.resolve(
        f"{twin}/{scheme}", "openid_provider", required_trust_marks=[OP_MARK.format(twin=twin)]
    )
    return Provider.from_chain(chain)


_ACTION = re.compile(r"action='([^']+)'")
_TXN = re.compile(r"name='txn' value='([^']+)'")


async def at_provider(browser: aiohttp.ClientSession, location: str, person: str) -> str:
    """The person logs in and consents at the OP; the callback URL it sends them to."""
    async with browser.get(URL(location, encoded=True), allow_redirects=False) as resp:
        page = await resp.text()
        assert resp.status == 200, page
    txn, action = _TXN.search(page), _ACTION.search(page)
    assert txn and action
    form = {"txn": txn.group(1), "identity": person}
    async with browser.post(action.group(1), data=form, allow_redirects=False) as resp:
        page = await resp.text()
        assert resp.status == 200 and "Acconsento" in page, page
    action = _ACTION.search(page)
    assert action
    form = {"txn": txn.group(1), "decision": "accept"}
    async with browser.post(action.group(1), data=form, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def browser_login(
    rp: Rp,
    op: Provider,
    identity: str,
    *,
    acr: str = "https://www.spid.gov.it/SpidL2",
    claims: dict[str, Any] | None = None,
    decision: str = "accept",
) -> tuple[dict[str, str], PendingAuthorization]:
    """A person at the browser: redirect, login form, consent form; the callback's query."""
    request = build_authorization_request(
        rp.settings,
        op,
        acr_values=[acr],
        claims=claims
        or {
            "userinfo": {
                "given_name": None,
                "family_name": None,
                "https://attributes.eid.gov.it/fiscal_number": {"essential": True},
            }
        },
        ui_locales=["it", "en"],
    )
    async with aiohttp.ClientSession() as browser:
        async with browser.get(request.url, allow_redirects=False) as resp:
            page = await resp.text()
            assert resp.status == 200, page
        txn = _TXN.search(page)
        action = _ACTION.search(page)
        assert txn and action
        async with browser.post(
            action.group(1), data={"txn": txn.group(1), "identity": identity}, allow_redirects=False
        ) as resp:
            page = await resp.text()
            if resp.status == 302:
                return dict(URL(resp.headers["Location"]).query), request.pending
            assert resp.status == 200 and "Acconsento" in page, page
        action = _ACTION.search(page)
        assert action
        async with browser.post(
            action.group(1), data={"txn": txn.group(1), "decision": decision}, allow_redirects=False
        ) as resp:
            assert resp.status == 302, await resp.text()
            location = URL(resp.headers["Location"])
    assert str(location.with_query(None)) == rp.settings.redirect_uri
    return dict(location.query), request.pending

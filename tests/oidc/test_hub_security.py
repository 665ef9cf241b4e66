"""The attacks of issue 14's list, played against the hub's relying party end to end: every
one is refused with the error page that leads back to the comune's site, and no login is
handed over. The OP side is the twin with a fault switched on (a hostile or broken OP), or a
hostile federation whose every statement an attacker signs (``Federation``).

Already covered elsewhere at the hub level (test_hub_rp.py): state replay, code reuse,
downgraded acr, broken chain signature, another tenant's cookie."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from factories import free_port, tenant
from sqlalchemy import select

from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.oidc.errors import OidcError
from sportello.platforms.login.oidc_keys import make_or_rotate
from sportello.platforms.login.oidc_routes import OIDC
from sportello.schema import outbox

from . import test_federation, test_hub_rp
from .conftest import set_faults
from .test_federation import OP_TYPE, Federation
from .test_hub_rp import (
    MARIO,
    SITE,
    Hub,
    _at_provider,
    _day,
    _to_provider,
)

hub = test_hub_rp.hub  # the fixtures, shared
fed = test_federation.fed

LOGGER = "sportello.platforms.login.oidc"


def _way_back(page: str) -> None:
    assert "Accesso non riuscito" in page
    assert f'href="{SITE}"' in page and "Torna al sito del comune" in page


async def _nothing_handed_over(hub_app: Any) -> None:
    async with hub_app[ENGINE].connect() as conn:
        kinds = (await conn.execute(select(outbox.c.kind))).scalars().all()
    assert "webhook" not in kinds  # no spid.login / cie.login announced


async def _callback_refused(hub: Hub, scheme: str) -> str:
    """A login through the twin up to the callback; the hub's refusal page."""
    async with hub.browser() as browser:
        callback = await _at_provider(browser, await _to_provider(browser, hub, scheme), MARIO.code)
        async with browser.get(yarl.URL(callback, encoded=True), allow_redirects=False) as resp:
            page = await resp.text()
            assert resp.status == 403, page
    _way_back(page)
    await _nothing_handed_over(hub.app)
    return page


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("mixup_iss", "iss"),  # the callback names another OP as its issuer
        ("op_key_outside_chain", "kid"),  # ID token signed by a key outside the chain
        ("id_token_alg_none", "alg"),
        ("id_token_hs256", "alg"),  # HS256 keyed with the OP's public key
        ("oversize_id_token", "oversize"),
        ("tamper_userinfo", "decrypt"),  # a flipped byte in the userinfo JWE
    ],
)
async def test_hostile_op_answers_are_refused_with_a_way_back(
    hub: Hub, fault: str, check: str
) -> None:
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, fault)
    page = await _callback_refused(hub, "spid" if fault == "mixup_iss" else "cie")
    assert f"Motivo: {check}:" in page


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("expired_trust_mark", "expired"),  # the OP's trust mark has expired
        ("revoked_trust_mark", "revoked"),  # its issuer says it is no longer active
        ("policy_forbids", "policy_violation"),  # the anchor's policy forbids its metadata
    ],
)
async def test_untrustworthy_op_is_refused_before_the_redirect(
    hub: Hub, fault: str, check: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, fault)
    hub.app[OIDC]._resolvers.clear()  # a cold chain (a cached one would still be valid)
    params = {"provider": f"{hub.twin}/cie"}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        async with (
            hub.browser() as browser,
            browser.get(f"{hub.rp}/login", params=params, allow_redirects=False) as resp,
        ):
            page = await resp.text()
            assert resp.status == 502
    _way_back(page)
    checks = [getattr(r, "check", None) for r in caplog.records if r.name == LOGGER]
    assert checks == [check]


# -- a hostile federation: every statement is the attacker's -------------------------------


def _op_metadata(eid: str) -> dict[str, Any]:
    return {
        "federation_entity": {
            "organization_name": "leaf",
            "federation_fetch_endpoint": f"{eid}/fetch",
        },
        OP_TYPE: {
            "issuer": eid,
            "authorization_endpoint": f"{eid}/authorization",
            "token_endpoint": f"{eid}/token",
            "userinfo_endpoint": f"{eid}/userinfo",
            "revocation_endpoint": f"{eid}/revocation",
            "subject_types_supported": ["pairwise"],
            "jwks": {"keys": []},
        },
    }


@pytest.fixture
async def fed_hub(tmp_path: Path, db_url: str, fed: Federation) -> Any:
    """A hub whose tenant trusts the hostile federation's anchor and lists its leaf as OP."""
    (tmp_path / "ta.json").write_text(json.dumps(fed.jwks("ta")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    oidc = {
        "keys_dir": "keys/oidc",
        "trust_anchor": fed.id("ta"),
        "trust_anchor_jwks": "ta.json",
        "providers": {"cie": [fed.id("leaf")]},
        "contacts": ["protocollo@pec.comune.example.it"],
        "organization_url": SITE,
        "allow_http": True,
    }
    config = parse_config(
        {
            "server": {"public_url": url},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [tenant("comune", oidc=oidc)],
        },
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    make_or_rotate(tmp_path / "keys/oidc", rotate=False, now=app[CLOCK].now(), overlap=_day())
    try:
        yield url, app
    finally:
        await server.close()


async def _login_at(fed_hub: Any, fed: Federation) -> tuple[int, str, str]:
    url, _app = fed_hub
    params = {"provider": fed.id("leaf")}
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(f"{url}/t/comune/oidc/login", params=params, allow_redirects=False) as resp,
    ):
        return resp.status, resp.headers.get("Location", ""), await resp.text()


def _leaf(fed: Federation, hints: list[str], **extra: Any) -> None:
    fed.configuration("leaf", hints, metadata=_op_metadata(fed.id("leaf")), **extra)


async def test_a_sound_hostile_free_federation_gets_the_redirect(
    fed_hub: Any,
    fed: Federation,
) -> None:
    """The control: the same federation, sound, lets the login start (so the refusals
    below are for the reason each one names)."""
    fed.configuration("ta", constraints={"max_path_length": 1})
    fed.configuration("int", ["ta"])
    _leaf(fed, ["int"])
    fed.statement("ta", "int")
    fed.statement("int", "leaf")
    status, location, _ = await _login_at(fed_hub, fed)
    assert status == 302 and location.startswith(fed.id("leaf") + "/authorization?")


def _loop(fed: Federation) -> None:
    fed.configuration("ta")
    _leaf(fed, ["int1"])
    fed.configuration("int1", ["int2"])
    fed.configuration("int2", ["int1"])
    fed.statement("int1", "leaf")
    fed.statement("int2", "int1")
    fed.statement("int1", "int2")


def _too_long(fed: Federation) -> None:
    fed.configuration("ta", constraints={"max_path_length": 0})
    fed.configuration("int", ["ta"])
    _leaf(fed, ["int"])
    fed.statement("ta", "int")
    fed.statement("int", "leaf")


def _forbidding_policy(fed: Federation) -> None:
    fed.configuration("ta")
    _leaf(fed, ["ta"])
    policy = {OP_TYPE: {"subject_types_supported": {"superset_of": ["pairwise", "public"]}}}
    fed.statement("ta", "leaf", metadata_policy=policy)


def _alg(attack: str) -> Any:
    def build(fed: Federation) -> None:
        fed.configuration("ta")
        _leaf(fed, ["ta"])
        kid = fed.key("ta").kid
        header = {"alg": attack, "kid": kid, "typ": "entity-statement+jwt"}
        secret = None if attack == "none" else fed.key("ta").as_pem(private=False)
        fed.forged("ta", "leaf", header, secret)

    return build


def _oversize(fed: Federation) -> None:
    fed.configuration("ta")
    _leaf(fed, ["ta"], padding="x" * 70_000)
    fed.statement("ta", "leaf")


def _signed_outside(fed: Federation) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"], signer="intruder", metadata=_op_metadata(fed.id("leaf")))
    fed.statement("ta", "leaf")


def _expired_statement(fed: Federation) -> None:
    fed.configuration("ta")
    _leaf(fed, ["ta"])
    fed.statement("ta", "leaf", exp=int(time.time()) - 3600)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (_loop, "loop"),
        (_too_long, "path_length"),
        (_forbidding_policy, "policy_violation"),
        (_alg("none"), "alg"),
        (_alg("HS256"), "alg"),  # HMAC keyed with the anchor's public key
        (_oversize, "oversize"),
        (_signed_outside, "outside the trusted set"),
        (_expired_statement, "exp"),
    ],
    ids=["loop", "max_path_length", "policy", "alg_none", "hs256", "oversize", "kid", "expired"],
)
async def test_hostile_federation_is_refused_with_a_way_back(
    fed_hub: Any,
    fed: Federation,
    build: Any,
    reason: str,
) -> None:
    build(fed)
    status, location, page = await _login_at(fed_hub, fed)
    assert status == 502 and not location
    _way_back(page)
    # why, as the resolver says it (the page stays generic for the citizen)
    _url, app = fed_hub
    tenant_config = app[OIDC].config.tenant("comune")
    with pytest.raises(OidcError) as info:
        await app[OIDC].provider(tenant_config, fed.id("leaf"))
    assert reason in str(info.value)

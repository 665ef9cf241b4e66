"""The software house as an OpenID Connect Federation intermediate (``/federation/...``),
over real sockets against the federation twin: the intermediate onboarded once at the
trust anchor, a tenant's RP whose ``authority_hints`` name it, the RP → intermediate →
anchor chain resolved by the connector and by the twin's OPs (a full login through it), and
the federation endpoints attacked with unknown, crafted and garbage parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from factories import free_port, tenant

from sportello.app import create_app
from sportello.cli.main import main as cli
from sportello.config import parse_config
from sportello.connectors.oidc.errors import FederationError
from sportello.connectors.oidc.federation import (
    TrustAnchor,
    TrustChainResolver,
    parse_statement,
    verify_statement,
    verify_trust_mark,
)
from sportello.connectors.oidc.tokens import check_times, peek, verify_jws
from sportello.platforms.login.oidc_federation import make_or_rotate_federation
from sportello.platforms.login.oidc_keys import make_or_rotate
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES

from .conftest import OP_MARK, anchor_jwks, at_provider, serve_hub

MARIO = DEFAULT_IDENTITIES[0]
RETURN = "https://app.comune.example/callback"
ES_CT = "application/entity-statement+jwt"
RESOLVED = "resolve-response+jwt"


@dataclass
class Hub:
    url: str
    twin: str
    app: Any
    api_key: str
    tmp: Path
    toml: Path
    anchor: TrustAnchor

    @property
    def fed(self) -> str:
        return f"{self.url}/federation"

    def rp(self, tenant_id: str = "comune") -> str:
        return f"{self.url}/t/{tenant_id}/oidc"

    @property
    def mark_id(self) -> str:
        return f"{self.fed}/openid_relying_party/aggregated/"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, twin: str) -> Any:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fed = f"{url}/federation"
    ta_jwks = await anchor_jwks(twin, tmp_path / "ta-jwks.json")
    oidc = {
        "keys_dir": "keys/comune",
        "trust_anchor": f"{twin}/ta",
        "trust_anchor_jwks": "ta-jwks.json",
        "authority_hints": [fed],
        "providers": {"cie": [f"{twin}/cie"], "spid": [f"{twin}/spid"]},
        "provider_trust_marks": [OP_MARK.format(twin=twin)],
        "contacts": ["protocollo@pec.comune.example.it"],
        "return_urls": [RETURN],
        "allow_http": True,
    }
    federation = {
        "keys_dir": "keys/federation",
        "trust_anchor": f"{twin}/ta",
        "trust_anchor_jwks": "ta-jwks.json",
        "organization_name": "Software house di prova",
        "contacts": ["federazione@pec.softwarehouse.example.it"],
        "homepage_uri": "https://www.softwarehouse.example.it",
        "issued_trust_marks": [f"{fed}/openid_relying_party/aggregated/"],
        "allow_http": True,
    }
    # the intermediate's key is made by the CLI from a configuration file, as an operator would
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[server]\npublic_url = "{url}"\n[oidc_federation]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in federation.items())
    )
    made = CliRunner().invoke(cli, ["keys", "oidc", "--config", str(toml), "--federation"])
    assert made.exit_code == 0, made.output
    for tid in ("comune", "altro"):
        make_or_rotate(tmp_path / f"keys/{tid}", rotate=False, now=_now(), overlap=timedelta(1))
    config = parse_config(
        {
            "server": {"public_url": url},
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "oidc_federation": federation,
            "tenants": [
                tenant("comune", oidc=oidc),
                # its RP hangs directly from the anchor: never the intermediate's subordinate
                tenant(
                    "altro",
                    oidc={**oidc, "keys_dir": "keys/altro", "authority_hints": [f"{twin}/ta"]},
                ),
                tenant("terzo"),  # no OpenID Connect at all
            ],
        },
        source=str(toml),
        base_dir=tmp_path,
    )
    server, key = await serve_hub(config, port)
    app = server.app
    # onboarding, once: the anchor registers the intermediate; then each comune under it
    # gets the anchor's RP trust mark once the intermediate's statement vouches for it
    async with aiohttp.ClientSession() as http:
        body = {"entity_id": fed, "entity_type": "federation_entity"}
        async with http.post(f"{twin}/__sandbox/register", json=body) as r:
            assert r.status == 200, await r.text()
            (tmp_path / "keys/federation/trust_marks.json").write_text(
                json.dumps((await r.json())["trust_marks"])
            )
        body = {"entity_id": f"{url}/t/comune/oidc"}
        async with http.post(f"{twin}/__sandbox/register", json=body) as r:
            assert r.status == 200, await r.text()
            (tmp_path / "keys/comune/trust_marks.json").write_text(
                json.dumps((await r.json())["trust_marks"])
            )
    try:
        yield Hub(url, twin, app, key, tmp_path, toml, TrustAnchor(f"{twin}/ta", ta_jwks))
    finally:
        await server.close()


async def _get(url: str, params: Any = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as resp:
        return resp.status, resp.content_type, await resp.text()


async def _own_jwks(hub: Hub) -> dict[str, Any]:
    status, _ct, body = await _get(f"{hub.fed}/.well-known/openid-federation")
    assert status == 200
    return parse_statement(body).jwks


def _error(status: int, body: str, expected: int, error: str) -> None:
    assert status == expected, body
    data = json.loads(body)
    assert data["error"] == error and data["error_description"], data


async def test_entity_configuration_of_the_intermediate(hub: Hub) -> None:
    status, ct, body = await _get(f"{hub.fed}/.well-known/openid-federation")
    assert status == 200 and ct == ES_CT
    statement = verify_statement(body, parse_statement(body).jwks, now=_now().timestamp())
    assert statement.header["typ"] == "entity-statement+jwt"
    assert statement.iss == statement.sub == hub.fed
    assert statement.authority_hints == [f"{hub.twin}/ta"]
    fed = statement.metadata["federation_entity"]
    assert fed["federation_fetch_endpoint"] == f"{hub.fed}/fetch"
    assert fed["federation_list_endpoint"] == f"{hub.fed}/list"
    assert fed["federation_resolve_endpoint"] == f"{hub.fed}/resolve"
    assert fed["federation_trust_mark_status_endpoint"] == f"{hub.fed}/trust_mark_status"
    assert fed["organization_name"] == "Software house di prova" and fed["contacts"]
    marks = statement.trust_marks  # the anchor's, issued at onboarding
    assert marks and marks[0]["id"] == f"{hub.twin}/ta/intermediate/public/"
    verify_trust_mark(
        marks[0]["trust_mark"], hub.anchor.jwks, subject=hub.fed, now=_now().timestamp()
    )


async def test_the_tenant_names_the_intermediate_and_the_statement_verifies(hub: Hub) -> None:
    status, _ct, body = await _get(f"{hub.rp()}/.well-known/openid-federation")
    assert status == 200
    rp = parse_statement(body)
    assert rp.authority_hints == [hub.fed]
    assert rp.endpoint("federation_resolve_endpoint") == f"{hub.fed}/resolve"
    status, ct, body = await _get(f"{hub.fed}/fetch", {"sub": hub.rp()})
    assert status == 200 and ct == ES_CT
    es = verify_statement(body, await _own_jwks(hub), now=_now().timestamp())
    assert es.iss == hub.fed and es.sub == hub.rp() and not es.is_configuration
    assert es.jwks == rp.jwks  # the tenant's federation keys, as it publishes them
    verify_statement(rp.jwt, es.jwks, now=_now().timestamp())  # they verify its configuration
    core = rp.metadata["openid_relying_party"]["jwks"]
    assert es.metadata_policy == {"openid_relying_party": {"jwks": {"value": core}}}
    assert es.constraints == {"allowed_leaf_entity_types": ["openid_relying_party"]}
    assert es.exp - es.claims["iat"] == 86400
    (mark,) = es.trust_marks
    verified = verify_trust_mark(
        mark["trust_mark"], await _own_jwks(hub), subject=hub.rp(), now=_now().timestamp()
    )
    assert verified.id == hub.mark_id and verified.iss == hub.fed
    # the rules' "Trust Mark Composition" for a public body
    assert verified.claims["organization_type"] == "public"
    assert verified.claims["id_code"]["ipa_code"] and verified.claims["organization_name"]
    assert verified.claims["email"] == "protocollo@pec.comune.example.it"
    # a statement signed by any other key does not verify with the intermediate's
    with pytest.raises(FederationError):
        verify_statement(body, rp.jwks, now=_now().timestamp())


async def test_fetch_refuses_anything_but_a_subordinate(hub: Hub) -> None:
    for sub in (
        "https://unknown.example.it/rp",
        f"{hub.url}/t/altro/oidc",  # a tenant whose RP hangs from the anchor directly
        f"{hub.url}/t/terzo/oidc",  # a tenant without OpenID Connect
        f"{hub.url}/t/comune/oidc/../../t/altro/oidc",
        f"{hub.url}/t/comune/oidc?tenant=altro",
        f"{hub.url}/t/COMUNE/oidc",
        f"{hub.url}/t/comune/oidc/x",
        f"{hub.url}/t/comune",
        f" {hub.url}/t/comune/oidc",
        hub.fed,  # itself: not its own subordinate
        f"{hub.twin}/ta",
        f"{hub.twin}/cie",
    ):
        status, ct, body = await _get(f"{hub.fed}/fetch", {"sub": sub})
        _error(status, body, 404, "not_found")
        assert ct == "application/json"
    status, _ct, body = await _get(f"{hub.fed}/fetch", {"sub": hub.rp(), "iss": f"{hub.twin}/ta"})
    _error(status, body, 404, "not_found")


async def test_explicit_tenants_list_overrides_the_hints(hub: Hub) -> None:
    """With ``tenants = [...]`` only those are subordinates, whatever the others' hints."""
    from sportello.platforms.login.oidc_federation import FEDERATION

    service = hub.app[FEDERATION]
    service.settings = service.settings.model_copy(update={"tenants": ["altro"]})
    status, _ct, body = await _get(f"{hub.fed}/fetch", {"sub": hub.rp()})
    _error(status, body, 404, "not_found")
    status, _ct, body = await _get(f"{hub.fed}/fetch", {"sub": hub.rp("altro")})
    assert status == 200
    status, _ct, body = await _get(f"{hub.fed}/list")
    assert json.loads(body) == [hub.rp("altro")]


GARBAGE = [
    ("fetch", ""),
    ("fetch", "sub="),
    ("fetch", "sub=a&sub=b"),
    ("fetch", "sub=" + "a" * 5000),
    ("fetch", "sub=%00"),
    ("fetch", "sub=%ff%fe"),
    ("list", "entity_type=" + "x" * 200),
    ("list", "intermediate=maybe"),
    ("list", "entity_type=" + "&entity_type=".join(["a"] * 11)),
    ("resolve", "sub={rp}"),
    ("resolve", "trust_anchor={ta}"),
    ("resolve", "sub={rp}&trust_anchor={ta}&trust_anchor={ta}"),
    ("trust_mark_status", ""),
    ("trust_mark_status", "id=x"),
    ("trust_mark_status", "trust_mark=garbage"),
    ("trust_mark_status", "trust_mark=a.b.c"),
]


async def test_garbage_parameters_are_400_in_the_rules_format(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        for path, template in GARBAGE:
            query = template.format(rp=hub.rp(), ta=f"{hub.twin}/ta")
            url = yarl.URL(f"{hub.fed}/{path}?{query}", encoded=True)
            async with http.get(url) as resp:
                status, body = resp.status, await resp.text()
            if status == 404:  # %ff decodes to a replacement character: no subordinate has it
                assert path == "fetch" and "%ff" in query
                _error(status, body, 404, "not_found")
            else:
                _error(status, body, 400, "invalid_request")


async def test_trust_mark_status_by_post_with_garbage_body(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hub.fed}/trust_mark_status", data=b"\xff\xfe=\x00") as resp:
            assert resp.status == 400, await resp.text()
        oversize = {"trust_mark": "a" * 70000}
        async with http.post(f"{hub.fed}/trust_mark_status", data=oversize) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"] == "invalid_request"
        async with http.post(
            f"{hub.fed}/trust_mark_status", data={"id": hub.mark_id, "sub": hub.rp()}
        ) as resp:
            assert resp.status == 200 and (await resp.json()) == {"active": True}


async def test_list_and_its_filters(hub: Hub) -> None:
    async def listed(params: Any = None) -> list[str]:
        status, ct, body = await _get(f"{hub.fed}/list", params)
        assert status == 200 and ct == "application/json", body
        return list(json.loads(body))

    assert await listed() == [hub.rp()]
    assert await listed({"entity_type": "openid_relying_party"}) == [hub.rp()]
    assert await listed({"entity_type": "openid_provider"}) == []
    assert await listed(
        [("entity_type", "openid_provider"), ("entity_type", "openid_relying_party")]
    ) == [hub.rp()]
    assert await listed({"intermediate": "true"}) == []
    assert await listed({"intermediate": "false"}) == [hub.rp()]
    assert await listed({"trust_marked": "true"}) == [hub.rp()]
    assert await listed({"trust_mark_id": hub.mark_id}) == [hub.rp()]
    assert await listed({"trust_mark_id": f"{hub.twin}/ta/openid_relying_party/public/"}) == []


async def test_resolve_answers_the_chain_signed_and_refuses_other_anchors(hub: Hub) -> None:
    ta = f"{hub.twin}/ta"
    status, ct, body = await _get(f"{hub.fed}/resolve", {"sub": hub.rp(), "trust_anchor": ta})
    assert status == 200 and ct == ES_CT, body
    _header, answer = verify_jws(body, await _own_jwks(hub), typ=RESOLVED, error=FederationError)
    check_times(answer, _now().timestamp(), error=FederationError)
    assert answer["iss"] == hub.fed and answer["sub"] == hub.rp()
    chain = answer["trust_chain"]
    assert [parse_statement(s).iss for s in chain] == [hub.rp(), hub.fed, ta, ta]
    assert [parse_statement(s).sub for s in chain] == [hub.rp(), hub.rp(), hub.fed, ta]
    rp = answer["metadata"]["openid_relying_party"]
    assert rp["client_id"] == hub.rp() and rp["jwks"]["keys"]
    assert [m["id"] for m in answer["trust_marks"]] == [
        f"{hub.twin}/ta/openid_relying_party/public/"
    ]
    # the rules' example spells the parameter `anchor`; entity_type narrows the metadata
    status, _ct, body = await _get(
        f"{hub.fed}/resolve",
        {"sub": hub.rp(), "anchor": ta, "entity_type": "federation_entity"},
    )
    assert status == 200 and list(peek(body)[1]["metadata"]) == ["federation_entity"]
    # itself, up to the anchor
    status, _ct, body = await _get(f"{hub.fed}/resolve", {"sub": hub.fed, "trust_anchor": ta})
    assert status == 200
    assert len(peek(body)[1]["trust_chain"]) == 3
    for params in (
        {"sub": hub.rp(), "trust_anchor": "https://registry.example.it/"},
        {"sub": hub.rp(), "trust_anchor": f"{hub.twin}/cie"},
    ):
        status, _ct, body = await _get(f"{hub.fed}/resolve", params)
        _error(status, body, 404, "not_found")
    for sub in (hub.rp("altro"), f"{hub.twin}/cie", "https://elsewhere.example.it/"):
        # never an open resolver: the hub would fetch whatever it is told to
        status, _ct, body = await _get(f"{hub.fed}/resolve", {"sub": sub, "trust_anchor": ta})
        _error(status, body, 404, "not_found")


async def test_trust_mark_status(hub: Hub) -> None:
    _status, _ct, body = await _get(f"{hub.fed}/fetch", {"sub": hub.rp()})
    mark = parse_statement(body).trust_marks[0]["trust_mark"]

    async def active(params: dict[str, str]) -> bool:
        status, _ct, body = await _get(f"{hub.fed}/trust_mark_status", params)
        assert status == 200, body
        return bool(json.loads(body)["active"])

    assert await active({"id": hub.mark_id, "sub": hub.rp()})
    assert await active({"trust_mark": mark})
    assert not await active({"id": hub.mark_id, "sub": hub.rp("altro")})
    assert not await active({"id": hub.mark_id, "sub": "https://elsewhere.example.it"})
    assert not await active({"id": f"{hub.twin}/ta/openid_relying_party/public/", "sub": hub.rp()})
    head, payload, signature = mark.split(".")
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    assert not await active({"trust_mark": f"{head}.{payload}.{flipped}"})
    # a mark that names this intermediate as issuer, signed by someone else (the tenant)
    from sportello.connectors.oidc.intermediate import issue_trust_mark
    from sportello.platforms.login.oidc_keys import read_keys

    rogue = read_keys(hub.tmp / "keys/comune").federation
    forged = issue_trust_mark(
        hub.fed, rogue, mark_id=hub.mark_id, subject=hub.rp(), now=_now(), lifetime=timedelta(1)
    )
    assert not await active({"trust_mark": forged["trust_mark"]})
    # the subject stops being a subordinate: its mark is no longer active
    from sportello.platforms.login.oidc_federation import FEDERATION

    service = hub.app[FEDERATION]
    service.settings = service.settings.model_copy(update={"tenants": []})
    assert not await active({"trust_mark": mark})


async def test_the_connector_resolves_rp_intermediate_anchor(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        resolver = TrustChainResolver(http, [hub.anchor], allow_http=True)
        chain = await resolver.resolve(
            hub.rp(),
            "openid_relying_party",
            required_trust_marks=[f"{hub.twin}/ta/openid_relying_party/public/"],
        )
    assert [s.iss for s in chain.statements] == [
        hub.rp(),
        hub.fed,
        f"{hub.twin}/ta",
        f"{hub.twin}/ta",
    ]
    assert chain.anchor == f"{hub.twin}/ta"
    core = chain.statements[0].metadata["openid_relying_party"]["jwks"]
    assert chain.entity_metadata("openid_relying_party")["jwks"] == core
    # the anchor never vouched for the tenant directly: only through the intermediate
    status, _ct, _body = await _get(f"{hub.twin}/ta/fetch", {"sub": hub.rp()})
    assert status == 404


@pytest.mark.parametrize("scheme", ["cie", "spid"])
async def test_full_login_through_the_intermediate(hub: Hub, scheme: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        params = {"provider": f"{hub.twin}/{scheme}", "return_to": RETURN, "state": "s-1"}
        async with browser.get(f"{hub.rp()}/login", params=params, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location = resp.headers["Location"]
        # the OP resolves the RP's chain through the intermediate before showing a page
        callback = await at_provider(browser, location, MARIO.code)
        assert callback.startswith(f"{hub.rp()}/callback?")
        async with browser.get(yarl.URL(callback, encoded=True), allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            target = urlsplit(resp.headers["Location"])
    code = parse_qs(target.query)["code"][0]
    headers = {"Authorization": f"Bearer {hub.api_key}", "Idempotency-Key": code[:20]}
    async with (
        aiohttp.ClientSession() as server,
        server.post(
            f"{hub.url}/api/v1/tenants/comune/logins/exchange", json={"code": code}, headers=headers
        ) as r,
    ):
        identity = await r.json()
        assert r.status == 200, identity
    assert identity["scheme"] == scheme and identity["fiscal_code"] == MARIO.code


async def test_an_rp_the_intermediate_does_not_vouch_for_cannot_onboard_through_it(
    hub: Hub,
) -> None:
    """Naming the intermediate is not enough: once the intermediate no longer lists the
    tenant, its fetch answers 404 and the anchor refuses to issue the RP's trust mark."""
    from sportello.platforms.login.oidc_federation import FEDERATION

    fed = hub.app[FEDERATION]
    fed.settings = fed.settings.model_copy(update={"tenants": ["altro"]})
    async with aiohttp.ClientSession() as http:
        body = {"entity_id": hub.rp()}
        async with http.post(f"{hub.twin}/__sandbox/register", json=body) as r:
            assert r.status == 400, await r.text()


async def test_key_rotation_keeps_the_old_key_published(hub: Hub) -> None:
    before = {k["kid"] for k in (await _own_jwks(hub))["keys"]}
    made = CliRunner().invoke(cli, ["keys", "oidc", "--config", str(hub.toml), "--federation"])
    assert made.exit_code != 0 and "--rotate" in made.output  # never overwritten silently
    made = CliRunner().invoke(
        cli, ["keys", "oidc", "--config", str(hub.toml), "--federation", "--rotate"]
    )
    assert made.exit_code == 0, made.output
    _status, _ct, body = await _get(f"{hub.fed}/.well-known/openid-federation")
    statement = parse_statement(body)
    after = {k["kid"] for k in statement.jwks["keys"]}
    assert before < after and statement.header["kid"] not in before
    verify_statement(body, statement.jwks, now=_now().timestamp())
    mode = (hub.tmp / "keys/federation/keys.json").stat().st_mode & 0o777
    assert mode == 0o600
    both = CliRunner().invoke(
        cli, ["keys", "oidc", "--config", str(hub.toml), "--federation", "--tenant", "comune"]
    )
    assert both.exit_code == 2


async def test_no_intermediate_configured_is_404(tmp_path: Path) -> None:
    config = parse_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
            "outbox": {"workers": False},
            "tenants": [tenant("comune")],
        }
    )
    app = create_app(config, apply_migrations=True)
    port = free_port()
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        for path in (".well-known/openid-federation", "fetch?sub=x", "list", "trust_mark_status"):
            status, _ct, body = await _get(f"http://127.0.0.1:{port}/federation/{path}")
            _error(status, body, 404, "not_found")
    finally:
        await server.close()


def test_config_check_names_what_the_intermediate_lacks(tmp_path: Path) -> None:
    from sportello.platforms.login.oidc_federation import intermediate_problems

    oidc = {
        "keys_dir": "keys/comune",
        "trust_anchor": "https://registry.example.it",
        "trust_anchor_jwks": "ta.json",
        "authority_hints": ["https://hub.example.it/federation"],
        "contacts": ["protocollo@pec.comune.example.it"],
    }
    raw: dict[str, Any] = {
        "server": {"public_url": "https://hub.example.it"},
        "tenants": [tenant("comune", oidc=oidc)],
    }
    config = parse_config(raw, base_dir=tmp_path)
    (problem,) = intermediate_problems(config, config.tenants[0])
    assert "no [oidc_federation] section" in problem
    raw["oidc_federation"] = {
        "keys_dir": "keys/federation",
        "trust_anchor": "https://registry.example.it",
        "trust_anchor_jwks": "ta.json",
        "organization_name": "Software house",
        "contacts": ["x@pec.example.it"],
    }
    config = parse_config(raw, base_dir=tmp_path)
    problems = intermediate_problems(config, config.tenants[0])
    assert any("sportello keys oidc --federation" in p for p in problems)
    assert any("trust_anchor_jwks" in p for p in problems)
    make_or_rotate_federation(
        tmp_path / "keys/federation", rotate=False, now=_now(), overlap=timedelta(1)
    )
    (tmp_path / "ta.json").write_text(json.dumps({"keys": []}))
    assert intermediate_problems(config, config.tenants[0]) == []

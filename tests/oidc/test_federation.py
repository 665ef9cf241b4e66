"""Trust chain resolution against the twin, and against a hostile federation whose entities
an attacker serves (statements signed outside the chain, alg none, HS256 with the public key
as secret, expired statements, loops, too many intermediates, policies, oversize JWTs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc.jwk import RSAKey

from sportello.connectors.oidc.errors import (
    FederationError,
    MetadataPolicyError,
    TrustChainError,
    TrustMarkError,
)
from sportello.connectors.oidc.federation import (
    TrustAnchor,
    TrustChainResolver,
    sign_statement,
)
from sportello.connectors.oidc.keys import generate_key, public_jwk
from sportello.connectors.oidc.policy import apply_policy, merge_policies
from sportello.connectors.oidc.tokens import sign_jws

from .conftest import OP_MARK, anchor_of, free_port, set_faults

OP_TYPE = "openid_provider"


async def test_op_chain_resolves_against_the_twin(http: aiohttp.ClientSession, twin: str) -> None:
    anchor = await anchor_of(http, twin)
    resolver = TrustChainResolver(http, [anchor], allow_http=True, check_trust_mark_status=True)
    mark = OP_MARK.format(twin=twin)
    chain = await resolver.resolve(f"{twin}/cie", OP_TYPE, required_trust_marks=[mark])
    assert [s.iss for s in chain.statements] == [f"{twin}/cie", f"{twin}/ta", f"{twin}/ta"]
    assert chain.anchor == f"{twin}/ta"
    meta = chain.entity_metadata(OP_TYPE)
    assert meta["issuer"] == f"{twin}/cie"
    assert meta["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert [m.id for m in chain.trust_marks] == [mark]
    assert chain.exp == min(s.exp for s in chain.statements)
    fetched = resolver.fetches
    await resolver.resolve(f"{twin}/cie", OP_TYPE, required_trust_marks=[mark])
    assert resolver.fetches == fetched  # served from the chain cache
    resolver.clock = lambda: time.time() + 2 * 86400  # after the chain's exp: resolved again
    with pytest.raises(FederationError):  # (and the statements fetched now are "old")
        await resolver.resolve(f"{twin}/cie", OP_TYPE)
    assert resolver.fetches > fetched


@pytest.mark.parametrize(
    ("fault", "error", "check"),
    [
        ("broken_chain", TrustChainError, "no_chain"),
        ("policy_forbids", MetadataPolicyError, "policy_violation"),
        ("expired_trust_mark", TrustMarkError, "expired"),
        ("revoked_trust_mark", TrustMarkError, "revoked"),
    ],
)
async def test_twin_faults_are_refused(
    http: aiohttp.ClientSession, twin: str, fault: str, error: type[Exception], check: str
) -> None:
    anchor = await anchor_of(http, twin)
    await set_faults(http, twin, fault)
    resolver = TrustChainResolver(http, [anchor], allow_http=True, check_trust_mark_status=True)
    with pytest.raises(error) as info:
        await resolver.resolve(
            f"{twin}/spid", OP_TYPE, required_trust_marks=[OP_MARK.format(twin=twin)]
        )
    assert getattr(info.value, "check", None) == check, info.value
    if fault == "broken_chain":
        assert "signature" in str(info.value)


# --- a hostile federation -----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Federation:
    """Entities served by the attacker: ``statements[(iss, sub)]`` is what ``iss`` serves
    about ``sub`` (its configuration when iss == sub)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.keys: dict[str, RSAKey] = {}
        self.raw: dict[tuple[str, str], str] = {}

    def id(self, name: str) -> str:
        return f"{self.base}/{name}"

    def key(self, name: str) -> RSAKey:
        if name not in self.keys:
            self.keys[name] = generate_key()  # type: ignore[assignment]
        return self.keys[name]

    def jwks(self, name: str) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key(name))]}

    def configuration(
        self, name: str, hints: list[str] = (), *, signer: str | None = None, **extra: Any
    ) -> None:
        now = int(time.time())
        eid = self.id(name)
        claims = {
            "iss": eid,
            "sub": eid,
            "iat": now,
            "exp": now + 3600,
            "jwks": self.jwks(signer or name),
            "authority_hints": [self.id(h) for h in hints],
            "metadata": {
                "federation_entity": {
                    "organization_name": name,
                    "federation_fetch_endpoint": f"{eid}/fetch",
                },
                OP_TYPE: {"issuer": eid, "subject_types_supported": ["pairwise"]},
            },
            **extra,
        }
        self.raw[(name, name)] = sign_statement(claims, self.key(signer or name))

    def statement(self, iss: str, sub: str, *, keys_of: str | None = None, **extra: Any) -> None:
        now = int(time.time())
        claims = {
            "iss": self.id(iss),
            "sub": self.id(sub),
            "iat": now,
            "exp": now + 3600,
            "jwks": self.jwks(keys_of or sub),
            **extra,
        }
        self.raw[(iss, sub)] = sign_statement(claims, self.key(iss))

    def forged(self, iss: str, sub: str, header: dict[str, Any], secret: bytes | None) -> None:
        now = int(time.time())
        claims = {"iss": self.id(iss), "sub": self.id(sub), "iat": now, "exp": now + 3600}
        claims["jwks"] = self.jwks(sub)
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = b""
        if secret is not None:
            signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        self.raw[(iss, sub)] = f"{signing_input}.{_b64(signature)}"

    def anchor(self) -> TrustAnchor:
        return TrustAnchor(self.id("ta"), self.jwks("ta"))

    def app(self) -> web.Application:
        async def configuration(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            body = self.raw.get((name, name))
            return web.Response(text=body or "", status=200 if body else 404)

        async def fetch(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            sub = request.query["sub"].removeprefix(self.base + "/")
            body = self.raw.get((name, sub))
            return web.Response(text=body or "", status=200 if body else 404)

        app = web.Application()
        app.router.add_get("/{name}/.well-known/openid-federation", configuration)
        app.router.add_get("/{name}/fetch", fetch)
        return app


@pytest.fixture
async def fed() -> AsyncIterator[Federation]:
    port = free_port()
    federation = Federation(f"http://127.0.0.1:{port}")
    server = TestServer(federation.app(), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield federation
    finally:
        await server.close()


async def _resolve(http: aiohttp.ClientSession, fed: Federation, **kw: Any) -> Any:
    resolver = TrustChainResolver(http, [fed.anchor()], allow_http=True)
    return await resolver.resolve(fed.id("leaf"), OP_TYPE, **kw)


async def test_a_sound_hostile_free_chain_resolves(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    fed.configuration("ta", constraints={"max_path_length": 1})
    fed.configuration("int", ["ta"])
    fed.configuration("leaf", ["int"])
    fed.statement("ta", "int")
    fed.statement("int", "leaf")
    chain = await _resolve(http, fed)
    assert [s.iss for s in chain.statements] == [fed.id(n) for n in ("leaf", "int", "ta", "ta")]


async def test_statement_signed_by_a_key_outside_the_chain(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"], signer="intruder")  # self-consistent, not the TA's word
    fed.statement("ta", "leaf")  # the TA vouches for leaf's real keys
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert "outside the trusted set" in str(info.value)


@pytest.mark.parametrize("attack", ["none", "hs256"])
async def test_alg_none_and_hs256_with_the_public_key(
    http: aiohttp.ClientSession, fed: Federation, attack: str
) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"])
    kid = fed.key("ta").kid
    if attack == "none":
        fed.forged("ta", "leaf", {"alg": "none", "kid": kid, "typ": "entity-statement+jwt"}, None)
    else:
        pem = fed.key("ta").as_pem(private=False)
        header = {"alg": "HS256", "kid": kid, "typ": "entity-statement+jwt"}
        fed.forged("ta", "leaf", header, pem)
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert "alg:" in str(info.value) and "is not allowed" in str(info.value)


async def test_expired_statement(http: aiohttp.ClientSession, fed: Federation) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"])
    fed.statement("ta", "leaf", exp=int(time.time()) - 3600)
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert "exp: the JWT has expired" in str(info.value)


async def test_a_chain_that_loops(http: aiohttp.ClientSession, fed: Federation) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["int1"])
    fed.configuration("int1", ["int2"])
    fed.configuration("int2", ["int1"])
    fed.statement("int1", "leaf")
    fed.statement("int2", "int1")
    fed.statement("int1", "int2")
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert "loop" in str(info.value)


async def test_exceeding_max_path_length(http: aiohttp.ClientSession, fed: Federation) -> None:
    fed.configuration("ta", constraints={"max_path_length": 0})
    fed.configuration("int", ["ta"])
    fed.configuration("leaf", ["int"])
    fed.statement("ta", "int")
    fed.statement("int", "leaf")
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert info.value.check == "path_length"


async def test_max_path_length_in_a_statement_counts_below_its_subject(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    """0 in the anchor's statement about an intermediate: that intermediate may have
    leaves (the software house's case), but no intermediate of its own below it."""
    fed.configuration("ta", constraints={"max_path_length": 1})
    fed.configuration("int", ["ta"])
    fed.configuration("leaf", ["int"])
    fed.statement("ta", "int", constraints={"max_path_length": 0})
    fed.statement("int", "leaf")
    chain = await _resolve(http, fed)
    assert [s.iss for s in chain.statements] == [fed.id(n) for n in ("leaf", "int", "ta", "ta")]

    fed.configuration("ta", constraints={"max_path_length": 2})
    fed.configuration("int2", ["int"])
    fed.configuration("leaf", ["int2"])
    fed.statement("int", "int2")
    fed.statement("int2", "leaf")
    with pytest.raises(TrustChainError) as info:
        await _resolve(http, fed)
    assert "path_length" in str(info.value)


async def test_metadata_policy_that_forbids_a_value(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"])
    policy = {OP_TYPE: {"subject_types_supported": {"superset_of": ["pairwise", "public"]}}}
    fed.statement("ta", "leaf", metadata_policy=policy)
    with pytest.raises(MetadataPolicyError) as info:
        await _resolve(http, fed)
    assert info.value.check == "policy_violation"


async def test_trust_marks_expired_or_from_an_unlisted_issuer(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    mark_id = fed.id("ta") + "/openid_provider/public/"
    now = int(time.time())

    def mark(issuer: str, exp: int) -> dict[str, Any]:
        claims = {"id": mark_id, "iss": fed.id(issuer), "sub": fed.id("leaf"), "iat": now - 10}
        claims["exp"] = exp
        return {
            "id": mark_id,
            "trust_mark": sign_jws(claims, fed.key(issuer), typ="trust-mark+jwt"),
        }

    fed.configuration("ta", trust_mark_issuers={mark_id: [fed.id("ta")]})
    fed.statement("ta", "leaf")
    for marks, check in (
        ([mark("ta", now - 100)], "expired"),
        ([mark("leaf", now + 100)], "issuer"),  # self-issued
        ([], "missing"),
    ):
        fed.configuration("leaf", ["ta"], trust_marks=marks)
        with pytest.raises(TrustMarkError) as info:
            await _resolve(http, fed, required_trust_marks=[mark_id], use_cache=False)
        assert info.value.check == check
    fed.configuration("leaf", ["ta"], trust_marks=[mark("ta", now + 100)])
    chain = await _resolve(http, fed, required_trust_marks=[mark_id])
    assert [m.id for m in chain.trust_marks] == [mark_id]


async def test_oversize_jwt_is_refused_unread(http: aiohttp.ClientSession, fed: Federation) -> None:
    fed.configuration("ta")
    fed.configuration("leaf", ["ta"], padding="x" * 70_000)
    with pytest.raises(FederationError) as info:
        await _resolve(http, fed)
    assert info.value.check == "oversize"


async def test_https_is_required_outside_tests(
    http: aiohttp.ClientSession, fed: Federation
) -> None:
    resolver = TrustChainResolver(http, [fed.anchor()])
    with pytest.raises(FederationError) as info:
        await resolver.resolve(fed.id("leaf"), OP_TYPE)
    assert info.value.check == "url"


def test_policy_merge_only_restricts() -> None:
    superior = {OP_TYPE: {"scopes_supported": {"subset_of": ["openid", "offline_access"]}}}
    loosening = {OP_TYPE: {"scopes_supported": {"subset_of": ["openid", "profile"]}}}
    merged = merge_policies(superior, loosening)
    assert merged[OP_TYPE]["scopes_supported"]["subset_of"] == ["openid"]
    with pytest.raises(MetadataPolicyError):
        merge_policies({OP_TYPE: {"x": {"value": "a"}}}, {OP_TYPE: {"x": {"value": "b"}}})
    result = apply_policy(
        {"scopes_supported": ["openid", "profile"], "contacts": ["a@x"]},
        {
            "scopes_supported": {"subset_of": ["openid"], "essential": True},
            "contacts": {"add": ["b@x"]},
            "response_types": {"default": ["code"]},
        },
    )
    assert result == {
        "scopes_supported": ["openid"],
        "contacts": ["a@x", "b@x"],
        "response_types": ["code"],
    }
    with pytest.raises(MetadataPolicyError):
        apply_policy({"alg": "HS256"}, {"alg": {"one_of": ["RS256", "ES256"]}})
    with pytest.raises(MetadataPolicyError):
        apply_policy({}, {"jwks": {"essential": True}})

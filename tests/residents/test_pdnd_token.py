"""The hub's PDND client against the sandbox token server, over real sockets.

Also: one test per token-server rule (a hand-built bad request gets the identical 400
015-0008 body while the sandbox-only diagnostics name the true reason), the rate limit,
injected 5xx, run-time client registration, JWKS, and the official OpenAPI spec.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from sportello.connectors.base import BaseConnector
from sportello.connectors.errors import RateLimited, ServerError, SigningError
from sportello.connectors.pdnd.client import CLIENT_ASSERTION_TYPE, ModiCaller, PdndClient
from sportello.connectors.pdnd.errors import ModiSigningError, VoucherRefused
from sportello.connectors.pdnd.keys import generate_key, jwk_thumbprint, public_key_for_upload
from sportello.connectors.pdnd.modi import AuditContext, digest_header, sha256_hex
from sportello.connectors.retry import RetryPolicy
from sportello.sandbox.pdnd.app import BAD_REQUEST_BODY, PDND_STATE, SandboxClient, create_app
from sportello.sandbox.pdnd.verify import VoucherInvalid, verify_voucher

SPEC = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "specs"
    / "pdnd"
    / "authorizationServerApi.yml"
)
ASSERTION_AUD = "auth.sandbox.interop.pagopa.local/client-assertion"
ISSUER = "sandbox.interop.pagopa.local"
CLIENT_ID = "6a0e8f0e-8f5c-4a1e-9f57-0d7c5a2e1b11"
PURPOSE = "0f3a1c52-2f0e-4c8f-a3a4-7f1b2d3c4e55"
OTHER_PURPOSE = "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
ESERVICE_AUD = (
    "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR/"
    "C030-servizioAccertamentoIdUnicoNazionale/v1"
)


@lru_cache(maxsize=4)
def keypair(name: str) -> tuple[bytes, bytes]:
    return generate_key()


def kid_of(name: str) -> str:
    return jwk_thumbprint(keypair(name)[1])


class Clock:
    """Shared by the sandbox and the client so tests can move time."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sandbox:
    server: TestServer
    app: web.Application
    clock: Clock

    @property
    def token_url(self) -> str:
        return str(self.server.make_url("/token.oauth2"))

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def state(self) -> Any:
        return self.app[PDND_STATE]


async def start_sandbox(**knobs: Any) -> Sandbox:
    clock = knobs.pop("clock", None) or Clock()
    client = SandboxClient.with_key(CLIENT_ID, keypair("client")[1], {PURPOSE: ESERVICE_AUD})
    app = create_app(
        clients=[client],
        clock=clock,
        signing_key_pem=keypair("pdnd")[0],
        **knobs,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return Sandbox(server, app, clock)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = await start_sandbox()
    try:
        yield box
    finally:
        await box.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(
    session: aiohttp.ClientSession, box: Sandbox, *, name: str = "client", **kwargs: Any
) -> PdndClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=1))
    return PdndClient(
        session,
        box.token_url,
        client_id=kwargs.pop("client_id", CLIENT_ID),
        kid=kwargs.pop("kid", kid_of(name)),
        private_key=lambda: keypair(name)[0],
        assertion_audience=kwargs.pop("assertion_audience", ASSERTION_AUD),
        clock=box.clock,
        **kwargs,
    )


async def jwks(session: aiohttp.ClientSession, box: Sandbox) -> dict[str, Any]:
    async with session.get(box.url("/.well-known/jwks.json")) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


# -- the hub's client ------------------------------------------------------------------


async def test_client_gets_a_voucher_that_verifies_with_the_jwks(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    voucher = await pdnd.voucher(PURPOSE)
    assert voucher.expires_in == 600 and voucher.token_type == "Bearer"
    assert voucher.expires_at == sandbox.clock.now + 600
    header = jwt.get_unverified_header(voucher.token)
    assert header == {"alg": "RS256", "use": "sig", "typ": "at+jwt", "kid": kid_of("pdnd")}
    keys = await jwks(session, sandbox)
    assert keys["keys"][0]["kid"] == kid_of("pdnd") == jwk_thumbprint(keys["keys"][0])
    claims = verify_voucher(
        voucher.token, keys, audience=ESERVICE_AUD, issuer=ISSUER, now=sandbox.clock.now
    )
    assert set(claims) == {
        "jti",
        "iss",
        "aud",
        "client_id",
        "sub",
        "iat",
        "nbf",
        "exp",
        "purposeId",
    }
    assert claims["client_id"] == claims["sub"] == CLIENT_ID and claims["purposeId"] == PURPOSE
    assert claims["exp"] - claims["iat"] == 600


async def test_plain_vouchers_are_cached_until_shortly_before_expiry(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox, refresh_margin=60)
    first = await pdnd.voucher(PURPOSE)
    again = await asyncio.gather(*(pdnd.voucher(PURPOSE) for _ in range(5)))
    assert all(v.token == first.token for v in again)
    assert sandbox.state.token_requests == 1
    sandbox.clock.advance(600 - 61)
    assert (await pdnd.voucher(PURPOSE)).token == first.token
    sandbox.clock.advance(2)  # now inside the 60 s refresh margin
    renewed = await pdnd.voucher(PURPOSE)
    assert renewed.token != first.token and sandbox.state.token_requests == 2
    pdnd.invalidate(PURPOSE)
    await pdnd.voucher(PURPOSE)
    assert sandbox.state.token_requests == 3


async def test_concurrent_first_calls_share_one_request(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    vouchers = await asyncio.gather(*(pdnd.voucher(PURPOSE) for _ in range(8)))
    assert len({v.token for v in vouchers}) == 1 and sandbox.state.token_requests == 1


async def test_audited_calls_always_get_a_fresh_voucher_with_the_digest(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    plain = await pdnd.voucher(PURPOSE)
    digests = [sha256_hex(f"evidence {i}") for i in range(2)]
    audited = [await pdnd.voucher(PURPOSE, digest_hex=d) for d in digests]
    assert sandbox.state.token_requests == 3
    for voucher, digest in zip(audited, digests, strict=True):
        claims = voucher.unverified_claims()
        assert claims["digest"] == {"alg": "SHA256", "value": digest}
        assert voucher.digest_hex == digest
    # The audited vouchers did not replace the cached plain one.
    assert (await pdnd.voucher(PURPOSE)).token == plain.token
    assert sandbox.state.token_requests == 3


async def test_refusal_is_typed_with_the_correlation_id(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    with pytest.raises(VoucherRefused) as caught:
        await pdnd.voucher(OTHER_PURPOSE)
    error = caught.value
    assert error.status == 400 and not error.retryable and error.attempts == 1
    assert error.platform == "pdnd" and error.code == "015-0008"
    assert error.correlation_id is not None
    diagnosis = sandbox.state.diagnosis(error.correlation_id)
    assert diagnosis["reason"] == "purposeNotLinked"


async def test_a_kid_that_does_not_match_the_key_fails_before_any_request(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox, kid=kid_of("other"))
    with pytest.raises(SigningError, match="thumbprint"):
        await pdnd.voucher(PURPOSE)
    assert sandbox.state.token_requests == 0


async def test_rate_limit_answers_429_with_headers_and_a_wait(
    session: aiohttp.ClientSession,
) -> None:
    box = await start_sandbox(rate_limit=(2, 60.0))
    try:
        pdnd = make_client(session, box)
        remaining = []
        for _ in range(2):
            form = good_form()
            async with session.post(box.token_url, data=form, headers=FORM_HEADERS) as resp:
                assert resp.status == 200
                assert resp.headers["X-Rate-Limit-Limit"] == "2"
                assert resp.headers["X-Rate-Limit-Interval"] == "60000"
                remaining.append(resp.headers["X-Rate-Limit-Remaining"])
        assert remaining == ["1", "0"]
        with pytest.raises(RateLimited) as caught:
            await pdnd.voucher(PURPOSE)
        assert caught.value.retry_after == 30.0 and caught.value.retryable
        assert caught.value.request_id is not None
        box.clock.advance(30)  # one request refilled
        assert (await pdnd.voucher(PURPOSE)).token
    finally:
        await box.server.close()


async def test_server_errors_are_retried(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    async with session.post(sandbox.url("/__sandbox/faults"), json={"status": 503, "count": 1}):
        pass
    sleeps = SleepRecorder()
    pdnd = make_client(session, sandbox, retry=RetryPolicy(max_attempts=3), sleep=sleeps)
    assert (await pdnd.voucher(PURPOSE)).token
    assert sandbox.state.token_requests == 2 and len(sleeps.delays) == 1

    async with session.post(sandbox.url("/__sandbox/faults"), json={"status": 500, "count": 1}):
        pass
    with pytest.raises(ServerError) as caught:
        await make_client(session, sandbox).voucher(OTHER_PURPOSE)
    assert caught.value.retryable and caught.value.status == 500
    assert sandbox.state.diagnosis(caught.value.request_id)["reason"] == "injectedFault"


# -- ModI --------------------------------------------------------------------------------


class EService:
    """A stand-in e-service: fails the first ``failures`` calls with 503, records headers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.app = web.Application()
        self.app.router.add_post("/rest/Porta-PDND/C030-x/v1/anpr-service-e002", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        if len(self.seen) <= self.failures:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"ok": True})


class DemoAnpr(BaseConnector):
    platform = "anpr-demo"


async def test_modi_signer_resigns_every_retry_with_a_fresh_audited_voucher(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    service = EService(failures=1)
    server = TestServer(service.app, host="127.0.0.1")
    await server.start_server()
    try:
        pdnd = make_client(session, sandbox)
        modi = ModiCaller(pdnd, purpose_id=PURPOSE, audit_required=True)
        anpr = DemoAnpr(
            session,
            str(server.make_url("/rest/Porta-PDND/C030-x/v1")),
            signer=modi,
            retry=RetryPolicy(max_attempts=2),
            sleep=SleepRecorder(),
        )
        audit = AuditContext(user_id="op-17", user_location="anagrafe-pc3", loa="LoA3")
        with ModiCaller.scope(audit=audit):
            response = await anpr.request("POST", "/anpr-service-e002", json={"motivo": "P.1"})
        assert response.status == 200 and response.attempts == 2
        keys = await jwks(session, sandbox)
        audience = str(server.make_url("/rest/Porta/C030-x/v1"))
        signature_ids, vouchers = set(), set()
        for headers, body in service.seen:
            assert headers["Digest"] == digest_header(body)
            assert headers["Content-Type"] == "application/json"
            evidence = headers["Agid-JWT-TrackingEvidence"]
            token = headers["Authorization"].removeprefix("Bearer ")
            vouchers.add(token)
            verify_voucher(
                token,
                keys,
                audience=ESERVICE_AUD,
                issuer=ISSUER,
                now=sandbox.clock.now,
                purpose_id=PURPOSE,
                digest_hex=hashlib.sha256(evidence.encode()).hexdigest(),
            )
            signature = jwt.decode(
                headers["Agid-JWT-Signature"],
                jwt.PyJWK(json.loads(await client_jwk(session, sandbox))).key,
                algorithms=["RS256"],
                audience=audience,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
            assert signature["signed_headers"] == [
                {"digest": headers["Digest"]},
                {"content-type": "application/json"},
            ]
            assert signature["iat"] <= sandbox.clock.now - 3
            signature_ids.add(signature["jti"])
            te = jwt.decode(evidence, options={"verify_signature": False})
            assert te["aud"] == audience and te["userID"] == "op-17"
        assert len(signature_ids) == 2 and len(vouchers) == 2
        assert sandbox.state.token_requests == 2
    finally:
        await server.close()


async def test_a_refused_voucher_stops_the_call_before_the_eservice(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    service = EService(failures=0)
    server = TestServer(service.app, host="127.0.0.1")
    await server.start_server()
    try:
        modi = ModiCaller(make_client(session, sandbox), purpose_id=PURPOSE)
        anpr = DemoAnpr(
            session,
            str(server.make_url("/rest/Porta-PDND/C030-x/v1")),
            signer=modi,
            retry=RetryPolicy(max_attempts=3),
            sleep=SleepRecorder(),
        )
        with (
            ModiCaller.scope(purpose_id=OTHER_PURPOSE),
            pytest.raises(VoucherRefused) as caught,
        ):
            await anpr.request("POST", "/anpr-service-e002", json={})
        assert caught.value.platform == "pdnd" and caught.value.attempts == 1
        assert service.seen == [] and sandbox.state.token_requests == 1
    finally:
        await server.close()


async def client_jwk(session: aiohttp.ClientSession, box: Sandbox) -> str:
    async with session.get(box.url(f"/keys/{kid_of('client')}")) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_modi_headers_without_audit_reuse_the_cached_voucher(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    modi = ModiCaller(pdnd, audience=ESERVICE_AUD)
    url = "https://e.example/any"
    first = await modi.headers(url=url, body=b"{}", purpose_id=PURPOSE, audit=None)
    second = await modi.headers(url=url, body=b"[]", purpose_id=PURPOSE, audit=None)
    assert set(first) == {"Authorization", "Digest", "Agid-JWT-Signature"}
    assert first["Authorization"] == second["Authorization"]
    assert first["Agid-JWT-Signature"] != second["Agid-JWT-Signature"]
    assert sandbox.state.token_requests == 1
    required = ModiCaller(pdnd, audit_required=True)
    with pytest.raises(ModiSigningError, match="audit"):
        await required.headers(url=url, body=b"", purpose_id=PURPOSE, audit=None)


# -- every token-server rule -------------------------------------------------------------

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def assertion(
    *,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    key: str = "client",
    algorithm: str = "RS256",
    now: float | None = None,
    **claims: Any,
) -> str:
    issued = int(now if now is not None else time.time()) - 3
    payload: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ASSERTION_AUD,
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + 600,
        "purposeId": PURPOSE,
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name)
    headers = {"kid": kid_of("client"), "typ": "JWT"} | (header or {})
    signing_key: Any = keypair(key)[0]
    if algorithm.startswith("HS"):
        signing_key = "a shared secret that is long enough for HS256 usage"
    elif algorithm == "none":
        signing_key = None
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


def good_form(**overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "client_assertion": assertion(),
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "grant_type": "client_credentials",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def tampered() -> str:
    head, payload, signature = assertion().split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["jti"] = "replaced"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{head}.{forged}.{signature}"


Case = Callable[[], tuple[bytes, str]]


def form_case(**overrides: str | None) -> Case:
    def build() -> tuple[bytes, str]:
        return urlencode(good_form(**overrides)).encode(), "application/x-www-form-urlencoded"

    return build


def with_assertion(factory: Callable[[], str]) -> Case:
    def build() -> tuple[bytes, str]:
        form = good_form(client_assertion=factory())
        return urlencode(form).encode(), "application/x-www-form-urlencoded"

    return build


def raw_case(body: bytes, content_type: str) -> Case:
    return lambda: (body, content_type)


RULES: list[tuple[str, Case, str]] = [
    (
        "extra header key",
        with_assertion(lambda: assertion(header={"x5t": "abc"})),
        "unexpectedHeaderClaims",
    ),
    ("HS256", with_assertion(lambda: assertion(algorithm="HS256")), "algorithmNotAllowed"),
    ("alg none", with_assertion(lambda: assertion(algorithm="none")), "algorithmNotAllowed"),
    ("PS256", with_assertion(lambda: assertion(algorithm="PS256")), "algorithmNotAllowed"),
    (
        "kid not a thumbprint",
        with_assertion(lambda: assertion(header={"kid": "k1"})),
        "invalidKidFormat",
    ),
    (
        "kid of another key",
        with_assertion(lambda: assertion(header={"kid": kid_of("other")}, key="other")),
        "keyNotRegistered",
    ),
    (
        "nbf claim",
        with_assertion(lambda: assertion(nbf=int(time.time()) - 3)),
        "unexpectedPayloadClaims",
    ),
    (
        "client_id claim",
        with_assertion(lambda: assertion(client_id=CLIENT_ID)),
        "unexpectedPayloadClaims",
    ),
    ("float iat", with_assertion(lambda: assertion(iat=time.time() - 3.5)), "issuedAtNotInteger"),
    (
        "float exp",
        with_assertion(lambda: assertion(exp=time.time() + 600.5)),
        "expirationNotInteger",
    ),
    (
        "string iat",
        with_assertion(lambda: assertion(iat=str(int(time.time())))),
        "issuedAtNotInteger",
    ),
    ("missing jti", with_assertion(lambda: assertion(drop=("jti",))), "missingClaims"),
    (
        "wrong aud",
        with_assertion(lambda: assertion(aud="auth.uat.interop.pagopa.it/client-assertion")),
        "invalidAudience",
    ),
    ("aud not a string", with_assertion(lambda: assertion(aud=42)), "invalidAudienceFormat"),
    ("expired", with_assertion(lambda: assertion(now=time.time() - 3600)), "tokenExpired"),
    (
        "iat in the future",
        with_assertion(lambda: assertion(now=time.time() + 60)),
        "issuedInTheFuture",
    ),
    (
        "unknown purpose",
        with_assertion(lambda: assertion(purposeId=OTHER_PURPOSE)),
        "purposeNotLinked",
    ),
    (
        "purposeId not a UUID",
        with_assertion(lambda: assertion(purposeId="C030")),
        "invalidPurposeIdFormat",
    ),
    (
        "sub is not the client_id",
        form_case(client_id="11111111-2222-4333-8444-555555555555"),
        "invalidSubject",
    ),
    (
        "iss differs from sub",
        with_assertion(lambda: assertion(iss="someone-else")),
        "invalidIssuer",
    ),
    (
        "unknown client",
        form_case(
            client_id="11111111-2222-4333-8444-555555555555",
            client_assertion=assertion(
                iss="11111111-2222-4333-8444-555555555555",
                sub="11111111-2222-4333-8444-555555555555",
            ),
        ),
        "clientNotFound",
    ),
    (
        "digest too short",
        with_assertion(lambda: assertion(digest={"alg": "SHA256", "value": "ab" * 16})),
        "invalidHashLength",
    ),
    (
        "digest alg",
        with_assertion(lambda: assertion(digest={"alg": "SHA512", "value": "ab" * 32})),
        "invalidHashAlgorithm",
    ),
    (
        "digest not hex",
        with_assertion(lambda: assertion(digest={"alg": "SHA256", "value": "z" * 64})),
        "invalidDigestFormat",
    ),
    (
        "digest not an object",
        with_assertion(lambda: assertion(digest="ab" * 32)),
        "invalidDigestFormat",
    ),
    ("signed by another key", with_assertion(lambda: assertion(key="other")), "invalidSignature"),
    ("payload tampered", with_assertion(tampered), "invalidSignature"),
    ("not a JWS", form_case(client_assertion="not-a-jws"), "invalidClientAssertionFormat"),
    ("client_assertion missing", form_case(client_assertion=None), "missingParameter"),
    ("grant_type", form_case(grant_type="authorization_code"), "invalidGrantType"),
    (
        "client_assertion_type",
        form_case(client_assertion_type="jwt-bearer"),
        "invalidAssertionType",
    ),
    ("client_id not a UUID", form_case(client_id="client-1"), "invalidClientIdFormat"),
    (
        "JSON body",
        lambda: (json.dumps(good_form()).encode(), "application/json"),
        "invalidContentType",
    ),
    (
        "duplicate parameter",
        lambda: (
            (urlencode(good_form()) + "&grant_type=client_credentials").encode(),
            "application/x-www-form-urlencoded",
        ),
        "duplicateParameter",
    ),
]


@pytest.mark.parametrize(("name", "case", "reason"), RULES, ids=[r[0] for r in RULES])
async def test_every_rule_gets_the_same_400_and_diagnostics_name_the_reason(
    sandbox: Sandbox, session: aiohttp.ClientSession, name: str, case: Case, reason: str
) -> None:
    sandbox.clock.now = time.time()
    body, content_type = case()
    async with session.post(
        sandbox.token_url, data=body, headers={"Content-Type": content_type}
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        assert "X-Rate-Limit-Limit" not in resp.headers
        problem = await resp.json()
    correlation_id = problem.pop("correlationId")
    assert problem == BAD_REQUEST_BODY
    assert uuid.UUID(correlation_id)
    async with session.get(sandbox.url(f"/__sandbox/diagnostics/{correlation_id}")) as resp:
        assert resp.status == 200
        diagnosis = await resp.json()
    assert diagnosis["reason"] == reason, diagnosis
    assert diagnosis["status"] == 400 and diagnosis["outcome"] == "refused"
    assert sandbox.state.vouchers_issued == 0


async def test_client_id_parameter_is_optional_as_in_the_spec(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        sandbox.token_url, data=good_form(client_id=None), headers=FORM_HEADERS
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-cache, no-store"
        doc = await resp.json()
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 600
    async with session.get(sandbox.url(f"/__sandbox/diagnostics/{uuid.uuid4()}")) as resp:
        assert resp.status == 404


# -- registration, keys, verification -----------------------------------------------------


async def test_clients_registered_at_run_time_get_vouchers(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    client_id = str(uuid.uuid4())
    registration = {
        "client_id": client_id,
        "public_key": public_key_for_upload(keypair("other")[1]),
        "purposes": {OTHER_PURPOSE: "https://eservice.example/v1"},
    }
    async with session.post(sandbox.url("/__sandbox/clients"), json=registration) as resp:
        assert resp.status == 201
        assert (await resp.json())["kid"] == kid_of("other")
    pdnd = make_client(session, sandbox, name="other", client_id=client_id)
    voucher = await pdnd.voucher(OTHER_PURPOSE)
    assert voucher.unverified_claims()["aud"] == "https://eservice.example/v1"
    bad = [
        {**registration, "kid": kid_of("client")},
        {**registration, "client_id": "not-a-uuid"},
        {**registration, "public_key": keypair("other")[0].decode()},
        {**registration, "purposes": {"C030": "aud"}},
    ]
    for body in bad:
        async with session.post(sandbox.url("/__sandbox/clients"), json=body) as resp:
            assert resp.status == 400, body
    async with session.get(sandbox.url("/__sandbox/clients")) as resp:
        listed = {c["client_id"]: c for c in await resp.json()}
    assert listed[client_id]["kids"] == [kid_of("other")]


async def test_keys_route_serves_a_client_key_for_providers(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    jwk = json.loads(await client_jwk(session, sandbox))
    assert jwk["kid"] == kid_of("client") == jwk_thumbprint(jwk)
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["alg"] == "RS256"
    async with session.get(sandbox.url(f"/keys/{kid_of('other')}")) as resp:
        assert resp.status == 404
    async with session.get(sandbox.url("/status")) as resp:
        assert (await resp.json())["platform"] == "pdnd"


async def test_verify_voucher_refuses_what_a_provider_must_refuse(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    pdnd = make_client(session, sandbox)
    token = (await pdnd.voucher(PURPOSE, digest_hex="ab" * 32)).token
    keys = await jwks(session, sandbox)
    now = sandbox.clock.now
    good = verify_voucher(
        token, keys, audience=ESERVICE_AUD, issuer=ISSUER, now=now, digest_hex="AB" * 32
    )
    assert good["digest"]["value"] == "ab" * 32
    attempts: list[tuple[dict[str, Any], str]] = [
        ({"audience": "https://other/v1"}, "invalidAudience"),
        ({"issuer": "uat.interop.pagopa.it"}, "invalidIssuer"),
        ({"now": now + 601}, "expired"),
        ({"now": now - 10}, "notYetValid"),
        ({"purpose_id": OTHER_PURPOSE}, "invalidPurpose"),
        ({"digest_hex": "cd" * 32}, "digestMismatch"),
    ]
    for change, reason in attempts:
        args: dict[str, Any] = {"audience": ESERVICE_AUD, "issuer": ISSUER, "now": now} | change
        with pytest.raises(VoucherInvalid) as caught:
            verify_voucher(token, keys, **args)
        assert caught.value.reason == reason
    with pytest.raises(VoucherInvalid) as caught:
        verify_voucher(token, keypair("other")[1], audience=ESERVICE_AUD, issuer=ISSUER, now=now)
    assert caught.value.reason == "invalidSignature"
    with pytest.raises(VoucherInvalid) as caught:
        verify_voucher(assertion(), keys, audience=ESERVICE_AUD, issuer=ISSUER, now=now)
    assert caught.value.reason == "invalidType"


# -- the official OpenAPI spec -----------------------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> Any:
    if not SPEC.exists():
        pytest.skip(f"PDND spec not found at {SPEC} (shared/specs is not checked out)")
    from openapi_core import OpenAPI

    doc = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    doc["servers"] = [{"url": "http://sandbox"}]  # the spec's relative server, made absolute
    return OpenAPI.from_dict(doc)


async def test_requests_and_responses_validate_against_the_spec(
    openapi: Any, session: aiohttp.ClientSession
) -> None:
    from openapi_core.testing import MockRequest, MockResponse
    from openapi_schema_validator import OAS30Validator

    box = await start_sandbox(rate_limit=(1, 60.0))
    sent: list[bytes] = []
    trace = aiohttp.TraceConfig()

    async def on_chunk(_s: Any, _c: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
        sent.append(params.chunk)

    trace.on_request_chunk_sent.append(on_chunk)

    def spec_request(raw: bytes) -> Any:
        return MockRequest(
            "http://sandbox",
            "post",
            "/token.oauth2",
            data=raw,
            content_type="application/x-www-form-urlencoded",
        )

    contents = openapi.spec.contents()
    responses = contents["paths"]["/token.oauth2"]["post"]["responses"]

    def strict(ref: str, instance: Any) -> None:
        # openapi-core coerces types and lets extra keys through: check bodies strictly too.
        schema = {"$ref": ref, "components": contents["components"]}
        OAS30Validator(schema).validate(instance)

    async def post_and_validate(fields: dict[str, str]) -> int:
        raw = urlencode(fields).encode()
        async with session.post(box.token_url, data=raw, headers=FORM_HEADERS) as resp:
            body = await resp.read()
            status, headers, content_type = resp.status, dict(resp.headers), resp.content_type
        if str(status) in responses:  # 200, 400, 429: status, headers and body per the spec
            answer = MockResponse(
                body, status_code=status, headers=headers, content_type=content_type
            )
            openapi.validate_response(spec_request(raw), answer)
            ref = responses[str(status)]["content"][content_type]["schema"]["$ref"]
            strict(ref, json.loads(body))
        else:  # 500 is not in the spec: its body must still be a valid Problem
            assert content_type == "application/problem+json"
            strict("#/components/schemas/Problem", json.loads(body))
        return status

    try:
        # The hub client's own request matches AccessTokenRequest.
        async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
            await make_client(traced, box).voucher(PURPOSE)
        openapi.validate_request(spec_request(b"".join(sent)))

        async with session.post(box.url("/__sandbox/faults"), json={"count": 1}):
            pass
        statuses = [
            await post_and_validate(good_form()),  # injected fault
            await post_and_validate(good_form(grant_type="password")),
            await post_and_validate(good_form()),  # the window's one request is spent
        ]
        box.clock.advance(60)
        statuses.append(await post_and_validate(good_form()))
        assert statuses == [500, 400, 429, 200]
    finally:
        await box.server.close()

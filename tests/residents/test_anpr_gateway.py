"""ANPR gateway twin + PDND token sandbox + the hub's real clients, over real sockets.

Each front-door rule is broken on purpose with hand-built headers (PyJWT directly, not the
hub's signer) and must get the same generic GovWay refusal, while the sandbox-only
diagnostics route names the real reason. The hub's own clients must pass every rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import yaml
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from sportello.connectors.anpr.client import AnprClient
from sportello.connectors.anpr.errors import (
    AnprError,
    AnprRejected,
    GatewayRejected,
    SubjectNotFound,
    TokenExpired,
)
from sportello.connectors.anpr.models import DeclaredData
from sportello.connectors.errors import NotFound, RateLimited, UpstreamError
from sportello.connectors.pdnd.client import ModiCaller, PdndClient
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE, SANDBOX_ISSUER
from sportello.connectors.pdnd.keys import generate_key, jwk_thumbprint, load_private_key
from sportello.connectors.pdnd.modi import AuditContext
from sportello.connectors.retry import RetryPolicy
from sportello.sandbox.anpr.app import ANPR_STATE, AnprSandbox, create_app, modi_audience_for
from sportello.sandbox.anpr.population import Person, Population, generate
from sportello.sandbox.pdnd.app import PDND_STATE, PdndSandbox
from sportello.sandbox.pdnd.app import create_app as create_pdnd_app

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "anpr"
DOOR = "/govway/rest/in/MinInternoPortaANPR-PDND"
AUDIENCE_DOOR = "/govway/rest/in/MinInternoPortaANPR"
CODES = ("C001", "C003", "C007", "C015", "C020", "C021", "C029", "C030")
GENERIC = {
    "type": "https://govway.org/handling-errors/400/InteroperabilityInvalidRequest.html",
    "title": "InteroperabilityInvalidRequest",
    "status": 400,
    "detail": "Received request is not conform to the required interoperability profile",
}
AUDIT = AuditContext(user_id="op-17", user_location="anagrafe-pc3", loa="LoA3")
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@cache
def population() -> Population:
    return generate(seed=7, size=300)


@cache
def client_key() -> tuple[bytes, bytes]:
    return generate_key()


@cache
def other_key() -> tuple[bytes, bytes]:
    return generate_key()


@cache
def pdnd_signing_key() -> bytes:
    return generate_key()[0]


def people(predicate: Callable[[Person], bool]) -> list[Person]:
    return [p for p in population().people if predicate(p)]


def household_of_size(size: int) -> Person:
    pop = population()
    return next(h.head for h in pop.households.values() if len(h.members) >= size)


@dataclass
class Stack:
    session: aiohttp.ClientSession
    pdnd: PdndSandbox
    anpr: AnprSandbox
    pdnd_url: str
    anpr_url: str
    client_id: str
    kid: str
    purposes: dict[str, str]
    servers: list[TestServer] = field(default_factory=list)

    @property
    def door(self) -> str:
        return self.anpr_url + DOOR

    def audience(self, code: str) -> str:
        return modi_audience_for(self.anpr_url + AUDIENCE_DOOR, code)

    def segment(self, code: str) -> str:
        return self.audience(code).rsplit("/", 2)[1]

    def e002_url(self, code: str) -> str:
        return f"{self.door}/{self.segment(code)}/v1/anpr-service-e002"

    async def diagnosis(self, govway_id: str) -> dict[str, Any]:
        async with self.session.get(f"{self.anpr_url}/__sandbox/diagnostics/{govway_id}") as r:
            assert r.status == 200
            found: dict[str, Any] = await r.json()
            return found

    def pdnd_client(self, **kwargs: Any) -> PdndClient:
        private_pem, _ = client_key()
        return PdndClient(
            self.session,
            self.pdnd_url + "/token.oauth2",
            client_id=self.client_id,
            kid=self.kid,
            private_key=lambda: private_pem,
            assertion_audience=SANDBOX_ASSERTION_AUDIENCE,
            **kwargs,
        )

    def anpr_client(
        self,
        *,
        modi: ModiCaller | None = None,
        purposes: dict[str, str] | None = None,
        retry: RetryPolicy = FAST_RETRY,
    ) -> AnprClient:
        return AnprClient(
            self.session,
            self.door,
            modi=modi or ModiCaller(self.pdnd_client(), audit_required=True),
            purposes=self.purposes if purposes is None else purposes,
            retry=retry,
        )


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    made: list[Stack] = []
    session = aiohttp.ClientSession()

    async def make(**anpr_options: Any) -> Stack:
        pdnd_app = create_pdnd_app(rate_limit=None, signing_key_pem=pdnd_signing_key())
        pdnd_server = TestServer(pdnd_app, host="127.0.0.1")
        await pdnd_server.start_server()
        pdnd_url = str(pdnd_server.make_url("")).rstrip("/")
        anpr_app = create_app(
            population=population(),
            voucher_key=pdnd_url + "/.well-known/jwks.json",
            client_keys=pdnd_url + "/keys",
            **anpr_options,
        )
        anpr_server = TestServer(anpr_app, host="127.0.0.1")
        await anpr_server.start_server()
        anpr_url = str(anpr_server.make_url("")).rstrip("/")
        _, public_pem = client_key()
        client_id = str(uuid.uuid4())
        purposes = {code: str(uuid.uuid4()) for code in CODES}
        audiences = {
            purposes[code]: modi_audience_for(anpr_url + AUDIENCE_DOOR, code) for code in CODES
        }
        # The client is registered through the PDND sandbox's own HTTP API.
        async with session.post(
            pdnd_url + "/__sandbox/clients",
            json={
                "client_id": client_id,
                "public_key": public_pem.decode(),
                "purposes": audiences,
            },
        ) as response:
            assert response.status == 201, await response.text()
            kid = (await response.json())["kid"]
        stack = Stack(
            session,
            pdnd_app[PDND_STATE],
            anpr_app[ANPR_STATE],
            pdnd_url,
            anpr_url,
            client_id,
            kid,
            purposes,
            [anpr_server, pdnd_server],
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        for server in stack.servers:
            await server.close()
    await session.close()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


# ----------------------------------------------------------------- hand-built requests


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def e002_body(code: str, person: Person, **data: Any) -> dict[str, Any]:
    criteria = {"codiceFiscale": person.fiscal_code} if code == "C030" else {}
    if code != "C030":
        criteria = {"idANPR": person.id_anpr}
    body: dict[str, Any] = {
        "idOperazioneClient": str(int(time.time() * 1000)),
        "criteriRicerca": criteria,
        "datiRichiesta": {
            "dataRiferimentoRichiesta": "2026-01-15",
            "motivoRichiesta": "PROT.2026/123",
            "casoUso": code,
            **data,
        },
    }
    if code == "C003":
        body["verifica"] = {
            "generalita": {"cognome": person.family_name, "nome": person.given_name}
        }
    return body


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()


@dataclass
class Forge:
    """Builds a valid ModI request by hand; each argument breaks one thing."""

    code: str = "C030"
    body: Any = None
    send_body: bytes | None = None  # sent instead of the signed body
    voucher: dict[str, Any] = field(default_factory=dict)
    voucher_key: rsa.RSAPrivateKey | None = None
    voucher_digest_of: str | None = None  # bind the voucher to another evidence
    signature: dict[str, Any] = field(default_factory=dict)
    signed_headers: Callable[[str], Any] | None = None  # from the Digest value
    signature_key: rsa.RSAPrivateKey | None = None
    signature_kid: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    now: float | None = None

    def build(self, stack: Stack) -> tuple[str, dict[str, str], bytes]:
        now = int(self.now if self.now is not None else time.time())
        person = population().active()[0]
        body_doc = self.body if self.body is not None else e002_body(self.code, person)
        body = body_doc if isinstance(body_doc, bytes) else json.dumps(body_doc).encode()
        audience = stack.audience(self.code)
        purpose_id = stack.purposes[self.code]
        client_pem, _ = client_key()
        key = load_private_key(client_pem)
        times = {"iat": now - 2, "nbf": now - 2, "exp": now + 300}
        evidence_claims = _merge(
            {
                "iss": stack.client_id,
                "aud": audience,
                "purposeId": purpose_id,
                "jti": str(uuid.uuid4()),
                **times,
                "userID": "op-17",
                "userLocation": "anagrafe-pc3",
                "LoA": "LoA3",
            },
            self.audit,
        )
        evidence = jwt.encode(
            evidence_claims, key, algorithm="RS256", headers={"kid": stack.kid, "typ": "JWT"}
        )
        bound = self.voucher_digest_of if self.voucher_digest_of is not None else evidence
        voucher_claims = _merge(
            {
                "jti": str(uuid.uuid4()),
                "iss": SANDBOX_ISSUER,
                "aud": audience,
                "client_id": stack.client_id,
                "sub": stack.client_id,
                "iat": now - 1,
                "nbf": now - 1,
                "exp": now + 600,
                "purposeId": purpose_id,
                "digest": {"alg": "SHA256", "value": hashlib.sha256(bound.encode()).hexdigest()},
            },
            self.voucher,
        )
        voucher = jwt.encode(
            voucher_claims,
            self.voucher_key or stack.pdnd.signing_key,
            algorithm="RS256",
            headers={"use": "sig", "typ": "at+jwt", "kid": stack.pdnd.signing_kid},
        )
        digest = "SHA-256=" + _b64(hashlib.sha256(body).digest())
        signature_claims = _merge(
            {
                "iss": stack.client_id,
                "sub": stack.client_id,
                "aud": audience,
                "jti": str(uuid.uuid4()),
                **times,
                "signed_headers": (
                    self.signed_headers(digest)
                    if self.signed_headers
                    else [{"digest": digest}, {"content-type": "application/json"}]
                ),
            },
            self.signature,
        )
        signature = jwt.encode(
            signature_claims,
            self.signature_key or key,
            algorithm="RS256",
            headers={"kid": self.signature_kid or stack.kid, "typ": "JWT"},
        )
        headers = _merge(
            {
                "Authorization": f"Bearer {voucher}",
                "Content-Type": "application/json",
                "Digest": digest,
                "Agid-JWT-Signature": signature,
                "Agid-JWT-TrackingEvidence": evidence,
            },
            self.headers,
        )
        sent = self.send_body if self.send_body is not None else body
        return stack.e002_url(self.code), headers, sent


async def send(stack: Stack, forge: Forge) -> tuple[int, dict[str, Any], Any]:
    url, headers, body = forge.build(stack)
    async with stack.session.post(url, data=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def assert_refused(
    stack: Stack, forge: Forge, check: str, *, status: int = 400
) -> dict[str, Any]:
    code, headers, body = await send(stack, forge)
    assert code == status, body
    govway_id = body["govway_id"]
    uuid.UUID(govway_id)
    assert headers["GovWay-Transaction-ID"] == govway_id
    assert headers["Content-Type"].startswith("application/problem+json")
    if status == 400:
        assert {k: v for k, v in body.items() if k != "govway_id"} == GENERIC
        assert headers["GovWay-Transaction-ErrorType"] == "InteroperabilityInvalidRequest"
    diagnosis = await stack.diagnosis(govway_id)
    assert diagnosis["check"] == check, diagnosis
    assert diagnosis["outcome"] == "refused"
    return diagnosis


# ------------------------------------------------------------------- front-door rules


def _pdnd_audience(stack: Stack) -> str:
    return stack.audience("C030").replace(AUDIENCE_DOOR, DOOR)


FLOAT_NOW = time.time()
RULES: list[tuple[str, Callable[[Stack], Forge], str]] = [
    ("no voucher", lambda s: Forge(headers={"Authorization": DROP}), "voucher.missing"),
    ("basic auth", lambda s: Forge(headers={"Authorization": "Basic dXNlcg=="}), "voucher.scheme"),
    (
        "voucher signed by another key",
        lambda s: Forge(voucher_key=load_private_key(other_key()[0])),
        "voucher.invalidSignature",
    ),
    ("voucher issuer", lambda s: Forge(voucher={"iss": "evil.example"}), "voucher.invalidIssuer"),
    (
        "voucher for another e-service",
        lambda s: Forge(voucher={"aud": s.audience("C020")}),
        "voucher.invalidAudience",
    ),
    (
        "voucher with float exp",
        lambda s: Forge(voucher={"exp": time.time() + 600.5}),
        "voucher.timeNotInteger",
    ),
    ("voucher without digest", lambda s: Forge(voucher={"digest": DROP}), "voucher.missingDigest"),
    ("no Digest header", lambda s: Forge(headers={"Digest": DROP}), "digest.missing"),
    ("Digest not SHA-256", lambda s: Forge(headers={"Digest": "MD5=abc"}), "digest.malformed"),
    (
        "body changed after signing",
        lambda s: Forge(send_body=json.dumps(e002_body("C030", population().people[5])).encode()),
        "digest.mismatch",
    ),
    (
        "no Agid-JWT-Signature",
        lambda s: Forge(headers={"Agid-JWT-Signature": DROP}),
        "signature.missing",
    ),
    (
        "aud with -PDND (the frequent mistake)",
        lambda s: Forge(signature={"aud": _pdnd_audience(s)}),
        "signature.audiencePDND",
    ),
    (
        "aud not cut at /v1",
        lambda s: Forge(signature={"aud": s.audience("C030") + "/anpr-service-e002"}),
        "signature.audienceNotCut",
    ),
    (
        "aud of another service",
        lambda s: Forge(signature={"aud": s.audience("C020")}),
        "signature.audience",
    ),
    (
        "signed_headers as object",
        lambda s: Forge(signed_headers=lambda d: {"digest": d, "content-type": "application/json"}),
        "signature.signedHeadersNotArray",
    ),
    (
        "signed_headers without digest",
        lambda s: Forge(signed_headers=lambda d: [{"content-type": "application/json"}]),
        "signature.signedHeadersNoDigest",
    ),
    (
        "signed digest differs from Digest",
        lambda s: Forge(
            signature={
                "signed_headers": [
                    {"digest": "SHA-256=" + _b64(hashlib.sha256(b"other").digest())},
                    {"content-type": "application/json"},
                ]
            }
        ),
        "signature.signedHeadersDigest",
    ),
    (
        "no signed_headers",
        lambda s: Forge(signature={"signed_headers": DROP}),
        "signature.signedHeadersNotArray",
    ),
    (
        "content-type not signed",
        lambda s: Forge(signed_headers=lambda d: [{"digest": d}]),
        "signature.signedHeadersNoContentType",
    ),
    (
        "signed_headers entries not objects",
        lambda s: Forge(signed_headers=lambda d: [f"digest: {d}"]),
        "signature.signedHeadersEntry",
    ),
    (
        "signed content-type differs",
        lambda s: Forge(headers={"Content-Type": "application/json; charset=utf-8"}),
        "signature.signedHeadersContentType",
    ),
    (
        "float iat",
        lambda s: Forge(signature={"iat": FLOAT_NOW - 2.5}),
        "signature.timeNotInteger",
    ),
    (
        "iat in the future",
        lambda s: Forge(signature={"iat": int(time.time()) + 5}),
        "signature.issuedInTheFuture",
    ),
    (
        "expired signature",
        lambda s: Forge(signature={"exp": int(time.time()) - 1}),
        "signature.expired",
    ),
    (
        "signature by a key PDND does not know",
        lambda s: Forge(
            signature_key=load_private_key(other_key()[0]),
            signature_kid=jwk_thumbprint(other_key()[1]),
        ),
        "signature.unknownKid",
    ),
    (
        "signature with the right kid but another key",
        lambda s: Forge(signature_key=load_private_key(other_key()[0])),
        "signature.invalidSignature",
    ),
    (
        "signature iss is another client",
        lambda s: Forge(signature={"iss": str(uuid.uuid4())}),
        "signature.issuer",
    ),
    (
        "no jti",
        lambda s: Forge(signature={"jti": DROP}),
        "signature.missingJti",
    ),
    (
        "missing TrackingEvidence",
        lambda s: Forge(headers={"Agid-JWT-TrackingEvidence": DROP}),
        "audit.missing",
    ),
    (
        "TrackingEvidence without userID",
        lambda s: Forge(audit={"userID": DROP}),
        "audit.missingClaims",
    ),
    (
        "TrackingEvidence with blank userLocation",
        lambda s: Forge(audit={"userLocation": " "}),
        "audit.missingClaims",
    ),
    (
        "TrackingEvidence of another purpose",
        lambda s: Forge(audit={"purposeId": str(uuid.uuid4())}),
        "audit.purpose",
    ),
    (
        "TrackingEvidence with float exp",
        lambda s: Forge(audit={"exp": time.time() + 300.25}),
        "audit.timeNotInteger",
    ),
    (
        "TrackingEvidence aud with -PDND",
        lambda s: Forge(audit={"aud": _pdnd_audience(s)}),
        "audit.audiencePDND",
    ),
    (
        "voucher bound to another TrackingEvidence",
        lambda s: Forge(voucher_digest_of="eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
        "audit.digestBinding",
    ),
]


@pytest.mark.parametrize(("rule", "forge", "check"), RULES, ids=[r[0] for r in RULES])
async def test_each_broken_rule_gets_the_generic_refusal(
    stack: Stack, rule: str, forge: Callable[[Stack], Forge], check: str
) -> None:
    diagnosis = await assert_refused(stack, forge(stack), check)
    assert diagnosis["service"] == "C030"
    assert diagnosis["reason"]


async def test_a_correct_hand_built_request_passes(stack: Stack) -> None:
    status, headers, body = await send(stack, Forge())
    assert status == 200, body
    person = population().active()[0]
    assert body["listaSoggetti"]["datiSoggetto"] == [{"identificativi": {"idANPR": person.id_anpr}}]
    diagnosis = await stack.diagnosis(headers["GovWay-Transaction-ID"])
    assert diagnosis["outcome"] == "ok"
    assert diagnosis["user_id"] == "op-17"


async def test_expired_voucher_is_401_token_expired(stack: Stack) -> None:
    past = int(time.time()) - 1000
    forge = Forge(voucher={"iat": past, "nbf": past, "exp": past + 600})
    status, headers, body = await send(stack, forge)
    assert status == 401
    assert body["title"] == "TokenExpired"
    assert body["type"] == "https://govway.org/handling-errors/401/TokenExpired.html"
    assert headers["GovWay-Transaction-ErrorType"] == "TokenExpired"
    assert "invalid_token" in headers["WWW-Authenticate"]
    assert (await stack.diagnosis(body["govway_id"]))["check"] == "voucher.expired"


async def test_replayed_jti_is_409(stack: Stack) -> None:
    url, headers, body = Forge().build(stack)
    async with stack.session.post(url, data=body, headers=headers) as first:
        assert first.status == 200
    async with stack.session.post(url, data=body, headers=headers) as second:
        assert second.status == 409
        problem = await second.json(content_type=None)
    assert problem["status"] == 409
    assert (await stack.diagnosis(problem["govway_id"]))["check"] == "signature.replay"


async def test_a_refused_request_does_not_burn_its_jti(stack: Stack) -> None:
    """A request refused for another reason can be fixed and sent with the same tokens."""
    url, headers, body = Forge().build(stack)
    broken = {**headers, "Digest": "SHA-256=" + _b64(hashlib.sha256(b"x").digest())}
    async with stack.session.post(url, data=body, headers=broken) as refused:
        assert refused.status == 400
    async with stack.session.post(url, data=body, headers=headers) as fixed:
        assert fixed.status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", DOOR + "/C030-servizioAccertamentoIdUnicoNazionale/v2/anpr-service-e002"),
        ("POST", DOOR + "/C099-servizioInesistente/v1/anpr-service-e002"),
        ("GET", DOOR + "/C030-servizioAccertamentoIdUnicoNazionale/v1/anpr-service-e002"),
        ("POST", "/govway/rest/in/MinInternoPortaANPR/C030-servizioAccertamentoIdUnicoNazionale"),
    ],
)
async def test_unknown_path_is_404_unknown_api_request(
    stack: Stack, method: str, path: str
) -> None:
    async with stack.session.request(method, stack.anpr_url + path) as response:
        assert response.status == 404
        body = await response.json(content_type=None)
    assert body["detail"] == "Unknown API Request"
    assert body["title"] == "NotFound"
    assert response.headers["GovWay-Transaction-ID"] == body["govway_id"]


async def test_status_needs_a_voucher(stack: Stack) -> None:
    url = stack.e002_url("C021").replace("anpr-service-e002", "status")
    async with stack.session.get(url) as response:
        assert response.status == 400
        body = await response.json(content_type=None)
    assert (await stack.diagnosis(body["govway_id"]))["check"] == "voucher.missing"
    client = stack.anpr_client()
    assert await client.status("C021", audit=AUDIT)


# ---------------------------------------------------------------- e-service behaviour


async def test_use_case_must_be_the_service_code(stack: Stack) -> None:
    body = e002_body("C030", population().active()[0], casoUso="C020")
    status, _, answer = await send(stack, Forge(body=body))
    assert status == 400
    (error,) = answer["listaErrori"]
    assert error["codiceErroreAnomalia"] == "EN148"
    assert error["testoErroreAnomalia"].endswith(": C020")


@pytest.mark.parametrize("reason", [DROP, None, "", "   "])
async def test_motivo_richiesta_is_required(stack: Stack, reason: Any) -> None:
    body = e002_body("C030", population().active()[0])
    if reason is DROP:
        del body["datiRichiesta"]["motivoRichiesta"]
    else:
        body["datiRichiesta"]["motivoRichiesta"] = reason
    status, headers, answer = await send(stack, Forge(body=body))
    assert status == 400
    assert headers["Content-Type"].startswith("application/problem+json")
    (error,) = answer["listaErrori"]
    assert error["campoErroreAnomalia"] == "motivoRichiesta"


async def test_search_by_fiscal_code_on_c020_warns_en148(stack: Stack) -> None:
    person = population().active()[2]
    body = e002_body("C020", person)
    body["criteriRicerca"] = {"codiceFiscale": person.fiscal_code}
    status, _, answer = await send(stack, Forge(code="C020", body=body))
    assert status == 200
    assert [a["codiceErroreAnomalia"] for a in answer["listaAnomalie"]] == ["EN148"]
    assert answer["listaAnomalie"][0]["tipoErroreAnomalia"] == "W"


async def test_unknown_subject_is_404_en122(stack: Stack) -> None:
    body = e002_body("C021", population().active()[0])
    body["criteriRicerca"] = {"idANPR": "ZZ00000ZZ"}
    status, headers, answer = await send(stack, Forge(code="C021", body=body))
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert answer["listaErrori"] == [
        {
            "codiceErroreAnomalia": "EN122",
            "testoErroreAnomalia": "Soggetto non registrato in ANPR",
            "tipoErroreAnomalia": "E",
        }
    ]


# --------------------------------------------------------------- responses vs the specs

_SPEC_FILES = {
    "C030": "anprApiC030.openapi.yaml",
    "C003": "anprApiC003.openapi.yaml",
    "C021": "C021-servizioAccertamentoStatoFamiglia.yaml",
    "C001": "C001-servizioNotifica.yaml",
}
# No official file for these: their answers reuse the shape of a published service.
_BORROWED = {"C020": "C001", "C015": "C021", "C029": "C021", "C007": "C003"}


@cache
def _spec(code: str) -> Any:
    from openapi_core import Config, OpenAPI

    # RispostaKO is served as application/problem+json: parse it as JSON.
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_dict(
        yaml.safe_load((SPECS / _SPEC_FILES[code]).read_text("utf-8")), config=config
    )


def _server_path(code: str) -> str:
    doc = yaml.safe_load((SPECS / _SPEC_FILES[code]).read_text("utf-8"))
    return str(doc["servers"][0]["url"]).removeprefix("https://modipa-val.anpr.interno.it")


def validate(code: str, request_body: bytes, status: int, body: Any, content_type: str) -> None:
    from openapi_core.testing import MockRequest, MockResponse

    spec_code = _BORROWED.get(code, code)
    request = MockRequest(
        "https://modipa-val.anpr.interno.it",
        "post",
        _server_path(spec_code) + "/anpr-service-e002",
        data=request_body,
        content_type="application/json",
        headers={"Authorization": "Bearer x", "Agid-JWT-Signature": "x"},
    )
    response = MockResponse(
        json.dumps(body).encode(), status_code=status, content_type=content_type
    )
    _spec(spec_code).validate_response(request, response)


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"official ANPR specs not found at {SPECS}")
@pytest.mark.parametrize("code", CODES)
async def test_gateway_answers_validate_against_the_official_specs(stack: Stack, code: str) -> None:
    person = household_of_size(3)
    body = e002_body(code, person)
    request_bytes = json.dumps(body).encode()
    status, headers, answer = await send(stack, Forge(code=code, body=body))
    assert status == 200, answer
    validate(code, request_bytes, status, answer, headers["Content-Type"].split(";")[0])
    body["criteriRicerca"] = (
        {"idANPR": "ZZ00000ZZ"} if code != "C030" else {"codiceFiscale": "ZZZZZZ00A01H501K"}
    )
    status, headers, answer = await send(stack, Forge(code=code, body=body))
    assert status == 404
    validate(code, json.dumps(body).encode(), 404, answer, "application/problem+json")


# ------------------------------------------------------------------ the hub's client


async def test_the_hub_client_passes_every_rule_and_matches_the_population(stack: Stack) -> None:
    client = stack.anpr_client()
    head = household_of_size(4)
    household = population().household_of(head)
    id_anpr = await client.id_anpr(head.fiscal_code, purpose="PROT.2026/1", audit=AUDIT)
    assert id_anpr == head.id_anpr

    (residence,) = await client.residence(id_anpr, purpose="PROT.2026/1", audit=AUDIT)
    assert residence.address == head.address.line
    assert residence.istat_code == population().comune.istat_code
    assert residence.since == head.residence_since

    family = await client.family(id_anpr, purpose="PROT.2026/1", audit=AUDIT)
    assert [m.person.id_anpr for m in family] == [p.id_anpr for p in household.members]
    assert [m.relationship_code for m in family] == [p.relationship_code for p in household.members]
    assert family[0].is_head and family[0].relationship == "Intestatario Scheda"

    person = await client.personal_data(id_anpr, purpose="PROT.2026/1", audit=AUDIT)
    assert (person.fiscal_code, person.family_name, person.given_name, person.sex) == (
        head.fiscal_code,
        head.family_name,
        head.given_name,
        head.sex,
    )
    assert person.birth_date == head.birth_date
    assert person.birth_place is not None and person.birth_place.name == head.birth_place.name
    assert person == await client.personal_data(
        id_anpr, purpose="PROT.2026/1", audit=AUDIT, service="C029"
    )

    good = DeclaredData(
        fiscal_code=head.fiscal_code,
        family_name=head.family_name,
        given_name=head.given_name,
        sex="M" if head.sex == "M" else "F",
        birth_date=head.birth_date,
    )
    check = await client.verify_declaration(id_anpr, good, purpose="PROT.2026/1", audit=AUDIT)
    assert check.matches and set(check.details) == {
        "codiceFiscale",
        "cognome",
        "nome",
        "sesso",
        "dataNascita",
    }
    wrong = DeclaredData(family_name=head.family_name, given_name=head.given_name + "X")
    check = await client.verify_declaration(id_anpr, wrong, purpose="PROT.2026/1", audit=AUDIT)
    assert not check.matches and check.details == {"cognome": True, "nome": False}

    alive = await client.verify_alive(id_anpr, purpose="PROT.2026/1", audit=AUDIT)
    assert alive.matches and alive.date_of_death is None

    notification = await client.e002(
        "C001", client._by_id(id_anpr), purpose="PROT.2026/1", audit=AUDIT
    )
    assert notification.subjects[0].generalita is not None

    counts = stack.anpr.calls
    assert counts == {"ok": 9}, counts  # nothing refused, nothing replayed


async def test_deceased_person(stack: Stack) -> None:
    dead = people(lambda p: p.date_of_death is not None)[0]
    client = stack.anpr_client()
    alive = await client.verify_alive(dead.id_anpr, purpose="P1", audit=AUDIT)
    assert not alive.matches and alive.details == {"esistenzaInVita": False}
    assert alive.date_of_death == dead.date_of_death
    person = await client.personal_data(dead.id_anpr, purpose="P1", audit=AUDIT)
    assert person.date_of_death == dead.date_of_death
    # The day before the death the person was alive.
    assert dead.date_of_death is not None
    day_before = dead.date_of_death - timedelta(days=1)
    before = await client.verify_alive(
        dead.id_anpr, purpose="P1", audit=AUDIT, reference_date=day_before
    )
    assert before.matches


async def test_foreign_birth_place(stack: Stack) -> None:
    foreign = people(lambda p: p.birth_place.foreign and not p.cancelled)[0]
    person = await stack.anpr_client().personal_data(foreign.id_anpr, purpose="P", audit=AUDIT)
    assert person.birth_place is not None and person.birth_place.foreign
    assert person.birth_place.country_code == foreign.birth_place.country_code


async def test_unknown_fiscal_code_raises_subject_not_found(stack: Stack) -> None:
    client = stack.anpr_client()
    with pytest.raises(SubjectNotFound) as caught:
        await client.id_anpr("RSSMRA85T10A562S", purpose="P", audit=AUDIT)
    error = caught.value
    assert isinstance(error, NotFound) and error.status == 404
    assert error.codes == ["EN122"]
    assert error.request_id and error.attempts == 1
    assert "RSSMRA85T10A562S" not in str(error) and "RSSMRA85T10A562S" not in repr(error)


async def test_cancelled_subject_raises_subject_not_found(stack: Stack) -> None:
    gone = people(lambda p: p.cancelled)[0]
    with pytest.raises(SubjectNotFound) as caught:
        await stack.anpr_client().id_anpr(gone.fiscal_code, purpose="P", audit=AUDIT)
    assert caught.value.errors[0].testoErroreAnomalia == "Soggetto cancellato da ANPR"


async def test_wrong_audience_raises_gateway_rejected_with_govway_id(stack: Stack) -> None:
    """The frequent mistake: the ModI aud keeps -PDND (the call URL cut at /v1)."""
    modi = ModiCaller(
        stack.pdnd_client(),
        audit_required=True,
        audience=lambda url: url.rsplit("/", 1)[0],
    )
    client = stack.anpr_client(modi=modi)
    with pytest.raises(GatewayRejected) as caught:
        await client.id_anpr(population().active()[0].fiscal_code, purpose="P", audit=AUDIT)
    error = caught.value
    assert error.status == 400 and not error.retryable and error.attempts == 1
    assert error.title == "InteroperabilityInvalidRequest"
    assert error.govway_id and error.request_id == error.govway_id
    assert error.govway_id in str(error)
    diagnosis = await stack.diagnosis(error.govway_id)
    assert diagnosis["check"] == "signature.audiencePDND"


async def test_expired_voucher_raises_token_expired_after_fresh_retries(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(clock=lambda: time.time() + 3600)  # the gateway runs an hour late
    client = stack.anpr_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    with pytest.raises(TokenExpired) as caught:
        await client.id_anpr(population().active()[0].fiscal_code, purpose="P", audit=AUDIT)
    assert caught.value.status == 401 and caught.value.attempts == 2
    assert stack.pdnd.vouchers_issued == 2  # each attempt asked PDND for a new voucher


async def test_retry_after_a_gateway_fault_is_signed_again(stack: Stack) -> None:
    async with stack.session.post(
        stack.anpr_url + "/__sandbox/faults", json={"service": "C030", "status": 503, "count": 1}
    ) as response:
        assert response.status == 201
    head = population().active()[0]
    assert await stack.anpr_client().id_anpr(head.fiscal_code, purpose="P", audit=AUDIT) == (
        head.id_anpr
    )
    # The retry passed every check, replay included: new jti, new voucher.
    assert stack.anpr.calls == {"fault": 1, "ok": 1}
    assert stack.pdnd.vouchers_issued == 2


async def test_anpr_500_is_a_retryable_anpr_rejected(stack: Stack) -> None:
    async with stack.session.post(
        stack.anpr_url + "/__sandbox/faults", json={"status": 500, "count": 5}
    ):
        pass
    client = stack.anpr_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    with pytest.raises(AnprRejected) as caught:
        await client.residence(population().active()[0].id_anpr, purpose="P", audit=AUDIT)
    assert caught.value.status == 500 and caught.value.retryable and caught.value.attempts == 2
    assert caught.value.codes == ["SBX99"]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_pdnd_failure_spends_one_retry_budget_not_one_per_anpr_attempt(
    stack: Stack, status: int
) -> None:
    # Issue 12 item 13: PDND retried 4 times inside each of 4 ANPR attempts = 16 token calls.
    async with stack.session.post(
        stack.pdnd_url + "/__sandbox/faults", json={"status": status, "count": 100}
    ) as response:
        assert response.status == 200
    sleeps = Sleeps()  # PDND's 429 asks for long waits: record them instead
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
    pdnd = stack.pdnd_client(retry=policy, sleep=sleeps)
    client = AnprClient(
        stack.session,
        stack.door,
        modi=ModiCaller(pdnd, audit_required=True),
        purposes=stack.purposes,
        retry=policy,
        sleep=sleeps,
    )
    with pytest.raises(UpstreamError) as caught:
        await client.id_anpr(population().active()[0].fiscal_code, purpose="P", audit=AUDIT)
    assert stack.pdnd.token_requests == 4  # PDND's own policy, once
    assert len(sleeps.delays) == 3
    assert stack.anpr.calls == {}  # nothing reached ANPR without a voucher
    error = caught.value
    assert (error.platform, error.status, error.attempts) == ("pdnd", status, 4)
    assert str(error).startswith(f"[pdnd] HTTP {status}")
    assert error.retryable  # the outbox may still try later


async def test_a_pdnd_hiccup_is_still_retried_inside_the_anpr_call(stack: Stack) -> None:
    async with stack.session.post(
        stack.pdnd_url + "/__sandbox/faults", json={"status": 500, "count": 1}
    ):
        pass
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
    client = AnprClient(
        stack.session,
        stack.door,
        modi=ModiCaller(stack.pdnd_client(retry=policy, sleep=sleeps), audit_required=True),
        purposes=stack.purposes,
        retry=policy,
        sleep=sleeps,
    )
    head = population().active()[0]
    assert await client.id_anpr(head.fiscal_code, purpose="P", audit=AUDIT) == head.id_anpr
    assert stack.pdnd.token_requests == 2 and stack.anpr.calls == {"ok": 1}


async def test_rate_limit_is_429_with_retry_after(make_stack: StackFactory) -> None:
    stack = await make_stack(rate_limit=(2, 60.0))
    client = stack.anpr_client(retry=RetryPolicy(max_attempts=1))
    head = population().active()[0]
    for _ in range(2):
        await client.id_anpr(head.fiscal_code, purpose="P", audit=AUDIT)
    with pytest.raises(RateLimited) as caught:
        await client.id_anpr(head.fiscal_code, purpose="P", audit=AUDIT)
    assert caught.value.status == 429 and caught.value.retry_after is not None
    assert 1 <= caught.value.retry_after <= 60


async def test_missing_purpose_fails_before_sending(stack: Stack) -> None:
    client = stack.anpr_client(purposes={"C030": stack.purposes["C030"]})
    with pytest.raises(AnprError, match="no PDND purposeId configured for C020"):
        await client.residence("AB12345CD", purpose="P", audit=AUDIT)
    with pytest.raises(ValueError):
        await client.id_anpr("RSSMRA85T10A562S", purpose="  ", audit=AUDIT)
    with pytest.raises(ValueError):
        await client.id_anpr("not a code", purpose="P", audit=AUDIT)
    assert stack.anpr.calls == {} and stack.pdnd.token_requests == 0


# ------------------------------------------------------------------ sandbox-only routes


async def test_sandbox_routes(stack: Stack) -> None:
    get = stack.session.get
    async with get(stack.anpr_url + "/__sandbox/population?limit=3&offset=1&active=1") as r:
        page = await r.json()
    assert page["total"] == len(population().active())
    assert [p["idANPR"] for p in page["people"]] == [p.id_anpr for p in population().active()[1:4]]
    async with get(stack.anpr_url + "/__sandbox/diagnostics/nope") as r:
        assert r.status == 404
    for bad in ({"status": 418}, {"service": "C999"}, {"count": 0}, []):
        async with stack.session.post(stack.anpr_url + "/__sandbox/faults", json=bad) as r:
            assert r.status == 400, bad
    async with stack.session.delete(stack.anpr_url + "/__sandbox/faults") as r:
        assert (await r.json()) == {"pending": []}
    async with get(stack.anpr_url + "/status") as r:
        status = await r.json()
    assert status["platform"] == "anpr"
    async with get(stack.anpr_url + "/__sandbox/diagnostics?limit=5") as r:
        assert (await r.json())["counts"] == {}


async def test_zero_argument_factory_uses_the_demo_pdnd_sandbox() -> None:
    app = create_app()
    front_door = app[ANPR_STATE].front_door
    assert front_door.voucher_key == "http://127.0.0.1:8104/.well-known/jwks.json"
    assert front_door.client_keys == "http://127.0.0.1:8104/keys"
    assert len(app[ANPR_STATE].population) == 1200
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert DOOR + "/C020-servizioAccertamentoResidenza/v1/anpr-service-e002" in paths


async def test_no_personal_data_in_the_logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    head = household_of_size(3)
    members = population().household_of(head).members
    client = stack.anpr_client()
    with caplog.at_level(logging.DEBUG):
        id_anpr = await client.id_anpr(head.fiscal_code, purpose="PROT.9", audit=AUDIT)
        await client.family(id_anpr, purpose="PROT.9", audit=AUDIT)
        await client.residence(id_anpr, purpose="PROT.9", audit=AUDIT)
        with pytest.raises(SubjectNotFound):
            await client.id_anpr("RSSMRA85T10A562S", purpose="PROT.9", audit=AUDIT)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "anpr" in text  # something was logged
    secrets = ["RSSMRA85T10A562S", head.address.street_name]
    for member in members:
        secrets += [member.fiscal_code, member.id_anpr, member.family_name, member.given_name]
    for secret in secrets:
        assert secret not in text, secret

"""PDND keys, client assertion and ModI JWTs, without any network."""

from __future__ import annotations

import base64
import hashlib
import uuid
from functools import lru_cache

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sportello.connectors.errors import BadRequest, ConnectorError
from sportello.connectors.pdnd.assertion import build_client_assertion
from sportello.connectors.pdnd.client import Voucher, rate_limit_wait
from sportello.connectors.pdnd.environments import COLLAUDO, assertion_audience_for
from sportello.connectors.pdnd.errors import InvalidKeyError, VoucherRefused
from sportello.connectors.pdnd.keys import (
    generate_key,
    jwk_public_key,
    jwk_thumbprint,
    kid_for_private_key,
    load_public_key,
    public_jwk,
    public_key_for_upload,
    public_pem_from_upload,
)
from sportello.connectors.pdnd.modi import (
    AuditContext,
    digest_header,
    integrity_signature,
    modi_audience,
    sha256_hex,
    tracking_evidence,
)

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
    "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
    "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

ANPR_CALL = (
    "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND/"
    "C030-servizioAccertamentoIdUnicoNazionale/v1/anpr-service-e002"
)
ANPR_AUD = (
    "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR/"
    "C030-servizioAccertamentoIdUnicoNazionale/v1"
)
CLIENT = "9b361d49-33f4-4f1e-a88b-4e12661f2309"
PURPOSE = "1b361d49-33f4-4f1e-a88b-4e12661f2300"
NOW = 1_767_225_600


@lru_cache(maxsize=1)
def keypair() -> tuple[bytes, bytes]:
    return generate_key()


def small_public_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- keys --------------------------------------------------------------------------------


def test_thumbprint_of_the_rfc7638_example() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    # The same key given as a key object gives the same kid.
    assert jwk_thumbprint(jwk_public_key(RFC7638_JWK)) == RFC7638_THUMBPRINT


def test_thumbprint_of_a_generated_key_is_a_43_char_kid() -> None:
    private_pem, public_pem = keypair()
    kid = jwk_thumbprint(public_pem)
    assert len(kid) == 43 and "=" not in kid
    assert kid == jwk_thumbprint(public_jwk(public_pem)) == kid_for_private_key(private_pem)
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_keys_shorter_than_2048_bits_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        generate_key(1024)
    with pytest.raises(InvalidKeyError, match="2048"):
        load_public_key(small_public_pem())
    with pytest.raises(InvalidKeyError):
        public_key_for_upload(small_public_pem())


def test_upload_form_is_base64_of_the_pem_and_refuses_private_keys() -> None:
    private_pem, public_pem = keypair()
    upload = public_key_for_upload(public_pem)
    assert base64.b64decode(upload) == public_pem
    assert public_pem_from_upload(upload) == public_pem
    assert public_pem_from_upload(public_pem) == public_pem
    with pytest.raises(InvalidKeyError, match="private"):
        public_key_for_upload(private_pem)
    with pytest.raises(InvalidKeyError):
        public_pem_from_upload("not a key")


# -- client assertion --------------------------------------------------------------------


def test_client_assertion_has_exactly_the_allowed_header_and_claims() -> None:
    private_pem, public_pem = keypair()
    kid = jwk_thumbprint(public_pem)
    token = build_client_assertion(
        client_id=CLIENT,
        kid=kid,
        private_key_pem=private_pem,
        audience=COLLAUDO.assertion_audience,
        purpose_id=PURPOSE,
        digest_hex=None,
        now=NOW,
    )
    assert jwt.get_unverified_header(token) == {"kid": kid, "alg": "RS256", "typ": "JWT"}
    claims = jwt.decode(
        token,
        load_public_key(public_pem),
        algorithms=["RS256"],
        audience="auth.uat.interop.pagopa.it/client-assertion",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert set(claims) == {"iss", "sub", "aud", "jti", "iat", "exp", "purposeId"}
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["purposeId"] == PURPOSE
    assert claims["iat"] == NOW and claims["exp"] == NOW + 600
    assert type(claims["iat"]) is int and type(claims["exp"]) is int
    assert uuid.UUID(claims["jti"]).version == 4


def test_client_assertion_with_digest_and_integer_times() -> None:
    private_pem, public_pem = keypair()
    digest = sha256_hex("some tracking evidence")
    token = build_client_assertion(
        client_id=CLIENT,
        kid=jwk_thumbprint(public_pem),
        private_key_pem=private_pem,
        audience="aud",
        purpose_id=PURPOSE,
        digest_hex=digest,
        now=NOW + 0.9,  # type: ignore[arg-type]  # a float clock must still give integers
        lifetime=120,
        jti="fixed",
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["digest"] == {"alg": "SHA256", "value": digest}
    assert claims["iat"] == NOW and claims["exp"] == NOW + 120 and claims["jti"] == "fixed"
    assert b"." not in str(claims["iat"]).encode()


@pytest.mark.parametrize(
    "change",
    [{"digest_hex": "abc"}, {"digest_hex": "g" * 64}, {"kid": "short"}, {"purpose_id": ""}],
)
def test_client_assertion_refuses_bad_input(change: dict[str, str]) -> None:
    private_pem, public_pem = keypair()
    args = {
        "client_id": CLIENT,
        "kid": jwk_thumbprint(public_pem),
        "private_key_pem": private_pem,
        "audience": "aud",
        "purpose_id": PURPOSE,
        "digest_hex": None,
        "now": NOW,
    } | change
    with pytest.raises(ValueError):
        build_client_assertion(**args)  # type: ignore[arg-type]


# -- ModI --------------------------------------------------------------------------------


def test_modi_audience_follows_the_anpr_rule() -> None:
    assert modi_audience(ANPR_CALL) == ANPR_AUD
    assert modi_audience(ANPR_CALL + "?x=1#f") == ANPR_AUD
    assert modi_audience(ANPR_AUD) == ANPR_AUD
    assert modi_audience("http://127.0.0.1:8005/rest/Porta-PDND/C021-x/v2/status") == (
        "http://127.0.0.1:8005/rest/Porta/C021-x/v2"
    )
    with pytest.raises(ValueError, match="/vN"):
        modi_audience("https://host/no/version/here")
    with pytest.raises(ValueError):
        modi_audience("/relative/v1/path")


def test_digest_header() -> None:
    assert digest_header(b"") == "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    body = b'{"idOperazioneClient":"1"}'
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert digest_header(body) == f"SHA-256={expected}"


def test_integrity_signature_claims_and_signed_headers_array() -> None:
    private_pem, public_pem = keypair()
    kid = jwk_thumbprint(public_pem)
    digest = digest_header(b"{}")
    token = integrity_signature(
        client_id=CLIENT,
        kid=kid,
        private_key=private_pem,
        audience=ANPR_AUD,
        digest=digest,
        content_type="application/json",
        now=NOW + 0.7,
    )
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims = jwt.decode(
        token,
        load_public_key(public_pem),
        algorithms=["RS256"],
        audience=ANPR_AUD,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert set(claims) == {"iss", "sub", "aud", "jti", "iat", "nbf", "exp", "signed_headers"}
    assert claims["signed_headers"] == [{"digest": digest}, {"content-type": "application/json"}]
    assert claims["iss"] == claims["sub"] == CLIENT
    # Back-dated by the default 3 s skew; integers only.
    assert claims["iat"] == claims["nbf"] == NOW - 3 and claims["exp"] == NOW + 300
    assert all(type(claims[k]) is int for k in ("iat", "nbf", "exp"))
    without_ct = integrity_signature(
        client_id=CLIENT,
        kid=kid,
        private_key=private_pem,
        audience=ANPR_AUD,
        digest=digest,
        content_type=None,
        now=NOW,
        skew=10,
    )
    claims = jwt.decode(without_ct, options={"verify_signature": False})
    assert claims["signed_headers"] == [{"digest": digest}] and claims["iat"] == NOW - 10


def test_tracking_evidence_claims_and_digest_binding() -> None:
    private_pem, public_pem = keypair()
    kid = jwk_thumbprint(public_pem)
    audit = AuditContext(user_id="op-17", user_location="anagrafe-pc3", loa="LoA3")
    token = tracking_evidence(
        client_id=CLIENT,
        kid=kid,
        private_key=private_pem,
        audience=ANPR_AUD,
        purpose_id=PURPOSE,
        audit=audit,
        now=NOW,
    )
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "aud",
        "purposeId",
        "jti",
        "iat",
        "nbf",
        "exp",
        "userID",
        "userLocation",
        "LoA",
    }
    assert (claims["userID"], claims["userLocation"], claims["LoA"]) == (
        "op-17",
        "anagrafe-pc3",
        "LoA3",
    )
    assert claims["aud"] == ANPR_AUD and claims["purposeId"] == PURPOSE
    assert sha256_hex(token) == hashlib.sha256(token.encode("ascii")).hexdigest()
    with pytest.raises(ValueError):
        AuditContext(user_id="", user_location="x", loa="LoA3")


# -- client helpers ----------------------------------------------------------------------


def test_rate_limit_wait_from_pdnd_headers() -> None:
    headers = {"X-Rate-Limit-Limit": "2", "X-Rate-Limit-Interval": "60000"}
    assert rate_limit_wait(headers) == 30.0
    assert rate_limit_wait({**headers, "Retry-After": "7"}) == 7.0
    assert rate_limit_wait({}) is None


def test_voucher_repr_hides_the_token_and_errors_subclass_the_base_tree() -> None:
    voucher = Voucher(token="secret.token.value", expires_at=10.0, purpose_id="p", expires_in=600)
    assert "secret" not in repr(voucher)
    assert voucher.is_fresh(5.0) and not voucher.is_fresh(5.0, margin=6.0)
    refused = VoucherRefused("refused", platform="pdnd", request_id="corr-1")
    assert isinstance(refused, BadRequest) and isinstance(refused, ConnectorError)
    assert not refused.retryable and refused.status == 400
    assert refused.correlation_id == "corr-1" and "corr-1" in str(refused)


def test_assertion_audience_rule_of_the_real_environments() -> None:
    assert assertion_audience_for(COLLAUDO.token_url) == COLLAUDO.assertion_audience
    assert assertion_audience_for("https://auth.interop.pagopa.it/token.oauth2") == (
        "auth.interop.pagopa.it/client-assertion"
    )

"""The PDND twin handles keys with its own code (issue 13): checked here from RFC 7638 and
PDND's upload rules, and compared with the connector's ``keys`` module on many keys and
malformed inputs, so a bug in either (a wrong ``kid``, a key accepted by one side only)
shows as a disagreement instead of being shared."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sportello.connectors.pdnd import environments as connector_env
from sportello.connectors.pdnd import keys as connector
from sportello.connectors.pdnd.errors import InvalidKeyError as ConnectorKeyError
from sportello.sandbox.pdnd import hosts
from sportello.sandbox.pdnd import keys as twin

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


@cache
def _rsa(bits: int, n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _pem(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, form: serialization.PublicFormat
) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, form)


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twin")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _uploads() -> list[Any]:
    """Public-key uploads of every kind PDND sees: good ones and ones it refuses."""
    spki, pkcs1 = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1
    items: list[Any] = []
    for n, bits in enumerate([2048, 2048, 3072, 2048, 1024]):
        private = _rsa(bits, n)
        public = private.public_key()
        for pem in (_pem(public, spki), _pem(public, pkcs1)):
            items += [pem, pem.decode(), base64.b64encode(pem), base64.b64encode(pem).decode()]
            items += [pem.strip(), b"  " + pem + b"\n\n", pem + pem, pem[:-40], pem[40:]]
        items.append(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    items.append(_certificate(_rsa(2048, 0)))
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    items.append(_pem(ec_key, spki))
    items += [b"", "", "not a key", b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"]
    items += ["Y2lhbw==", "-----BEGIN PUBLIC KEY-----\nèè\n-----END PUBLIC KEY-----\n"]
    return items


def _outcome(fn: Callable[[Any], Any], value: Any) -> Any:
    """What ``fn`` makes of ``value``: the key's numbers, the result, or ``"refused"``
    (any ``ValueError``: both sides' ``InvalidKeyError`` are one)."""
    try:
        result = fn(value)
    except ValueError:
        return "refused"
    if isinstance(result, rsa.RSAPublicKey):
        return result.public_numbers()
    return result


def _wrong_errors(fn: Callable[[Any], Any], error: type[Exception], values: list[Any]) -> list[str]:
    """The inputs ``fn`` refuses with something other than ``error`` (a handler that
    catches only ``error`` would answer them with a 500)."""
    wrong = []
    for value in values:
        try:
            fn(value)
        except error:
            pass
        except Exception as exc:
            wrong.append(f"{value!r:.60}: {type(exc).__name__}")
    return wrong


UPLOAD_FUNCTIONS = ["load_public_key", "public_pem_from_upload", "jwk_thumbprint"]


@pytest.mark.parametrize("name", UPLOAD_FUNCTIONS)
def test_uploads_twin_and_connector_agree(name: str) -> None:
    ours, theirs = getattr(twin, name), getattr(connector, name)
    uploads = _uploads()
    pairs = [(v, _outcome(ours, v), _outcome(theirs, v)) for v in uploads]
    assert {a == "refused" for _, a, _ in pairs} == {True, False}  # both outcomes exercised
    disagreements = [f"{v!r:.80}: twin {a}, connector {b}" for v, a, b in pairs if a != b]
    assert disagreements == []
    assert _wrong_errors(ours, twin.InvalidKeyError, uploads) == []


def _jwks() -> list[Any]:
    rng = random.Random(13)
    items: list[Any] = [RFC7638_JWK, {**RFC7638_JWK, "kty": "EC"}, {"kty": "RSA"}, {}]
    for n, bits in enumerate([2048, 2048, 3072, 2048, 1024]):
        jwk = connector.public_jwk(_rsa(bits, n).public_key())
        items += [jwk, {**jwk, "kid": "x", "use": "sig"}, {k: jwk[k] for k in ("kty", "n")}]
        items += [{**jwk, "n": jwk["n"] + "!"}, {**jwk, "e": ""}, {**jwk, "n": 7}]
        cut = rng.randint(1, len(jwk["n"]) - 1)
        items.append({**jwk, "n": jwk["n"][:cut]})
    return items


JWK_FUNCTIONS = ["jwk_public_key", "jwk_thumbprint"]


@pytest.mark.parametrize("name", JWK_FUNCTIONS)
def test_jwks_twin_and_connector_agree(name: str) -> None:
    ours, theirs = getattr(twin, name), getattr(connector, name)
    jwks = _jwks()
    pairs = [(jwk, _outcome(ours, jwk), _outcome(theirs, jwk)) for jwk in jwks]
    assert {a == "refused" for _, a, _ in pairs} == {True, False}
    disagreements = [f"{v!r:.80}: twin {a}, connector {b}" for v, a, b in pairs if a != b]
    assert disagreements == []
    assert _wrong_errors(ours, twin.InvalidKeyError, jwks) == []


def test_connector_refuses_only_with_invalid_key_error() -> None:
    wrong = [
        *(
            w
            for name in UPLOAD_FUNCTIONS
            for w in _wrong_errors(getattr(connector, name), ConnectorKeyError, _uploads())
        ),
        *(
            w
            for name in JWK_FUNCTIONS
            for w in _wrong_errors(getattr(connector, name), ConnectorKeyError, _jwks())
        ),
    ]
    assert wrong == []


def test_rfc7638_thumbprint_and_public_jwk() -> None:
    assert twin.jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    key = twin.jwk_public_key(RFC7638_JWK)
    assert twin.public_jwk(key) == {k: RFC7638_JWK[k] for k in ("kty", "n", "e")}
    assert twin.jwk_thumbprint(key) == RFC7638_THUMBPRINT
    for n in range(3):
        public = _rsa(2048, n).public_key()
        assert twin.public_jwk(public) == connector.public_jwk(public)
        assert len(twin.jwk_thumbprint(public)) == 43


def test_jwk_private_members_are_never_used() -> None:
    private = _rsa(2048, 0)
    numbers = private.private_numbers()
    jwk = {**connector.public_jwk(private.public_key()), "d": connector.b64url_uint(numbers.d)}
    assert isinstance(twin.jwk_public_key(jwk), rsa.RSAPublicKey)


def test_twin_refuses_what_pdnd_refuses() -> None:
    with pytest.raises(twin.InvalidKeyError, match="2048"):
        twin.generate_key(1024)
    private_pem, public_pem = twin.generate_key()
    with pytest.raises(twin.InvalidKeyError, match="private"):
        twin.load_public_key(private_pem)
    with pytest.raises(twin.InvalidKeyError, match="certificate"):
        twin.load_public_key(_certificate(_rsa(2048, 0)))
    assert twin.load_private_key(private_pem).public_key().public_numbers() == (
        twin.load_public_key(public_pem).public_numbers()
    )
    assert twin.jwk_thumbprint(public_pem) == connector.kid_for_private_key(private_pem)


def test_twin_hosts_are_the_connector_sandbox_environment() -> None:
    """The connector's sandbox environment points at the twin (same names, not shared)."""
    assert hosts.SANDBOX_ISSUER == connector_env.SANDBOX_ISSUER
    assert hosts.SANDBOX_ASSERTION_AUDIENCE == connector_env.SANDBOX_ASSERTION_AUDIENCE

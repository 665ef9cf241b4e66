"""SPID SP certificates: the subject, extensions and policies Avviso 29 v3 asks for."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sportello.connectors.spid.errors import SamlConfigError
from sportello.connectors.spid.keys import (
    OID_AGID_CERT,
    OID_ORGANIZATION_IDENTIFIER,
    OID_SPID_PRIVATE_SP,
    OID_SPID_PUBLIC_SP,
    OID_URI,
    cert_b64,
    certificate_problems,
    make_sp_certificate,
)

ENTITY_ID = "http://localhost:8000/t/comune-demo/spid/metadata"


@lru_cache(maxsize=4)
def public_pair() -> tuple[bytes, bytes]:
    return make_sp_certificate(
        entity_id=ENTITY_ID,
        organization_name="Comune di Prova",
        common_name="Comune di Prova",
        locality="Roma",
        ipa_code="c_h501",
        key_size=2048,
    )


def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def test_public_certificate_has_the_spid_profile() -> None:
    key_pem, cert_pem = public_pair()
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert _subject(cert, OID_URI) == [ENTITY_ID]
    assert _subject(cert, OID_ORGANIZATION_IDENTIFIER) == ["PA:IT-c_h501"]
    assert _subject(cert, NameOID.COUNTRY_NAME) == ["IT"]
    assert _subject(cert, NameOID.LOCALITY_NAME) == ["Roma"]
    assert _subject(cert, NameOID.ORGANIZATION_NAME) == ["Comune di Prova"]
    assert cert.issuer == cert.subject
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)

    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert not bc.critical and bc.value.ca is False
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    oids = {p.policy_identifier for p in policies}
    assert {OID_AGID_CERT, OID_SPID_PUBLIC_SP} <= oids
    assert certificate_problems(cert_pem, ENTITY_ID, private=False) == []


def test_default_key_size_is_3072() -> None:
    key_pem, cert_pem = make_sp_certificate(
        entity_id=ENTITY_ID,
        organization_name="Comune di Prova",
        common_name="Comune di Prova",
        locality="Roma",
        ipa_code="c_h501",
    )
    assert x509.load_pem_x509_certificate(cert_pem).public_key().key_size == 3072  # type: ignore[union-attr]
    assert b"PRIVATE KEY" in key_pem


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"vat_number": "IT12345678901"}, "VATIT-12345678901"),
        ({"vat_number": "12345678901"}, "VATIT-12345678901"),
        ({"fiscal_code": "rssmra80a01h501u"}, "CF:IT-RSSMRA80A01H501U"),
    ],
)
def test_private_organization_identifier(kwargs: dict[str, str], expected: str) -> None:
    _, cert_pem = make_sp_certificate(
        entity_id=ENTITY_ID,
        organization_name="Prova Srl",
        common_name="Prova Srl",
        locality="Milano",
        private=True,
        key_size=2048,
        **kwargs,
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert _subject(cert, OID_ORGANIZATION_IDENTIFIER) == [expected]
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert OID_SPID_PRIVATE_SP in {p.policy_identifier for p in policies}
    assert certificate_problems(cert_pem, ENTITY_ID, private=True) == []
    # the wrong sector is reported
    assert certificate_problems(cert_pem, ENTITY_ID, private=False)


def test_missing_identifiers_are_config_errors() -> None:
    common = {
        "entity_id": ENTITY_ID,
        "organization_name": "X",
        "common_name": "X",
        "locality": "Roma",
        "key_size": 2048,
    }
    with pytest.raises(SamlConfigError):
        make_sp_certificate(**common)  # type: ignore[arg-type]
    with pytest.raises(SamlConfigError):
        make_sp_certificate(private=True, **common)  # type: ignore[arg-type]
    with pytest.raises(SamlConfigError):
        make_sp_certificate(**{**common, "key_size": 1024, "ipa_code": "x"})  # type: ignore[arg-type]


def test_problems_uri_mismatch_and_expiry() -> None:
    _, cert_pem = public_pair()
    problems = certificate_problems(cert_pem, "http://other.example/metadata")
    assert any("uri" in p for p in problems)
    later = datetime.now(UTC) + timedelta(days=800)
    assert any("expired" in p for p in certificate_problems(cert_pem, ENTITY_ID, now=later))
    soon = certificate_problems(cert_pem, ENTITY_ID, min_days_left=1000)
    assert any("expires" in p for p in soon)
    assert certificate_problems(b"not a cert", ENTITY_ID)


def test_problems_small_key_and_plain_certificate() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=10))
        .sign(key, hashes.SHA256())
    )
    problems = certificate_problems(cert.public_bytes(serialization.Encoding.PEM), ENTITY_ID)
    text = "\n".join(problems)
    assert "< 2048" in text
    assert "uri" in text
    assert "keyUsage is missing" in text
    assert "certificatePolicies is missing" in text


def test_cert_b64_is_the_der() -> None:
    _, cert_pem = public_pair()
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(cert_b64(cert_pem)) == der
    assert "\n" not in cert_b64(cert_pem)

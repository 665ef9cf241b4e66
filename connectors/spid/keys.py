"""SP keys and certificates as SPID wants them (Avviso 29 v3, Avviso 28, Avviso 23 v2).

A SPID SP certificate is self-signed (public SPs may self-sign, Avviso 28) and carries a
specific subject (``uri`` = entityID, ``organizationIdentifier``), a critical ``keyUsage``
with nonRepudiation + digitalSignature only, ``basicConstraints CA:FALSE`` and the AgID
certificate policies. ``cryptography`` builds it; the SPID profile values are ours.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .errors import SamlConfigError

OID_URI = ObjectIdentifier("2.5.4.83")
OID_ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")
OID_AGID_CERT = ObjectIdentifier("1.3.76.16.6")  # agIDcert
OID_SPID_PUBLIC_SP = ObjectIdentifier("1.3.76.16.4.2.1")  # cert_SP_Pub
OID_SPID_PRIVATE_SP = ObjectIdentifier("1.3.76.16.4.3.1")  # cert_SP_Priv

ALLOWED_RSA_SIZES = (2048, 3072, 4096)
PUBLIC_ORG_ID = re.compile(r"^PA:IT-\S{1,16}$")
PRIVATE_ORG_ID = re.compile(r"^(CF:IT-[a-zA-Z0-9]{16}|VATIT-\d{11})$")
_WEAK_HASHES = ("md5", "sha1", "sha224")


def organization_identifier(
    *,
    ipa_code: str | None = None,
    vat_number: str | None = None,
    fiscal_code: str | None = None,
    private: bool = False,
) -> str:
    """The ``organizationIdentifier`` value: ``PA:IT-<ipa>``, ``VATIT-<vat>`` or ``CF:IT-<cf>``."""
    if not private:
        if not ipa_code:
            raise SamlConfigError("a public SP certificate needs the IPA code")
        return f"PA:IT-{ipa_code}"
    if vat_number:
        digits = vat_number.upper().removeprefix("IT")
        return f"VATIT-{digits}"
    if fiscal_code:
        return f"CF:IT-{fiscal_code.upper()}"
    raise SamlConfigError("a private SP certificate needs a VAT number or a fiscal code")


def make_sp_certificate(
    *,
    entity_id: str,
    organization_name: str,
    common_name: str,
    locality: str,
    ipa_code: str | None = None,
    vat_number: str | None = None,
    fiscal_code: str | None = None,
    private: bool = False,
    days: int = 730,
    key_size: int = 3072,
) -> tuple[bytes, bytes]:
    """Generate an RSA key and a self-signed SPID SP certificate.

    Returns ``(key_pem, cert_pem)``; the key is unencrypted PKCS#8 (store it as a secret).
    """
    if key_size not in ALLOWED_RSA_SIZES:
        raise SamlConfigError(f"RSA key size must be one of {ALLOWED_RSA_SIZES}")
    org_id = organization_identifier(
        ipa_code=ipa_code, vat_number=vat_number, fiscal_code=fiscal_code, private=private
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization_name),
            x509.NameAttribute(OID_URI, entity_id),
            x509.NameAttribute(OID_ORGANIZATION_IDENTIFIER, org_id),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, locality),
        ]
    )
    sector_oid, sector_text = (
        (OID_SPID_PRIVATE_SP, "cert_SP_Priv") if private else (OID_SPID_PUBLIC_SP, "cert_SP_Pub")
    )
    policies = x509.CertificatePolicies(
        [
            x509.PolicyInformation(OID_AGID_CERT, [x509.UserNotice(None, "agIDcert")]),
            x509.PolicyInformation(sector_oid, [x509.UserNotice(None, sector_text)]),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(policies, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(cert_pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate, raising :class:`SamlConfigError` when it is not one."""
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise SamlConfigError(f"not a PEM certificate: {exc}") from exc


def cert_b64(cert_pem: bytes) -> str:
    """Base64 of the DER certificate, as ``ds:X509Certificate`` carries it."""
    der = load_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode("ascii")


def _subject_values(cert: x509.Certificate, oid: ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def certificate_problems(
    cert_pem: bytes,
    entity_id: str,
    *,
    private: bool | None = None,
    now: datetime | None = None,
    min_days_left: int = 0,
) -> list[str]:
    """Config-time checks of an SP certificate; an empty list means it can be published.

    ``private`` (when given) also checks the sector: organizationIdentifier pattern and
    policy OID. ``min_days_left`` flags certificates about to expire (rotation reminder).
    """
    try:
        cert = load_certificate(cert_pem)
    except SamlConfigError as exc:
        return [str(exc)]
    problems: list[str] = []
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        problems.append(f"certificate expired on {cert.not_valid_after_utc.isoformat()}")
    elif cert.not_valid_after_utc <= now + timedelta(days=min_days_left):
        problems.append(f"certificate expires on {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > now:
        problems.append("certificate is not valid yet")
    pub = cert.public_key()
    if not isinstance(pub, rsa.RSAPublicKey):
        problems.append("key is not RSA")
    elif pub.key_size < 2048:
        problems.append(f"RSA key is {pub.key_size} bits (< 2048)")
    elif pub.key_size not in ALLOWED_RSA_SIZES:
        problems.append(f"RSA key size {pub.key_size} is not one of {ALLOWED_RSA_SIZES}")
    algo = cert.signature_hash_algorithm
    if algo is None or algo.name in _WEAK_HASHES:
        problems.append("certificate signature uses a weak or unknown digest")
    uris = _subject_values(cert, OID_URI)
    if uris != [entity_id]:
        problems.append(f"subject uri {uris!r} does not match entityID {entity_id!r}")
    for oid, label in (
        (NameOID.COMMON_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, "O"),
        (NameOID.COUNTRY_NAME, "C"),
        (NameOID.LOCALITY_NAME, "L"),
        (OID_ORGANIZATION_IDENTIFIER, "organizationIdentifier"),
    ):
        if not _subject_values(cert, oid):
            problems.append(f"subject has no {label}")
    org_ids = _subject_values(cert, OID_ORGANIZATION_IDENTIFIER)
    if private is not None and org_ids:
        pattern = PRIVATE_ORG_ID if private else PUBLIC_ORG_ID
        if not pattern.match(org_ids[0]):
            problems.append(
                f"organizationIdentifier {org_ids[0]!r} does not match {pattern.pattern}"
            )
    problems.extend(_extension_problems(cert, private))
    return problems


def _extension_problems(cert: x509.Certificate, private: bool | None) -> list[str]:
    problems: list[str] = []
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        if bc.value.ca:
            problems.append("basicConstraints says CA:TRUE")
    except x509.ExtensionNotFound:
        problems.append("basicConstraints is missing")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        if not (ku.critical and ku.value.digital_signature and ku.value.content_commitment):
            problems.append("keyUsage must be critical with digitalSignature + nonRepudiation")
    except x509.ExtensionNotFound:
        problems.append("keyUsage is missing")
    try:
        cp = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
        oids = {p.policy_identifier for p in cp.value}
        wanted = [OID_AGID_CERT]
        if private is not None:
            wanted.append(OID_SPID_PRIVATE_SP if private else OID_SPID_PUBLIC_SP)
        for oid in wanted:
            if oid not in oids:
                problems.append(f"certificate policy {oid.dotted_string} is missing")
    except x509.ExtensionNotFound:
        problems.append("certificatePolicies is missing")
    return problems

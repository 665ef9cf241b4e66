"""Test material for the SPID/CIE service provider: keys, settings and a Response forge.

``make_response`` builds a correct, signed SPID Response; its knobs break one thing at a
time: ``mutate`` edits the tree before signing (the IdP "means" it), ``tamper`` edits the
serialized XML after signing (an attacker did it).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from sportello.connectors.spid.models import (
    Contact,
    IdpInfo,
    Organization,
    PendingRequest,
    SpSettings,
)
from sportello.connectors.spid.xmlsign import sign_enveloped

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

IDP_ENTITY_ID = "https://idp.example.it"
SP_ENTITY_ID = "https://sportello.example.it/t/comune-demo/spid/metadata"
ACS_URL = "https://sportello.example.it/t/comune-demo/spid/acs"
SLO_URL = "https://sportello.example.it/t/comune-demo/spid/slo"

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    cert_pem: bytes


@lru_cache(maxsize=8)
def keypair(cn: str = "test") -> KeyPair:
    """An RSA-2048 key and a self-signed certificate (cached per CN)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def idp_keys() -> KeyPair:
    return keypair("idp")


def sp_keys() -> KeyPair:
    return keypair("sp")


def attacker_keys() -> KeyPair:
    return keypair("attacker")


def sp_settings(**changes: object) -> SpSettings:
    sp = SpSettings(
        kind="spid",
        entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        slo_url=SLO_URL,
        key_pem=sp_keys().key_pem,
        certs=(sp_keys().cert_pem,),
        organization=Organization(
            "Comune di Prova", "Comune di Prova", "https://comune.example.it"
        ),
        contact=Contact(email="protocollo@comune.example.it", ipa_code="c_x000"),
    )
    return replace(sp, **changes)  # type: ignore[arg-type]


def idp_info(**changes: object) -> IdpInfo:
    idp = IdpInfo(
        entity_id=IDP_ENTITY_ID,
        name="Test IdP",
        certs=(idp_keys().cert_pem,),
        sso_redirect=f"{IDP_ENTITY_ID}/sso/redirect",
        sso_post=f"{IDP_ENTITY_ID}/sso/post",
        slo_redirect=f"{IDP_ENTITY_ID}/slo/redirect",
        slo_post=f"{IDP_ENTITY_ID}/slo/post",
    )
    return replace(idp, **changes)  # type: ignore[arg-type]


REQUEST_ID = "_req0123456789abcdef0123456789abcdef"
REQUEST_INSTANT = NOW - timedelta(seconds=30)


def pending(**changes: object) -> PendingRequest:
    p = PendingRequest(
        request_id=REQUEST_ID,
        issue_instant=REQUEST_INSTANT,
        idp_entity_id=IDP_ENTITY_ID,
        level=2,
        comparison="minimum",
    )
    return replace(p, **changes)  # type: ignore[arg-type]


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


DEFAULT_ATTRIBUTES = {
    "name": "Mario",
    "familyName": "Rossi",
    "fiscalNumber": "TINIT-RSSMRA80A01H501U",
    "email": "mario.rossi@example.it",
}


def response_xml(
    *,
    request_id: str = REQUEST_ID,
    issue_instant: datetime = NOW - timedelta(seconds=5),
    level: int = 2,
    attributes: dict[str, str] | None = None,
    status: str = "urn:oasis:names:tc:SAML:2.0:status:Success",
    status_message: str | None = None,
    with_assertion: bool = True,
    session_index: str | None = "_session1",
    response_id: str | None = None,
    assertion_id: str | None = None,
) -> str:
    """The unsigned XML of a correct Response (placeholders for nothing: plain values)."""
    rid = response_id or "_r" + secrets.token_hex(16)
    aid = assertion_id or "_a" + secrets.token_hex(16)
    ii = ts(issue_instant)
    nooa = ts(NOW + timedelta(minutes=5))
    attrs = attributes if attributes is not None else DEFAULT_ATTRIBUTES
    attr_xml = "".join(
        f'<saml:Attribute Name="{k}" '
        'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
        f'<saml:AttributeValue xsi:type="xs:string">{v}</saml:AttributeValue></saml:Attribute>'
        for k, v in attrs.items()
    )
    msg = f"<samlp:StatusMessage>{status_message}</samlp:StatusMessage>" if status_message else ""
    si = f' SessionIndex="{session_index}"' if session_index else ""
    assertion = f"""
  <saml:Assertion ID="{aid}" IssueInstant="{ii}" Version="2.0"
      xmlns:xs="http://www.w3.org/2001/XMLSchema"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <saml:Issuer Format="{ENTITY}">{IDP_ENTITY_ID}</saml:Issuer>
    <saml:Subject>
      <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
          NameQualifier="{IDP_ENTITY_ID}">_nameid0001</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <saml:SubjectConfirmationData InResponseTo="{request_id}" NotOnOrAfter="{nooa}"
            Recipient="{ACS_URL}"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Conditions NotBefore="{ii}" NotOnOrAfter="{nooa}">
      <saml:AudienceRestriction><saml:Audience>{SP_ENTITY_ID}</saml:Audience></saml:AudienceRestriction>
    </saml:Conditions>
    <saml:AuthnStatement AuthnInstant="{ii}"{si}>
      <saml:AuthnContext>
        <saml:AuthnContextClassRef>https://www.spid.gov.it/SpidL{level}</saml:AuthnContextClassRef>
      </saml:AuthnContext>
    </saml:AuthnStatement>
    <saml:AttributeStatement>{attr_xml}</saml:AttributeStatement>
  </saml:Assertion>"""
    body = assertion if with_assertion else ""
    return f"""<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}"
    ID="{rid}" Version="2.0" IssueInstant="{ii}" Destination="{ACS_URL}"
    InResponseTo="{request_id}">
  <saml:Issuer Format="{ENTITY}">{IDP_ENTITY_ID}</saml:Issuer>
  <samlp:Status><samlp:StatusCode Value="{status}"/>{msg}</samlp:Status>{body}
</samlp:Response>"""


def find(root: etree._Element, path: str) -> etree._Element:
    el = root.find(path, NS)
    assert el is not None, path
    return el


def make_response(
    *,
    mutate: Callable[[etree._Element], None] | None = None,
    tamper: Callable[[str], str] | None = None,
    sign_assertion: bool = True,
    sign_response: bool = True,
    keys: KeyPair | None = None,
    signature_alg: str = "rsa-sha256",
    digest_alg: str = "sha256",
    b64: bool = True,
    **xml_kwargs: object,
) -> str:
    """A signed Response; base64 unless ``b64=False``.

    ``signature_alg``/``digest_alg``: ``rsa-sha256``/``rsa-sha1``/``hmac-sha256`` and
    ``sha256``/``sha1`` to forge weak signatures.
    """
    keys = keys or idp_keys()
    root = etree.fromstring(response_xml(**xml_kwargs).encode())  # type: ignore[arg-type]
    if mutate is not None:
        mutate(root)
    assertion = root.find("saml:Assertion", NS)
    if sign_assertion and assertion is not None and assertion.get("ID"):
        _sign(assertion, keys, signature_alg, digest_alg)
    if sign_response and root.get("ID"):  # nothing to reference without an ID
        _sign(root, keys, signature_alg, digest_alg)
    xml = etree.tostring(root, encoding="unicode")
    if tamper is not None:
        xml = tamper(xml)
    return base64.b64encode(xml.encode()).decode() if b64 else xml


_SIG_ALGS = {
    "rsa-sha256": xmlsec.Transform.RSA_SHA256,
    "rsa-sha1": xmlsec.Transform.RSA_SHA1,
    "hmac-sha256": xmlsec.Transform.HMAC_SHA256,
}
_DIGESTS = {"sha256": xmlsec.Transform.SHA256, "sha1": xmlsec.Transform.SHA1}


def _sign(el: etree._Element, keys: KeyPair, sig_alg: str, digest: str) -> None:
    if sig_alg == "rsa-sha256" and digest == "sha256":
        sign_enveloped(el, keys.key_pem, keys.cert_pem)
        return
    signature = xmlsec.template.create(el, xmlsec.Transform.EXCL_C14N, _SIG_ALGS[sig_alg], ns="ds")
    issuer = el.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        el.insert(0, signature)
    ref = xmlsec.template.add_reference(signature, _DIGESTS[digest], uri=f"#{el.get('ID')}")
    xmlsec.template.add_transform(ref, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    ctx = xmlsec.SignatureContext()
    if sig_alg.startswith("hmac"):
        ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, b"shared-secret-0123456789")
    else:
        ctx.key = xmlsec.Key.from_memory(keys.key_pem, xmlsec.KeyFormat.PEM)
    ctx.register_id(el, "ID")
    ctx.sign(signature)

"""The SPID/CIE sandbox IdP over real sockets, driven by a small fixture SP built here.

The fixture SP has its own key and certificate (``cryptography``), pushes minimal metadata to
``/__sandbox/sp-metadata`` (or serves it at its entityID URL) and signs its AuthnRequests and
LogoutRequests independently of the IdP's code: ``cryptography`` for the Redirect query
signature, the shared enveloped signer for HTTP-POST. Schema checks use the official XSDs in
``../shared/specs/spid`` and are skipped when they are missing.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re
import secrets
import shutil
import textwrap
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
import xmlsec
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from yarl import URL

from sportello.connectors.spid.xmlsign import sign_enveloped
from sportello.sandbox.idp.app import create_app, grant_level
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES, fiscal_code_check_char
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "spid"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
NS = {"saml": SAML, "samlp": SAMLP, "md": MD, "ds": DS}
MARIO = "CLLMRA80A01H501C"  # max SpidL3
ANNA = "FTTNNA75C48L219L"  # max SpidL1
COMPANY = "01234567897"


# -- schemas ---------------------------------------------------------------------------------


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SPECS / name), etree.XMLParser(no_network=True)))


def assert_schema_valid(xml: bytes | etree._Element, name: str) -> None:
    if not (SPECS / name).exists():
        pytest.skip(f"{name} not found in {SPECS} (shared/specs is not part of the repo)")
    schema = _schema(name)
    doc = etree.fromstring(xml) if isinstance(xml, bytes) else xml
    assert schema.validate(doc), schema.error_log


# -- the fixture SP --------------------------------------------------------------------------


@functools.cache
def _key_pair(name: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def _b64_cert(pem: bytes) -> str:
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


def _pem(b64: str) -> bytes:
    body = "\n".join(textwrap.wrap("".join(b64.split()), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _deflate(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def _inflate(value: str) -> bytes:
    return zlib.decompress(base64.b64decode(value), -15)


@dataclass
class FixtureSp:
    entity_id: str
    acs_url: str
    slo_url: str
    key_name: str = "fixture-sp"
    slo_binding: str = REDIRECT

    @property
    def key_pem(self) -> bytes:
        return _key_pair(self.key_name)[0]

    @property
    def cert_pem(self) -> bytes:
        return _key_pair(self.key_name)[1]

    def metadata(self) -> bytes:
        return f"""<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{self.entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
      AuthnRequestsSigned="true" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{
            _b64_cert(self.cert_pem)
        }</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="{self.slo_binding}" Location="{self.slo_url}"/>
    <md:NameIDFormat>{TRANSIENT}</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true" Binding="{POST}"
        Location="{self.acs_url}"/>
    <md:AssertionConsumerService index="1" Binding="{POST}" Location="{self.acs_url}/bis"/>
    <md:AttributeConsumingService index="0">
      <md:ServiceName xml:lang="it">Servizi</md:ServiceName>
      <md:RequestedAttribute Name="name"/>
      <md:RequestedAttribute Name="familyName"/>
      <md:RequestedAttribute Name="fiscalNumber"/>
      <md:RequestedAttribute Name="dateOfBirth"/>
      <md:RequestedAttribute Name="email"/>
    </md:AttributeConsumingService>
    <md:AttributeConsumingService index="1">
      <md:ServiceName xml:lang="it">Imprese</md:ServiceName>
      <md:RequestedAttribute Name="companyName"/>
      <md:RequestedAttribute Name="ivaCode"/>
    </md:AttributeConsumingService>
  </md:SPSSODescriptor>
</md:EntityDescriptor>""".encode()

    def authn_request(
        self,
        destination: str,
        *,
        level: int = 2,
        comparison: str = "exact",
        issue_instant: dt.datetime | None = None,
        acs_index: int = 0,
        attribute_index: int = 0,
        version: str = "2.0",
        with_context: bool = True,
    ) -> etree._Element:
        root = etree.Element(f"{{{SAMLP}}}AuthnRequest", nsmap={"samlp": SAMLP, "saml": SAML})
        root.set("ID", _random_id("_req"))
        root.set("Version", version)
        root.set("IssueInstant", _ts(issue_instant or _now()))
        root.set("Destination", destination)
        root.set("ForceAuthn", "true")
        root.set("AssertionConsumerServiceIndex", str(acs_index))
        root.set("AttributeConsumingServiceIndex", str(attribute_index))
        issuer = etree.SubElement(root, f"{{{SAML}}}Issuer")
        issuer.set("Format", ENTITY)
        issuer.set("NameQualifier", self.entity_id)
        issuer.text = self.entity_id
        etree.SubElement(root, f"{{{SAMLP}}}NameIDPolicy").set("Format", TRANSIENT)
        if with_context:
            context = etree.SubElement(root, f"{{{SAMLP}}}RequestedAuthnContext")
            context.set("Comparison", comparison)
            ref = etree.SubElement(context, f"{{{SAML}}}AuthnContextClassRef")
            ref.text = f"https://www.spid.gov.it/SpidL{level}"
        return root

    def logout_request(
        self, destination: str, name_id: str, name_qualifier: str, session_index: str
    ) -> etree._Element:
        root = etree.Element(f"{{{SAMLP}}}LogoutRequest", nsmap={"samlp": SAMLP, "saml": SAML})
        root.set("ID", _random_id("_lo"))
        root.set("Version", "2.0")
        root.set("IssueInstant", _ts(_now()))
        root.set("Destination", destination)
        issuer = etree.SubElement(root, f"{{{SAML}}}Issuer")
        issuer.set("Format", ENTITY)
        issuer.set("NameQualifier", self.entity_id)
        issuer.text = self.entity_id
        name = etree.SubElement(root, f"{{{SAML}}}NameID")
        name.set("Format", TRANSIENT)
        name.set("NameQualifier", name_qualifier)
        name.text = name_id
        etree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = session_index
        return root

    def logout_response(self, destination: str, in_response_to: str) -> etree._Element:
        root = etree.Element(f"{{{SAMLP}}}LogoutResponse", nsmap={"samlp": SAMLP, "saml": SAML})
        root.set("ID", _random_id("_lr"))
        root.set("Version", "2.0")
        root.set("IssueInstant", _ts(_now()))
        root.set("Destination", destination)
        root.set("InResponseTo", in_response_to)
        issuer = etree.SubElement(root, f"{{{SAML}}}Issuer")
        issuer.set("Format", ENTITY)
        issuer.set("NameQualifier", self.entity_id)
        issuer.text = self.entity_id
        status = etree.SubElement(root, f"{{{SAMLP}}}Status")
        code = etree.SubElement(status, f"{{{SAMLP}}}StatusCode")
        code.set("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")
        return root

    def redirect_query(
        self, message: etree._Element, relay: str = "opaque-relay", param: str = "SAMLRequest"
    ) -> str:
        """The Redirect-binding query, signed with ``cryptography`` (not the IdP's code)."""
        signed = (
            f"{param}={quote(_deflate(etree.tostring(message)), safe='')}"
            f"&RelayState={quote(relay, safe='')}&SigAlg={quote(RSA_SHA256, safe='')}"
        )
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}&Signature={quote(base64.b64encode(signature).decode(), safe='')}"

    def post_form(self, message: etree._Element, relay: str = "opaque-relay") -> dict[str, str]:
        sign_enveloped(message, self.key_pem, self.cert_pem)
        return {
            "SAMLRequest": base64.b64encode(etree.tostring(message)).decode(),
            "RelayState": relay,
        }


def _random_id(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def verify_query_signature(url: str, param: str, cert_pem: bytes) -> dict[str, str]:
    """Check the IdP's Redirect-binding signature over the raw query; return the params."""
    raw = urlsplit(url).query
    parts = dict(p.split("=", 1) for p in raw.split("&"))
    signed = f"{param}={parts[param]}"
    if "RelayState" in parts:
        signed += f"&RelayState={parts['RelayState']}"
    signed += f"&SigAlg={parts['SigAlg']}"
    params = {k: v[0] for k, v in parse_qs(raw).items()}
    assert params["SigAlg"] == RSA_SHA256
    cert = x509.load_pem_x509_certificate(cert_pem)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(
        base64.b64decode(params["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return params


def verify_xml_signature(element: etree._Element, cert_pem: bytes) -> str:
    """Verify ``element``'s own enveloped signature with the IdP cert; its SignatureMethod."""
    signature = element.find(f"{{{DS}}}Signature")
    assert signature is not None, f"{element.tag} is not signed"
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    ctx.register_id(element, "ID")
    ctx.verify(signature)
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", NS)
    assert method is not None
    return str(method.get("Algorithm"))


# -- the IdP under test ----------------------------------------------------------------------


class Idp:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self._certs: dict[str, bytes] = {}

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def cert(self, scheme: str = "spid") -> bytes:
        if scheme not in self._certs:
            async with self.session.get(self.url(f"/{scheme}/metadata")) as resp:
                root = etree.fromstring(await resp.read())
            node = root.find(".//md:KeyDescriptor/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
            assert node is not None and node.text
            self._certs[scheme] = _pem(node.text)
        return self._certs[scheme]

    async def push_metadata(self, sp: FixtureSp) -> None:
        async with self.session.post(self.url("/__sandbox/sp-metadata"), data=sp.metadata()) as r:
            assert r.status == 201, await r.text()

    async def sso_redirect(
        self, sp: FixtureSp, request: etree._Element, scheme: str = "spid"
    ) -> tuple[int, str, Any]:
        url = self.url(f"/{scheme}/sso") + "?" + sp.redirect_query(request)
        async with self.session.get(raw(url)) as resp:
            return resp.status, await resp.text(), resp.headers

    async def sso_post(
        self, sp: FixtureSp, request: etree._Element, scheme: str = "spid"
    ) -> tuple[int, str, Any]:
        async with self.session.post(
            self.url(f"/{scheme}/sso"), data=sp.post_form(request)
        ) as resp:
            return resp.status, await resp.text(), resp.headers

    async def answer(self, scheme: str, txn: str, **fields: str) -> dict[str, Any]:
        async with self.session.post(
            self.url(f"/{scheme}/sso/answer"), data={"txn": txn, "format": "json", **fields}
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def login(
        self, sp: FixtureSp, scheme: str = "spid", identity: str = MARIO, **request_kw: Any
    ) -> tuple[etree._Element, dict[str, Any], etree._Element]:
        """AuthnRequest (Redirect) + scripted answer: (request, answer JSON, Response)."""
        request = sp.authn_request(self.url(f"/{scheme}/sso"), **request_kw)
        status, text, headers = await self.sso_redirect(sp, request, scheme)
        assert status == 200, text
        body = await self.answer(scheme, headers["X-Sandbox-Txn"], identity=identity)
        return request, body, etree.fromstring(base64.b64decode(body["SAMLResponse"]))

    async def requests(self) -> list[dict[str, Any]]:
        async with self.session.get(self.url("/__sandbox/requests")) as resp:
            records: list[dict[str, Any]] = (await resp.json())["requests"]
            return records


MakeIdp = Callable[..., Awaitable[Idp]]


@pytest.fixture
async def make_idp() -> AsyncIterator[MakeIdp]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []

    async def make(**kwargs: Any) -> Idp:
        server = TestServer(create_app(**kwargs))
        await server.start_server()
        session = aiohttp.ClientSession()
        started.append((server, session))
        return Idp(server, session)

    yield make
    for server, session in started:
        await session.close()
        await server.close()


SP = FixtureSp(
    entity_id="http://127.0.0.1:8000/t/demo/spid/metadata",
    acs_url="http://127.0.0.1:8000/t/demo/spid/acs",
    slo_url="http://127.0.0.1:8000/t/demo/spid/slo",
)


@pytest.fixture
async def idp(make_idp: MakeIdp) -> Idp:
    return await make_idp(sp_metadata=[SP.metadata()])


def raw(url: str) -> URL:
    """The URL sent exactly as built (yarl would otherwise normalise %2F and %3A in the
    query, and the Redirect signature is over the query as received)."""
    return URL(url, encoded=True)


def problem_codes(headers: Any) -> list[str]:
    return str(headers["X-Sandbox-Error"]).split(",")


# -- identities ------------------------------------------------------------------------------


def test_identities_are_fake_but_checksum_valid() -> None:
    people = [i for i in DEFAULT_IDENTITIES if i.attribute("name")]
    assert len(people) >= 6
    for person in people:
        assert re.fullmatch(r"[A-Z]{6}\d{2}[A-EHLMPRST]\d{2}[A-Z]\d{3}[A-Z]", person.code)
        assert fiscal_code_check_char(person.code[:15]) == person.code[15]
        assert person.attribute("fiscalNumber") == f"TINIT-{person.code}"
        for name in ("familyName", "dateOfBirth", "placeOfBirth", "gender", "email",
                     "mobilePhone", "address", "spidCode"):  # fmt: skip
            assert person.attribute(name), (person.code, name)
    assert any(i.max_level == 1 for i in people)
    (company,) = [i for i in DEFAULT_IDENTITIES if i.attribute("companyName")]
    assert company.attribute("ivaCode") == f"VATIT-{COMPANY}"
    assert not company.has_cie


def test_level_rules() -> None:
    assert grant_level("spid", 2, "exact", 3) == 2
    assert grant_level("spid", 2, "minimum", 3) == 2
    assert grant_level("spid", 2, "better", 3) == 3
    assert grant_level("spid", 3, "better", 3) is None
    assert grant_level("spid", 3, "maximum", 1) == 1
    assert grant_level("spid", 2, "exact", 1) is None
    assert grant_level("cie", 1, "minimum", 1) == 3
    assert grant_level("cie", 2, "exact", 1) == 2


# -- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["spid", "cie"])
async def test_metadata_is_signed_and_schema_valid(idp: Idp, scheme: str) -> None:
    async with idp.session.get(idp.url(f"/{scheme}/metadata")) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert_schema_valid(body, "saml-schema-metadata-2.0.xsd")
    root = etree.fromstring(body)
    assert root.get("entityID") == idp.url(f"/{scheme}")
    # signed by the sandbox federation key (it plays AgID), so a hub can pin it in config
    assert verify_xml_signature(root, FEDERATION_CERT_PEM) == RSA_SHA256
    cert = await idp.cert(scheme)
    assert cert != FEDERATION_CERT_PEM
    descriptor = root.find("md:IDPSSODescriptor", NS)
    assert descriptor is not None and descriptor.get("WantAuthnRequestsSigned") == "true"
    for tag in ("SingleSignOnService", "SingleLogoutService"):
        bindings = {
            e.get("Binding"): e.get("Location") for e in descriptor.findall(f"md:{tag}", NS)
        }
        path = "sso" if tag == "SingleSignOnService" else "slo"
        assert bindings == {b: idp.url(f"/{scheme}/{path}") for b in (REDIRECT, POST)}
    assert [e.text for e in descriptor.findall("md:NameIDFormat", NS)] == [TRANSIENT]
    names = {a.get("Name") for a in descriptor.findall("saml:Attribute", NS)}
    if scheme == "cie":
        assert names == {"name", "familyName", "dateOfBirth", "fiscalNumber"}
    else:
        assert {"spidCode", "fiscalNumber", "ivaCode", "digitalAddress"} <= names
    assert (await idp.cert("spid")) != (await idp.cert("cie"))


async def test_registry_is_signed_by_the_sandbox_agid_key(idp: Idp) -> None:
    """The sandbox's stand-in for AgID's spid-entities-idps.xml: the SPID IdP with its own
    certificate, the whole document signed by the federation key (and by nothing else)."""
    from sportello.connectors.spid.errors import SamlConfigError
    from sportello.connectors.spid.idps import parse_signed_idp_metadata
    from sportello.sandbox.idp.keys import generate

    async with idp.session.get(idp.url("/registry/spid-entities-idps.xml")) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert_schema_valid(body, "saml-schema-metadata-2.0.xsd")
    listed = parse_signed_idp_metadata(body, [FEDERATION_CERT_PEM])
    assert [i.entity_id for i in listed] == [idp.url("/spid")]
    assert listed[0].certs == (await idp.cert("spid"),)
    with pytest.raises(SamlConfigError, match="does not verify"):
        parse_signed_idp_metadata(body, [generate("other").cert_pem])


async def test_keys_persist_in_key_dir(make_idp: MakeIdp, tmp_path: Path) -> None:
    first = await make_idp(key_dir=tmp_path, base_url="http://idp.example:8101")
    second = await make_idp(key_dir=tmp_path, base_url="http://idp.example:8101")
    assert await first.cert() == await second.cert()
    async with first.session.get(first.url("/spid/metadata")) as resp:
        assert etree.fromstring(await resp.read()).get("entityID") == "http://idp.example:8101/spid"


# -- AuthnRequest checks ---------------------------------------------------------------------


async def test_redirect_login_answers_a_valid_doubly_signed_response(idp: Idp) -> None:
    request = SP.authn_request(idp.url("/spid/sso"), level=2)
    status, page, headers = await idp.sso_redirect(SP, request)
    assert status == 200, page
    assert "Mario Collaudo" in page and MARIO in page and "Entra" in page
    assert "Rispondi con anomalia" in page and "Annulla" in page
    assert "<script" not in page  # the login page needs no JavaScript
    txn = headers["X-Sandbox-Txn"]
    assert txn in page

    body = await idp.answer("spid", txn, identity=MARIO)
    assert body["acs_url"] == SP.acs_url
    assert body["RelayState"] == "opaque-relay"
    assert body["level"] == 2 and body["anomaly"] is None
    xml = base64.b64decode(body["SAMLResponse"])
    assert_schema_valid(xml, "saml-schema-protocol-2.0.xsd")
    response = etree.fromstring(xml)
    idp_entity = idp.url("/spid")
    cert = await idp.cert()

    assert verify_xml_signature(response, cert) == RSA_SHA256
    (assertion,) = response.findall("saml:Assertion", NS)
    assert verify_xml_signature(assertion, cert) == RSA_SHA256
    assert [c.tag for c in assertion][:2] == [f"{{{SAML}}}Issuer", f"{{{DS}}}Signature"]

    assert response.get("Destination") == SP.acs_url
    assert response.get("InResponseTo") == request.get("ID")
    assert response.get("Version") == "2.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", response.get("IssueInstant", ""))
    for issuer in (response.find("saml:Issuer", NS), assertion.find("saml:Issuer", NS)):
        assert issuer is not None and issuer.text == idp_entity
        assert issuer.get("Format") == ENTITY
    status_code = response.find("samlp:Status/samlp:StatusCode", NS)
    assert status_code is not None
    assert status_code.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"

    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None and name_id.get("Format") == TRANSIENT
    assert name_id.get("NameQualifier") == idp_entity
    confirmation = assertion.find("saml:Subject/saml:SubjectConfirmation", NS)
    assert confirmation is not None
    assert confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    data = confirmation.find("saml:SubjectConfirmationData", NS)
    assert data is not None
    assert data.get("Recipient") == SP.acs_url
    assert data.get("InResponseTo") == request.get("ID")
    assert _parse_ts(data.get("NotOnOrAfter", "")) > _now()
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions is not None
    assert _parse_ts(conditions.get("NotBefore", "")) <= _now()
    assert _parse_ts(conditions.get("NotOnOrAfter", "")) > _now()
    audience = conditions.find("saml:AudienceRestriction/saml:Audience", NS)
    assert audience is not None and audience.text == SP.entity_id
    statement = assertion.find("saml:AuthnStatement", NS)
    assert statement is not None and statement.get("SessionIndex") == body["session_index"]
    acr = statement.find("saml:AuthnContext/saml:AuthnContextClassRef", NS)
    assert acr is not None and acr.text == "https://www.spid.gov.it/SpidL2"
    values = {
        a.get("Name"): a.find("saml:AttributeValue", NS)
        for a in assertion.findall("saml:AttributeStatement/saml:Attribute", NS)
    }
    assert set(values) == {"name", "familyName", "fiscalNumber", "dateOfBirth", "email"}
    fiscal, born = values["fiscalNumber"], values["dateOfBirth"]
    assert fiscal is not None and fiscal.text == f"TINIT-{MARIO}"
    assert fiscal.get(f"{{{XSI}}}type") == "xs:string"
    assert born is not None and born.text == "1980-01-01"
    assert born.get(f"{{{XSI}}}type") == "xs:date"

    (record,) = await idp.requests()
    assert record["kind"] == "AuthnRequest" and record["binding"] == "redirect"
    assert record["id"] == request.get("ID") and record["issuer"] == SP.entity_id
    assert record["signature_ok"] is True and record["problems"] == []
    assert (record["level"], record["comparison"]) == (2, "exact")


async def test_post_binding_and_html_answer(idp: Idp) -> None:
    request = SP.authn_request(idp.url("/spid/sso"), level=1, acs_index=1, attribute_index=1)
    status, page, headers = await idp.sso_post(SP, request)
    assert status == 200, page
    async with idp.session.post(
        idp.url("/spid/sso/answer"), data={"txn": headers["X-Sandbox-Txn"], "identity": COMPANY}
    ) as resp:
        assert resp.status == 200
        html = await resp.text()
    assert f'action="{SP.acs_url}/bis"' in html
    assert "<noscript>" in html and "document.getElementById('saml-form').submit()" in html
    fields = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', html))
    assert unescape(fields["RelayState"]) == "opaque-relay"
    response = etree.fromstring(base64.b64decode(unescape(fields["SAMLResponse"])))
    names = [a.get("Name") for a in response.iterfind(".//saml:Attribute", NS)]
    assert names == ["companyName", "ivaCode"]
    (record,) = await idp.requests()
    assert record["binding"] == "post" and record["signature_ok"] is True
    # the transaction is single-use
    async with idp.session.post(
        idp.url("/spid/sso/answer"), data={"txn": headers["X-Sandbox-Txn"], "identity": MARIO}
    ) as resp:
        assert resp.status == 400
        assert problem_codes(resp.headers) == ["txn_unknown"]


async def test_bad_signature_is_refused_naming_it(idp: Idp) -> None:
    impostor = FixtureSp(SP.entity_id, SP.acs_url, SP.slo_url, key_name="impostor")
    status, page, headers = await idp.sso_redirect(impostor, SP.authn_request(idp.url("/spid/sso")))
    assert status == 400
    assert problem_codes(headers) == ["signature"]
    assert "signature" in page and "ErrorCode nr07" in page
    status, page, headers = await idp.sso_post(impostor, SP.authn_request(idp.url("/spid/sso")))
    assert status == 400 and problem_codes(headers) == ["signature"]
    records = await idp.requests()
    assert [r["signature_ok"] for r in records] == [False, False]
    assert [r["binding"] for r in records] == ["redirect", "post"]


async def test_tampered_redirect_query_is_refused(idp: Idp) -> None:
    query = SP.redirect_query(SP.authn_request(idp.url("/spid/sso")))
    tampered = query.replace("RelayState=opaque-relay", "RelayState=other-relay")
    async with idp.session.get(raw(idp.url("/spid/sso") + "?" + tampered)) as resp:
        assert resp.status == 400 and problem_codes(resp.headers) == ["signature"]
    unsigned = query.split("&SigAlg=")[0]
    async with idp.session.get(raw(idp.url("/spid/sso") + "?" + unsigned)) as resp:
        assert resp.status == 400 and problem_codes(resp.headers) == ["signature_missing"]


async def test_wrong_destination_is_refused_naming_it(idp: Idp) -> None:
    request = SP.authn_request("https://idp.example.org/sso")
    status, page, headers = await idp.sso_redirect(SP, request)
    assert status == 400
    assert problem_codes(headers) == ["destination"]
    assert "https://idp.example.org/sso" in page and idp.url("/spid/sso") in page


async def test_stale_issue_instant_is_refused_naming_it(idp: Idp) -> None:
    request = SP.authn_request(idp.url("/spid/sso"), issue_instant=_now() - dt.timedelta(hours=1))
    status, page, headers = await idp.sso_redirect(SP, request)
    assert status == 400
    assert problem_codes(headers) == ["issue_instant_stale"]
    assert "IssueInstant" in page and "ErrorCode nr13" in page


async def test_every_problem_is_listed(idp: Idp) -> None:
    request = SP.authn_request(
        idp.url("/spid/sso"), version="1.1", with_context=False, acs_index=7, attribute_index=9
    )
    status, _, headers = await idp.sso_redirect(SP, request)
    assert status == 400
    assert problem_codes(headers) == ["version", "authn_context", "acs_index", "attribute_index"]
    (record,) = await idp.requests()
    assert [p["code"] for p in record["problems"]] == problem_codes(headers)
    assert record["signature_ok"] is True


async def test_doctype_and_unknown_sp_are_refused(idp: Idp) -> None:
    evil = b'<!DOCTYPE x [<!ENTITY e "boom">]><samlp:AuthnRequest xmlns:samlp="' + SAMLP.encode()
    evil += b'">&e;</samlp:AuthnRequest>'
    data = {"SAMLRequest": base64.b64encode(evil).decode()}
    async with idp.session.post(idp.url("/spid/sso"), data=data) as resp:
        assert resp.status == 400 and problem_codes(resp.headers) == ["xml_doctype"]
    stranger = FixtureSp("urn:not-a-url", SP.acs_url, SP.slo_url)
    status, _, headers = await idp.sso_redirect(
        stranger, stranger.authn_request(idp.url("/spid/sso"))
    )
    assert status == 400 and problem_codes(headers) == ["sp_metadata"]


async def test_sp_metadata_is_fetched_from_the_issuer_url(make_idp: MakeIdp) -> None:
    sp_app = web.Application()
    fetched: list[str] = []
    holder: dict[str, FixtureSp] = {}

    async def serve(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=holder["sp"].metadata(), content_type="application/xml")

    sp_app.router.add_get("/t/demo/spid/metadata", serve)
    sp_server = TestServer(sp_app)
    await sp_server.start_server()
    try:
        base = str(sp_server.make_url("/t/demo/spid"))
        holder["sp"] = sp = FixtureSp(f"{base}/metadata", f"{base}/acs", f"{base}/slo")
        idp = await make_idp()
        _, body, _ = await idp.login(sp)
        assert body["acs_url"] == sp.acs_url
        await idp.login(sp)
        assert fetched == ["/t/demo/spid/metadata"]  # cached
        async with idp.session.get(idp.url("/__sandbox/sp-metadata")) as resp:
            (known,) = (await resp.json())["service_providers"]
        assert known["entity_id"] == sp.entity_id and known["pinned"] is False
    finally:
        await sp_server.close()


# -- answers: anomalies, levels, faults ------------------------------------------------------


@pytest.mark.parametrize("code", ["22", "25"])
async def test_anomaly_answer(idp: Idp, code: str) -> None:
    request = SP.authn_request(idp.url("/spid/sso"))
    _, _, headers = await idp.sso_redirect(SP, request)
    body = await idp.answer("spid", headers["X-Sandbox-Txn"], anomaly=code)
    assert body["anomaly"] == int(code) and body["session_index"] is None
    xml = base64.b64decode(body["SAMLResponse"])
    assert_schema_valid(xml, "saml-schema-protocol-2.0.xsd")
    response = etree.fromstring(xml)
    verify_xml_signature(response, await idp.cert())
    assert response.get("InResponseTo") == request.get("ID")
    assert response.find("saml:Assertion", NS) is None
    top = response.find("samlp:Status/samlp:StatusCode", NS)
    assert top is not None and top.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Responder"
    second = top.find("samlp:StatusCode", NS)
    assert second is not None
    assert second.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
    message = response.find("samlp:Status/samlp:StatusMessage", NS)
    assert message is not None and message.text == f"ErrorCode nr{code}"


async def test_identity_below_the_requested_level_gets_anomaly_20(idp: Idp) -> None:
    _, body, response = await idp.login(SP, identity=ANNA, level=2)
    assert body["anomaly"] == 20
    message = response.find("samlp:Status/samlp:StatusMessage", NS)
    assert message is not None and message.text == "ErrorCode nr20"
    _, body, response = await idp.login(SP, identity=ANNA, level=3, comparison="maximum")
    assert body["level"] == 1
    acr = response.find(".//saml:AuthnContextClassRef", NS)
    assert acr is not None and acr.text == "https://www.spid.gov.it/SpidL1"


async def test_faults_spoil_the_next_answer_only(idp: Idp) -> None:
    async with idp.session.post(idp.url("/__sandbox/faults"), json={"faults": ["nope"]}) as resp:
        assert resp.status == 400
    faults = ["unsigned_assertion", "wrong_audience", "expired", "wrong_in_response_to",
              "sha1_signature"]  # fmt: skip
    async with idp.session.post(idp.url("/__sandbox/faults"), json={"faults": faults}) as resp:
        assert resp.status == 201
    request, _, response = await idp.login(SP)
    cert = await idp.cert()
    assert verify_xml_signature(response, cert) == "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    assertion = response.find("saml:Assertion", NS)
    assert assertion is not None and assertion.find("ds:Signature", NS) is None
    audience = assertion.find(".//saml:Audience", NS)
    assert audience is not None and audience.text != SP.entity_id
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions is not None and _parse_ts(conditions.get("NotOnOrAfter", "")) < _now()
    assert response.get("InResponseTo") != request.get("ID")
    data = assertion.find(".//saml:SubjectConfirmationData", NS)
    assert data is not None and data.get("InResponseTo") != request.get("ID")

    request, _, response = await idp.login(SP)  # the fault was used up
    assert response.get("InResponseTo") == request.get("ID")
    assertion = response.find("saml:Assertion", NS)
    assert assertion is not None and verify_xml_signature(assertion, cert) == RSA_SHA256


async def test_foreign_key_fault_does_not_verify_with_the_metadata_cert(idp: Idp) -> None:
    async with idp.session.post(
        idp.url("/__sandbox/faults"), json={"faults": ["foreign_key"], "count": 1}
    ) as resp:
        assert resp.status == 201
    _, _, response = await idp.login(SP)
    with pytest.raises(xmlsec.Error):
        verify_xml_signature(response, await idp.cert())


# -- single logout ---------------------------------------------------------------------------


async def test_sp_initiated_logout_round_trip(idp: Idp) -> None:
    _, body, response = await idp.login(SP)
    name_id = response.find(".//saml:Subject/saml:NameID", NS)
    assert name_id is not None and name_id.text
    logout = SP.logout_request(
        idp.url("/spid/slo"), name_id.text, idp.url("/spid"), body["session_index"]
    )
    url = idp.url("/spid/slo") + "?" + SP.redirect_query(logout, relay="lo-relay")
    async with idp.session.get(raw(url), allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["X-Sandbox-Sessions-Ended"] == "1"
        location = resp.headers["Location"]
    assert location.startswith(SP.slo_url + "?")
    params = verify_query_signature(location, "SAMLResponse", await idp.cert())
    assert params["RelayState"] == "lo-relay"
    xml = _inflate(params["SAMLResponse"])
    assert_schema_valid(xml, "saml-schema-protocol-2.0.xsd")
    answer = etree.fromstring(xml)
    assert answer.tag == f"{{{SAMLP}}}LogoutResponse"
    assert answer.get("InResponseTo") == logout.get("ID")
    assert answer.get("Destination") == SP.slo_url
    code = answer.find("samlp:Status/samlp:StatusCode", NS)
    assert code is not None and code.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"
    async with idp.session.get(idp.url("/__sandbox/sessions")) as resp:
        (session,) = (await resp.json())["sessions"]
    assert session["active"] is False
    kinds = [r["kind"] for r in await idp.requests()]
    assert kinds == ["AuthnRequest", "LogoutRequest"]


async def test_sp_initiated_logout_over_post_answers_a_signed_form(make_idp: MakeIdp) -> None:
    sp = FixtureSp(SP.entity_id, SP.acs_url, SP.slo_url, slo_binding=POST)
    idp = await make_idp(sp_metadata=[sp.metadata()])
    _, body, response = await idp.login(sp)
    name_id = response.find(".//saml:NameID", NS)
    assert name_id is not None and name_id.text
    logout = sp.logout_request(
        idp.url("/spid/slo"), name_id.text, idp.url("/spid"), body["session_index"]
    )
    async with idp.session.post(idp.url("/spid/slo"), data=sp.post_form(logout)) as resp:
        assert resp.status == 200
        html = await resp.text()
    assert f'action="{sp.slo_url}"' in html
    (value,) = re.findall(r'name="SAMLResponse" value="([^"]*)"', html)
    answer = etree.fromstring(base64.b64decode(unescape(value)))
    verify_xml_signature(answer, await idp.cert())
    assert answer.get("InResponseTo") == logout.get("ID")


async def test_bad_logout_request_is_refused(idp: Idp) -> None:
    impostor = FixtureSp(SP.entity_id, SP.acs_url, SP.slo_url, key_name="impostor")
    logout = impostor.logout_request(idp.url("/spid/slo"), "_x", idp.url("/spid"), "_y")
    url = idp.url("/spid/slo") + "?" + impostor.redirect_query(logout)
    async with idp.session.get(raw(url), allow_redirects=False) as resp:
        assert resp.status == 400 and problem_codes(resp.headers) == ["signature"]


async def test_idp_initiated_logout_round_trip(idp: Idp) -> None:
    _, body, _ = await idp.login(SP)
    session_index = body["session_index"]
    async with idp.session.get(idp.url("/spid/sessions")) as resp:
        page = await resp.text()
    assert f'action="/spid/sessions/{session_index}/logout"' in page
    async with idp.session.post(
        idp.url(f"/spid/sessions/{session_index}/logout"), allow_redirects=False
    ) as resp:
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith(SP.slo_url + "?")
    params = verify_query_signature(location, "SAMLRequest", await idp.cert())
    xml = _inflate(params["SAMLRequest"])
    assert_schema_valid(xml, "saml-schema-protocol-2.0.xsd")
    request = etree.fromstring(xml)
    index = request.find("samlp:SessionIndex", NS)
    assert index is not None and index.text == session_index

    request_id = request.get("ID")
    assert request_id
    answer = SP.logout_response(idp.url("/spid/slo"), request_id)
    query = SP.redirect_query(answer, relay=params["RelayState"], param="SAMLResponse")
    async with idp.session.get(raw(idp.url("/spid/slo") + "?" + query)) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["X-Sandbox-Logout"] == "Success"
        assert "Logout completato" in await resp.text()
    # answering twice is refused: nothing is pending any more
    async with idp.session.get(raw(idp.url("/spid/slo") + "?" + query)) as resp:
        assert resp.status == 400 and problem_codes(resp.headers) == ["in_response_to"]


# -- CIE ------------------------------------------------------------------------------------


async def test_cie_issuer_levels_and_silent_logout(idp: Idp) -> None:
    request = SP.authn_request(idp.url("/cie/sso"), level=2, comparison="minimum")
    status, page, headers = await idp.sso_redirect(SP, request, "cie")
    assert status == 200
    assert "Entra con CIE" in page and COMPANY not in page
    body = await idp.answer("cie", headers["X-Sandbox-Txn"], identity=ANNA)
    xml = base64.b64decode(body["SAMLResponse"])
    assert_schema_valid(xml, "saml-schema-protocol-2.0.xsd")
    response = etree.fromstring(xml)
    cert = await idp.cert("cie")
    verify_xml_signature(response, cert)
    assertion = response.find("saml:Assertion", NS)
    assert assertion is not None
    verify_xml_signature(assertion, cert)
    for issuer in (response.find("saml:Issuer", NS), assertion.find("saml:Issuer", NS)):
        assert issuer is not None and issuer.text == idp.url("/cie")
        assert issuer.get("Format") is None
    acr = assertion.find(".//saml:AuthnContextClassRef", NS)
    assert acr is not None and acr.text == "https://www.spid.gov.it/SpidL3"

    _, exact, response = await idp.login(SP, "cie", level=2)
    assert exact["level"] == 2

    better = SP.authn_request(idp.url("/cie/sso"), comparison="better")
    status, _, headers = await idp.sso_redirect(SP, better, "cie")
    assert status == 400 and problem_codes(headers) == ["authn_context_comparison"]

    name_id = response.find(".//saml:NameID", NS)
    assert name_id is not None and name_id.text
    logout = SP.logout_request(
        idp.url("/cie/slo"), name_id.text, idp.url("/cie"), exact["session_index"]
    )
    url = idp.url("/cie/slo") + "?" + SP.redirect_query(logout)
    async with idp.session.get(raw(url), allow_redirects=False) as resp:
        assert resp.status == 200
        assert resp.headers["X-Sandbox-Sessions-Ended"] == "1"
        assert "Sessione chiusa" in await resp.text()


async def test_reset_forgets_everything_but_pinned_sps(idp: Idp) -> None:
    await idp.login(SP)
    async with idp.session.post(idp.url("/__sandbox/reset")) as resp:
        assert resp.status == 200
    assert await idp.requests() == []
    async with idp.session.get(idp.url("/__sandbox/sessions")) as resp:
        assert (await resp.json())["sessions"] == []
    await idp.login(SP)  # the metadata given at start is still there
    async with idp.session.get(idp.url("/status")) as resp:
        info = await resp.json()
    assert info["platform"] == "idp" and "/{scheme}/sso/answer" in info["routes"]


# -- a real browser --------------------------------------------------------------------------


@pytest.mark.parametrize("javascript", [True, False])
async def test_headless_chromium_logs_in_and_posts_to_the_acs(
    make_idp: MakeIdp, javascript: bool
) -> None:
    """With JavaScript the answer form submits itself; without, the <noscript> button."""
    playwright_api = pytest.importorskip("playwright.async_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    received: list[dict[str, str]] = []

    async def acs(request: web.Request) -> web.Response:
        form = await request.post()
        received.append({k: str(v) for k, v in form.items()})
        return web.Response(
            text="<html><body><h1>ACS ok</h1></body></html>", content_type="text/html"
        )

    acs_app = web.Application()
    acs_app.router.add_post("/acs", acs)
    acs_server = TestServer(acs_app)
    await acs_server.start_server()
    try:
        sp = FixtureSp(SP.entity_id, str(acs_server.make_url("/acs")), SP.slo_url)
        idp = await make_idp(sp_metadata=[sp.metadata()])
        request = sp.authn_request(idp.url("/spid/sso"))
        url = idp.url("/spid/sso") + "?" + sp.redirect_query(request)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox"], headless=True
            )
            try:
                context = await browser.new_context(java_script_enabled=javascript)
                page = await context.new_page()
                await page.goto(url)
                row = page.locator("tr", has_text=MARIO)
                await row.get_by_role("button", name="Entra").click()
                if not javascript:
                    await page.get_by_role("button", name="Continua").click()
                await page.wait_for_url(sp.acs_url, timeout=10_000)
                assert await page.locator("h1").inner_text() == "ACS ok"
            finally:
                await browser.close()
    finally:
        await acs_server.close()
    (form,) = received
    assert form["RelayState"] == "opaque-relay"
    response = etree.fromstring(base64.b64decode(form["SAMLResponse"]))
    assert response.get("InResponseTo") == request.get("ID")

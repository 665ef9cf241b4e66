"""XML plumbing of the sandbox IdP: safe parsing, times, IDs, signatures and bindings.

Nothing here knows SAML semantics: ``inbound`` and ``outbound`` build on it. Signatures are
python-xmlsec's: enveloped (exc-c14n, RSA-SHA256 unless a fault asks for SHA-1) for XML, and
the SAML HTTP-Redirect query signature (``SAMLRequest=..&RelayState=..&SigAlg=..`` as
received) for the Redirect binding.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import zlib
from datetime import UTC, datetime
from urllib.parse import quote, unquote, unquote_plus

import xmlsec
from lxml import etree

__all__ = [
    "DS",
    "MD",
    "SAML",
    "SAMLP",
    "XS",
    "XSI",
    "XmlRefused",
    "deflate_b64",
    "fmt_time",
    "inflate_b64",
    "new_id",
    "parse_time",
    "parse_xml",
    "raw_query_params",
    "sign_enveloped",
    "sign_query",
    "tostring",
    "verify_enveloped",
    "verify_query",
]

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

MAX_XML_BYTES = 256 * 1024
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#: Signature algorithms accepted from SPs (SPID: SHA-256 or stronger).
STRONG_SIG_ALGS = {
    RSA_SHA256: xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
}
STRONG_DIGESTS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
_ALLOWED_TRANSFORMS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    }
)


class XmlRefused(ValueError):
    """A message that cannot even be read: ``code`` is a stable problem identifier."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_id() -> str:
    """A SAML ID: starts with a letter or underscore (xs:ID), 160 random bits."""
    return "_" + secrets.token_hex(20)


def fmt_time(moment: datetime) -> str:
    """UTC ``xs:dateTime`` with milliseconds and ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(value: str | None) -> datetime | None:
    """An ``xs:dateTime`` in UTC, or None when absent or malformed (no timezone = UTC)."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if "T" not in value:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_xml(data: bytes) -> etree._Element:
    """Parse an inbound message: no DTD (refused outright), no entities, no network."""
    if len(data) > MAX_XML_BYTES:
        raise XmlRefused("xml_too_large", f"the XML message is larger than {MAX_XML_BYTES} bytes")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise XmlRefused("xml_doctype", "the XML message contains a DOCTYPE or an ENTITY")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlRefused("xml_malformed", f"the message is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise XmlRefused("xml_doctype", "the XML message contains a DOCTYPE")
    return root


def tostring(element: etree._Element) -> bytes:
    """Serialise with an XML declaration, UTF-8."""
    return bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))


def inflate_b64(value: str) -> bytes:
    """Decode a Redirect-binding parameter: base64 then raw DEFLATE (bounded size)."""
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise XmlRefused("encoding", f"the parameter is not valid base64: {exc}") from exc
    inflater = zlib.decompressobj(-15)
    try:
        data = inflater.decompress(raw, MAX_XML_BYTES + 1)
    except zlib.error as exc:
        raise XmlRefused("encoding", f"the parameter is not raw DEFLATE: {exc}") from exc
    if len(data) > MAX_XML_BYTES or inflater.unconsumed_tail:
        raise XmlRefused("xml_too_large", "the inflated message is too large")
    return data


def deflate_b64(data: bytes) -> str:
    """Encode for the Redirect binding: raw DEFLATE then base64."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(data) + compressor.flush()).decode("ascii")


def sign_enveloped(
    element: etree._Element, key_pem: bytes, cert_pem: bytes, *, sha1: bool = False
) -> None:
    """Sign ``element`` in place: the signature goes right after its ``saml:Issuer`` child
    (SAML schema order), or first when there is none; ``KeyInfo`` carries the certificate.

    ``sha1`` (a fault knob) signs with RSA-SHA1 and a SHA-1 digest, which SPs must refuse.
    """
    ref_id = element.get("ID")
    if not ref_id:
        raise ValueError("the element to sign has no ID attribute")
    method = xmlsec.constants.TransformRsaSha1 if sha1 else xmlsec.constants.TransformRsaSha256
    digest = xmlsec.constants.TransformSha1 if sha1 else xmlsec.constants.TransformSha256
    signature = xmlsec.template.create(element, xmlsec.constants.TransformExclC14N, method, ns="ds")
    issuer = element.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    ref = xmlsec.template.add_reference(signature, digest, uri=f"#{ref_id}")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(cert_pem, xmlsec.constants.KeyDataFormatPem)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.register_id(element, "ID")
    ctx.sign(signature)


def verify_enveloped(root: etree._Element, certs: list[bytes]) -> tuple[str | None, str]:
    """Check ``root``'s own enveloped signature against the given PEM certificates only
    (never the ``KeyInfo`` one). Returns ``(ok, reason)``; the signature must be a direct
    child, the only one in the document, referencing ``#<root ID>`` with standard transforms
    and SHA-256 or stronger.

    Returns ``(None, "signature verified")`` or ``(problem code, reason)``."""
    signatures = root.findall(f".//{{{DS}}}Signature")
    if not signatures:
        return "signature_missing", "the message has no XML signature"
    if len(signatures) > 1:
        return (
            "signature_structure",
            f"the message carries {len(signatures)} XML signatures, expected one",
        )
    signature = signatures[0]
    if signature.getparent() is not root:
        return (
            "signature_structure",
            "the XML signature is not a direct child of the signed message",
        )
    refs = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    root_id = root.get("ID")
    if len(refs) != 1 or not root_id or refs[0].get("URI") != f"#{root_id}":
        return "signature_structure", "the signature's Reference does not point to the message's ID"
    transforms = refs[0].findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    odd = [t.get("Algorithm") for t in transforms if t.get("Algorithm") not in _ALLOWED_TRANSFORMS]
    if odd:
        return (
            "signature_structure",
            f"the signature uses a transform that is not allowed: {odd[0]}",
        )
    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    algorithm = method.get("Algorithm") if method is not None else None
    if algorithm not in STRONG_SIG_ALGS:
        return (
            "signature_algorithm",
            f"signature algorithm {algorithm} is not allowed (SHA-256 or stronger)",
        )
    digest = refs[0].find(f"{{{DS}}}DigestMethod")
    if digest is None or digest.get("Algorithm") not in STRONG_DIGESTS:
        found = digest.get("Algorithm") if digest is not None else None
        return (
            "signature_algorithm",
            f"digest algorithm {found} is not allowed (SHA-256 or stronger)",
        )
    if not certs:
        return "signature", "the SP metadata has no signing certificate"
    for cert in certs:
        ctx = xmlsec.SignatureContext()
        try:
            ctx.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
            ctx.register_id(root, "ID")
            ctx.verify(signature)
        except xmlsec.Error:
            continue
        return None, "signature verified"
    return "signature", "the XML signature does not verify with any signing certificate of the SP"


def raw_query_params(raw_query: str) -> dict[str, str]:
    """The query's parameters exactly as received (still URL-encoded), first one wins."""
    params: dict[str, str] = {}
    for part in raw_query.split("&"):
        name, sep, value = part.partition("=")
        if sep and name not in params:
            params[name] = value
    return params


def sign_query(message_param: str, message: str, relay_state: str | None, key_pem: bytes) -> str:
    """A signed Redirect-binding query string (``message_param`` is ``SAMLRequest`` or
    ``SAMLResponse``; ``message`` the deflated base64 value), RSA-SHA256."""
    parts = [f"{message_param}={quote(message, safe='')}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    parts.append(f"SigAlg={quote(RSA_SHA256, safe='')}")
    signed = "&".join(parts)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    signature = ctx.sign_binary(signed.encode("ascii"), xmlsec.constants.TransformRsaSha256)
    return f"{signed}&Signature={quote(base64.b64encode(signature).decode('ascii'), safe='')}"


def verify_query(
    message_param: str, params: dict[str, str], certs: list[bytes]
) -> tuple[str | None, str]:
    """Check a Redirect-binding query signature over the parameters as received
    (same result shape as :func:`verify_enveloped`)."""
    if "Signature" not in params or "SigAlg" not in params:
        return "signature_missing", "the Redirect binding query has no Signature/SigAlg parameters"
    sig_alg = unquote_plus(params["SigAlg"])
    transform = STRONG_SIG_ALGS.get(sig_alg)
    if transform is None:
        return (
            "signature_algorithm",
            f"SigAlg {sig_alg} is not allowed (RSA with SHA-256 or stronger)",
        )
    parts = [f"{message_param}={params.get(message_param, '')}"]
    if "RelayState" in params:
        parts.append(f"RelayState={params['RelayState']}")
    parts.append(f"SigAlg={params['SigAlg']}")
    signed = "&".join(parts).encode("ascii", errors="replace")
    try:
        signature = base64.b64decode(unquote(params["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        return "signature", "the Signature parameter is not valid base64"
    if not certs:
        return "signature", "the SP metadata has no signing certificate"
    for cert in certs:
        ctx = xmlsec.SignatureContext()
        try:
            ctx.key = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)
            ctx.verify_binary(signed, transform, signature)
        except xmlsec.Error:
            continue
        return None, "signature verified"
    return "signature", (
        "the query signature does not verify with any signing certificate of the SP (it is "
        "checked over SAMLRequest/SAMLResponse, RelayState and SigAlg exactly as received: "
        "make sure no HTTP client re-encodes the query)"
    )

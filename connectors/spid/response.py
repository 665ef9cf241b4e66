"""The ACS side of SPID/CIE: parse and check a ``samlp:Response``.

No library implements the SPID rules (AgID "Regole tecniche", Avvisi, and what the official
``spid-sp-test`` sends), so the checks are written by hand here; python-xmlsec does the
cryptography only. The whole message is parsed once, with a hardened parser, and every check
reads the same tree:

* no DTD, no entities, no network, no huge trees; comments and processing instructions are
  dropped *at parse time* so that text split by a comment (CVE-2017-11427:
  ``user@x.com<!---->.evil.com``) is read as the full text exc-c14n signed, never truncated;
* the signed elements are found by structure (the one ``Assertion`` child of the root, the
  ``ds:Signature`` child of each), every ``ID`` must be unique, the Reference must point to
  the very element the signature sits in, and only enveloped + exc-c14n transforms and
  SHA-256+ RSA/ECDSA are allowed: this is what defeats the XSW1-8 / XSLT families;
* signatures are verified with the IdP metadata certificates only (never ``KeyInfo``); the
  xmlsec keys are cached per certificate.

The ``check`` identifiers of :class:`ResponseRejected` are listed in :data:`CHECKS`; the
numbers in the comments are spid-sp-test response test IDs. ``reason`` strings never carry
assertion contents.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

import xmlsec
from lxml import etree

from .errors import ResponseRejected, SamlConfigError, SpidAnomaly
from .models import SPID_LEVELS, Comparison, Identity, IdpInfo, PendingRequest, SpSettings

SAMLP_NS: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XML_ID: Final = "{http://www.w3.org/XML/1998/namespace}id"

ENTITY_FORMAT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
TRANSIENT_FORMAT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
BEARER: Final = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS: Final = "urn:oasis:names:tc:SAML:2.0:status:Success"

EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALLOWED_SIGNATURE_METHODS: Final = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
ALLOWED_DIGEST_METHODS: Final = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
ALLOWED_TRANSFORMS: Final = frozenset({ENVELOPED, EXC_C14N})

# Largest base64 SAMLResponse accepted (real SPID responses are 8-20 KB).
MAX_RESPONSE_B64: Final = 256 * 1024

LEVEL_BY_URL: Final = {url: level for level, url in SPID_LEVELS.items()}

CHECKS: Final = (
    "malformed",  # size, base64, XML syntax, DTD, root element
    "structure",  # XSW: extra/misplaced Assertions or Signatures, duplicate IDs
    "id",  # 8, 9, 33, 34
    "version",  # 10, 35
    "issue_instant",  # 11-15, 36-40, 110
    "in_response_to",  # 16-18, 60-62
    "destination",  # 19-21
    "status",  # 22-24, 26
    "anomaly",  # 104-108, 111 (SpidAnomaly)
    "issuer",  # 27-31, 68-72
    "assertion",  # 32
    "signature",  # 2-5, 100, xsw*, xslt
    "subject",  # 41-49 (NameID)
    "subject_confirmation",  # 51-66
    "conditions",  # 73-82
    "audience",  # 83-87
    "authn_context",  # 88-93, 97
    "level",  # 94-96
    "attributes",  # 98, 99 (103, 109 accepted)
    "replay",
)

_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z",
    re.ASCII,
)
_ANOMALY_RE: Final = re.compile(r"ErrorCode nr(\d{1,2})\b")

_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)

_Q_RESPONSE: Final = f"{{{SAMLP_NS}}}Response"
_Q_STATUS: Final = f"{{{SAMLP_NS}}}Status"
_Q_STATUS_CODE: Final = f"{{{SAMLP_NS}}}StatusCode"
_Q_STATUS_MESSAGE: Final = f"{{{SAMLP_NS}}}StatusMessage"
_Q_EXTENSIONS: Final = f"{{{SAMLP_NS}}}Extensions"
_Q_ISSUER: Final = f"{{{SAML_NS}}}Issuer"
_Q_ASSERTION: Final = f"{{{SAML_NS}}}Assertion"
_Q_ENC_ASSERTION: Final = f"{{{SAML_NS}}}EncryptedAssertion"
_Q_SUBJECT: Final = f"{{{SAML_NS}}}Subject"
_Q_NAMEID: Final = f"{{{SAML_NS}}}NameID"
_Q_SUBJ_CONF: Final = f"{{{SAML_NS}}}SubjectConfirmation"
_Q_SUBJ_CONF_DATA: Final = f"{{{SAML_NS}}}SubjectConfirmationData"
_Q_CONDITIONS: Final = f"{{{SAML_NS}}}Conditions"
_Q_AUDIENCE_RESTRICTION: Final = f"{{{SAML_NS}}}AudienceRestriction"
_Q_AUDIENCE: Final = f"{{{SAML_NS}}}Audience"
_Q_AUTHN_STATEMENT: Final = f"{{{SAML_NS}}}AuthnStatement"
_Q_AUTHN_CONTEXT: Final = f"{{{SAML_NS}}}AuthnContext"
_Q_AUTHN_CONTEXT_CLASS_REF: Final = f"{{{SAML_NS}}}AuthnContextClassRef"
_Q_ATTRIBUTE_STATEMENT: Final = f"{{{SAML_NS}}}AttributeStatement"
_Q_ATTRIBUTE: Final = f"{{{SAML_NS}}}Attribute"
_Q_ATTRIBUTE_VALUE: Final = f"{{{SAML_NS}}}AttributeValue"
_Q_SIGNATURE: Final = f"{{{DS_NS}}}Signature"
_Q_SIGNED_INFO: Final = f"{{{DS_NS}}}SignedInfo"
_Q_SIGNATURE_VALUE: Final = f"{{{DS_NS}}}SignatureValue"
_Q_KEY_INFO: Final = f"{{{DS_NS}}}KeyInfo"
_Q_C14N_METHOD: Final = f"{{{DS_NS}}}CanonicalizationMethod"
_Q_SIGNATURE_METHOD: Final = f"{{{DS_NS}}}SignatureMethod"
_Q_REFERENCE: Final = f"{{{DS_NS}}}Reference"
_Q_TRANSFORMS: Final = f"{{{DS_NS}}}Transforms"
_Q_TRANSFORM: Final = f"{{{DS_NS}}}Transform"
_Q_DIGEST_METHOD: Final = f"{{{DS_NS}}}DigestMethod"
_Q_DIGEST_VALUE: Final = f"{{{DS_NS}}}DigestValue"
_Q_INCLUSIVE_NS: Final = f"{{{EXC_C14N}}}InclusiveNamespaces"

# Children a Response may have, in schema order (Issuer? Signature? Extensions? Status
# Assertion*). EncryptedAssertion is not used by SPID/CIE and is refused.
_RESPONSE_CHILDREN: Final = (_Q_ISSUER, _Q_SIGNATURE, _Q_EXTENSIONS, _Q_STATUS, _Q_ASSERTION)


# --------------------------------------------------------------------------- parsing


def _reject(check: str, reason: str) -> ResponseRejected:
    return ResponseRejected(check, reason)


def decode_b64(data: str, *, max_len: int = MAX_RESPONSE_B64) -> bytes:
    """Strict base64 of a POSTed SAML message (line breaks tolerated)."""
    if len(data) > max_len:
        raise _reject("malformed", "message too large")
    compact = "".join(data.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _reject("malformed", "not base64") from None


def parse_xml(raw: bytes) -> etree._Element:
    """Parse untrusted SAML XML: no DTD at all, no entities, no network, no comments."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise _reject("malformed", "DTD not allowed")
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError:
        raise _reject("malformed", "not well-formed XML") from None
    docinfo = root.getroottree().docinfo
    # catches a DTD the byte scan missed (e.g. a UTF-16 document)
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise _reject("malformed", "DTD not allowed")
    return root


def leaf_text(el: etree._Element, check: str, what: str) -> str:
    """The whitespace-stripped text of an element that must have no child nodes.

    Comments are already removed by the parser (their neighbouring text merged, as
    exc-c14n sees it); any child element here means a malformed or tampered message.
    """
    if len(el):
        raise _reject(check, f"{what} must contain text only")
    return (el.text or "").strip()


def parse_instant(value: str | None, check: str, what: str) -> datetime:
    """An ``xs:dateTime`` in UTC (``...Z``), milliseconds optional (spid-sp-test 110)."""
    if not value:
        raise _reject(check, f"{what} missing")
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise _reject(check, f"{what} is not a UTC xs:dateTime")
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        return datetime(
            int(y),
            int(mo),
            int(d),
            int(h),
            int(mi),
            int(s),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        raise _reject(check, f"{what} is not a valid date") from None


def as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# --------------------------------------------------------------------------- signatures


def _pem(cert: bytes) -> bytes:
    cert = cert.strip()
    if cert.startswith(b"-----BEGIN"):
        return cert
    body = b"".join(cert.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@functools.lru_cache(maxsize=256)
def cert_key(cert_pem: bytes) -> xmlsec.Key:
    """The xmlsec public key of an IdP certificate (cached: loading costs more than verifying).

    ``SignatureContext.key = ...`` copies the key, so the cached object is never mutated.
    """
    try:
        return xmlsec.Key.from_memory(_pem(cert_pem), xmlsec.constants.KeyDataFormatCertPem)
    except xmlsec.Error:
        raise SamlConfigError("an IdP certificate cannot be loaded") from None


def idp_keys(idp: IdpInfo) -> list[xmlsec.Key]:
    if not idp.certs:
        raise SamlConfigError(f"IdP {idp.entity_id} has no signing certificate")
    return [cert_key(c) for c in idp.certs]


def _check_signature_shape(sig: etree._Element, signed: etree._Element, check: str) -> None:
    """SignedInfo must be exactly what SPID signs; the Reference must be ``#<ID of signed>``."""
    children = [c for c in sig if isinstance(c.tag, str)]
    tags = [c.tag for c in children]
    if (
        len(tags) not in (2, 3)
        or tags[0] != _Q_SIGNED_INFO
        or tags[1] != _Q_SIGNATURE_VALUE
        or (len(tags) == 3 and tags[2] != _Q_KEY_INFO)
    ):
        # no ds:Object (XSW8 hides an assertion there), nothing else
        raise _reject(check, "unexpected content in ds:Signature")
    info = [c for c in children[0] if isinstance(c.tag, str)]
    if (
        len(info) != 3
        or info[0].tag != _Q_C14N_METHOD
        or info[1].tag != _Q_SIGNATURE_METHOD
        or info[2].tag != _Q_REFERENCE
    ):
        raise _reject(check, "SignedInfo must hold exactly one Reference")
    if info[0].get("Algorithm") != EXC_C14N or len(info[0]):
        raise _reject(check, "canonicalization must be exc-c14n")
    if info[1].get("Algorithm") not in ALLOWED_SIGNATURE_METHODS or len(info[1]):
        raise _reject(check, "signature algorithm not allowed (RSA/ECDSA SHA-256+ only)")
    ref = info[2]
    signed_id = signed.get("ID")
    if not signed_id or ref.get("URI") != "#" + signed_id:
        raise _reject(check, "Reference URI does not point to the signed element")
    ref_children = [c for c in ref if isinstance(c.tag, str)]
    if len(ref_children) == 3 and ref_children[0].tag == _Q_TRANSFORMS:
        transforms = [c for c in ref_children[0] if isinstance(c.tag, str)]
        ref_children = ref_children[1:]
    else:
        raise _reject(check, "Reference must carry enveloped + exc-c14n transforms")
    if (
        len(ref_children) != 2
        or ref_children[0].tag != _Q_DIGEST_METHOD
        or ref_children[1].tag != _Q_DIGEST_VALUE
    ):
        raise _reject(check, "malformed Reference")
    if ref_children[0].get("Algorithm") not in ALLOWED_DIGEST_METHODS:
        raise _reject(check, "digest algorithm not allowed (SHA-256+ only)")
    seen: set[str] = set()
    for tr in transforms:
        alg = tr.get("Algorithm") or ""
        if tr.tag != _Q_TRANSFORM or alg not in ALLOWED_TRANSFORMS or alg in seen:
            raise _reject(check, "transform not allowed")
        seen.add(alg)
        extra = [c for c in tr if isinstance(c.tag, str)]
        # exc-c14n may carry an InclusiveNamespaces PrefixList (Shibboleth IdPs do)
        if extra and not (alg == EXC_C14N and len(extra) == 1 and extra[0].tag == _Q_INCLUSIVE_NS):
            raise _reject(check, "transform not allowed")
    if ENVELOPED not in seen:
        raise _reject(check, "enveloped-signature transform missing")


def verify_enveloped(
    signed: etree._Element, sig: etree._Element, keys: Iterable[xmlsec.Key], check: str
) -> None:
    """Verify the enveloped ``sig`` (a child of ``signed``) with one of ``keys``."""
    _check_signature_shape(sig, signed, check)
    for key in keys:
        ctx = xmlsec.SignatureContext()
        ctx.register_id(signed, "ID")
        ctx.key = key
        try:
            ctx.verify(sig)
        except xmlsec.Error:
            continue
        return
    raise _reject(check, "signature does not verify with the IdP metadata certificates")


# --------------------------------------------------------------------------- checks


def scan_document(root: etree._Element) -> tuple[int, list[etree._Element]]:
    """One pass over the document: counts Assertions, returns all ds:Signature elements.

    Refuses duplicate ``ID`` values and ``xml:id`` (libxml2 treats it as an ID and xmlsec
    would resolve a Reference to it).
    """
    ids: set[str] = set()
    assertions = 0
    signatures: list[etree._Element] = []
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if tag == _Q_ASSERTION or tag == _Q_ENC_ASSERTION:
            assertions += 1
        elif tag == _Q_SIGNATURE:
            signatures.append(el)
        if el.attrib:
            if XML_ID in el.attrib:
                raise _reject("structure", "xml:id not allowed")
            value = el.get("ID")
            if value is not None:
                if value in ids:
                    raise _reject("structure", "duplicate ID")
                ids.add(value)
    return assertions, signatures


def _only_child(parent: etree._Element, tag: str, check: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise _reject(check, f"{what} missing" if not found else f"more than one {what}")
    return found[0]


def _issuer(parent: etree._Element, idp: IdpInfo, what: str, *, format_optional: bool) -> None:
    """Issuer present, equal to the IdP entityID, Format entity (or absent when allowed)."""
    issuer = parent.find(_Q_ISSUER)
    if issuer is None:
        raise _reject("issuer", f"{what} Issuer missing")
    if leaf_text(issuer, "issuer", f"{what} Issuer") != idp.entity_id:
        raise _reject("issuer", f"{what} Issuer is not the IdP entityID")
    fmt = issuer.get("Format")
    if fmt is None and format_optional:
        return
    if fmt != ENTITY_FORMAT:
        raise _reject("issuer", f"{what} Issuer Format must be entity")


def _status(root: etree._Element) -> None:
    status = root.find(_Q_STATUS)
    if status is None:
        raise _reject("status", "Status missing")
    code = status.find(_Q_STATUS_CODE)
    if code is None:
        raise _reject("status", "StatusCode missing")
    value = code.get("Value")
    if not value:
        raise _reject("status", "StatusCode Value empty")
    if value == STATUS_SUCCESS:
        return
    message = status.find(_Q_STATUS_MESSAGE)
    text = (message.text or "") if message is not None else ""
    m = _ANOMALY_RE.search(text)
    if m is not None and 19 <= int(m.group(1)) <= 25:
        raise SpidAnomaly(int(m.group(1)))
    raise _reject("status", "IdP answered with a non-Success status")


def level_acceptable(requested: int, obtained: int, comparison: Comparison) -> bool:
    """Whether the level the IdP asserted satisfies the request.

    A level below the requested one is accepted only for ``maximum``; ``better`` needs a
    strictly higher one. ``exact`` and ``maximum`` also accept a *higher* level: a stronger
    authentication is never a downgrade, and this is how spid-sp-test decides its cases
    94-96 (``response_mods.dynamic_acr``).
    """
    if obtained == requested:
        return comparison != "better"
    if obtained > requested:
        return True
    return comparison == "maximum"


def _check_not_before(
    value: datetime, now: datetime, skew: timedelta, check: str, what: str
) -> None:
    if value > now + skew:
        raise _reject(check, f"{what} is in the future")


def _instant_in_window(
    value: datetime, pending: PendingRequest, now: datetime, skew: timedelta, what: str
) -> None:
    # not before the request was issued (14, 39), not in the future (15, 40)
    if value < as_utc(pending.issue_instant) - skew:
        raise _reject("issue_instant", f"{what} IssueInstant precedes the request")
    _check_not_before(value, now, skew, "issue_instant", f"{what} IssueInstant")


def peek_response(saml_response_b64: str) -> tuple[str | None, str | None]:
    """``(InResponseTo, Issuer)`` of a POSTed SAMLResponse, to find the pending request and
    the IdP *before* validating. Nothing here is trusted: it only selects what to check
    against. Raises :class:`ResponseRejected` (``malformed``) for unparseable input.
    """
    root = parse_xml(decode_b64(saml_response_b64))
    if root.tag != _Q_RESPONSE:
        raise _reject("malformed", "not a samlp:Response")
    issuer_el = root.find(_Q_ISSUER)
    issuer: str | None = None
    if issuer_el is not None and not len(issuer_el):
        issuer = (issuer_el.text or "").strip() or None
    return root.get("InResponseTo") or None, issuer


def validate_response(
    saml_response_b64: str,
    *,
    sp: SpSettings,
    idp: IdpInfo,
    pending: PendingRequest,
    now: datetime,
    seen_assertion: Callable[[str], bool] | None = None,
) -> Identity:
    """Check a SPID/CIE ``samlp:Response`` against the pending request; return the identity.

    Raises :class:`SpidAnomaly` for ``ErrorCode nr19..25`` statuses and
    :class:`ResponseRejected` for anything else that is not a valid login.
    ``seen_assertion(assertion_id)`` is called last (after every check, so forged IDs never
    reach the cache) and must return True when the ID was already used, recording it
    otherwise; the caller keeps it until ``Identity.not_on_or_after`` + ``sp.clock_skew``.
    """
    now = as_utc(now)
    skew = timedelta(seconds=sp.clock_skew)
    if pending.idp_entity_id != idp.entity_id:
        raise _reject("issuer", "the pending request was sent to another IdP")

    root = parse_xml(decode_b64(saml_response_b64))
    if root.tag != _Q_RESPONSE:
        raise _reject("malformed", "not a samlp:Response")

    # -- structure (XSW): exactly the Response children SAML allows, in order
    n_assertions, signatures = scan_document(root)
    position = 0
    for child in root:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        try:
            position = _RESPONSE_CHILDREN.index(tag, position)
        except ValueError:
            raise _reject("structure", "unexpected element in Response") from None
        if tag != _Q_ASSERTION:
            position += 1

    # -- Response attributes
    response_id = root.get("ID")
    if not response_id:  # 8, 9
        raise _reject("id", "Response ID missing")
    if root.get("Version") != "2.0":  # 10
        raise _reject("version", "Response Version must be 2.0")
    issue_instant = parse_instant(root.get("IssueInstant"), "issue_instant", "Response")
    _instant_in_window(issue_instant, pending, now, skew, "Response")  # 11-15
    if root.get("InResponseTo") != pending.request_id:  # 16-18 (and unsolicited)
        raise _reject("in_response_to", "Response InResponseTo is not the pending request")
    destination = root.get("Destination")
    if not destination or destination != sp.acs_url:  # 19-21
        raise _reject("destination", "Destination is not this ACS")
    _issuer(root, idp, "Response", format_optional=True)  # 27-31

    keys = idp_keys(idp)
    response_sig = root.find(_Q_SIGNATURE)
    if response_sig is not None:  # a signed Response must verify too
        verify_enveloped(root, response_sig, keys, "signature")

    _status(root)  # 22-26, anomalies 104-108, 111

    # -- exactly one Assertion, a direct child of the Response (32, XSW)
    if n_assertions != 1:
        raise _reject("assertion", "exactly one Assertion expected")
    assertion = root.find(_Q_ASSERTION)
    if assertion is None:
        raise _reject("assertion", "Assertion is not a child of the Response")
    allowed_sigs = 2 if response_sig is not None else 1
    if len(signatures) > allowed_sigs:
        raise _reject("structure", "unexpected ds:Signature")

    assertion_id = assertion.get("ID")
    if not assertion_id:  # 33, 34
        raise _reject("id", "Assertion ID missing")
    if assertion.get("Version") != "2.0":  # 35
        raise _reject("version", "Assertion Version must be 2.0")
    a_instant = parse_instant(assertion.get("IssueInstant"), "issue_instant", "Assertion")
    _instant_in_window(a_instant, pending, now, skew, "Assertion")  # 36-40

    # Assertion children in schema order: Issuer, Signature, Subject, Conditions, ...
    a_children = [c for c in assertion if isinstance(c.tag, str)]
    if not a_children or a_children[0].tag != _Q_ISSUER:  # 68
        raise _reject("issuer", "Assertion Issuer missing")
    _issuer(assertion, idp, "Assertion", format_optional=sp.kind == "cie")  # 69-72

    # -- the Assertion signature is mandatory (2, 3, 4, 5, 100)
    if len(a_children) < 2 or a_children[1].tag != _Q_SIGNATURE:
        raise _reject("signature", "Assertion not signed")
    verify_enveloped(assertion, a_children[1], keys, "signature")

    # -- Subject / NameID (41-49)
    subject = _only_child(assertion, _Q_SUBJECT, "subject", "Subject")
    name_id_el = _only_child(subject, _Q_NAMEID, "subject", "NameID")
    name_id = leaf_text(name_id_el, "subject", "NameID")
    if not name_id:
        raise _reject("subject", "NameID empty")
    if name_id_el.get("Format") != TRANSIENT_FORMAT:
        raise _reject("subject", "NameID Format must be transient")
    name_qualifier = name_id_el.get("NameQualifier")
    if not name_qualifier:
        raise _reject("subject", "NameID NameQualifier missing")

    # -- SubjectConfirmation bearer (51-66)
    confirmation = _only_child(subject, _Q_SUBJ_CONF, "subject_confirmation", "SubjectConfirmation")
    if confirmation.get("Method") != BEARER:
        raise _reject("subject_confirmation", "SubjectConfirmation Method must be bearer")
    scd = _only_child(
        confirmation, _Q_SUBJ_CONF_DATA, "subject_confirmation", "SubjectConfirmationData"
    )
    if scd.get("Recipient") != sp.acs_url:
        raise _reject("subject_confirmation", "Recipient is not this ACS")
    if scd.get("InResponseTo") != pending.request_id:
        raise _reject("in_response_to", "SubjectConfirmationData InResponseTo mismatch")
    scd_not_after = parse_instant(
        scd.get("NotOnOrAfter"), "subject_confirmation", "SubjectConfirmationData NotOnOrAfter"
    )
    if now >= scd_not_after + skew:
        raise _reject("subject_confirmation", "SubjectConfirmationData expired")
    scd_not_before = scd.get("NotBefore")
    if scd_not_before is not None:
        _check_not_before(
            parse_instant(scd_not_before, "subject_confirmation", "NotBefore"),
            now,
            skew,
            "subject_confirmation",
            "SubjectConfirmationData NotBefore",
        )

    # -- Conditions (73-82) and Audience (83-87)
    conditions = _only_child(assertion, _Q_CONDITIONS, "conditions", "Conditions")
    not_before = parse_instant(conditions.get("NotBefore"), "conditions", "Conditions NotBefore")
    _check_not_before(not_before, now, skew, "conditions", "Conditions NotBefore")
    cond_not_after = parse_instant(
        conditions.get("NotOnOrAfter"), "conditions", "Conditions NotOnOrAfter"
    )
    if now >= cond_not_after + skew:
        raise _reject("conditions", "Conditions expired")
    restrictions = conditions.findall(_Q_AUDIENCE_RESTRICTION)
    if not restrictions:
        raise _reject("audience", "AudienceRestriction missing")
    for restriction in restrictions:  # every restriction must admit us
        audiences = [leaf_text(a, "audience", "Audience") for a in restriction.findall(_Q_AUDIENCE)]
        if sp.entity_id not in audiences:
            raise _reject("audience", "Audience is not this SP")

    # -- AuthnStatement / AuthnContextClassRef / level (88-97)
    statement = _only_child(assertion, _Q_AUTHN_STATEMENT, "authn_context", "AuthnStatement")
    context = _only_child(statement, _Q_AUTHN_CONTEXT, "authn_context", "AuthnContext")
    class_ref = _only_child(
        context, _Q_AUTHN_CONTEXT_CLASS_REF, "authn_context", "AuthnContextClassRef"
    )
    level = LEVEL_BY_URL.get(leaf_text(class_ref, "authn_context", "AuthnContextClassRef"))
    if level is None:  # empty, legacy URN (97) or unknown
        raise _reject("authn_context", "AuthnContextClassRef is not a SPID level URL")
    if not level_acceptable(pending.level, level, pending.comparison):
        raise _reject("level", "authentication level does not satisfy the request")
    authn_instant_raw = statement.get("AuthnInstant")
    authn_instant = (
        parse_instant(authn_instant_raw, "authn_context", "AuthnInstant")
        if authn_instant_raw
        else None
    )

    # -- AttributeStatement (98, 99; 103 and 109 accepted)
    attr_statement = _only_child(
        assertion, _Q_ATTRIBUTE_STATEMENT, "attributes", "AttributeStatement"
    )
    attributes: dict[str, str] = {}
    for attr in attr_statement:
        if not isinstance(attr.tag, str):
            continue
        if attr.tag != _Q_ATTRIBUTE:
            raise _reject("attributes", "unexpected element in AttributeStatement")
        name = attr.get("Name")
        if not name or name in attributes:
            raise _reject("attributes", "Attribute without Name or repeated")
        values = attr.findall(_Q_ATTRIBUTE_VALUE)
        if len(values) != 1:
            raise _reject("attributes", "Attribute must have exactly one value")
        value = leaf_text(values[0], "attributes", "AttributeValue")
        if not value:
            raise _reject("attributes", "Attribute value empty")
        attributes[name] = value
    if not attributes:
        raise _reject("attributes", "AttributeStatement without attributes")

    # -- replay, last: only fully verified assertions reach the cache
    if seen_assertion is not None and seen_assertion(assertion_id):
        raise _reject("replay", "assertion already used")

    return Identity(
        idp_entity_id=idp.entity_id,
        name_id=name_id,
        name_qualifier=name_qualifier,
        session_index=statement.get("SessionIndex") or None,
        level=level,
        attributes=attributes,
        assertion_id=assertion_id,
        response_id=response_id,
        in_response_to=pending.request_id,
        not_on_or_after=min(scd_not_after, cond_not_after),
        authn_instant=authn_instant,
    )

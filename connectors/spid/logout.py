"""SPID Single Logout (``single-logout.rst``): LogoutRequest / LogoutResponse both ways.

* SP-initiated: :func:`build_logout_request` (signed, Redirect or POST), then
  :func:`parse_logout_response_redirect` / :func:`parse_logout_response_post` on the answer.
* IdP-initiated: :func:`parse_logout_request_redirect` / :func:`parse_logout_request_post`,
  end the local session (even when it is already gone), then :func:`build_logout_response`.

CIE has no SAML SLO answer: the IdP accepts a LogoutRequest but never replies.

Incoming messages get the same hardened parsing and signature rules as the ACS
(:mod:`.response`): IdP metadata certificates only, SHA-256+ only. The Redirect-binding
signature is checked over the *raw* query parameters as received (re-encoding them would
break it). The XML is written by hand for the SPID Issuer format, as in :mod:`.authn`.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import unquote_plus

import xmlsec
from lxml import etree

from .authn import (
    ENTITY_FORMAT,
    SAML_NS,
    SAMLP_NS,
    TRANSIENT_FORMAT,
    new_id,
    post_form,
    redirect_url,
    saml_instant,
    utc_seconds,
)
from .errors import ResponseRejected, SamlConfigError
from .models import Binding, IdpInfo, SpSettings
from .response import (
    as_utc,
    decode_b64,
    idp_keys,
    leaf_text,
    parse_instant,
    parse_xml,
    scan_document,
    verify_enveloped,
)
from .xmlsign import sign_enveloped

STATUS_SUCCESS: Final = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_PARTIAL_LOGOUT: Final = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
MAX_INFLATED: Final = 256 * 1024
MAX_QUERY: Final = 64 * 1024
# How old an IdP-initiated LogoutRequest may be.
MAX_REQUEST_AGE: Final = timedelta(minutes=10)

_SIG_TRANSFORMS: Final = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.constants.TransformEcdsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": xmlsec.constants.TransformEcdsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": xmlsec.constants.TransformEcdsaSha512,
}

_Q_LOGOUT_REQUEST: Final = f"{{{SAMLP_NS}}}LogoutRequest"
_Q_LOGOUT_RESPONSE: Final = f"{{{SAMLP_NS}}}LogoutResponse"
_Q_SESSION_INDEX: Final = f"{{{SAMLP_NS}}}SessionIndex"
_Q_STATUS: Final = f"{{{SAMLP_NS}}}Status"
_Q_STATUS_CODE: Final = f"{{{SAMLP_NS}}}StatusCode"
_Q_ISSUER: Final = f"{{{SAML_NS}}}Issuer"
_Q_NAMEID: Final = f"{{{SAML_NS}}}NameID"
_Q_SIGNATURE: Final = "{http://www.w3.org/2000/09/xmldsig#}Signature"


@dataclass(frozen=True)
class LogoutRequestOut:
    """An SP-initiated LogoutRequest ready to send; store ``request_id``/``issue_instant``."""

    request_id: str
    issue_instant: datetime
    binding: Binding
    url: str  # redirect URL, or the form action for "post"
    form_html: str | None
    relay_state: str | None


@dataclass(frozen=True)
class LogoutResponseOut:
    """Our signed answer to an IdP-initiated LogoutRequest."""

    response_id: str
    binding: Binding
    url: str
    form_html: str | None


@dataclass(frozen=True)
class IncomingLogoutRequest:
    """A verified IdP-initiated LogoutRequest: end the sessions matching it."""

    request_id: str
    issuer: str
    name_id: str
    session_indexes: tuple[str, ...]
    issue_instant: datetime
    relay_state: str | None


@dataclass(frozen=True)
class LogoutResult:
    """A verified LogoutResponse to our request: ``partial`` for ``PartialLogout``."""

    in_response_to: str
    response_id: str
    partial: bool
    relay_state: str | None


def _reject(reason: str, check: str = "logout") -> ResponseRejected:
    return ResponseRejected(check, reason, status=400)


# --------------------------------------------------------------------------- building


def _issuer(parent: etree._Element, sp: SpSettings) -> None:
    issuer = etree.SubElement(parent, f"{{{SAML_NS}}}Issuer")
    issuer.set("Format", ENTITY_FORMAT)
    issuer.set("NameQualifier", sp.entity_id)
    issuer.text = sp.entity_id


def _emit(
    root: etree._Element,
    sp: SpSettings,
    binding: Binding,
    location: str,
    param: str,
    relay_state: str | None,
) -> tuple[str, str | None]:
    if binding == "redirect":
        xml = etree.tostring(root, encoding="UTF-8")
        return redirect_url(location, param, xml, relay_state, sp.key_pem), None
    sign_enveloped(root, sp.key_pem, sp.certs[0])
    xml = etree.tostring(root, encoding="UTF-8")
    return location, post_form(location, param, xml, relay_state)


def build_logout_request(
    sp: SpSettings,
    idp: IdpInfo,
    *,
    name_id: str,
    name_qualifier: str,
    session_index: str | None,
    binding: Binding = "redirect",
    now: datetime,
    relay_state: str | None = None,
) -> LogoutRequestOut:
    """A signed SP-initiated LogoutRequest for the session ``Identity`` described.

    ``name_id``/``name_qualifier``/``session_index`` come from the login's
    :class:`~.models.Identity`.
    """
    location = idp.slo_redirect if binding == "redirect" else idp.slo_post
    if not location:
        raise SamlConfigError(f"IdP {idp.entity_id} has no SLO endpoint for {binding}")
    request_id = new_id()
    instant = utc_seconds(now)
    root = etree.Element(f"{{{SAMLP_NS}}}LogoutRequest", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", saml_instant(instant))
    root.set("Destination", location)
    _issuer(root, sp)
    nid = etree.SubElement(root, _Q_NAMEID)
    nid.set("NameQualifier", name_qualifier)
    nid.set("Format", TRANSIENT_FORMAT)
    nid.text = name_id
    if session_index:
        etree.SubElement(root, _Q_SESSION_INDEX).text = session_index
    url, form = _emit(root, sp, binding, location, "SAMLRequest", relay_state)
    return LogoutRequestOut(request_id, instant, binding, url, form, relay_state)


def build_logout_response(
    sp: SpSettings,
    idp: IdpInfo,
    *,
    in_response_to: str,
    binding: Binding = "redirect",
    now: datetime,
    relay_state: str | None = None,
    status: str = STATUS_SUCCESS,
) -> LogoutResponseOut:
    """Our signed LogoutResponse (Success by default) to a verified IdP LogoutRequest."""
    if binding == "redirect":
        location = idp.slo_redirect_response or idp.slo_redirect
    else:
        location = idp.slo_post
    if not location:
        raise SamlConfigError(f"IdP {idp.entity_id} has no SLO endpoint for {binding}")
    response_id = new_id()
    root = etree.Element(
        f"{{{SAMLP_NS}}}LogoutResponse", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS}
    )
    root.set("ID", response_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", saml_instant(utc_seconds(now)))
    root.set("Destination", location)
    root.set("InResponseTo", in_response_to)
    _issuer(root, sp)
    st = etree.SubElement(root, _Q_STATUS)
    etree.SubElement(st, _Q_STATUS_CODE).set("Value", status)
    url, form = _emit(root, sp, binding, location, "SAMLResponse", relay_state)
    return LogoutResponseOut(response_id, binding, url, form)


# --------------------------------------------------------------------------- parsing


def _inflate(data: str) -> bytes:
    raw = decode_b64(data)
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(raw, MAX_INFLATED)
    except zlib.error:
        raise _reject("SAML message is not deflated", "malformed") from None
    if d.unconsumed_tail:
        raise _reject("SAML message too large", "malformed")
    return out


def _split_query(raw_query: str, param: str) -> tuple[dict[str, str], str]:
    """Decoded parameters and the exact signed string (raw, as received, in SAML order)."""
    if len(raw_query) > MAX_QUERY:
        raise _reject("query too large", "malformed")
    raw: dict[str, str] = {}
    for part in raw_query.lstrip("?").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if name in raw:
            raise _reject(f"repeated query parameter {name}", "malformed")
        raw[name] = value
    if param not in raw or "SigAlg" not in raw or "Signature" not in raw:
        raise _reject("unsigned Redirect-binding message", "signature")
    signed = f"{param}={raw[param]}"
    if "RelayState" in raw:
        signed += f"&RelayState={raw['RelayState']}"
    signed += f"&SigAlg={raw['SigAlg']}"
    return {k: unquote_plus(v) for k, v in raw.items()}, signed


def _verify_query(values: dict[str, str], signed: str, idp: IdpInfo) -> None:
    transform = _SIG_TRANSFORMS.get(values["SigAlg"])
    if transform is None:
        raise _reject("signature algorithm not allowed (RSA/ECDSA SHA-256+ only)", "signature")
    try:
        signature = base64.b64decode("".join(values["Signature"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise _reject("Signature is not base64", "signature") from None
    for key in idp_keys(idp):
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        try:
            ctx.verify_binary(signed.encode(), transform, signature)
        except xmlsec.Error:
            continue
        return
    raise _reject("signature does not verify with the IdP metadata certificates", "signature")


def _common(
    root: etree._Element, tag: str, sp: SpSettings, idp: IdpInfo, now: datetime
) -> tuple[str, datetime]:
    """Root element, ID, Version, IssueInstant (not in the future), Destination, Issuer."""
    if root.tag != tag:
        raise _reject("unexpected SAML message", "malformed")
    now = as_utc(now)
    msg_id = root.get("ID")
    if not msg_id:
        raise _reject("ID missing", "id")
    if root.get("Version") != "2.0":
        raise _reject("Version must be 2.0", "version")
    instant = parse_instant(root.get("IssueInstant"), "issue_instant", "IssueInstant")
    if instant > now + timedelta(seconds=sp.clock_skew):
        raise _reject("IssueInstant is in the future", "issue_instant")
    if root.get("Destination") != sp.slo_url:
        raise _reject("Destination is not this SLO endpoint", "destination")
    issuer = root.find(_Q_ISSUER)
    if issuer is None or leaf_text(issuer, "issuer", "Issuer") != idp.entity_id:
        raise _reject("Issuer is not the IdP", "issuer")
    if issuer.get("Format") not in (None, ENTITY_FORMAT):
        raise _reject("Issuer Format must be entity", "issuer")
    return msg_id, instant


def _logout_request(
    root: etree._Element,
    sp: SpSettings,
    idp: IdpInfo,
    now: datetime,
    relay_state: str | None,
) -> IncomingLogoutRequest:
    now = as_utc(now)
    msg_id, instant = _common(root, _Q_LOGOUT_REQUEST, sp, idp, now)
    skew = timedelta(seconds=sp.clock_skew)
    if instant < now - MAX_REQUEST_AGE - skew:
        raise _reject("LogoutRequest too old", "issue_instant")
    not_after = root.get("NotOnOrAfter")
    if not_after is not None:
        if now >= parse_instant(not_after, "issue_instant", "NotOnOrAfter") + skew:
            raise _reject("LogoutRequest expired", "issue_instant")
    nid = root.find(_Q_NAMEID)
    if nid is None:
        raise _reject("NameID missing", "subject")
    name_id = leaf_text(nid, "subject", "NameID")
    if not name_id:
        raise _reject("NameID empty", "subject")
    sessions = tuple(
        leaf_text(s, "subject", "SessionIndex") for s in root.findall(_Q_SESSION_INDEX)
    )
    return IncomingLogoutRequest(msg_id, idp.entity_id, name_id, sessions, instant, relay_state)


def _logout_response(
    root: etree._Element,
    sp: SpSettings,
    idp: IdpInfo,
    request_id: str,
    request_instant: datetime,
    now: datetime,
    relay_state: str | None,
) -> LogoutResult:
    msg_id, instant = _common(root, _Q_LOGOUT_RESPONSE, sp, idp, now)
    if instant < utc_seconds(request_instant) - timedelta(seconds=sp.clock_skew):
        raise _reject("IssueInstant precedes our LogoutRequest", "issue_instant")
    if root.get("InResponseTo") != request_id:
        raise _reject("InResponseTo is not our LogoutRequest", "in_response_to")
    status = root.find(_Q_STATUS)
    code = status.find(_Q_STATUS_CODE) if status is not None else None
    if code is None or not code.get("Value"):
        raise _reject("Status missing", "status")
    codes = [c.get("Value") for c in code.iter(_Q_STATUS_CODE)]
    if STATUS_PARTIAL_LOGOUT in codes:
        partial = True
    elif codes[0] == STATUS_SUCCESS:
        partial = False
    else:
        raise _reject("IdP refused the logout", "status")
    return LogoutResult(request_id, msg_id, partial, relay_state)


def _post_root(saml_b64: str, idp: IdpInfo) -> etree._Element:
    root = parse_xml(decode_b64(saml_b64))
    scan_document(root)  # duplicate IDs / xml:id before the Reference is resolved
    sig = root.find(_Q_SIGNATURE)
    if sig is None:
        raise _reject("message not signed", "signature")
    verify_enveloped(root, sig, idp_keys(idp), "signature")
    return root


def _redirect_root(raw_query: str, param: str, idp: IdpInfo) -> tuple[etree._Element, str | None]:
    values, signed = _split_query(raw_query, param)
    _verify_query(values, signed, idp)
    root = parse_xml(_inflate(values[param]))
    scan_document(root)
    return root, values.get("RelayState")


def parse_logout_request_redirect(
    raw_query: str, *, sp: SpSettings, idp: IdpInfo, now: datetime
) -> IncomingLogoutRequest:
    """An IdP-initiated LogoutRequest on the Redirect binding; ``raw_query`` is the URL query
    string exactly as received (not re-encoded)."""
    root, relay = _redirect_root(raw_query, "SAMLRequest", idp)
    return _logout_request(root, sp, idp, now, relay)


def parse_logout_request_post(
    saml_request_b64: str,
    *,
    sp: SpSettings,
    idp: IdpInfo,
    now: datetime,
    relay_state: str | None = None,
) -> IncomingLogoutRequest:
    """An IdP-initiated LogoutRequest on the POST binding (enveloped signature required)."""
    root = _post_root(saml_request_b64, idp)
    return _logout_request(root, sp, idp, now, relay_state)


def parse_logout_response_redirect(
    raw_query: str,
    *,
    sp: SpSettings,
    idp: IdpInfo,
    request_id: str,
    request_instant: datetime,
    now: datetime,
) -> LogoutResult:
    """The IdP's LogoutResponse to our ``request_id`` on the Redirect binding."""
    root, relay = _redirect_root(raw_query, "SAMLResponse", idp)
    return _logout_response(root, sp, idp, request_id, request_instant, now, relay)


def parse_logout_response_post(
    saml_response_b64: str,
    *,
    sp: SpSettings,
    idp: IdpInfo,
    request_id: str,
    request_instant: datetime,
    now: datetime,
    relay_state: str | None = None,
) -> LogoutResult:
    """The IdP's LogoutResponse to our ``request_id`` on the POST binding."""
    root = _post_root(saml_response_b64, idp)
    return _logout_response(root, sp, idp, request_id, request_instant, now, relay_state)

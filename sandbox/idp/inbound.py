"""Reading and checking what SPs send the IdP: AuthnRequest, LogoutRequest, LogoutResponse.

Every check yields a :class:`~.state.Problem` instead of stopping at the first, so the
error page (and the request log) tell the developer everything that is wrong at once.
Signatures are verified only with the certificates of the SP's metadata: the query signature
for HTTP-Redirect, the enveloped one for HTTP-POST.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, unquote_plus

from aiohttp import web
from lxml import etree

from .spmeta import BINDING_POST, SpMetadata, SpRegistry
from .state import Problem
from .xmlutil import (
    SAML,
    SAMLP,
    XmlRefused,
    fmt_time,
    inflate_b64,
    parse_time,
    parse_xml,
    raw_query_params,
    verify_enveloped,
    verify_query,
)

__all__ = [
    "AuthnCheck",
    "Inbound",
    "LogoutCheck",
    "check_authn_request",
    "check_logout_request",
    "check_logout_response",
    "read_message",
]

MAX_REQUEST_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
LEVELS = {f"https://www.spid.gov.it/SpidL{n}": n for n in (1, 2, 3)}


@dataclass
class Inbound:
    """A SAML message as it arrived: binding, XML and parameters."""

    binding: str  # "redirect" | "post"
    param: str  # "SAMLRequest" | "SAMLResponse"
    root: etree._Element
    relay_state: str | None
    raw_params: dict[str, str] = field(default_factory=dict)

    def verify(self, certs: list[bytes]) -> tuple[str | None, str]:
        """The binding's signature, checked against these certificates: ``(None, _)`` when
        it verifies, else ``(problem code, reason)``."""
        if self.binding == "redirect":
            return verify_query(self.param, self.raw_params, certs)
        return verify_enveloped(self.root, certs)


async def read_message(request: web.Request) -> Inbound:
    """The ``SAMLRequest``/``SAMLResponse`` of a GET (Redirect) or POST request.

    Raises :class:`XmlRefused` when there is none or it cannot be decoded."""
    if request.method == "GET":
        params = raw_query_params(request.raw_path.partition("?")[2])
        param = next((p for p in ("SAMLRequest", "SAMLResponse") if p in params), None)
        if param is None:
            raise XmlRefused("binding", "no SAMLRequest or SAMLResponse in the query string")
        relay = params.get("RelayState")
        # base64 never holds a space: a raw "+" is a "+", not a form-encoded space
        root = parse_xml(inflate_b64(unquote(params[param])))
        return Inbound("redirect", param, root, unquote_plus(relay) if relay else None, params)
    form = await request.post()
    param = next((p for p in ("SAMLRequest", "SAMLResponse") if p in form), None)
    if param is None:
        raise XmlRefused("binding", "no SAMLRequest or SAMLResponse field in the POST form")
    field_value = form[param]
    if not isinstance(field_value, str):
        raise XmlRefused("binding", f"{param} must be a form field, not a file")
    try:
        xml = base64.b64decode(field_value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise XmlRefused("encoding", f"{param} is not valid base64: {exc}") from exc
    relay_field = form.get("RelayState")
    relay_state = relay_field if isinstance(relay_field, str) else None
    return Inbound("post", param, parse_xml(xml), relay_state)


@dataclass
class _Common:
    """The header fields every SAML request/response shares."""

    message_id: str | None = None
    issuer: str | None = None
    destination: str | None = None
    issue_instant: str | None = None
    sp: SpMetadata | None = None
    signature_ok: bool | None = None
    problems: list[Problem] = field(default_factory=list)

    def problem(self, code: str, message: str, spid_code: int | None = None) -> None:
        self.problems.append(Problem(code, message, spid_code))

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "issuer": self.issuer,
            "destination": self.destination,
            "issue_instant": self.issue_instant,
            "signature_ok": self.signature_ok,
            "problems": [p.as_dict() for p in self.problems],
        }


async def _check_common(
    inbound: Inbound,
    out: _Common,
    *,
    tag: str,
    scheme: str,
    destinations: tuple[str, ...],
    registry: SpRegistry,
    now: datetime,
    mono: float,
) -> None:
    root = inbound.root
    if root.tag != f"{{{SAMLP}}}{tag}":
        out.problem("message_type", f"expected a samlp:{tag}, received {root.tag}", 8)
        return
    out.message_id = root.get("ID")
    out.destination = root.get("Destination")
    out.issue_instant = root.get("IssueInstant")
    if not out.message_id:
        out.problem("id", "the ID attribute is missing or empty", 11)
    if root.get("Version") != "2.0":
        out.problem("version", f"Version must be '2.0', received {root.get('Version')!r}", 9)
    instant = parse_time(out.issue_instant)
    if instant is None:
        out.problem(
            "issue_instant", f"IssueInstant {out.issue_instant!r} is missing or malformed", 13
        )
    elif instant > now + CLOCK_SKEW:
        out.problem(
            "issue_instant_future",
            f"IssueInstant {out.issue_instant} is in the future (IdP time {fmt_time(now)})",
            13,
        )
    elif instant < now - MAX_REQUEST_AGE:
        out.problem(
            "issue_instant_stale",
            f"IssueInstant {out.issue_instant} is older than "
            f"{int(MAX_REQUEST_AGE.total_seconds())} s (IdP time {fmt_time(now)})",
            13,
        )
    issuer = root.find(f"{{{SAML}}}Issuer")
    out.issuer = (issuer.text or "").strip() if issuer is not None else None
    if not out.issuer or issuer is None:
        out.problem("issuer", "the Issuer element is missing or empty", 10)
    else:
        fmt = issuer.get("Format")
        if scheme == "spid" and fmt is None:
            out.problem("issuer_format", f"SPID wants the Issuer Format attribute {ENTITY}", 10)
        elif fmt is not None and fmt != ENTITY:
            out.problem("issuer_format", f"the Issuer Format must be {ENTITY}, not {fmt}", 10)
        qualifier = issuer.get("NameQualifier")
        if scheme == "spid" and qualifier != out.issuer:
            out.problem(
                "issuer_name_qualifier",
                f"SPID wants Issuer NameQualifier equal to the entityID {out.issuer!r}, "
                f"received {qualifier!r}",
                10,
            )
    if out.destination not in destinations:
        out.problem(
            "destination",
            f"Destination {out.destination!r} is not this IdP's endpoint "
            f"({' or '.join(repr(d) for d in destinations)})",
            14,
        )
    if not out.issuer:
        out.signature_ok = False
        return
    try:
        out.sp = await registry.get(out.issuer, mono)
    except XmlRefused as exc:
        out.problem("sp_metadata", exc.message, 10)
        out.signature_ok = False
        return
    code, reason = inbound.verify(list(out.sp.certs))
    out.signature_ok = code is None
    if code is not None:
        out.problem(code, f"HTTP-{inbound.binding.title()} binding signature: {reason}", 7)


@dataclass
class AuthnCheck(_Common):
    """A checked AuthnRequest: what the login answer needs, and what is wrong with it."""

    level: int | None = None
    comparison: str = "exact"
    acs_url: str | None = None
    acs_index: int | None = None
    attribute_index: int | None = None
    attributes: tuple[str, ...] = ()
    force_authn: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "level": self.level,
            "comparison": self.comparison,
            "acs_url": self.acs_url,
            "acs_index": self.acs_index,
            "attribute_index": self.attribute_index,
            "attributes": list(self.attributes),
            "force_authn": self.force_authn,
        }


def _int_attr(root: etree._Element, name: str, out: _Common, spid_code: int) -> int | None:
    value = root.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        out.problem(name.lower(), f"{name} {value!r} is not an integer", spid_code)
        return None


def _check_acs(root: etree._Element, out: AuthnCheck, sp: SpMetadata) -> None:
    out.acs_index = _int_attr(root, "AssertionConsumerServiceIndex", out, 16)
    url = root.get("AssertionConsumerServiceURL")
    if url is not None and root.get("AssertionConsumerServiceIndex") is not None:
        out.problem(
            "acs",
            "AssertionConsumerServiceIndex and AssertionConsumerServiceURL are mutually exclusive",
            16,
        )
        return
    if url is not None:
        binding = root.get("ProtocolBinding")
        if binding != BINDING_POST:
            out.problem("acs", f"ProtocolBinding must be {BINDING_POST}, not {binding!r}", 16)
        endpoint = sp.acs_by_url(url, BINDING_POST)
        if endpoint is None:
            out.problem("acs", f"AssertionConsumerServiceURL {url!r} is not in the SP metadata", 16)
        out.acs_url = url
        return
    endpoint = sp.acs_by_index(out.acs_index)
    if endpoint is None:
        known = sorted(e.index for e in sp.acs if e.index is not None)
        out.problem(
            "acs_index",
            f"AssertionConsumerServiceIndex {out.acs_index} is not in the SP metadata "
            f"(known: {known})",
            16,
        )
        return
    if endpoint.binding != BINDING_POST:
        out.problem("acs", f"the SP's ACS {endpoint.location} is not bound to HTTP-POST", 16)
    out.acs_url = endpoint.location


def _check_context(root: etree._Element, out: AuthnCheck, scheme: str) -> None:
    context = root.find(f"{{{SAMLP}}}RequestedAuthnContext")
    if context is None:
        out.problem("authn_context", "RequestedAuthnContext is missing", 12)
        return
    out.comparison = context.get("Comparison", "exact")
    allowed = ("exact", "minimum") if scheme == "cie" else ("exact", "minimum", "better", "maximum")
    if out.comparison not in allowed:
        out.problem(
            "authn_context_comparison",
            f"Comparison {out.comparison!r} is not allowed here (use {', '.join(allowed)})",
            12,
        )
    refs = [(r.text or "").strip() for r in context.findall(f"{{{SAML}}}AuthnContextClassRef")]
    if len(refs) != 1 or refs[0] not in LEVELS:
        out.problem(
            "authn_context_class",
            f"expected one AuthnContextClassRef among {sorted(LEVELS)}, received {refs}",
            12,
        )
        return
    out.level = LEVELS[refs[0]]


async def check_authn_request(
    inbound: Inbound,
    *,
    scheme: str,
    idp_entity_id: str,
    sso_url: str,
    registry: SpRegistry,
    now: datetime,
    mono: float,
) -> AuthnCheck:
    """Every rule of an SPID/CIE AuthnRequest, against the SP's metadata."""
    out = AuthnCheck()
    destinations = (sso_url, idp_entity_id) if scheme == "spid" else (sso_url,)
    await _check_common(
        inbound,
        out,
        tag="AuthnRequest",
        scheme=scheme,
        destinations=destinations,
        registry=registry,
        now=now,
        mono=mono,
    )
    root = inbound.root
    if root.tag != f"{{{SAMLP}}}AuthnRequest":
        return out
    _check_context(root, out, scheme)
    out.force_authn = root.get("ForceAuthn") in ("true", "1")
    if root.get("IsPassive") is not None:
        out.problem("is_passive", "IsPassive must be absent (SPID)", 15)
    needs_force = scheme == "cie" or (out.level or 0) > 1
    if needs_force and not out.force_authn:
        out.problem(
            "force_authn",
            "ForceAuthn must be true for SpidL2/SpidL3"
            + (" and always for CIE" if scheme == "cie" else ""),
        )
    policy = root.find(f"{{{SAMLP}}}NameIDPolicy")
    if policy is None and scheme == "spid":
        out.problem("name_id_policy", f"NameIDPolicy (Format {TRANSIENT}) is missing", 17)
    elif policy is not None and policy.get("Format") != TRANSIENT:
        out.problem(
            "name_id_policy",
            f"NameIDPolicy Format must be {TRANSIENT}, not {policy.get('Format')!r}",
            17,
        )
    if out.sp is None:
        return out
    _check_acs(root, out, out.sp)
    out.attribute_index = _int_attr(root, "AttributeConsumingServiceIndex", out, 18)
    attributes = out.sp.requested_attributes(out.attribute_index)
    if attributes is None:
        out.problem(
            "attribute_index",
            f"AttributeConsumingServiceIndex {out.attribute_index} is not in the SP metadata "
            f"(known: {sorted(out.sp.attribute_sets)})",
            18,
        )
    else:
        out.attributes = attributes
    return out


@dataclass
class LogoutCheck(_Common):
    """A checked LogoutRequest (``name_id``, ``session_indexes``) or LogoutResponse
    (``in_response_to``, ``status``)."""

    name_id: str | None = None
    session_indexes: tuple[str, ...] = ()
    in_response_to: str | None = None
    status: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "name_id": self.name_id,
            "session_indexes": list(self.session_indexes),
            "in_response_to": self.in_response_to,
            "status": self.status,
        }


async def check_logout_request(
    inbound: Inbound,
    *,
    scheme: str,
    slo_url: str,
    registry: SpRegistry,
    now: datetime,
    mono: float,
) -> LogoutCheck:
    """A LogoutRequest from an SP: header, signature, NameID and SessionIndex."""
    out = LogoutCheck()
    await _check_common(
        inbound,
        out,
        tag="LogoutRequest",
        scheme=scheme,
        destinations=(slo_url,),
        registry=registry,
        now=now,
        mono=mono,
    )
    root = inbound.root
    if root.tag != f"{{{SAMLP}}}LogoutRequest":
        return out
    name_id = root.find(f"{{{SAML}}}NameID")
    out.name_id = (name_id.text or "").strip() if name_id is not None else None
    if not out.name_id:
        out.problem("name_id", "the LogoutRequest has no NameID")
    out.session_indexes = tuple(
        (node.text or "").strip() for node in root.findall(f"{{{SAMLP}}}SessionIndex")
    )
    if not any(out.session_indexes):
        out.problem("session_index", "the LogoutRequest has no SessionIndex")
    return out


async def check_logout_response(
    inbound: Inbound,
    *,
    scheme: str,
    slo_url: str,
    registry: SpRegistry,
    now: datetime,
    mono: float,
    pending: set[str],
) -> LogoutCheck:
    """An SP's LogoutResponse to an IdP-initiated logout: header, signature, InResponseTo."""
    out = LogoutCheck()
    await _check_common(
        inbound,
        out,
        tag="LogoutResponse",
        scheme=scheme,
        destinations=(slo_url,),
        registry=registry,
        now=now,
        mono=mono,
    )
    root = inbound.root
    if root.tag != f"{{{SAMLP}}}LogoutResponse":
        return out
    out.in_response_to = root.get("InResponseTo")
    if out.in_response_to not in pending:
        out.problem(
            "in_response_to",
            f"InResponseTo {out.in_response_to!r} matches no pending IdP-initiated logout",
        )
    code = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    out.status = code.get("Value") if code is not None else None
    if out.status is None:
        out.problem("status", "the LogoutResponse has no Status/StatusCode")
    return out

"""Build the SPID/CIE ``samlp:AuthnRequest`` for the Redirect or the POST binding.

python3-saml's request template cannot express the SPID Issuer (``Format`` +
``NameQualifier``), refuses to drop ``AllowCreate`` and signs Redirect requests with the
wrong order of checks, so the XML is written here by hand (SPID "Regole tecniche" and
spid-sp-test ``authn_request*.py``); python3-saml only provides deflate/base64 and URL
escaping, python-xmlsec the signatures.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import secrets
from datetime import UTC, datetime
from typing import Final

import xmlsec
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from .errors import SamlConfigError
from .models import SPID_LEVELS, AuthnRequestOut, Binding, Comparison, IdpInfo, SpSettings
from .xmlsign import sign_enveloped

SAMLP_NS: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
ENTITY_FORMAT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
TRANSIENT_FORMAT: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
COMPARISONS: Final = ("exact", "minimum", "better", "maximum")
CIE_COMPARISONS: Final = ("exact", "minimum")
MAX_RELAY_STATE: Final = 80  # bytes, SAML bindings 3.4.3 / 3.5.3


def new_id() -> str:
    """A fresh SAML ID: an NCName (leading underscore) with 128 random bits."""
    return "_" + secrets.token_hex(16)


def saml_instant(dt: datetime) -> str:
    """``xs:dateTime`` in UTC with a ``Z``, whole seconds."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_seconds(dt: datetime) -> datetime:
    """``dt`` in UTC truncated to the second (what :func:`saml_instant` writes)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


def check_relay_state(relay_state: str) -> None:
    """RelayState must be present, opaque (spid-sp-test refuses "http") and <= 80 bytes."""
    if not relay_state or len(relay_state.encode()) > MAX_RELAY_STATE:
        raise ValueError("RelayState must be 1..80 bytes")
    if "http" in relay_state.lower():
        raise ValueError("RelayState must be an opaque token, not a URL")


@functools.lru_cache(maxsize=64)
def _signing_key(key_pem: bytes) -> xmlsec.Key:
    try:
        return xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    except xmlsec.Error:
        raise SamlConfigError("the SP signing key cannot be loaded") from None


def sign_query(query: str, key_pem: bytes) -> str:
    """Base64 RSA-SHA256 signature of a Redirect-binding query (``SAMLxxx=..&RelayState=..
    &SigAlg=..``, exactly as sent)."""
    ctx = xmlsec.SignatureContext()
    ctx.key = _signing_key(key_pem)
    raw = ctx.sign_binary(query.encode(), xmlsec.constants.TransformRsaSha256)
    return OneLogin_Saml2_Utils.b64encode(raw)  # type: ignore[no-any-return]


def redirect_url(
    location: str, param: str, xml: bytes, relay_state: str | None, key_pem: bytes
) -> str:
    """``location?SAMLRequest|SAMLResponse=..[&RelayState=..]&SigAlg=..&Signature=..``."""
    esc = OneLogin_Saml2_Utils.escape_url
    encoded = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
    query = f"{param}={esc(encoded)}"
    if relay_state is not None:
        query += f"&RelayState={esc(relay_state)}"
    query += f"&SigAlg={esc(RSA_SHA256)}"
    signature = sign_query(query, key_pem)
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}{query}&Signature={esc(signature)}"


#: the only script of the POST-binding page: a Content-Security-Policy allows it by its hash
AUTOSUBMIT_SCRIPT = "document.forms[0].submit()"
AUTOSUBMIT_CSP = (
    "default-src 'none'; script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(AUTOSUBMIT_SCRIPT.encode()).digest()).decode()
    + "'; base-uri 'none'; frame-ancestors 'none'"
)


def post_form(action: str, param: str, xml: bytes, relay_state: str | None) -> str:
    """A self-submitting HTML form (with a no-JavaScript button) for the POST binding.

    The form is submitted by one inline ``<script>`` (no event handler attribute), so the
    page can be served with the strict :data:`AUTOSUBMIT_CSP`."""
    value = OneLogin_Saml2_Utils.b64encode(xml)
    relay = (
        f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}"/>'
        if relay_state is not None
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="it"><head><meta charset="utf-8"/><title>SPID</title></head>'
        "<body>"
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="{param}" value="{html.escape(value)}"/>'
        f"{relay}"
        '<noscript><button type="submit">Continua</button></noscript>'
        f"</form><script>{AUTOSUBMIT_SCRIPT}</script></body></html>"
    )


def build_authn_request(
    sp: SpSettings,
    idp: IdpInfo,
    *,
    level: int,
    comparison: Comparison = "minimum",
    binding: Binding = "redirect",
    now: datetime,
    relay_state: str,
) -> AuthnRequestOut:
    """A signed SPID/CIE AuthnRequest for ``idp``.

    Redirect: the URL carries ``SAMLRequest`` (deflated), ``RelayState``, ``SigAlg`` and the
    query ``Signature`` (no enveloped signature). POST: the request carries an enveloped
    signature and ``form_html`` posts it. The returned ``issue_instant`` is exactly the one
    written (whole seconds, UTC): store it in the :class:`PendingRequest`.
    """
    if level not in SPID_LEVELS:
        raise ValueError("level must be 1, 2 or 3")
    if comparison not in COMPARISONS:
        raise ValueError("unknown Comparison")
    if sp.kind == "cie" and comparison not in CIE_COMPARISONS:
        raise ValueError("CIE accepts only Comparison exact or minimum")
    check_relay_state(relay_state)
    location = idp.sso_redirect if binding == "redirect" else idp.sso_post
    if not location:
        raise SamlConfigError(f"IdP {idp.entity_id} has no SSO endpoint for {binding}")

    request_id = new_id()
    instant = utc_seconds(now)
    samlp = f"{{{SAMLP_NS}}}"
    saml = f"{{{SAML_NS}}}"
    root = etree.Element(samlp + "AuthnRequest", nsmap={"samlp": SAMLP_NS, "saml": SAML_NS})
    root.set("ID", request_id)
    root.set("Version", "2.0")
    root.set("IssueInstant", saml_instant(instant))
    root.set("Destination", location)
    if level >= 2 or sp.kind == "cie":
        root.set("ForceAuthn", "true")
    root.set("AssertionConsumerServiceIndex", "0")
    root.set("AttributeConsumingServiceIndex", str(sp.attribute_index))
    issuer = etree.SubElement(root, saml + "Issuer")
    issuer.set("Format", ENTITY_FORMAT)
    issuer.set("NameQualifier", sp.entity_id)
    issuer.text = sp.entity_id
    policy = etree.SubElement(root, samlp + "NameIDPolicy")
    policy.set("Format", TRANSIENT_FORMAT)
    requested = etree.SubElement(root, samlp + "RequestedAuthnContext")
    requested.set("Comparison", comparison)
    etree.SubElement(requested, saml + "AuthnContextClassRef").text = SPID_LEVELS[level]

    if binding == "redirect":
        xml = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
        url = redirect_url(location, "SAMLRequest", xml, relay_state, sp.key_pem)
        form = None
    else:
        sign_enveloped(root, sp.key_pem, sp.certs[0])
        xml = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
        url = location
        form = post_form(location, "SAMLRequest", xml, relay_state)
    return AuthnRequestOut(
        request_id=request_id,
        issue_instant=instant,
        binding=binding,
        url=url,
        form_html=form,
        relay_state=relay_state,
    )

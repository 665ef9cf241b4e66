"""The SPID/CIE AuthnRequest: every rule spid-sp-test's authn_request checks look at."""

from __future__ import annotations

import base64
import html.parser
import zlib
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import pytest
import spid_fixtures as f
import xmlsec
from lxml import etree

from sportello.connectors.spid.authn import build_authn_request
from sportello.connectors.spid.errors import SamlConfigError
from sportello.connectors.spid.models import AuthnRequestOut, Comparison
from sportello.connectors.spid.response import cert_key, verify_enveloped

SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
XSD = Path("/work/shared/specs/spid/saml-schema-protocol-2.0.xsd")


def build(**kw: object) -> AuthnRequestOut:
    args: dict[str, object] = {
        "level": 2,
        "now": f.NOW,
        "relay_state": "rs-opaque-1",
    }
    args.update(kw)
    sp = args.pop("sp", f.sp_settings())
    idp = args.pop("idp", f.idp_info())
    return build_authn_request(sp, idp, **args)  # type: ignore[arg-type]


def redirect_parts(out: AuthnRequestOut) -> tuple[etree._Element, list[tuple[str, str]], str]:
    query = urlsplit(out.url).query
    params = parse_qsl(query)
    xml = zlib.decompress(base64.b64decode(dict(params)["SAMLRequest"]), -15)
    return etree.fromstring(xml), params, query


class _Form(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.action = ""
        self.noscript_button = False
        self._in_noscript = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a["action"]
        elif tag == "input":
            self.inputs[a["name"]] = a["value"]
        elif tag == "noscript":
            self._in_noscript = True
        elif tag == "button" and self._in_noscript:
            self.noscript_button = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self._in_noscript = False


def post_parts(out: AuthnRequestOut) -> tuple[etree._Element, _Form]:
    assert out.form_html is not None
    form = _Form()
    form.feed(out.form_html)
    return etree.fromstring(base64.b64decode(form.inputs["SAMLRequest"])), form


def test_redirect_request_structure() -> None:
    out = build(binding="redirect")
    root, params, _ = redirect_parts(out)
    assert [k for k, _ in params] == ["SAMLRequest", "RelayState", "SigAlg", "Signature"]
    assert out.url.startswith(f.idp_info().sso_redirect + "?")  # type: ignore[operator]
    assert out.form_html is None
    assert root.tag == f"{SAMLP}AuthnRequest"
    assert root.get("ID") == out.request_id
    assert out.request_id[0] == "_" and len(out.request_id) >= 33
    assert root.get("Version") == "2.0"
    assert root.get("IssueInstant") == "2026-03-02T10:00:00Z"
    assert out.issue_instant == f.NOW
    assert root.get("Destination") == f.idp_info().sso_redirect
    assert root.get("AssertionConsumerServiceIndex") == "0"
    assert root.get("AttributeConsumingServiceIndex") == "0"
    assert root.get("ForceAuthn") == "true"
    for absent in ("IsPassive", "ProviderName", "AssertionConsumerServiceURL"):
        assert absent not in root.attrib
    issuer = root.find(f"{SAML}Issuer")
    assert issuer is not None
    assert issuer.text == f.SP_ENTITY_ID
    assert issuer.get("NameQualifier") == f.SP_ENTITY_ID
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
    policy = root.find(f"{SAMLP}NameIDPolicy")
    assert policy is not None
    assert policy.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    assert "AllowCreate" not in policy.attrib
    rac = root.find(f"{SAMLP}RequestedAuthnContext")
    assert rac is not None and rac.get("Comparison") == "minimum"
    refs = rac.findall(f"{SAML}AuthnContextClassRef")
    assert [r.text for r in refs] == ["https://www.spid.gov.it/SpidL2"]
    # Redirect binding: the query is signed, the XML is not
    assert root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None


def test_redirect_signature_over_raw_query() -> None:
    out = build(binding="redirect")
    _, params, query = redirect_parts(out)
    signed, _, sig = query.rpartition("&Signature=")
    assert dict(params)["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    ctx = xmlsec.SignatureContext()
    ctx.key = cert_key(f.sp_keys().cert_pem)
    ctx.verify_binary(
        signed.encode(), xmlsec.constants.TransformRsaSha256, base64.b64decode(unquote_plus(sig))
    )
    with pytest.raises(xmlsec.Error):
        ctx.verify_binary(
            signed.replace("RelayState=rs", "RelayState=xx").encode(),
            xmlsec.constants.TransformRsaSha256,
            base64.b64decode(unquote_plus(sig)),
        )


def test_post_request_enveloped_signature_and_form() -> None:
    out = build(binding="post", level=3, comparison="exact")
    root, form = post_parts(out)
    assert out.url == f.idp_info().sso_post == form.action
    assert form.inputs["RelayState"] == "rs-opaque-1"
    assert form.noscript_button
    assert "submit()" in (out.form_html or "")
    assert root.get("Destination") == f.idp_info().sso_post
    sig = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert sig is not None
    assert sig.getprevious() is not None and sig.getprevious().tag == f"{SAML}Issuer"  # type: ignore[union-attr]
    verify_enveloped(root, sig, [cert_key(f.sp_keys().cert_pem)], "signature")
    rac = root.find(f"{SAMLP}RequestedAuthnContext")
    assert rac is not None and rac.get("Comparison") == "exact"


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_request_is_schema_valid(binding: str) -> None:
    if not XSD.exists():
        pytest.skip("SAML XSDs not available")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    out = build(binding=binding)
    root = redirect_parts(out)[0] if binding == "redirect" else post_parts(out)[0]
    schema.assertValid(root)


@pytest.mark.parametrize(("level", "force"), [(1, None), (2, "true"), (3, "true")])
def test_force_authn_for_l2_l3(level: int, force: str | None) -> None:
    root = redirect_parts(build(level=level))[0]
    assert root.get("ForceAuthn") == force


def test_cie_always_forces_authn_and_limits_comparison() -> None:
    cie = f.sp_settings(kind="cie")
    root = redirect_parts(build(sp=cie, level=1))[0]
    assert root.get("ForceAuthn") == "true"
    for comparison in ("better", "maximum"):
        with pytest.raises(ValueError):
            build(sp=cie, comparison=comparison)
    build(sp=cie, comparison="exact")


@pytest.mark.parametrize("comparison", ["exact", "minimum", "better", "maximum"])
def test_comparisons(comparison: Comparison) -> None:
    rac = redirect_parts(build(comparison=comparison))[0].find(f"{SAMLP}RequestedAuthnContext")
    assert rac is not None and rac.get("Comparison") == comparison


def test_attribute_index_from_settings() -> None:
    root = redirect_parts(build(sp=f.sp_settings(attribute_index=2)))[0]
    assert root.get("AttributeConsumingServiceIndex") == "2"


def test_ids_are_random() -> None:
    assert len({build().request_id for _ in range(20)}) == 20


@pytest.mark.parametrize("relay", ["", "https://evil.example/next", "x" * 81])
def test_relay_state_must_be_opaque_and_short(relay: str) -> None:
    with pytest.raises(ValueError):
        build(relay_state=relay)


@pytest.mark.parametrize("level", [0, 4])
def test_bad_level(level: int) -> None:
    with pytest.raises(ValueError):
        build(level=level)


def test_missing_sso_endpoint() -> None:
    with pytest.raises(SamlConfigError):
        build(idp=f.idp_info(sso_post=None), binding="post")


def test_relay_state_is_escaped_in_form() -> None:
    out = build(binding="post", relay_state='a"><script>')
    assert '"><script>' not in (out.form_html or "")
    assert post_parts(out)[1].inputs["RelayState"] == 'a"><script>'


def test_the_post_form_runs_only_the_script_its_csp_allows() -> None:
    """The POST-binding page is served with AUTOSUBMIT_CSP: its one inline script must match
    the hash there, and no event-handler attribute (which a hash CSP would block) remains."""
    import base64
    import hashlib
    import re

    from sportello.connectors.spid.authn import AUTOSUBMIT_CSP, post_form

    page = post_form("https://idp.example/sso", "SAMLRequest", b"<x/>", "relay")
    scripts = re.findall(r"<script>(.*?)</script>", page)
    assert len(scripts) == 1 and "onload" not in page
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in AUTOSUBMIT_CSP
    assert "default-src 'none'" in AUTOSUBMIT_CSP

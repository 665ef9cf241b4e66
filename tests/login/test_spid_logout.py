"""SPID Single Logout: our LogoutRequest/LogoutResponse, and the IdP's, verified."""

from __future__ import annotations

import base64
import html.parser
import zlib
from datetime import timedelta
from urllib.parse import parse_qsl, quote_plus, urlsplit

import pytest
import spid_fixtures as f
import xmlsec
from lxml import etree

from sportello.connectors.spid.errors import ResponseRejected, SamlConfigError
from sportello.connectors.spid.logout import (
    STATUS_PARTIAL_LOGOUT,
    build_logout_request,
    build_logout_response,
    parse_logout_request_post,
    parse_logout_request_redirect,
    parse_logout_response_post,
    parse_logout_response_redirect,
)
from sportello.connectors.spid.models import IdpInfo, SpSettings
from sportello.connectors.spid.response import cert_key, verify_enveloped

SAMLP = "{urn:oasis:names:tc:SAML:2.0:protocol}"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def idp_as_sender(keys: f.KeyPair | None = None, **changes: object) -> SpSettings:
    """The IdP seen as a sender: same builders, IdP entityID and key."""
    keys = keys or f.idp_keys()
    return f.sp_settings(
        entity_id=f.IDP_ENTITY_ID, key_pem=keys.key_pem, certs=(keys.cert_pem,), **changes
    )


def sp_as_target(**changes: object) -> IdpInfo:
    values: dict[str, object] = {
        "entity_id": f.SP_ENTITY_ID,
        "slo_redirect": f.SLO_URL,
        "slo_post": f.SLO_URL,
    }
    values.update(changes)
    return f.idp_info(**values)


def query_of(url: str) -> str:
    return urlsplit(url).query


def inflate_param(url: str, name: str) -> etree._Element:
    value = dict(parse_qsl(query_of(url)))[name]
    return etree.fromstring(zlib.decompress(base64.b64decode(value), -15))


class _Form(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input":
            self.inputs[a["name"]] = a["value"]


def form_value(form_html: str | None, name: str) -> str:
    assert form_html is not None
    parser = _Form()
    parser.feed(form_html)
    return parser.inputs[name]


# --------------------------------------------------------------------------- SP-initiated


def test_build_logout_request_redirect() -> None:
    out = build_logout_request(
        f.sp_settings(),
        f.idp_info(),
        name_id="_nameid0001",
        name_qualifier=f.IDP_ENTITY_ID,
        session_index="_session1",
        now=f.NOW,
        relay_state="rs1",
    )
    assert out.url.startswith(f"{f.idp_info().slo_redirect}?SAMLRequest=")
    root = inflate_param(out.url, "SAMLRequest")
    assert root.tag == f"{SAMLP}LogoutRequest"
    assert root.get("ID") == out.request_id and root.get("Version") == "2.0"
    assert root.get("Destination") == f.idp_info().slo_redirect
    assert root.get("IssueInstant") == "2026-03-02T10:00:00Z"
    issuer = root.find(f"{SAML}Issuer")
    assert issuer is not None and issuer.text == f.SP_ENTITY_ID
    assert issuer.get("NameQualifier") == f.SP_ENTITY_ID
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
    nid = root.find(f"{SAML}NameID")
    assert nid is not None and nid.text == "_nameid0001"
    assert nid.get("NameQualifier") == f.IDP_ENTITY_ID
    assert nid.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    assert root.findtext(f"{SAMLP}SessionIndex") == "_session1"
    signed, _, sig = query_of(out.url).rpartition("&Signature=")
    ctx = xmlsec.SignatureContext()
    ctx.key = cert_key(f.sp_keys().cert_pem)
    ctx.verify_binary(
        signed.encode(),
        xmlsec.constants.TransformRsaSha256,
        base64.b64decode(dict(parse_qsl(f"s={sig}"))["s"]),
    )


def test_build_logout_request_post() -> None:
    out = build_logout_request(
        f.sp_settings(),
        f.idp_info(),
        name_id="_n",
        name_qualifier=f.IDP_ENTITY_ID,
        session_index=None,
        binding="post",
        now=f.NOW,
    )
    assert out.url == f.idp_info().slo_post
    root = etree.fromstring(base64.b64decode(form_value(out.form_html, "SAMLRequest")))
    sig = root.find(f"{DS}Signature")
    assert sig is not None
    verify_enveloped(root, sig, [cert_key(f.sp_keys().cert_pem)], "signature")
    assert root.find(f"{SAMLP}SessionIndex") is None


def test_no_slo_endpoint() -> None:
    with pytest.raises(SamlConfigError):
        build_logout_request(
            f.sp_settings(),
            f.idp_info(slo_redirect=None),
            name_id="_n",
            name_qualifier="q",
            session_index=None,
            now=f.NOW,
        )


def _idp_logout_response(
    request_id: str, binding: str = "redirect", status: str | None = None, **kw: object
) -> str:
    extra = {"status": status} if status else {}
    out = build_logout_response(
        kw.pop("sender", idp_as_sender()),  # type: ignore[arg-type]
        sp_as_target(),
        in_response_to=request_id,
        binding=binding,  # type: ignore[arg-type]
        now=f.NOW,
        relay_state="rs1",
        **extra,  # type: ignore[arg-type]
    )
    return query_of(out.url) if binding == "redirect" else form_value(out.form_html, "SAMLResponse")


def _parse_response(data: str, binding: str = "redirect", **kw: object) -> object:
    args: dict[str, object] = {
        "sp": f.sp_settings(),
        "idp": f.idp_info(),
        "request_id": "_ours",
        "request_instant": f.NOW - timedelta(seconds=5),
        "now": f.NOW + timedelta(seconds=2),
    }
    args.update(kw)
    if binding == "redirect":
        return parse_logout_response_redirect(data, **args)  # type: ignore[arg-type]
    return parse_logout_response_post(data, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_logout_response_success(binding: str) -> None:
    result = _parse_response(_idp_logout_response("_ours", binding), binding)
    assert result.partial is False  # type: ignore[attr-defined]
    assert result.in_response_to == "_ours"  # type: ignore[attr-defined]
    if binding == "redirect":
        assert result.relay_state == "rs1"  # type: ignore[attr-defined]


def test_logout_response_partial() -> None:
    data = _idp_logout_response("_ours", status=STATUS_PARTIAL_LOGOUT)
    result = _parse_response(data)
    assert result.partial is True  # type: ignore[attr-defined]


def test_logout_response_for_another_request() -> None:
    with pytest.raises(ResponseRejected) as exc:
        _parse_response(_idp_logout_response("_not_ours"))
    assert exc.value.check == "in_response_to"


def test_logout_response_refused_status() -> None:
    data = _idp_logout_response("_ours", status="urn:oasis:names:tc:SAML:2.0:status:Requester")
    with pytest.raises(ResponseRejected) as exc:
        _parse_response(data)
    assert exc.value.check == "status"


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_logout_response_wrong_key(binding: str) -> None:
    data = _idp_logout_response("_ours", binding, sender=idp_as_sender(f.attacker_keys()))
    with pytest.raises(ResponseRejected) as exc:
        _parse_response(data, binding)
    assert exc.value.check == "signature"


def test_logout_response_older_than_our_request() -> None:
    with pytest.raises(ResponseRejected) as exc:
        _parse_response(_idp_logout_response("_ours"), request_instant=f.NOW + timedelta(hours=1))
    assert exc.value.check == "issue_instant"


# --------------------------------------------------------------------------- IdP-initiated


def _idp_logout_request(binding: str = "redirect", **kw: object) -> str:
    out = build_logout_request(
        kw.pop("sender", idp_as_sender()),  # type: ignore[arg-type]
        kw.pop("target", sp_as_target()),  # type: ignore[arg-type]
        name_id="_nameid0001",
        name_qualifier=f.IDP_ENTITY_ID,
        session_index="_session1",
        binding=binding,  # type: ignore[arg-type]
        now=kw.pop("now", f.NOW),  # type: ignore[arg-type]
        relay_state="rs9",
    )
    return query_of(out.url) if binding == "redirect" else form_value(out.form_html, "SAMLRequest")


def _parse_request(data: str, binding: str = "redirect", **kw: object) -> object:
    args: dict[str, object] = {"sp": f.sp_settings(), "idp": f.idp_info(), "now": f.NOW}
    args.update(kw)
    if binding == "redirect":
        return parse_logout_request_redirect(data, **args)  # type: ignore[arg-type]
    return parse_logout_request_post(data, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_idp_initiated_logout_and_our_answer(binding: str) -> None:
    incoming = _parse_request(_idp_logout_request(binding), binding)
    assert incoming.name_id == "_nameid0001"  # type: ignore[attr-defined]
    assert incoming.session_indexes == ("_session1",)  # type: ignore[attr-defined]
    assert incoming.issuer == f.IDP_ENTITY_ID  # type: ignore[attr-defined]
    answer = build_logout_response(
        f.sp_settings(),
        f.idp_info(slo_redirect_response=f"{f.IDP_ENTITY_ID}/slo/return"),
        in_response_to=incoming.request_id,  # type: ignore[attr-defined]
        binding=binding,  # type: ignore[arg-type]
        now=f.NOW,
        relay_state=incoming.relay_state,  # type: ignore[attr-defined]
    )
    if binding == "redirect":
        assert answer.url.startswith(f"{f.IDP_ENTITY_ID}/slo/return?SAMLResponse=")
        root = inflate_param(answer.url, "SAMLResponse")
    else:
        root = etree.fromstring(base64.b64decode(form_value(answer.form_html, "SAMLResponse")))
        sig = root.find(f"{DS}Signature")
        assert sig is not None
        verify_enveloped(root, sig, [cert_key(f.sp_keys().cert_pem)], "signature")
    assert root.get("InResponseTo") == incoming.request_id  # type: ignore[attr-defined]
    issuer = root.find(f"{SAML}Issuer")
    assert issuer is not None and issuer.get("NameQualifier") == f.SP_ENTITY_ID
    code = root.find(f"{SAMLP}Status/{SAMLP}StatusCode")
    assert code is not None and code.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"


def _expect(check: str, data: str, binding: str = "redirect", **kw: object) -> None:
    with pytest.raises(ResponseRejected) as exc:
        _parse_request(data, binding, **kw)
    assert exc.value.check == check, exc.value


def test_redirect_relay_state_tampered() -> None:
    _expect("signature", _idp_logout_request().replace("RelayState=rs9", "RelayState=rs8"))


def test_redirect_unsigned() -> None:
    data = _idp_logout_request()
    _expect("signature", data.partition("&SigAlg=")[0])


def test_redirect_sha1_signature() -> None:
    data = _idp_logout_request()
    base = data.partition("&SigAlg=")[0]
    signed = f"{base}&SigAlg={quote_plus('http://www.w3.org/2000/09/xmldsig#rsa-sha1')}"
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(f.idp_keys().key_pem, xmlsec.constants.KeyDataFormatPem)
    sig = base64.b64encode(ctx.sign_binary(signed.encode(), xmlsec.constants.TransformRsaSha1))
    _expect("signature", f"{signed}&Signature={quote_plus(sig.decode())}")


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_wrong_key(binding: str) -> None:
    _expect("signature", _idp_logout_request(binding, sender=idp_as_sender(f.attacker_keys())))


def test_post_unsigned() -> None:
    data = _idp_logout_request("post")
    root = etree.fromstring(base64.b64decode(data))
    sig = root.find(f"{DS}Signature")
    assert sig is not None
    root.remove(sig)
    _expect("signature", base64.b64encode(etree.tostring(root)).decode(), "post")


def test_wrong_destination() -> None:
    target = sp_as_target(slo_redirect="https://evil.example/slo")
    _expect("destination", _idp_logout_request(target=target))


def test_wrong_issuer() -> None:
    _expect("issuer", _idp_logout_request(), idp=f.idp_info(entity_id="https://other.idp"))


def test_stale_request() -> None:
    _expect("issue_instant", _idp_logout_request(now=f.NOW - timedelta(hours=1)))


def test_future_request() -> None:
    _expect("issue_instant", _idp_logout_request(now=f.NOW + timedelta(hours=1)))


def test_deflate_bomb() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = bomb.compress(b"<a>" + b" " * 5_000_000 + b"</a>") + bomb.flush()
    value = quote_plus(base64.b64encode(raw).decode())
    signed = f"SAMLRequest={value}&SigAlg={quote_plus(xmlsec.constants.TransformRsaSha256.href)}"
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(f.idp_keys().key_pem, xmlsec.constants.KeyDataFormatPem)
    sig = base64.b64encode(ctx.sign_binary(signed.encode(), xmlsec.constants.TransformRsaSha256))
    _expect("malformed", f"{signed}&Signature={quote_plus(sig.decode())}")


def test_repeated_parameter() -> None:
    data = _idp_logout_request()
    _expect("malformed", data + "&RelayState=again")

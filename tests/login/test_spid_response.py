"""The ACS checks of a SPID/CIE Response, one rule at a time (spid-sp-test IDs in names)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from datetime import timedelta

import pytest
import spid_fixtures as f
from lxml import etree
from spid_fixtures import NS, find

from sportello.connectors.spid.errors import ResponseRejected, SpidAnomaly
from sportello.connectors.spid.models import Comparison
from sportello.connectors.spid.response import (
    MAX_RESPONSE_B64,
    level_acceptable,
    peek_response,
    validate_response,
)

Mutation = Callable[[etree._Element], None]


def validate(b64: str, **kw: object) -> object:
    args: dict[str, object] = {
        "sp": f.sp_settings(),
        "idp": f.idp_info(),
        "pending": f.pending(),
        "now": f.NOW,
    }
    args.update(kw)
    return validate_response(b64, **args)  # type: ignore[arg-type]


def rejected(b64: str, check: str, **kw: object) -> ResponseRejected:
    with pytest.raises(ResponseRejected) as exc:
        validate(b64, **kw)
    assert exc.value.check == check, exc.value
    return exc.value


def set_attr(path: str, name: str, value: str | None) -> Mutation:
    def mutate(root: etree._Element) -> None:
        el = root if path == "." else find(root, path)
        if value is None:
            el.attrib.pop(name, None)
        else:
            el.set(name, value)

    return mutate


def remove(path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        el = find(root, path)
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return mutate


def set_text(path: str, text: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        find(root, path).text = text

    return mutate


A = "saml:Assertion"
SUBJ = f"{A}/saml:Subject"
SCD = f"{SUBJ}/saml:SubjectConfirmation/saml:SubjectConfirmationData"
COND = f"{A}/saml:Conditions"
ACR = f"{A}/saml:AuthnStatement/saml:AuthnContext/saml:AuthnContextClassRef"


# --------------------------------------------------------------------------- accepted


def test_valid_response_gives_identity() -> None:
    identity = validate(f.make_response())
    assert identity.level == 2  # type: ignore[attr-defined]
    assert identity.name_id == "_nameid0001"  # type: ignore[attr-defined]
    assert identity.name_qualifier == f.IDP_ENTITY_ID  # type: ignore[attr-defined]
    assert identity.attributes == f.DEFAULT_ATTRIBUTES  # type: ignore[attr-defined]
    assert identity.in_response_to == f.REQUEST_ID  # type: ignore[attr-defined]
    assert identity.session_index == "_session1"  # type: ignore[attr-defined]
    assert identity.not_on_or_after == f.NOW + timedelta(minutes=5)  # type: ignore[attr-defined]


def test_only_assertion_signed_is_enough() -> None:
    validate(f.make_response(sign_response=False))


def test_response_issuer_without_format_ok_31() -> None:
    validate(f.make_response(mutate=set_attr("saml:Issuer", "Format", None)))


def test_issue_instant_with_milliseconds_ok_110() -> None:
    validate(f.make_response(mutate=set_attr(".", "IssueInstant", "2026-03-02T09:59:55.123Z")))


def test_attributes_without_nameformat_ok_109() -> None:
    def mutate(root: etree._Element) -> None:
        for a in root.iterfind(f"{A}/saml:AttributeStatement/saml:Attribute", NS):
            del a.attrib["NameFormat"]

    validate(f.make_response(mutate=mutate))


def test_no_session_index_ok() -> None:
    identity = validate(f.make_response(session_index=None))
    assert identity.session_index is None  # type: ignore[attr-defined]


def test_second_idp_certificate_during_rotation() -> None:
    idp = f.idp_info(certs=(f.attacker_keys().cert_pem, f.idp_keys().cert_pem))
    validate(f.make_response(), idp=idp)


def test_peek_response() -> None:
    assert peek_response(f.make_response()) == (f.REQUEST_ID, f.IDP_ENTITY_ID)
    assert peek_response(f.make_response(mutate=set_attr(".", "InResponseTo", None))) == (
        None,
        f.IDP_ENTITY_ID,
    )
    with pytest.raises(ResponseRejected):
        peek_response(base64.b64encode(b"<!DOCTYPE x><x/>").decode())


# --------------------------------------------------------------------------- Response


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        pytest.param(set_attr(".", "ID", ""), "id", id="08-id-empty"),
        pytest.param(set_attr(".", "ID", None), "id", id="09-id-missing"),
        pytest.param(set_attr(".", "Version", "1.0"), "version", id="10-version"),
        pytest.param(set_attr(".", "IssueInstant", ""), "issue_instant", id="11-instant-empty"),
        pytest.param(set_attr(".", "IssueInstant", None), "issue_instant", id="12-missing"),
        pytest.param(set_attr(".", "IssueInstant", "2026-03-02"), "issue_instant", id="13-fmt"),
        pytest.param(
            set_attr(".", "IssueInstant", "2026-03-02T10:00:00+01:00"), "issue_instant", id="tz"
        ),
        pytest.param(
            set_attr(".", "IssueInstant", "2018-01-01T00:00:00Z"), "issue_instant", id="14-early"
        ),
        pytest.param(
            set_attr(".", "IssueInstant", "2099-01-01T00:00:00Z"), "issue_instant", id="15-future"
        ),
        pytest.param(set_attr(".", "InResponseTo", ""), "in_response_to", id="16-irt-empty"),
        pytest.param(set_attr(".", "InResponseTo", None), "in_response_to", id="17-unsolicited"),
        pytest.param(set_attr(".", "InResponseTo", "_other"), "in_response_to", id="18-other"),
        pytest.param(set_attr(".", "Destination", ""), "destination", id="19-dest-empty"),
        pytest.param(set_attr(".", "Destination", None), "destination", id="20-dest-missing"),
        pytest.param(
            set_attr(".", "Destination", "https://evil.example/acs"), "destination", id="21"
        ),
        pytest.param(remove("samlp:Status/samlp:StatusCode"), "status", id="22-no-code"),
        pytest.param(remove("samlp:Status"), "status", id="23-no-status"),
        pytest.param(set_attr("samlp:Status/samlp:StatusCode", "Value", ""), "status", id="24"),
        pytest.param(
            set_attr("samlp:Status/samlp:StatusCode", "Value", "urn:x:status:nonvalido"),
            "status",
            id="26-not-success",
        ),
        pytest.param(set_text("saml:Issuer", ""), "issuer", id="27-issuer-empty"),
        pytest.param(remove("saml:Issuer"), "issuer", id="28-issuer-missing"),
        pytest.param(set_text("saml:Issuer", "https://evil.example"), "issuer", id="29-other"),
        pytest.param(set_attr("saml:Issuer", "Format", "urn:x:other"), "issuer", id="30-format"),
    ],
)
def test_response_rules(mutate: Mutation, check: str) -> None:
    rejected(f.make_response(mutate=mutate), check)


def test_pending_request_for_another_idp() -> None:
    rejected(f.make_response(), "issuer", pending=f.pending(idp_entity_id="https://other.idp"))


# --------------------------------------------------------------------------- Assertion


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        pytest.param(remove(A), "assertion", id="32-no-assertion"),
        pytest.param(set_attr(A, "Version", "1.0"), "version", id="35-version"),
        pytest.param(set_attr(A, "IssueInstant", ""), "issue_instant", id="36"),
        pytest.param(set_attr(A, "IssueInstant", None), "issue_instant", id="37"),
        pytest.param(set_attr(A, "IssueInstant", "2018-09-06 16:00"), "issue_instant", id="38"),
        pytest.param(set_attr(A, "IssueInstant", "2000-01-01T12:00:00Z"), "issue_instant", id="39"),
        pytest.param(set_attr(A, "IssueInstant", "2099-01-01T00:00:00Z"), "issue_instant", id="40"),
        pytest.param(remove(f"{SUBJ}/saml:NameID"), "subject", id="44-nameid-missing"),
        pytest.param(remove(SUBJ), "subject", id="42-subject-missing"),
        pytest.param(set_text(f"{SUBJ}/saml:NameID", "  "), "subject", id="43-nameid-empty"),
        pytest.param(set_attr(f"{SUBJ}/saml:NameID", "Format", ""), "subject", id="45"),
        pytest.param(set_attr(f"{SUBJ}/saml:NameID", "Format", None), "subject", id="46"),
        pytest.param(
            set_attr(
                f"{SUBJ}/saml:NameID",
                "Format",
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            ),
            "subject",
            id="47-persistent",
        ),
        pytest.param(set_attr(f"{SUBJ}/saml:NameID", "NameQualifier", ""), "subject", id="48"),
        pytest.param(set_attr(f"{SUBJ}/saml:NameID", "NameQualifier", None), "subject", id="49"),
        pytest.param(remove(f"{SUBJ}/saml:SubjectConfirmation"), "subject_confirmation", id="52"),
        pytest.param(
            set_attr(f"{SUBJ}/saml:SubjectConfirmation", "Method", ""),
            "subject_confirmation",
            id="53",
        ),
        pytest.param(
            set_attr(
                f"{SUBJ}/saml:SubjectConfirmation",
                "Method",
                "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key",
            ),
            "subject_confirmation",
            id="55-not-bearer",
        ),
        pytest.param(remove(SCD), "subject_confirmation", id="56-no-data"),
        pytest.param(set_attr(SCD, "Recipient", ""), "subject_confirmation", id="57"),
        pytest.param(set_attr(SCD, "Recipient", None), "subject_confirmation", id="58"),
        pytest.param(
            set_attr(SCD, "Recipient", "https://evil.example/acs"), "subject_confirmation", id="59"
        ),
        pytest.param(set_attr(SCD, "InResponseTo", ""), "in_response_to", id="60"),
        pytest.param(set_attr(SCD, "InResponseTo", None), "in_response_to", id="61"),
        pytest.param(set_attr(SCD, "InResponseTo", "_other"), "in_response_to", id="62"),
        pytest.param(set_attr(SCD, "NotOnOrAfter", ""), "subject_confirmation", id="63"),
        pytest.param(set_attr(SCD, "NotOnOrAfter", None), "subject_confirmation", id="64"),
        pytest.param(set_attr(SCD, "NotOnOrAfter", "2018.09.18"), "subject_confirmation", id="65"),
        pytest.param(
            set_attr(SCD, "NotOnOrAfter", "2026-03-02T09:59:00Z"), "subject_confirmation", id="66"
        ),
        pytest.param(remove(f"{A}/saml:Issuer"), "issuer", id="68-issuer-missing"),
        pytest.param(set_text(f"{A}/saml:Issuer", "https://evil.example"), "issuer", id="69"),
        pytest.param(set_attr(f"{A}/saml:Issuer", "Format", ""), "issuer", id="70"),
        pytest.param(set_attr(f"{A}/saml:Issuer", "Format", None), "issuer", id="71"),
        pytest.param(set_attr(f"{A}/saml:Issuer", "Format", "urn:x:other"), "issuer", id="72"),
        pytest.param(remove(f"{COND}/saml:AudienceRestriction"), "audience", id="73"),
        pytest.param(remove(COND), "conditions", id="74-no-conditions"),
        pytest.param(set_attr(COND, "NotBefore", ""), "conditions", id="75"),
        pytest.param(set_attr(COND, "NotBefore", None), "conditions", id="76"),
        pytest.param(set_attr(COND, "NotBefore", "2018/09/10"), "conditions", id="77"),
        pytest.param(set_attr(COND, "NotBefore", "2099-01-01T00:00:00Z"), "conditions", id="78"),
        pytest.param(set_attr(COND, "NotOnOrAfter", ""), "conditions", id="79"),
        pytest.param(set_attr(COND, "NotOnOrAfter", None), "conditions", id="80"),
        pytest.param(set_attr(COND, "NotOnOrAfter", "10-09-2018"), "conditions", id="81"),
        pytest.param(set_attr(COND, "NotOnOrAfter", "2026-03-02T09:00:00Z"), "conditions", id="82"),
        pytest.param(remove(f"{COND}/saml:AudienceRestriction/saml:Audience"), "audience", id="86"),
        pytest.param(
            set_text(f"{COND}/saml:AudienceRestriction/saml:Audience", ""), "audience", id="85"
        ),
        pytest.param(
            set_text(f"{COND}/saml:AudienceRestriction/saml:Audience", "https://other.sp"),
            "audience",
            id="87",
        ),
        pytest.param(
            remove(f"{A}/saml:AuthnStatement/saml:AuthnContext"), "authn_context", id="88"
        ),
        pytest.param(remove(f"{A}/saml:AuthnStatement"), "authn_context", id="89"),
        pytest.param(remove(ACR), "authn_context", id="90-93-no-classref"),
        pytest.param(set_text(ACR, ""), "authn_context", id="92-empty"),
        pytest.param(
            set_text(ACR, "urn:oasis:names:tc:SAML:2.0:ac:classes:SpidL2"),
            "authn_context",
            id="97-legacy-urn",
        ),
        pytest.param(remove(f"{A}/saml:AttributeStatement"), "attributes", id="no-statement"),
    ],
)
def test_assertion_rules(mutate: Mutation, check: str) -> None:
    rejected(f.make_response(mutate=mutate), check)


def test_assertion_id_missing_33_34() -> None:
    # the signature needs an ID to reference, so the IdP "signed" something else
    def mutate(root: etree._Element) -> None:
        find(root, A).set("ID", "")

    rejected(f.make_response(sign_assertion=False, mutate=mutate), "id")


def test_empty_attribute_statement_98() -> None:
    rejected(f.make_response(attributes={}), "attributes")


def test_attribute_without_value_99() -> None:
    rejected(
        f.make_response(
            mutate=remove(f"{A}/saml:AttributeStatement/saml:Attribute/saml:AttributeValue")
        ),
        "attributes",
    )


def test_attribute_with_empty_value() -> None:
    rejected(f.make_response(attributes={"name": ""}), "attributes")


def test_different_attribute_set_accepted_103() -> None:
    identity = validate(f.make_response(attributes={"spidCode": "AGID-001", "address": "via"}))
    assert identity.attributes == {"spidCode": "AGID-001", "address": "via"}  # type: ignore[attr-defined]


def test_cie_assertion_issuer_without_format() -> None:
    cie = f.sp_settings(kind="cie")
    validate(f.make_response(mutate=set_attr(f"{A}/saml:Issuer", "Format", None)), sp=cie)
    rejected(
        f.make_response(mutate=set_attr(f"{A}/saml:Issuer", "Format", "urn:x:other")),
        "issuer",
        sp=cie,
    )


def test_clock_skew_tolerated() -> None:
    # the IdP clock is 5 s ahead: IssueInstant slightly in the future is fine
    validate(f.make_response(issue_instant=f.NOW + timedelta(seconds=5)))
    rejected(f.make_response(issue_instant=f.NOW + timedelta(seconds=30)), "issue_instant")


# --------------------------------------------------------------------------- level


@pytest.mark.parametrize(
    ("requested", "obtained", "comparison", "ok"),
    [
        (2, 2, "minimum", True),
        (2, 3, "minimum", True),
        (2, 1, "minimum", False),
        (2, 2, "exact", True),
        (2, 1, "exact", False),
        (2, 3, "exact", True),  # spid-sp-test dynamic_acr: a stronger level is OK
        (2, 2, "better", False),
        (2, 3, "better", True),
        (2, 1, "maximum", True),
        (2, 2, "maximum", True),
    ],
)
def test_level_vs_comparison_94_96(
    requested: int, obtained: int, comparison: Comparison, ok: bool
) -> None:
    assert level_acceptable(requested, obtained, comparison) is ok
    response = f.make_response(level=obtained)
    pending = f.pending(level=requested, comparison=comparison)
    if ok:
        assert validate(response, pending=pending).level == obtained  # type: ignore[attr-defined]
    else:
        rejected(response, "level", pending=pending)


# --------------------------------------------------------------------------- anomalies


@pytest.mark.parametrize("code", [19, 20, 21, 22, 23, 25])
def test_anomalies_104_108_111(code: int) -> None:
    response = f.make_response(
        with_assertion=False,
        sign_response=False,
        status="urn:oasis:names:tc:SAML:2.0:status:Responder",
        status_message=f"ErrorCode nr{code}",
    )
    with pytest.raises(SpidAnomaly) as exc:
        validate(response)
    assert exc.value.code == code
    assert exc.value.check == "anomaly"
    assert exc.value.status == 403
    assert exc.value.message


def test_anomaly_for_another_request_is_just_rejected() -> None:
    response = f.make_response(
        with_assertion=False,
        sign_response=False,
        status="urn:oasis:names:tc:SAML:2.0:status:Responder",
        status_message="ErrorCode nr22",
        request_id="_someone_else",
    )
    rejected(response, "in_response_to")


# --------------------------------------------------------------------------- signatures


def test_unsigned_response_2() -> None:
    rejected(f.make_response(sign_assertion=False, sign_response=False), "signature")


def test_signed_response_unsigned_assertion_3() -> None:
    rejected(f.make_response(sign_assertion=False), "signature")


def test_other_key_4_5_100() -> None:
    rejected(f.make_response(keys=f.attacker_keys()), "signature")


def test_keyinfo_certificate_is_never_trusted() -> None:
    # the attacker puts its own certificate in KeyInfo: only metadata certs count
    response = f.make_response(keys=f.attacker_keys(), sign_response=False)
    xml = base64.b64decode(response)
    assert b"X509Certificate>MII" in xml
    rejected(response, "signature")


def test_response_signature_must_verify_too() -> None:
    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        find(root, "ds:Signature/ds:SignatureValue").text = base64.b64encode(b"x" * 256).decode()
        return etree.tostring(root, encoding="unicode")

    rejected(f.make_response(tamper=tamper), "signature")


def test_content_changed_after_signing() -> None:
    rejected(
        f.make_response(
            sign_response=False, tamper=lambda x: x.replace("_nameid0001", "_nameid0002")
        ),
        "signature",
    )


@pytest.mark.parametrize(
    ("alg", "digest"),
    [("rsa-sha1", "sha256"), ("rsa-sha256", "sha1"), ("hmac-sha256", "sha256")],
    ids=["rsa-sha1", "digest-sha1", "hmac"],
)
def test_weak_or_symmetric_algorithms(alg: str, digest: str) -> None:
    rejected(
        f.make_response(sign_response=False, signature_alg=alg, digest_alg=digest), "signature"
    )


def test_reference_to_another_element() -> None:
    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        find(root, "saml:Assertion/ds:Signature/ds:SignedInfo/ds:Reference").set("URI", "")
        return etree.tostring(root, encoding="unicode")

    rejected(f.make_response(sign_response=False, tamper=tamper), "signature")


def test_xslt_transform() -> None:
    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        transforms = find(
            root, "saml:Assertion/ds:Signature/ds:SignedInfo/ds:Reference/ds:Transforms"
        )
        extra = etree.SubElement(transforms, f"{{{f.DS}}}Transform")
        extra.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")
        return etree.tostring(root, encoding="unicode")

    rejected(f.make_response(sign_response=False, tamper=tamper), "signature")


# --------------------------------------------------------------------------- XSW


def _evil_copy(assertion: etree._Element) -> etree._Element:
    evil = copy.deepcopy(assertion)
    sig = evil.find("ds:Signature", NS)
    if sig is not None:
        evil.remove(sig)
    evil.set("ID", "_evil")
    find(evil, "saml:Subject/saml:NameID").text = "_victim"
    return evil


def _xsw(wrap: Callable[[etree._Element, etree._Element, etree._Element], None]) -> str:
    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        assertion = find(root, A)
        wrap(root, assertion, _evil_copy(assertion))
        return etree.tostring(root, encoding="unicode")

    return f.make_response(sign_response=False, tamper=tamper)


def test_xsw_two_assertions_32() -> None:
    rejected(_xsw(lambda root, good, evil: root.append(evil)), "assertion")


def test_xsw_evil_first_original_after() -> None:
    rejected(_xsw(lambda root, good, evil: good.addprevious(evil)), "assertion")


def test_xsw_original_wrapped_in_extensions() -> None:
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        ext = etree.Element(f"{{{f.SAMLP}}}Extensions")
        good.addprevious(evil)
        root.remove(good)
        ext.append(good)
        find(root, "saml:Issuer").addnext(ext)

    rejected(_xsw(wrap), "assertion")


def test_xsw_original_inside_evil_assertion() -> None:
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        good.addprevious(evil)
        root.remove(good)
        evil.append(good)

    rejected(_xsw(wrap), "assertion")


def test_xsw_original_in_signature_object() -> None:
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        sig = find(good, "ds:Signature")
        obj = etree.SubElement(sig, f"{{{f.DS}}}Object")
        obj.append(evil)

    rejected(_xsw(wrap), "assertion")


def test_xsw_signature_moved_to_evil_assertion() -> None:
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        sig = find(good, "ds:Signature")
        good.remove(sig)
        find(evil, "saml:Issuer").addnext(sig)  # Reference still says #<good ID>
        good.addprevious(evil)
        root.remove(good)
        evil.append(good)

    rejected(_xsw(wrap), "assertion")


def test_xsw_signature_moved_single_assertion() -> None:
    # the evil assertion replaces the good one and carries its signature, URI -> good ID
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        sig = find(good, "ds:Signature")
        good.remove(sig)
        find(evil, "saml:Issuer").addnext(sig)
        good.addprevious(evil)
        root.remove(good)

    rejected(_xsw(wrap), "signature")


def test_duplicate_ids() -> None:
    def wrap(root: etree._Element, good: etree._Element, evil: etree._Element) -> None:
        evil.set("ID", good.get("ID") or "")
        ext = etree.Element(f"{{{f.SAMLP}}}Extensions")
        ext.append(evil)
        find(root, "saml:Issuer").addnext(ext)

    rejected(_xsw(wrap), "structure")


def test_xml_id_attribute_refused() -> None:
    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        find(root, "samlp:Status").set("{http://www.w3.org/XML/1998/namespace}id", "x")
        return etree.tostring(root, encoding="unicode")

    rejected(f.make_response(sign_response=False, tamper=tamper), "structure")


def test_unexpected_response_child() -> None:
    rejected(
        f.make_response(
            mutate=lambda r: r.append(etree.Element(f"{{{f.SAML}}}EncryptedAssertion"))
        ),
        "structure",
    )


# --------------------------------------------------------------------------- parser attacks


def test_comment_injection_in_nameid_and_attribute() -> None:
    # CVE-2017-11427: a comment added after signing must not truncate the value read
    response = f.make_response(
        sign_response=False,
        attributes={**f.DEFAULT_ATTRIBUTES, "email": "user@example.com.evil.com"},
        tamper=lambda x: x.replace(
            "user@example.com.evil.com", "user@example.com<!---->.evil.com"
        ).replace("_nameid0001", "_nameid<!-- c -->0001"),
    )
    identity = validate(response)
    assert identity.attributes["email"] == "user@example.com.evil.com"  # type: ignore[attr-defined]
    assert identity.name_id == "_nameid0001"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
        b'<!DOCTYPE samlp:Response SYSTEM "http://evil.example/x.dtd"><samlp:Response/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode(
            "utf-16"
        ),
    ],
    ids=["xxe", "billion-laughs", "external-dtd", "utf16-dtd"],
)
def test_dtd_refused(payload: bytes) -> None:
    rejected(base64.b64encode(payload).decode(), "malformed")


def test_doctype_inside_valid_response() -> None:
    xml = f.make_response(b64=False)
    payload = ("<!DOCTYPE samlp:Response [<!ENTITY e 'x'>]>" + xml).encode()
    rejected(base64.b64encode(payload).decode(), "malformed")


@pytest.mark.parametrize(
    "data",
    ["not base64 !!", base64.b64encode(b"<not-xml").decode(), "A" * (MAX_RESPONSE_B64 + 4)],
    ids=["base64", "xml", "too-large"],
)
def test_malformed_input(data: str) -> None:
    rejected(data, "malformed")


def test_not_a_response() -> None:
    rejected(base64.b64encode(b"<foo/>").decode(), "malformed")


def test_base64_with_line_breaks() -> None:
    response = f.make_response()
    wrapped = "\r\n".join(response[i : i + 76] for i in range(0, len(response), 76))
    validate(wrapped)


# --------------------------------------------------------------------------- replay


def test_replayed_assertion() -> None:
    seen: set[str] = set()

    def seen_assertion(assertion_id: str) -> bool:
        if assertion_id in seen:
            return True
        seen.add(assertion_id)
        return False

    response = f.make_response()
    validate(response, seen_assertion=seen_assertion)
    rejected(response, "replay", seen_assertion=seen_assertion)


def test_rejected_response_never_reaches_replay_cache() -> None:
    calls: list[str] = []
    rejected(
        f.make_response(keys=f.attacker_keys()),
        "signature",
        seen_assertion=lambda i: calls.append(i) or False,
    )
    assert calls == []


def test_reason_never_contains_assertion_values() -> None:
    err = rejected(f.make_response(mutate=set_text(ACR, "TINIT-RSSMRA80A01H501U")), "authn_context")
    assert "RSSMRA" not in str(err)

"""What the sandbox IdP sends: login Responses (success or anomaly), LogoutRequest and
LogoutResponse.

A success Response is signed twice, as SPID IdPs do: the Assertion first (enveloped, the
signature right after its Issuer), then the Response. Fault names from
:data:`~.state.FAULT_NAMES` spoil the answer on purpose so the SP's refusals can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from .identities import TestIdentity
from .keys import KeyPair, generate
from .xmlutil import SAML, SAMLP, XS, XSI, fmt_time, new_id, sign_enveloped

__all__ = [
    "ANOMALY_MESSAGES",
    "LoginAnswer",
    "anomaly_response",
    "logout_request",
    "logout_response",
    "sign",
    "success_response",
]

ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
AUTHN_FAILED = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
ASSERTION_LIFETIME = timedelta(minutes=5)
DATE_ATTRIBUTES = frozenset({"dateOfBirth", "expirationDate"})

#: The SPID anomalies the login page offers (code -> what the user did).
ANOMALY_MESSAGES: dict[int, str] = {
    19: "Ripetuta sottomissione di credenziali errate",
    20: "Credenziali non compatibili con il livello richiesto",
    21: "Timeout durante l'autenticazione",
    22: "Consenso all'invio dei dati negato",
    23: "Identità sospesa o revocata",
    25: "Processo di autenticazione annullato dall'utente",
}


@dataclass(frozen=True)
class LoginAnswer:
    """The request facts a Response answers (taken from the server-side transaction)."""

    scheme: str
    idp_entity_id: str
    request_id: str
    sp_entity_id: str
    acs_url: str


def sign(element: etree._Element, keys: KeyPair, faults: frozenset[str] = frozenset()) -> None:
    """Enveloped signature with the IdP key, or as the ``sha1_signature``/``foreign_key``
    faults say."""
    if "foreign_key" in faults:
        keys = generate("Not the sandbox IdP")
    sign_enveloped(element, keys.key_pem, keys.cert_pem, sha1="sha1_signature" in faults)


def _issuer(parent: etree._Element, answer: LoginAnswer, faults: frozenset[str]) -> None:
    issuer = etree.SubElement(parent, f"{{{SAML}}}Issuer")
    issuer.text = answer.idp_entity_id
    if "wrong_issuer" in faults:
        issuer.text = answer.idp_entity_id.rstrip("/") + "-impostor"
    if answer.scheme == "spid":  # CIE's Issuers carry no Format (research §1.7)
        issuer.set("Format", ENTITY)


def _response_root(answer: LoginAnswer, issued: datetime, faults: frozenset[str]) -> etree._Element:
    root = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", fmt_time(issued))
    root.set(
        "Destination",
        answer.acs_url + "-elsewhere" if "wrong_destination" in faults else answer.acs_url,
    )
    root.set("InResponseTo", new_id() if "wrong_in_response_to" in faults else answer.request_id)
    _issuer(root, answer, faults)
    return root


def _attribute_statement(
    assertion: etree._Element, identity: TestIdentity, wanted: tuple[str, ...]
) -> None:
    values = identity.attribute_map()
    names = [n for n in wanted if n in values]
    if not names:
        return
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    for name in names:
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute")
        attribute.set("Name", name)
        attribute.set("NameFormat", BASIC)
        value = etree.SubElement(
            attribute, f"{{{SAML}}}AttributeValue", nsmap={"xs": XS, "xsi": XSI}
        )
        value.set(f"{{{XSI}}}type", "xs:date" if name in DATE_ATTRIBUTES else "xs:string")
        value.text = values[name]


def success_response(
    answer: LoginAnswer,
    *,
    keys: KeyPair,
    now: datetime,
    identity: TestIdentity,
    level: int,
    attributes: tuple[str, ...],
    name_id: str,
    session_index: str,
    faults: frozenset[str] = frozenset(),
) -> etree._Element:
    """A signed Response with one signed Assertion for ``identity`` at ``level``."""
    issued = now - timedelta(minutes=10) if "stale_issue_instant" in faults else now
    in_response_to = new_id() if "wrong_in_response_to" in faults else answer.request_id
    not_on_or_after = now + ASSERTION_LIFETIME
    not_before = now
    if "expired" in faults:
        not_on_or_after, not_before = now - timedelta(minutes=1), now - timedelta(minutes=10)
    if "not_yet_valid" in faults:
        not_before = now + timedelta(minutes=10)

    root = _response_root(answer, issued, faults)
    status = etree.SubElement(root, f"{{{SAMLP}}}Status")
    etree.SubElement(status, f"{{{SAMLP}}}StatusCode").set("Value", SUCCESS)

    assertion = etree.SubElement(root, f"{{{SAML}}}Assertion")
    assertion.set("ID", new_id())
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", fmt_time(issued))
    _issuer(assertion, answer, faults)

    subject = etree.SubElement(assertion, f"{{{SAML}}}Subject")
    name = etree.SubElement(subject, f"{{{SAML}}}NameID")
    name.set("Format", TRANSIENT)
    name.set("NameQualifier", answer.idp_entity_id)
    name.text = name_id
    confirmation = etree.SubElement(subject, f"{{{SAML}}}SubjectConfirmation")
    confirmation.set("Method", BEARER)
    data = etree.SubElement(confirmation, f"{{{SAML}}}SubjectConfirmationData")
    data.set("InResponseTo", in_response_to)
    data.set("NotOnOrAfter", fmt_time(not_on_or_after))
    data.set(
        "Recipient",
        answer.acs_url + "-elsewhere" if "wrong_recipient" in faults else answer.acs_url,
    )

    conditions = etree.SubElement(assertion, f"{{{SAML}}}Conditions")
    conditions.set("NotBefore", fmt_time(not_before))
    conditions.set("NotOnOrAfter", fmt_time(not_on_or_after))
    audience = etree.SubElement(
        etree.SubElement(conditions, f"{{{SAML}}}AudienceRestriction"), f"{{{SAML}}}Audience"
    )
    audience.text = (
        "https://sp.invalid/another-service-provider"
        if "wrong_audience" in faults
        else answer.sp_entity_id
    )

    statement = etree.SubElement(assertion, f"{{{SAML}}}AuthnStatement")
    statement.set("AuthnInstant", fmt_time(issued))
    statement.set("SessionIndex", session_index)
    granted = max(1, level - 1) if "lower_level" in faults else level
    ref = etree.SubElement(
        etree.SubElement(statement, f"{{{SAML}}}AuthnContext"), f"{{{SAML}}}AuthnContextClassRef"
    )
    ref.text = (
        f"urn:oasis:names:tc:SAML:2.0:ac:classes:SpidL{granted}"
        if "legacy_acr" in faults
        else f"https://www.spid.gov.it/SpidL{granted}"
    )
    if "no_attributes" not in faults:
        _attribute_statement(assertion, identity, attributes)

    if "unsigned_assertion" not in faults:
        sign(assertion, keys, faults)
    if "unsigned_response" not in faults:
        sign(root, keys, faults)
    return root


def anomaly_response(
    answer: LoginAnswer, *, keys: KeyPair, now: datetime, code: int
) -> etree._Element:
    """A signed Response without Assertion: Responder/AuthnFailed, ``ErrorCode nr{code}``."""
    root = _response_root(answer, now, frozenset())
    status = etree.SubElement(root, f"{{{SAMLP}}}Status")
    top = etree.SubElement(status, f"{{{SAMLP}}}StatusCode")
    top.set("Value", RESPONDER)
    etree.SubElement(top, f"{{{SAMLP}}}StatusCode").set("Value", AUTHN_FAILED)
    etree.SubElement(status, f"{{{SAMLP}}}StatusMessage").text = f"ErrorCode nr{code}"
    sign(root, keys)
    return root


def logout_request(
    *,
    idp_entity_id: str,
    destination: str,
    name_id: str,
    session_index: str,
    now: datetime,
) -> etree._Element:
    """An IdP-initiated LogoutRequest (unsigned: the binding signs it)."""
    root = etree.Element(f"{{{SAMLP}}}LogoutRequest", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", fmt_time(now))
    root.set("Destination", destination)
    issuer = etree.SubElement(root, f"{{{SAML}}}Issuer")
    issuer.set("Format", ENTITY)
    issuer.set("NameQualifier", idp_entity_id)
    issuer.text = idp_entity_id
    name = etree.SubElement(root, f"{{{SAML}}}NameID")
    name.set("Format", TRANSIENT)
    name.set("NameQualifier", idp_entity_id)
    name.text = name_id
    etree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = session_index
    return root


def logout_response(
    *, idp_entity_id: str, destination: str, in_response_to: str, now: datetime
) -> etree._Element:
    """A Success LogoutResponse to an SP's LogoutRequest (unsigned: the binding signs it)."""
    root = etree.Element(f"{{{SAMLP}}}LogoutResponse", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", fmt_time(now))
    root.set("Destination", destination)
    root.set("InResponseTo", in_response_to)
    issuer = etree.SubElement(root, f"{{{SAML}}}Issuer")
    issuer.set("Format", ENTITY)
    issuer.set("NameQualifier", idp_entity_id)
    issuer.text = idp_entity_id
    status = etree.SubElement(root, f"{{{SAMLP}}}Status")
    etree.SubElement(status, f"{{{SAMLP}}}StatusCode").set("Value", SUCCESS)
    return root

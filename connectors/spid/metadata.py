"""Signed SP metadata for SPID (Avviso 29 v3, aggregators per Avviso 19 v4) and CIE.

No library writes the SPID/CIE contact extensions, so the document is assembled here with
lxml (hand-written, following the official XSDs) and signed by :mod:`.xmlsign`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from .errors import SamlConfigError
from .keys import cert_b64
from .models import CIE_ATTRIBUTES, SPID_ATTRIBUTES, Billing, Contact, SpSettings
from .xmlsign import DS_NS, sign_enveloped

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
SPID_NS = "https://spid.gov.it/saml-extensions"
FPA_NS = "https://spid.gov.it/invoicing-extensions"
CIE_NS = "https://www.cartaidentita.interno.gov.it/saml-extensions"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
ATTR_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

# Avviso 19 v4: activity code in the entityID -> empty extension element of the aggregator.
AGGREGATOR_ACTIVITIES = {
    "pub-ag-full": "PublicServicesFullAggregator",
    "pub-ag-lite": "PublicServicesLightAggregator",
    "pri-ag-full": "PrivateServicesFullAggregator",
    "pri-ag-lite": "PrivateServicesLightAggregator",
}


def _md(tag: str) -> str:
    return f"{{{MD_NS}}}{tag}"


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrib: str
) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def entity_xml_id(entity_id: str) -> str:
    """A stable ``ID`` for the EntityDescriptor (same entityID -> same ID, reproducible XML)."""
    return "_" + hashlib.sha256(entity_id.encode()).hexdigest()[:40]


def build_metadata(sp: SpSettings) -> bytes:
    """The tenant's signed metadata (UTF-8 bytes with XML declaration).

    Profiles: ``public``/``private`` SPID SP, ``aggregated`` (signed with the aggregator's
    key), or CIE when ``sp.kind == "cie"``. Raises :class:`SamlConfigError` when the
    settings cannot produce compliant metadata.
    """
    _check_settings(sp)
    nsmap = {"md": MD_NS, "ds": DS_NS}
    if sp.kind == "cie":
        nsmap["cie"] = CIE_NS
    else:
        nsmap["spid"] = SPID_NS
        if sp.profile == "private" or sp.billing is not None:
            nsmap["fpa"] = FPA_NS
    root = etree.Element(_md("EntityDescriptor"), nsmap=nsmap)
    root.set("entityID", sp.entity_id)
    root.set("ID", entity_xml_id(sp.entity_id))
    _sp_sso_descriptor(root, sp)
    _organization(root, sp)
    if sp.kind == "cie":
        _cie_contacts(root, sp)
    elif sp.profile == "aggregated":
        _aggregated_contacts(root, sp)
    else:
        _spid_contacts(root, sp)

    if sp.profile == "aggregated" and sp.aggregator is not None and sp.kind == "spid":
        sign_enveloped(root, sp.aggregator.key_pem, sp.aggregator.cert_pem)
    else:
        sign_enveloped(root, sp.key_pem, sp.certs[0])
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def _check_settings(sp: SpSettings) -> None:
    if not sp.certs:
        raise SamlConfigError("at least one SP certificate is required")
    allowed = CIE_ATTRIBUTES if sp.kind == "cie" else SPID_ATTRIBUTES
    if not sp.attributes:
        raise SamlConfigError("at least one attribute must be requested")
    bad = [a for a in sp.attributes if a not in allowed]
    if bad:
        raise SamlConfigError(f"attributes not allowed for {sp.kind}: {', '.join(bad)}")
    if len(set(sp.attributes)) != len(sp.attributes):
        raise SamlConfigError("duplicate requested attributes")
    if sp.kind == "cie":
        if sp.profile != "public":
            raise SamlConfigError("CIE metadata is only built for public SPs (comuni)")
        if not (sp.municipality and sp.contact.ipa_code):
            raise SamlConfigError("CIE metadata needs the municipality code and the IPA code")
        return
    if sp.profile == "public" and not sp.contact.ipa_code:
        raise SamlConfigError("a public SPID SP needs the IPA code")
    if sp.profile == "private":
        if not (sp.contact.vat_number or sp.contact.fiscal_code):
            raise SamlConfigError("a private SPID SP needs a VAT number or a fiscal code")
        if sp.billing is None:
            raise SamlConfigError("a private SPID SP needs billing data (fpa)")
    if sp.profile == "aggregated":
        ag = sp.aggregator
        if ag is None:
            raise SamlConfigError("an aggregated SP needs the aggregator settings")
        parts = urlsplit(sp.entity_id)
        if parts.query or parts.fragment:
            raise SamlConfigError("an aggregated entityID must not have a query string")
        if ag.activity not in sp.entity_id:
            raise SamlConfigError(f"an aggregated entityID must contain {ag.activity!r}")
        if not (ag.vat_number or ag.fiscal_code):
            raise SamlConfigError("the aggregator needs a VAT number or a fiscal code")
        if ag.activity.startswith("pub") and not sp.contact.ipa_code:
            raise SamlConfigError("a public aggregated SP needs the IPA code")


def _key_descriptor(parent: etree._Element, cert_pem: bytes) -> None:
    kd = _sub(parent, _md("KeyDescriptor"), use="signing")
    info = _sub(kd, f"{{{DS_NS}}}KeyInfo")
    data = _sub(info, f"{{{DS_NS}}}X509Data")
    _sub(data, f"{{{DS_NS}}}X509Certificate", cert_b64(cert_pem))


def _signing_certs(sp: SpSettings) -> list[bytes]:
    """Every published cert (rotation overlap), plus the aggregator's for aggregated SPs.

    Under Avviso 19 v4 the aggregator signs for the aggregated SP, so its certificate is
    published as a signing key too (unless it is already among ``sp.certs``).
    """
    certs = list(sp.certs)
    if sp.profile == "aggregated" and sp.aggregator is not None:
        b64s = {cert_b64(c) for c in certs}
        if cert_b64(sp.aggregator.cert_pem) not in b64s:
            certs.append(sp.aggregator.cert_pem)
    return certs


def _sp_sso_descriptor(root: etree._Element, sp: SpSettings) -> None:
    desc = _sub(
        root,
        _md("SPSSODescriptor"),
        protocolSupportEnumeration=PROTOCOL,
        AuthnRequestsSigned="true",
        WantAssertionsSigned="true",
    )
    for cert in _signing_certs(sp):
        _key_descriptor(desc, cert)
    for binding in (REDIRECT, POST) if sp.kind == "cie" else (POST, REDIRECT):
        _sub(desc, _md("SingleLogoutService"), Binding=binding, Location=sp.slo_url)
    _sub(desc, _md("NameIDFormat"), TRANSIENT)
    _sub(
        desc,
        _md("AssertionConsumerService"),
        index="0",
        isDefault="true",
        Binding=POST,
        Location=sp.acs_url,
    )
    acs = _sub(desc, _md("AttributeConsumingService"), index=str(sp.attribute_index))
    _sub(acs, _md("ServiceName"), sp.service_name, **{XML_LANG: "it"})
    for name in sp.attributes:
        _sub(acs, _md("RequestedAttribute"), Name=name, NameFormat=ATTR_BASIC)


def _organization(root: etree._Element, sp: SpSettings) -> None:
    org = sp.organization
    langs = ["it"] if org.lang == "it" else ["it", org.lang]
    el = _sub(root, _md("Organization"))
    for tag, value in (
        ("OrganizationName", org.name),
        ("OrganizationDisplayName", org.display_name),
        ("OrganizationURL", org.url),
    ):
        for lang in langs:
            _sub(el, _md(tag), value, **{XML_LANG: lang})


def _contact(
    root: etree._Element,
    contact_type: str,
    *,
    email: str,
    phone: str | None,
    company: str | None,
    entity_type: str | None = None,
) -> tuple[etree._Element, etree._Element]:
    """A ContactPerson with an (empty) Extensions first; returns (contact, extensions)."""
    attrib = {"contactType": contact_type}
    if entity_type:
        attrib[f"{{{SPID_NS}}}entityType"] = entity_type
    cp = _sub(root, _md("ContactPerson"), **attrib)
    ext = _sub(cp, _md("Extensions"))
    if company:
        _sub(cp, _md("Company"), company)
    _sub(cp, _md("EmailAddress"), email)
    if phone:
        _sub(cp, _md("TelephoneNumber"), phone.replace(" ", ""))
    return cp, ext


def _spid_ids(
    ext: etree._Element, ipa: str | None, vat: str | None, fc: str | None, marker: str
) -> None:
    """spid:IPACode, spid:VATNumber, spid:FiscalCode, then the empty marker (XSD order)."""
    for tag, value in (("IPACode", ipa), ("VATNumber", vat), ("FiscalCode", fc)):
        if value:
            _sub(ext, f"{{{SPID_NS}}}{tag}", value)
    _sub(ext, f"{{{SPID_NS}}}{marker}")


def _spid_contacts(root: etree._Element, sp: SpSettings) -> None:
    c = sp.contact
    _, ext = _contact(root, "other", email=c.email, phone=c.phone, company=sp.organization.name)
    if sp.profile == "public":
        _spid_ids(ext, c.ipa_code, c.vat_number, c.fiscal_code, "Public")
    else:
        _spid_ids(ext, None, c.vat_number, c.fiscal_code, "Private")
    if sp.billing is not None:
        _billing_contact(root, sp.billing, c)


def _billing_contact(root: etree._Element, b: Billing, fallback: Contact) -> None:
    _, ext = _contact(
        root, "billing", email=b.email or fallback.email, phone=None, company=b.company
    )

    def fpa(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        return _sub(parent, f"{{{FPA_NS}}}{tag}", text)

    cc = fpa(ext, "CessionarioCommittente")
    anag = fpa(cc, "DatiAnagrafici")
    vat = fpa(anag, "IdFiscaleIVA")
    country = b.vat_number[:2].upper() if b.vat_number[:2].isalpha() else b.country
    fpa(vat, "IdPaese", country)
    fpa(vat, "IdCodice", b.vat_number[2:] if b.vat_number[:2].isalpha() else b.vat_number)
    if b.fiscal_code:
        fpa(anag, "CodiceFiscale", b.fiscal_code)
    fpa(fpa(anag, "Anagrafica"), "Denominazione", b.company)
    sede = fpa(cc, "Sede")
    fpa(sede, "Indirizzo", b.address)
    if b.number:
        fpa(sede, "NumeroCivico", b.number)
    fpa(sede, "CAP", b.postal_code)
    fpa(sede, "Comune", b.town)
    if b.province:
        fpa(sede, "Provincia", b.province)
    fpa(sede, "Nazione", b.country)


def _aggregated_contacts(root: etree._Element, sp: SpSettings) -> None:
    ag = sp.aggregator
    assert ag is not None  # checked in _check_settings
    _, ext = _contact(
        root,
        "other",
        email=ag.email,
        phone=ag.phone,
        company=ag.company,
        entity_type="spid:aggregator",
    )
    _spid_ids(ext, None, ag.vat_number, ag.fiscal_code, AGGREGATOR_ACTIVITIES[ag.activity])
    c = sp.contact
    _, ext = _contact(
        root,
        "other",
        email=c.email,
        phone=c.phone,
        company=sp.organization.name,
        entity_type="spid:aggregated",
    )
    if ag.activity.startswith("pub"):
        _spid_ids(ext, c.ipa_code, c.vat_number, c.fiscal_code, "Public")
    else:
        _spid_ids(ext, None, c.vat_number, c.fiscal_code, "Private")
        if sp.billing is not None:
            _billing_contact(root, sp.billing, c)


def _cie_contacts(root: etree._Element, sp: SpSettings) -> None:
    c = sp.contact

    def cie(parent: etree._Element, tag: str, text: str | None = None) -> None:
        _sub(parent, f"{{{CIE_NS}}}{tag}", text)

    _, ext = _contact(
        root, "administrative", email=c.email, phone=c.phone, company=sp.organization.name
    )
    cie(ext, "Public")
    cie(ext, "IPACode", c.ipa_code)
    cie(ext, "Municipality", sp.municipality)
    if sp.province:
        cie(ext, "Province", sp.province)
    t = sp.technical_contact
    if t is not None:
        # The software house (technology partner). Contact has no municipality field, and
        # spid-sp-test wants cie:Municipality in every contact: the comune's code is used.
        _, ext = _contact(
            root,
            "technical",
            email=t.email,
            phone=t.phone,
            company=t.company or sp.organization.name,
        )
        cie(ext, "Private")
        if t.vat_number:
            cie(ext, "VATNumber", t.vat_number)
        if t.fiscal_code:
            cie(ext, "FiscalCode", t.fiscal_code)
        cie(ext, "Municipality", sp.municipality)


# --- XSD validation (tests and config-time checks) ---------------------------------------

_WRAPPER = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
 targetNamespace="urn:sportello:xsd-wrapper">
 <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="{xml}"/>
 <xs:import namespace="{ns}" schemaLocation="{main}"/>
</xs:schema>"""


@lru_cache(maxsize=4)
def _schema(main: Path) -> etree.XMLSchema:
    # The av29 XSD imports xml.xsd from w3.org; importing the local copy first makes
    # libxml2 skip the network import (hand-written workaround, no network needed).
    xml_xsd = main.parent / "xml.xsd"
    wrapper = _WRAPPER.format(xml=xml_xsd.as_uri(), ns=MD_NS, main=main.as_uri())
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.fromstring(wrapper.encode(), parser, base_url=(main.parent / "w.xsd").as_uri())
    return etree.XMLSchema(doc)


def validate_metadata_xsd(xml: bytes, specs_dir: Path) -> list[str]:
    """XSD errors of SP metadata (empty list = valid).

    ``specs_dir`` is the folder holding the SPID XSDs (with a ``cie/`` subfolder): SPID
    metadata is checked against ``saml-schema-metadata-sp-spid-av29.xsd``, CIE metadata
    (detected by its namespace) against ``cie/saml-schema-metadata-sp-cie.xsd``.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        doc = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed: {exc}"]
    if doc.getroottree().docinfo.doctype:
        return ["DOCTYPE is not allowed"]
    is_cie = CIE_NS in doc.nsmap.values() or bool(doc.xpath(f"//*[namespace-uri()='{CIE_NS}']"))
    main = (
        specs_dir / "cie" / "saml-schema-metadata-sp-cie.xsd"
        if is_cie
        else specs_dir / "saml-schema-metadata-sp-spid-av29.xsd"
    )
    schema = _schema(main.resolve())
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]

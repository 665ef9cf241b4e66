"""The sandbox IdPs' own SAML metadata (SPID and CIE), signed like the real ones.

An ``IDPSSODescriptor`` with the signing certificate, SLO and SSO for HTTP-Redirect and
HTTP-POST, the transient NameID format and the supported attributes as ``saml:Attribute``
elements (as SPID IdP metadata lists them), then ``Organization``.
"""

from __future__ import annotations

from lxml import etree

from .keys import KeyPair
from .xmlutil import DS, MD, SAML, new_id, sign_enveloped, tostring

__all__ = ["ATTRIBUTE_NAMES", "idp_metadata", "registry_metadata"]

BINDINGS = (
    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
)
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

#: SPID attributes the IdP can release, with their friendly names (CIE: the first four).
ATTRIBUTE_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "cie": (
        ("name", "Nome"),
        ("familyName", "Cognome"),
        ("dateOfBirth", "Data di nascita"),
        ("fiscalNumber", "Codice fiscale"),
    ),
    "spid": (
        ("spidCode", "Codice identificativo SPID"),
        ("name", "Nome"),
        ("familyName", "Cognome"),
        ("placeOfBirth", "Luogo di nascita"),
        ("countyOfBirth", "Provincia di nascita"),
        ("dateOfBirth", "Data di nascita"),
        ("gender", "Sesso"),
        ("companyName", "Ragione o denominazione sociale"),
        ("registeredOffice", "Sede legale"),
        ("fiscalNumber", "Codice fiscale"),
        ("ivaCode", "Partita IVA"),
        ("idCard", "Documento d'identità"),
        ("mobilePhone", "Numero di telefono mobile"),
        ("email", "Indirizzo di posta elettronica"),
        ("address", "Domicilio fisico"),
        ("expirationDate", "Data di scadenza identità"),
        ("digitalAddress", "Domicilio digitale"),
        ("companyFiscalNumber", "Codice fiscale della persona giuridica"),
    ),
}


def idp_metadata(
    scheme: str, entity_id: str, keys: KeyPair, signer: KeyPair | None = None
) -> bytes:
    """Signed ``md:EntityDescriptor`` of the ``scheme`` IdP at ``entity_id`` (= its base
    URL: SSO at ``{entity_id}/sso``, SLO at ``{entity_id}/slo``). ``keys`` is the IdP's
    own pair (published in the KeyDescriptor); ``signer`` signs the document (default:
    ``keys``; the sandbox app uses its federation pair, see ``keys.FEDERATION``)."""
    root = _entity(scheme, entity_id, keys)
    signer = signer or keys
    sign_enveloped(root, signer.key_pem, signer.cert_pem)
    return tostring(root)


def registry_metadata(entities: list[tuple[str, str, KeyPair]], signer: KeyPair) -> bytes:
    """An AgID-style registry (``spid-entities-idps.xml``): an ``md:EntitiesDescriptor`` of
    the given (scheme, entityID, IdP keys), signed as a whole by ``signer``."""
    root = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD, "ds": DS, "saml": SAML})
    root.set("ID", new_id())
    root.set("Name", "Sportello sandbox IdP registry")
    for scheme, entity_id, keys in entities:
        root.append(_entity(scheme, entity_id, keys, with_id=False))
    sign_enveloped(root, signer.key_pem, signer.cert_pem)
    return tostring(root)


def _entity(scheme: str, entity_id: str, keys: KeyPair, *, with_id: bool = True) -> etree._Element:
    root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS, "saml": SAML})
    root.set("entityID", entity_id)
    if with_id:
        root.set("ID", new_id())
    idp = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
    idp.set("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
    idp.set("WantAuthnRequestsSigned", "true")
    descriptor = etree.SubElement(idp, f"{{{MD}}}KeyDescriptor")
    descriptor.set("use", "signing")
    data = etree.SubElement(etree.SubElement(descriptor, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
    etree.SubElement(data, f"{{{DS}}}X509Certificate").text = keys.cert_base64()
    for binding in BINDINGS:
        slo = etree.SubElement(idp, f"{{{MD}}}SingleLogoutService")
        slo.set("Binding", binding)
        slo.set("Location", f"{entity_id}/slo")
    etree.SubElement(idp, f"{{{MD}}}NameIDFormat").text = TRANSIENT
    for binding in BINDINGS:
        sso = etree.SubElement(idp, f"{{{MD}}}SingleSignOnService")
        sso.set("Binding", binding)
        sso.set("Location", f"{entity_id}/sso")
    for name, friendly in ATTRIBUTE_NAMES[scheme]:
        attribute = etree.SubElement(idp, f"{{{SAML}}}Attribute")
        attribute.set("Name", name)
        attribute.set("NameFormat", BASIC)
        attribute.set("FriendlyName", friendly)
    organization = etree.SubElement(root, f"{{{MD}}}Organization")
    label = "SPID" if scheme == "spid" else "CIE"
    for tag, text in (
        ("OrganizationName", f"Sportello sandbox {label} IdP"),
        ("OrganizationDisplayName", f"{label} di prova (Sportello sandbox)"),
        ("OrganizationURL", entity_id),
    ):
        node = etree.SubElement(organization, f"{{{MD}}}{tag}")
        node.set("{http://www.w3.org/XML/1998/namespace}lang", "it")
        node.text = text
    return root

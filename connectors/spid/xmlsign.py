"""Enveloped XML signatures as SPID wants them: exc-c14n, RSA-SHA256, SHA-256 digest.

python-xmlsec does the cryptography; this module only places the ``ds:Signature``
template where SAML puts it (right after the ``Issuer``, or first child when there is none).
"""

from __future__ import annotations

import xmlsec
from lxml import etree

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


def sign_enveloped(element: etree._Element, key_pem: bytes, cert_pem: bytes) -> None:
    """Sign ``element`` in place (its ``ID`` attribute is the reference).

    The signature goes after the element's ``saml:Issuer`` child when there is one (SAML
    schema order), otherwise first; ``KeyInfo`` carries the certificate.
    """
    ref_id = element.get("ID")
    if not ref_id:
        raise ValueError("the element to sign has no ID attribute")
    signature = xmlsec.template.create(
        element, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256, ns="ds"
    )
    issuer = element.find(f"{{{SAML_NS}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    ref = xmlsec.template.add_reference(
        signature, xmlsec.constants.TransformSha256, uri=f"#{ref_id}"
    )
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(cert_pem, xmlsec.constants.KeyDataFormatPem)
    ctx.key = key
    ctx.register_id(element, "ID")
    ctx.sign(signature)

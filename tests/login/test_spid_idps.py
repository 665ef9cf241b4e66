"""IdP metadata: parsing, signature check, registry JSON and the last-good-copy cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest
from lxml import etree

from sportello.connectors.spid.errors import SamlConfigError
from sportello.connectors.spid.idps import (
    IdpStore,
    MetadataSource,
    parse_idp_metadata,
    parse_registry_json,
    verify_metadata_signature,
)
from sportello.connectors.spid.keys import cert_b64, make_sp_certificate
from sportello.connectors.spid.xmlsign import sign_enveloped

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
URL = "https://registry.example/spid-entities-idps.xml"


@lru_cache(maxsize=8)
def pair(name: str) -> tuple[bytes, bytes]:
    return make_sp_certificate(
        entity_id=f"https://{name}.example",
        organization_name=name,
        common_name=name,
        locality="Roma",
        ipa_code="x",
        key_size=2048,
    )


def entity(entity_id: str, name: str, cert_pem: bytes, *, slo_response: bool = False) -> str:
    resp = f' ResponseLocation="{entity_id}/slo/resp"' if slo_response else ""
    return f"""
  <md:EntityDescriptor entityID="{entity_id}">
    <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
      <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
        <ds:X509Certificate>{cert_b64(cert_pem)}</ds:X509Certificate>
      </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
      <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
        <ds:X509Certificate>{cert_b64(pair("enc")[1])}</ds:X509Certificate>
      </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
      <md:SingleLogoutService Binding="{REDIRECT}" Location="{entity_id}/slo"{resp}/>
      <md:SingleLogoutService Binding="{POST}" Location="{entity_id}/slo/post"/>
      <md:SingleSignOnService Binding="{REDIRECT}" Location="{entity_id}/sso"/>
      <md:SingleSignOnService Binding="{POST}" Location="{entity_id}/sso/post"/>
    </md:IDPSSODescriptor>
    <md:Organization>
      <md:OrganizationName xml:lang="it">{name} S.p.A.</md:OrganizationName>
      <md:OrganizationDisplayName xml:lang="en">{name} EN</md:OrganizationDisplayName>
      <md:OrganizationDisplayName xml:lang="it">{name}</md:OrganizationDisplayName>
      <md:OrganizationURL xml:lang="it">{entity_id}</md:OrganizationURL>
    </md:Organization>
  </md:EntityDescriptor>"""


def registry_xml(
    *, signer: str | None = "agid", extra: str = "", valid_until: str | None = None
) -> bytes:
    vu = f' validUntil="{valid_until}"' if valid_until else ""
    xml = f"""<md:EntitiesDescriptor xmlns:md="{MD}"
        xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_agg1" Name="spid"{vu}>
      {entity("https://idp-a.example", "Alfa", pair("a")[1], slo_response=True)}
      {entity("https://idp-b.example", "Beta", pair("b")[1])}
      {extra}
    </md:EntitiesDescriptor>"""
    root = etree.fromstring(xml.encode())
    if signer:
        key, cert = pair(signer)
        sign_enveloped(root, key, cert)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_parse_aggregated_metadata() -> None:
    idps = {i.entity_id: i for i in parse_idp_metadata(registry_xml())}
    assert set(idps) == {"https://idp-a.example", "https://idp-b.example"}
    a = idps["https://idp-a.example"]
    assert a.name == "Alfa"
    assert a.certs == (pair("a")[1],)  # only the signing key
    assert a.sso_redirect == "https://idp-a.example/sso"
    assert a.sso_post == "https://idp-a.example/sso/post"
    assert a.slo_redirect == "https://idp-a.example/slo"
    assert a.slo_post == "https://idp-a.example/slo/post"
    assert a.slo_redirect_response == "https://idp-a.example/slo/resp"
    assert idps["https://idp-b.example"].slo_redirect_response is None


def test_parse_single_entity_and_rejects() -> None:
    single = f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
    body = entity("https://idp-c.example", "Gamma", pair("a")[1]).split(">", 1)[1]
    idps = parse_idp_metadata((single + ' entityID="https://idp-c.example">' + body).encode())
    assert [i.entity_id for i in idps] == ["https://idp-c.example"]
    with pytest.raises(SamlConfigError):
        parse_idp_metadata(b"<not-metadata/>")
    with pytest.raises(SamlConfigError):
        parse_idp_metadata(b"<md:Entit")
    doctype = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'
        b'<md:EntitiesDescriptor xmlns:md="' + MD.encode() + b'">&e;</md:EntitiesDescriptor>'
    )
    with pytest.raises(SamlConfigError):
        parse_idp_metadata(doctype)
    assert not verify_metadata_signature(doctype, pair("agid")[1])


def test_signature_check() -> None:
    xml = registry_xml()
    assert verify_metadata_signature(xml, pair("agid")[1])
    assert not verify_metadata_signature(xml, pair("a")[1])
    assert not verify_metadata_signature(registry_xml(signer=None), pair("agid")[1])
    tampered = xml.replace(b"https://idp-b.example/sso/post", b"https://evil.example/sso")
    assert not verify_metadata_signature(tampered, pair("agid")[1])


def test_signature_must_cover_the_root() -> None:
    # A signed inner EntityDescriptor does not vouch for its unsigned siblings.
    root = etree.fromstring(registry_xml(signer=None))
    inner = root[0]
    inner.set("ID", "_inner")
    sign_enveloped(inner, *pair("agid"))
    sig = inner[0]
    root.insert(0, sig)  # move the signature up: the reference still points at the child
    xml = etree.tostring(root)
    assert not verify_metadata_signature(xml, pair("agid")[1])


def test_registry_json() -> None:
    data = json.dumps(
        [
            {
                "entity_id": "https://loginspid.aruba.it",
                "organization_name": "ArubaPEC S.p.A.",
                "logo_uri": "https://cdn.example/aruba.svg",
                "registry_link": "https://registry.spid.gov.it/entities-idp/x?output=json",
                "file_name": "aruba.xml",
                "extra": 1,
            },
            {"organization_name": "no id"},
            "junk",
            {"entity_id": "https://posteid.poste.it"},
        ]
    )
    entries = parse_registry_json(data)
    assert [e.entity_id for e in entries] == [
        "https://loginspid.aruba.it",
        "https://posteid.poste.it",
    ]
    assert entries[0].organization_name == "ArubaPEC S.p.A."
    assert entries[0].file_name == "aruba.xml"
    assert entries[1].organization_name == "https://posteid.poste.it"
    with pytest.raises(SamlConfigError):
        parse_registry_json("42")


def _source(signed: bool = True) -> MetadataSource:
    return MetadataSource(
        "spid", URL, "spid-entities-idps.xml", pair("agid")[1] if signed else None
    )


async def test_refresh_keeps_the_last_good_copy(tmp_path: Path) -> None:
    store = IdpStore(sources=[_source()])
    good = registry_xml()
    responses: list[object] = [good]

    async def fetch(url: str) -> bytes:
        assert url == URL
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, bytes)
        return item

    assert await store.refresh(fetch, tmp_path) == []
    cached = tmp_path / "spid-entities-idps.xml"
    assert cached.read_bytes() == good
    assert store.get("https://idp-a.example") is not None
    assert len(store.all("spid")) == 2

    expired = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for bad in (
        OSError("registry down"),
        b"<html>maintenance</html>",
        b"<md:Entit",
        registry_xml(signer=None),  # unsigned
        registry_xml(signer="a"),  # signed by someone else
        registry_xml().replace(b"idp-b.example/sso", b"evil.example/sso"),  # tampered
        registry_xml(valid_until=expired),
    ):
        responses.append(bad)
        problems = await store.refresh(fetch, tmp_path)
        assert problems, bad
        assert cached.read_bytes() == good
        assert store.get("https://idp-b.example") is not None
        assert store.get("https://idp-b.example").sso_post == "https://idp-b.example/sso/post"  # type: ignore[union-attr]

    # a restarted hub starts from the cached copy
    fresh = IdpStore(sources=[_source()])
    assert fresh.load(tmp_path) == []
    assert {i.entity_id for i in fresh.all("spid")} == {
        "https://idp-a.example",
        "https://idp-b.example",
    }
    assert fresh.all("cie") == []


async def test_unsigned_source_and_extra_files(tmp_path: Path) -> None:
    extra = tmp_path / "test-idp.xml"
    extra.write_bytes(
        f'<md:EntitiesDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        f"{entity('https://idp-a.example', 'Alfa di test', pair('b')[1])}"
        "</md:EntitiesDescriptor>".encode()
    )
    cie = tmp_path / "cie.xml"
    cie.write_bytes(
        f'<md:EntitiesDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        f"{entity('https://idserver.example/idp', 'CIE', pair('b')[1])}"
        "</md:EntitiesDescriptor>".encode()
    )
    store = IdpStore(sources=[_source(signed=False)], files={"spid": [extra], "cie": [cie]})
    problems = store.load(tmp_path / "cache")
    assert problems  # no cached copy yet: reported, not fatal
    assert [i.name for i in store.all("spid")] == ["Alfa di test"]

    async def fetch(url: str) -> bytes:
        return registry_xml(signer=None)

    assert await store.refresh(fetch, tmp_path / "cache") == []
    # the extra file wins over the registry entry with the same entityID
    assert store.get("https://idp-a.example").name == "Alfa di test"  # type: ignore[union-attr]
    assert store.get("https://idp-b.example", "spid") is not None
    assert store.get("https://idp-b.example", "cie") is None
    assert store.kind_of("https://idserver.example/idp") == "cie"
    assert store.kind_of("https://nobody.example") is None
    assert [i.entity_id for i in store.all("cie")] == ["https://idserver.example/idp"]

    with pytest.raises(SamlConfigError):
        IdpStore(files={"spid": [tmp_path / "missing.xml"]}).load()


def test_bad_cached_copy_is_reported(tmp_path: Path) -> None:
    (tmp_path / "spid-entities-idps.xml").write_bytes(registry_xml(signer="a"))
    store = IdpStore(sources=[_source()])
    problems = store.load(tmp_path)
    assert problems and "refused" in problems[0]
    assert store.all("spid") == []

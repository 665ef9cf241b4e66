"""SP metadata: official XSDs, signature, contacts per profile, and (optionally) spid-sp-test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from sportello.connectors.spid.errors import SamlConfigError
from sportello.connectors.spid.keys import cert_b64, make_sp_certificate
from sportello.connectors.spid.metadata import (
    CIE_NS,
    FPA_NS,
    MD_NS,
    SPID_NS,
    build_metadata,
    validate_metadata_xsd,
)
from sportello.connectors.spid.models import (
    Aggregator,
    Billing,
    Contact,
    Organization,
    SpSettings,
)

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "spid"
REPO = Path(__file__).resolve().parents[2]
NS = {
    "md": MD_NS,
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "spid": SPID_NS,
    "fpa": FPA_NS,
    "cie": CIE_NS,
}
BASE = "http://localhost:8000"
SPID_EID = f"{BASE}/t/comune-demo/spid/metadata"
CIE_EID = f"{BASE}/t/comune-demo/cie/metadata"
AG_EID = f"{BASE}/pub-ag-full/comune-demo"
ORG = Organization("Comune di Prova", "Comune di Prova", "https://www.comune.prova.it")


@lru_cache(maxsize=8)
def keys(entity_id: str, private: bool = False) -> tuple[bytes, bytes]:
    return make_sp_certificate(
        entity_id=entity_id,
        organization_name="SoftHouse Srl" if private else ORG.name,
        common_name="SoftHouse Srl" if private else ORG.name,
        locality="Roma",
        ipa_code=None if private else "c_h501",
        vat_number="IT12345678901" if private else None,
        private=private,
        key_size=2048,
    )


def settings(profile: str = "public", **changes: object) -> SpSettings:
    eid = AG_EID if profile == "aggregated" else SPID_EID
    key, cert = keys(eid, private=profile == "private")
    base = eid.rsplit("/", 1)[0]
    sp = SpSettings(
        kind="spid",
        entity_id=eid,
        acs_url=f"{base}/acs",
        slo_url=f"{base}/slo",
        key_pem=key,
        certs=(cert,),
        organization=ORG,
        contact=Contact(
            email="protocollo@comune.prova.it",
            phone="+39 06 1234567",
            ipa_code=None if profile == "private" else "c_h501",
            vat_number="IT12345678901" if profile == "private" else None,
        ),
        profile=profile,  # type: ignore[arg-type]
    )
    if profile == "private":
        sp = replace(
            sp,
            billing=Billing(
                company="Prova Srl",
                vat_number="IT12345678901",
                address="Via Roma",
                number="1",
                postal_code="00100",
                town="Roma",
                province="RM",
                email="fatture@prova.it",
            ),
        )
    if profile == "aggregated":
        akey, acert = keys(f"{BASE}/pub-ag-full", private=True)
        sp = replace(
            sp,
            aggregator=Aggregator(
                company="SoftHouse Srl",
                vat_number="IT12345678901",
                fiscal_code="12345678901",
                email="spid@softhouse.it",
                phone="+390211111111",
                key_pem=akey,
                cert_pem=acert,
            ),
        )
    return replace(sp, **changes)  # type: ignore[arg-type]


def cie_settings(**changes: object) -> SpSettings:
    key, cert = keys(CIE_EID)
    sp = SpSettings(
        kind="cie",
        entity_id=CIE_EID,
        acs_url=f"{BASE}/t/comune-demo/cie/acs",
        slo_url=f"{BASE}/t/comune-demo/cie/slo",
        key_pem=key,
        certs=(cert,),
        organization=ORG,
        contact=Contact(
            email="protocollo@comune.prova.it", phone="+39061234567", ipa_code="c_h501"
        ),
        attributes=("name", "familyName", "dateOfBirth", "fiscalNumber"),
        municipality="H501",
        province="RM",
        technical_contact=Contact(
            email="cie@softhouse.it",
            company="SoftHouse Srl",
            vat_number="IT12345678901",
            fiscal_code="12345678901",
        ),
    )
    return replace(sp, **changes)  # type: ignore[arg-type]


ALL = {
    "spid-sp-public": lambda: settings("public"),
    "spid-sp-private": lambda: settings("private"),
    "spid-sp-ag-public-full": lambda: settings("aggregated"),
    "cie-sp-public": cie_settings,
}


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def signature_ok(xml: bytes, cert_pem: bytes) -> bool:
    root = parse(xml)
    sig = root.find("ds:Signature", NS)
    assert sig is not None
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert_pem, xmlsec.KeyFormat.CERT_PEM)
    ctx.register_id(root, "ID")
    try:
        ctx.verify(sig)
    except xmlsec.Error:
        return False
    return True


@pytest.fixture(scope="module")
def specs() -> Path:
    if not (SPECS / "saml-schema-metadata-sp-spid-av29.xsd").exists():
        pytest.skip("official SPID XSDs not available")
    return SPECS


@pytest.mark.parametrize("profile", sorted(ALL))
def test_metadata_is_xsd_valid(profile: str, specs: Path) -> None:
    xml = build_metadata(ALL[profile]())
    assert xml.startswith(b"<?xml")
    assert validate_metadata_xsd(xml, specs) == []


def test_xsd_validation_reports_errors(specs: Path) -> None:
    xml = build_metadata(settings())
    broken = xml.replace(b"<md:NameIDFormat>", b"<md:Bogus/><md:NameIDFormat>")
    assert validate_metadata_xsd(broken, specs)
    assert validate_metadata_xsd(b"<oops", specs)
    cie = build_metadata(cie_settings()).replace(b"<md:Company>", b"<md:Bogus/><md:Company>")
    assert validate_metadata_xsd(cie, specs)


def test_public_metadata_content() -> None:
    sp = settings()
    root = parse(build_metadata(sp))
    assert root.get("entityID") == SPID_EID
    assert root[0].tag == f"{{{NS['ds']}}}Signature"
    desc = root.find("md:SPSSODescriptor", NS)
    assert desc is not None
    assert desc.get("AuthnRequestsSigned") == "true"
    assert desc.get("WantAssertionsSigned") == "true"
    acs = desc.findall("md:AssertionConsumerService", NS)
    assert [(a.get("index"), a.get("isDefault"), a.get("Location")) for a in acs] == [
        ("0", "true", sp.acs_url)
    ]
    slo = {
        s.get("Binding", "").rsplit(":", 1)[1] for s in desc.findall("md:SingleLogoutService", NS)
    }
    assert slo == {"HTTP-POST", "HTTP-Redirect"}
    assert desc.findtext("md:NameIDFormat", namespaces=NS).endswith(":transient")  # type: ignore[union-attr]
    attrs = desc.find("md:AttributeConsumingService", NS)
    assert attrs is not None and attrs.get("index") == "0"
    assert [r.get("Name") for r in attrs.findall("md:RequestedAttribute", NS)] == list(
        sp.attributes
    )
    other = root.find("md:ContactPerson[@contactType='other']", NS)
    assert other is not None
    assert other.findtext("md:Extensions/spid:IPACode", namespaces=NS) == "c_h501"
    assert other.find("md:Extensions/spid:Public", NS) is not None
    assert other.findtext("md:Company", namespaces=NS) == ORG.name
    assert other.findtext("md:TelephoneNumber", namespaces=NS) == "+39061234567"
    assert root.find("md:ContactPerson[@contactType='billing']", NS) is None


def test_signature_verifies_with_the_sp_cert() -> None:
    sp = settings()
    xml = build_metadata(sp)
    assert signature_ok(xml, sp.certs[0])
    other = keys(f"{BASE}/someone-else")[1]
    assert not signature_ok(xml, other)
    tampered = xml.replace(b"comune.prova.it</md:EmailAddress>", b"evil.example</md:EmailAddress>")
    assert not signature_ok(tampered, sp.certs[0])


def test_rotation_publishes_every_certificate() -> None:
    old = keys(f"{SPID_EID}#old")[1]
    sp = settings()
    sp = replace(sp, certs=(sp.certs[0], old))
    root = parse(build_metadata(sp))
    published = [
        "".join((c.text or "").split())
        for c in root.iterfind(
            "md:SPSSODescriptor/md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
            NS,
        )
    ]
    assert published == [cert_b64(sp.certs[0]), cert_b64(old)]
    assert signature_ok(build_metadata(sp), sp.certs[0])


def test_private_metadata_has_billing() -> None:
    root = parse(build_metadata(settings("private")))
    other = root.find("md:ContactPerson[@contactType='other']", NS)
    assert other is not None
    assert other.find("md:Extensions/spid:Private", NS) is not None
    assert other.find("md:Extensions/spid:IPACode", NS) is None
    assert other.findtext("md:Extensions/spid:VATNumber", namespaces=NS) == "IT12345678901"
    billing = root.find("md:ContactPerson[@contactType='billing']", NS)
    assert billing is not None
    cc = billing.find("md:Extensions/fpa:CessionarioCommittente", NS)
    assert cc is not None
    assert cc.findtext("fpa:DatiAnagrafici/fpa:IdFiscaleIVA/fpa:IdPaese", namespaces=NS) == "IT"
    assert cc.findtext("fpa:DatiAnagrafici/fpa:IdFiscaleIVA/fpa:IdCodice", namespaces=NS) == (
        "12345678901"
    )
    assert cc.findtext("fpa:Sede/fpa:CAP", namespaces=NS) == "00100"


def test_aggregated_metadata_is_signed_by_the_aggregator() -> None:
    sp = settings("aggregated")
    assert sp.aggregator is not None
    xml = build_metadata(sp)
    assert signature_ok(xml, sp.aggregator.cert_pem)
    assert not signature_ok(xml, sp.certs[0])
    root = parse(xml)
    et = f"{{{SPID_NS}}}entityType"
    contacts = {c.get(et): c for c in root.findall("md:ContactPerson", NS)}
    assert set(contacts) == {"spid:aggregator", "spid:aggregated"}
    ag = contacts["spid:aggregator"]
    assert ag.find("md:Extensions/spid:PublicServicesFullAggregator", NS) is not None
    assert ag.findtext("md:Company", namespaces=NS) == "SoftHouse Srl"
    assert ag.findtext("md:Extensions/spid:VATNumber", namespaces=NS) == "IT12345678901"
    agd = contacts["spid:aggregated"]
    assert agd.findtext("md:Extensions/spid:IPACode", namespaces=NS) == "c_h501"
    assert agd.find("md:Extensions/spid:Public", NS) is not None
    published = {
        "".join((c.text or "").split())
        for c in root.iterfind(
            "md:SPSSODescriptor/md:KeyDescriptor/ds:KeyInfo//ds:X509Certificate", NS
        )
    }
    assert cert_b64(sp.aggregator.cert_pem) in published


@pytest.mark.parametrize(
    "entity_id",
    [f"{BASE}/pub-ag-full/comune-demo?x=1", f"{BASE}/t/comune-demo/spid/metadata"],
)
def test_aggregated_entity_id_rules(entity_id: str) -> None:
    with pytest.raises(SamlConfigError):
        build_metadata(settings("aggregated", entity_id=entity_id))
    with pytest.raises(SamlConfigError):
        build_metadata(settings("aggregated", aggregator=None))


def test_cie_metadata_content() -> None:
    sp = cie_settings()
    xml = build_metadata(sp)
    assert signature_ok(xml, sp.certs[0])
    root = parse(xml)
    assert SPID_NS not in root.nsmap.values()
    adm = root.find("md:ContactPerson[@contactType='administrative']", NS)
    assert adm is not None
    ext = adm.find("md:Extensions", NS)
    assert ext is not None
    assert ext.find("cie:Public", NS) is not None
    assert ext.findtext("cie:IPACode", namespaces=NS) == "c_h501"
    assert ext.findtext("cie:Municipality", namespaces=NS) == "H501"
    assert ext.findtext("cie:Province", namespaces=NS) == "RM"
    assert adm.findtext("md:Company", namespaces=NS) == ORG.name
    tech = root.find("md:ContactPerson[@contactType='technical']", NS)
    assert tech is not None
    assert tech.findtext("md:Company", namespaces=NS) == "SoftHouse Srl"
    assert tech.find("md:Extensions/cie:Private", NS) is not None
    names = [r.get("Name") for r in root.iterfind(".//md:RequestedAttribute", NS)]
    assert sorted(names) == sorted(["name", "familyName", "dateOfBirth", "fiscalNumber"])
    bindings = [s.get("Binding") for s in root.iterfind(".//md:SingleLogoutService", NS)]
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" in bindings


def test_cie_without_technical_contact(specs: Path) -> None:
    xml = build_metadata(cie_settings(technical_contact=None))
    assert validate_metadata_xsd(xml, specs) == []


@pytest.mark.parametrize(
    ("maker", "changes"),
    [
        (cie_settings, {"attributes": ("name", "email")}),
        (cie_settings, {"municipality": None}),
        (settings, {"attributes": ("name", "shoeSize")}),
        (settings, {"attributes": ("name", "name")}),
        (settings, {"certs": ()}),
        (settings, {"contact": Contact(email="a@b.it")}),
    ],
)
def test_bad_settings_are_refused(maker: object, changes: dict[str, object]) -> None:
    with pytest.raises(SamlConfigError):
        build_metadata(maker(**changes))  # type: ignore[operator]


def _spid_sp_test() -> str | None:
    candidates = [os.environ.get("SPID_SP_TEST"), str(REPO / ".venv-spt/bin/spid_sp_test")]
    for c in candidates:
        if c and Path(c).exists():
            return c
    return None


@pytest.mark.parametrize("profile", sorted(ALL))
def test_spid_sp_test_finds_no_failure(profile: str, tmp_path: Path) -> None:
    tool = _spid_sp_test()
    if tool is None or shutil.which("xmlsec1") is None:
        pytest.skip("spid_sp_test not found ($SPID_SP_TEST or .venv-spt/bin/spid_sp_test)")
    md = tmp_path / "md.xml"
    md.write_bytes(build_metadata(ALL[profile]()))
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            tool,
            "--metadata-url",
            f"file://{md}",
            "--profile",
            profile,
            "--extra",
            "-rf",
            "json",
            "-o",
            str(report),
            "--debug",
            "ERROR",
        ],
        capture_output=True,
        timeout=240,
        check=False,
    )
    results: list[dict[str, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "result" in node and "test" in node:
                results.append(node)
            else:
                for v in node.values():
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(report.read_text()))
    failed = [r for r in results if r["result"] not in ("success", "warning")]
    assert results and not failed, failed
    assert proc.returncode == 0, proc.stdout.decode()[-2000:]

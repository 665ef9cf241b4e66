"""SAML keys as an operator handles them: `sportello keys spid` makes a pair with the SPID
subject and policies, `--rotate` keeps the old certificate in the metadata during the
overlap, `--retire` ends it; `sportello idps refresh` never loses the last good IdP list."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lxml import etree
from pytest_httpserver import HTTPServer

from sportello.cli.main import main
from sportello.config import load_config
from sportello.connectors.spid.keys import certificate_problems
from sportello.connectors.spid.metadata import build_metadata
from sportello.platforms.login.idps import refresh_registry
from sportello.platforms.login.keys import build_sp, read_keys
from sportello.sandbox.idp.keys import FEDERATION, FEDERATION_CERT_PEM, KeyPair, generate
from sportello.sandbox.idp.metadata import registry_metadata

SPORTELLO = str(Path(sys.executable).with_name("sportello"))
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPORTELLO_MASTER_KEYS",)}
    return subprocess.run([SPORTELLO, *args], capture_output=True, text=True, env=env, timeout=60)


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        '[server]\npublic_url = "https://hub.example.it"\n'
        "[[tenants]]\n"
        'id = "comune"\nname = "Comune di Prova"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n'
        "[tenants.spid]\n"
        'keys_dir = "keys/comune/spid"\ncontact_email = "protocollo@comune.prova.it"\n'
    )
    return cfg


def _signing_certs(xml: bytes) -> list[str]:
    root = etree.fromstring(xml)
    return [
        "".join(c.text.split())
        for c in root.iterfind(f".//{{{MD}}}KeyDescriptor[@use='signing']//{{{DS}}}X509Certificate")
        if c.text
    ]


def test_keys_spid_makes_a_compliant_pair_and_rotation_keeps_the_old_cert(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    made = run("keys", "spid", "--config", str(cfg), "--tenant", "comune")
    assert made.returncode == 0, made.stderr
    keys_dir = tmp_path / "keys" / "comune" / "spid"
    entity = "https://hub.example.it/t/comune/spid/metadata"
    first = read_keys(keys_dir)
    assert certificate_problems(first.certs[0], entity) == []
    again = run("keys", "spid", "--config", str(cfg), "--tenant", "comune")
    assert again.returncode == 1 and "--rotate" in again.stderr  # never overwritten silently

    rotated = run("keys", "spid", "--config", str(cfg), "--tenant", "comune", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    second = read_keys(keys_dir)
    assert second.certs[1] == first.certs[0] and second.key_pem != first.key_pem
    config = load_config(cfg)
    tenant = config.tenant("comune")
    assert tenant is not None
    published = _signing_certs(build_metadata(build_sp(config, tenant, "spid")))
    assert len(published) == 2  # new and old during the overlap

    retired = run("keys", "spid", "--config", str(cfg), "--tenant", "comune", "--retire")
    assert retired.returncode == 0 and "retired 1" in retired.stdout
    assert len(_signing_certs(build_metadata(build_sp(config, tenant, "spid")))) == 1


def test_keys_spid_for_an_unknown_tenant_says_so(tmp_path: Path) -> None:
    out = run("keys", "spid", "--config", str(_config(tmp_path)), "--tenant", "nobody")
    assert out.returncode == 2 and "nobody" in out.stderr and "Traceback" not in out.stderr


IDP_MD = b"""<?xml version="1.0"?>
<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">
<md:EntityDescriptor entityID="https://idp.example.it">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
 Location="https://idp.example.it/sso"/>
</md:IDPSSODescriptor></md:EntityDescriptor></md:EntitiesDescriptor>"""

ROGUE = "https://rogue-idp.example"


def cli(*args: str) -> Result:
    """The command in-process (a subprocess costs seconds): exit code, stdout, stderr."""
    return CliRunner().invoke(main, list(args), env={"SPORTELLO_CONFIG": None})


def _registry(signer: KeyPair | None, entity_id: str = "https://idp.example.it") -> bytes:
    """An AgID-style registry listing one IdP, signed by ``signer`` (None: unsigned)."""
    idp_keys = generate("IdP")
    if signer is None:
        return IDP_MD.replace(b"https://idp.example.it", entity_id.encode())
    return registry_metadata([("spid", entity_id, idp_keys)], signer)


def test_idps_refresh_keeps_the_last_good_copy(tmp_path: Path, httpserver: HTTPServer) -> None:
    cache = tmp_path / "idps.xml"
    certs = [FEDERATION_CERT_PEM]
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(_registry(FEDERATION))
    assert asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache, certs)) == 1
    good = cache.read_bytes()
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(b"<html>maintenance</html>")
    with pytest.raises(Exception):  # noqa: B017 - any parse failure will do
        asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache, certs))
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(b"", status=503)
    with pytest.raises(Exception):  # noqa: B017
        asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache, certs))
    assert cache.read_bytes() == good


@pytest.mark.parametrize(
    ("signer", "why"),
    [(None, "is not signed"), (generate("not AgID"), "does not verify")],
    ids=["unsigned", "signed-by-another-key"],
)
def test_idps_refresh_refuses_a_registry_agid_did_not_sign(
    tmp_path: Path, httpserver: HTTPServer, signer: KeyPair | None, why: str
) -> None:
    """A rogue IdP slipped into the registry (on the wire, or by a hijacked host) is never
    cached: exit 1 with the reason, and the last good copy stays byte for byte."""
    cache = tmp_path / "idps.xml"
    cert = tmp_path / "agid.pem"
    cert.write_bytes(FEDERATION_CERT_PEM)
    url = httpserver.url_for("/spid-entities-idps.xml")
    httpserver.expect_oneshot_request("/spid-entities-idps.xml").respond_with_data(
        _registry(FEDERATION)
    )
    ok = cli("idps", "refresh", "--url", url, "--cache", str(cache), "--cert", str(cert))
    assert ok.exit_code == 0, ok.stderr
    good = cache.read_bytes()
    httpserver.expect_oneshot_request("/spid-entities-idps.xml").respond_with_data(
        _registry(signer, ROGUE)
    )
    bad = cli("idps", "refresh", "--url", url, "--cache", str(cache), "--cert", str(cert))
    assert bad.exit_code == 1
    assert why in bad.stderr and "last good copy" in bad.stderr
    assert cache.read_bytes() == good and ROGUE.encode() not in cache.read_bytes()


def test_idps_refresh_needs_a_certificate(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/md.xml").respond_with_data(_registry(FEDERATION))
    cache = tmp_path / "idps.xml"
    out = cli("idps", "refresh", "--url", httpserver.url_for("/md.xml"), "--cache", str(cache))
    assert out.exit_code == 2 and "signing_certs" in out.stderr
    assert not cache.exists()


def test_idps_refresh_reads_the_certificate_from_the_configuration(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/md.xml").respond_with_data(_registry(FEDERATION))
    cfg = tmp_path / "hub.toml"
    (tmp_path / "agid.pem").write_bytes(FEDERATION_CERT_PEM)
    cfg.write_text('[idps]\nsigning_certs = ["agid.pem"]\n')
    cache = tmp_path / "idps.xml"
    url = httpserver.url_for("/md.xml")
    out = cli("idps", "refresh", "--url", url, "--cache", str(cache), "--config", str(cfg))
    assert out.exit_code == 0, out.stderr
    assert b"https://idp.example.it" in cache.read_bytes()


async def test_the_hub_trusts_no_unsigned_idp_metadata_url(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """IdP metadata fetched over the network counts only when a configured certificate
    signed it; a rogue document next to a good one is dropped, and a cached registry copy
    that was tampered with is not used either."""
    from sportello.config import parse_config
    from sportello.platforms.login.idps import IdpDirectory

    httpserver.expect_request("/good.xml").respond_with_data(_registry(FEDERATION))
    httpserver.expect_request("/rogue.xml").respond_with_data(_registry(None, ROGUE))
    httpserver.expect_request("/forged.xml").respond_with_data(
        _registry(generate("x"), ROGUE + "/2")
    )
    cache = tmp_path / "registry.xml"
    cache.write_bytes(_registry(None, ROGUE + "/cached"))
    config = parse_config(
        {
            "idps": {"signing_certs": [FEDERATION_CERT_PEM.decode()]},
            "tenants": [
                {
                    "id": "comune",
                    "name": "Comune",
                    "ipa_code": "c_z999",
                    "fiscal_code": "00000000999",
                    "cadastral_code": "Z999",
                    "spid": {
                        "keys_dir": str(tmp_path),
                        "contact_email": "a@b.it",
                        "use_registry": True,
                        "idp_metadata": [
                            httpserver.url_for(f"/{n}.xml") for n in ("good", "rogue", "forged")
                        ],
                    },
                }
            ],
        }
    )
    directory = IdpDirectory(config, registry_cache=cache)
    await directory.load_all()
    tenant = config.tenants[0]
    assert [i.entity_id for i in directory.all(tenant, "spid")] == ["https://idp.example.it"]

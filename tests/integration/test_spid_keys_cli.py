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
from lxml import etree
from pytest_httpserver import HTTPServer

from sportello.config import load_config
from sportello.connectors.spid.keys import certificate_problems
from sportello.connectors.spid.metadata import build_metadata
from sportello.login_idps import refresh_registry
from sportello.login_keys import build_sp, read_keys

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


def test_idps_refresh_keeps_the_last_good_copy(tmp_path: Path, httpserver: HTTPServer) -> None:
    cache = tmp_path / "idps.xml"
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(IDP_MD)
    assert asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache)) == 1
    good = cache.read_bytes()
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(b"<html>maintenance</html>")
    with pytest.raises(Exception):  # noqa: B017 - any parse failure will do
        asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache))
    httpserver.expect_oneshot_request("/md.xml").respond_with_data(b"", status=503)
    with pytest.raises(Exception):  # noqa: B017
        asyncio.run(refresh_registry(httpserver.url_for("/md.xml"), cache))
    assert cache.read_bytes() == good

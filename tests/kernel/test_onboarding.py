"""Onboarding a tenant (``sportello tenants onboard``, ``POST /api/v1/admin/tenants/{id}/
onboard``) and its readiness per platform (``sportello tenants status``): keys made once
(0600, never replaced), the values to register elsewhere, checks that ask the sandboxes and
fail with a named reason, cached results, and admin-only access."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from api_contract import Contract
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from factories import free_port

from sportello import apikeys, onboarding
from sportello.api.onboarding import OnboardingReport, TenantReadiness
from sportello.app import CLOCK, ENGINE, create_app
from sportello.cli.main import main
from sportello.config import load_config
from sportello.connectors.pdnd.keys import generate_key, load_private_key
from sportello.plugins import Plugins
from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID
from sportello.sandbox.io.app import create_app as io_sandbox
from sportello.sandbox.pdnd.app import create_app as pdnd_sandbox
from sportello.sandbox.pdnd.hosts import SANDBOX_ASSERTION_AUDIENCE
from sportello.sandbox.send.app import DEMO_API_KEY as SEND_API_KEY
from sportello.sandbox.send.app import create_app as send_sandbox

PURPOSE = "0b1e8c5e-6a0e-4f0e-9c51-7f3f0c1d2a01"
CLIENT = "5d2c3f8a-1b7e-4c9d-8e6f-2a4b6c8d0e1f"
SEND_PURPOSE = "9a7b5c3d-1e2f-4a6b-8c0d-2e4f6a8b0c1d"


def write_config(
    tmp_path: Path,
    db_url: str,
    *,
    hub: str,
    pdnd: str,
    io: str,
    send: str = "https://send.example",
    tenant_id: str = "comune",
) -> Path:
    """A hub with one tenant on SPID, CIE, PDND, App IO, a pagoPA station, SEND and a
    webhook, whose keys and secrets are references to files that do not exist yet (but App
    IO's and SEND's keys, which those platforms issue)."""
    (tmp_path / "io-key").write_text(DEMO_PRIMARY_KEY, encoding="utf-8")
    (tmp_path / "send-key").write_text(SEND_API_KEY, encoding="utf-8")
    path = tmp_path / "sportello.toml"
    login = (
        'keys_dir = "keys/{kind}"\ncontact_email = "protocollo@comune.prova.it"\n'
        'contact_phone = "+390612345678"\nreturn_urls = ["https://comune.example.it/"]\n'
        "use_registry = false\n"
    )
    path.write_text(
        f"""
[server]
public_url = "{hub}"

[database]
url = "{db_url}"

[outbox]
workers = false

[[tenants]]
id = "{tenant_id}"
name = "Comune di Prova"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"

[tenants.spid]
{login.format(kind="spid")}
[tenants.cie]
{login.format(kind="cie")}
[tenants.pdnd]
client_id = "{CLIENT}"
key = {{ file = "keys/pdnd.pem" }}
token_url = "{pdnd}/token.oauth2"
assertion_audience = "{SANDBOX_ASSERTION_AUDIENCE}"
purposes = {{ C030 = "{PURPOSE}" }}

[tenants.io]
base_url = "{io}/api/v1"
[[tenants.io.services]]
id = "{DEMO_SERVICE_ID}"
key = {{ file = "io-key" }}

[tenants.pagopa]
ec_fiscal_code = "00000000999"
broker_id = "00000000999"
station_id = "00000000999_01"
mode = "station"
[tenants.pagopa.station_auth]
key = {{ file = "keys/station-key" }}

[tenants.send]
base_url = "{send}"
api_key = {{ file = "send-key" }}
purpose_id = "{SEND_PURPOSE}"

[[tenants.webhooks]]
url = "https://gestionale.example.it/hook"
secret = {{ file = "keys/webhook-secret" }}
""",
        encoding="utf-8",
    )
    return path


def made_files(tmp_path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((tmp_path / "keys").rglob("*")) if p.is_file()}


def steps_of(report: dict[str, Any], platform: str, state: str) -> list[dict[str, Any]]:
    return [s for s in report["platforms"][platform]["steps"] if s["state"] == state]


def test_onboard_makes_the_keys_once_and_says_what_to_register(tmp_path: Path, db_url: str) -> None:
    path = write_config(
        tmp_path,
        db_url,
        hub="https://hub.example.it",
        pdnd="https://pdnd.example",
        io="https://io.example",
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(path)]).exit_code == 0

    dry = runner.invoke(
        main,
        [
            "tenants",
            "onboard",
            "comune",
            "--dry-run",
            "--no-check",
            "--json",
            "--config",
            str(path),
        ],
    )
    assert json.loads(dry.stdout)["made"] == 0 and not (tmp_path / "keys").exists()

    r = runner.invoke(
        main, ["tenants", "onboard", "comune", "--no-check", "--json", "--config", str(path)]
    )
    assert r.exit_code == 0, (r.output, r.exception)
    report = json.loads(r.stdout)
    OnboardingReport.model_validate(report)
    # SAML key and certificate for SPID and CIE, the PDND key, the station key, the webhook secret
    assert report["made"] == 5, report
    files = made_files(tmp_path)
    private = [
        tmp_path / "keys" / "spid" / "current.key",
        tmp_path / "keys" / "cie" / "current.key",
        tmp_path / "keys" / "pdnd.pem",
        tmp_path / "keys" / "station-key",
        tmp_path / "keys" / "webhook-secret",
    ]
    for p in private:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    secret = (tmp_path / "keys" / "webhook-secret").read_text()
    assert len(secret) >= 40 and secret not in r.stdout  # references only, never the value

    (spid_todo,) = steps_of(report, "spid", "todo")
    assert spid_todo["values"]["metadata_url"] == "https://hub.example.it/t/comune/spid/metadata"
    assert "AgID" in spid_todo["what"]
    (cie_todo,) = steps_of(report, "cie", "todo")
    assert cie_todo["values"]["metadata_url"] == "https://hub.example.it/t/comune/cie/metadata"
    upload = steps_of(report, "pdnd", "todo")[0]["values"]
    key = load_private_key((tmp_path / "keys" / "pdnd.pem").read_bytes())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    assert base64.b64decode(upload["public_key_base64"]) == public_pem
    assert (tmp_path / "keys" / "pdnd.pub.pem").read_bytes() == public_pem
    (station,) = steps_of(report, "pagopa", "todo")
    assert station["values"]["station_url"] == "https://hub.example.it/t/comune/pagopa/station"
    assert station["values"]["station_id"] == "00000000999_01"
    assert (
        station["values"]["key"].startswith("file:") and "station-key" in station["values"]["key"]
    )
    (io,) = steps_of(report, "io", "todo")
    assert io["values"]["service_id"] == DEMO_SERVICE_ID

    again = runner.invoke(
        main, ["tenants", "onboard", "comune", "--no-check", "--json", "--config", str(path)]
    )
    second = json.loads(again.stdout)
    assert second["made"] == 0 and made_files(tmp_path) == files
    assert steps_of(second, "pdnd", "todo")[0]["values"]["kid"] == upload["kid"]
    assert {s["state"] for p in second["platforms"].values() for s in p["steps"]} <= {
        "present",
        "todo",
    }

    # a configured kid that is not the key's thumbprint is named, with the right one
    line = f'client_id = "{CLIENT}"'
    text = path.read_text().replace(line, line + '\nkid = "wrong"')
    path.write_text(text)
    bad = runner.invoke(
        main, ["tenants", "onboard", "comune", "--no-check", "--json", "--config", str(path)]
    )
    assert bad.exit_code == 1
    (blocked,) = steps_of(json.loads(bad.stdout), "pdnd", "blocked")
    assert blocked["values"]["thumbprint"] == upload["kid"] and "'wrong'" in blocked["what"]


def test_onboarding_an_unknown_tenant_fails_clearly(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/hub.sqlite",
        hub="https://h",
        pdnd="https://p",
        io="https://i",
    )
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(path)]).exit_code == 0
    r = runner.invoke(main, ["tenants", "onboard", "nessuno", "--config", str(path)])
    assert r.exit_code == 1 and "'nessuno' is not served" in r.stderr


@asynccontextmanager
async def sandboxes() -> AsyncIterator[dict[str, TestServer]]:
    servers = {
        "pdnd": TestServer(pdnd_sandbox(rate_limit=None), host="127.0.0.1"),
        "io": TestServer(io_sandbox(rate_limit=0), host="127.0.0.1"),
    }
    for s in servers.values():
        await s.start_server()
    servers["send"] = TestServer(
        send_sandbox(pdnd_url=url_of(servers["pdnd"]), acceptance_delay=0, step_delay=0),
        host="127.0.0.1",
    )
    await servers["send"].start_server()
    try:
        yield servers
    finally:
        for s in servers.values():
            await s.close()


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_checks_pass_against_the_sandboxes_and_fail_with_a_reason(
    tmp_path: Path, db_url: str
) -> None:
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    async with sandboxes() as boxes, aiohttp.ClientSession() as session:
        path = write_config(
            tmp_path,
            db_url,
            hub=hub_url,
            pdnd=url_of(boxes["pdnd"]),
            io=url_of(boxes["io"]),
            send=url_of(boxes["send"]),
        )
        runner = CliRunner()
        config = load_config(path)
        # the keys exist before the hub serves the tenant (as after `tenants onboard`)
        made = onboarding.steps(config, config.tenants[0], Plugins(), make=True)
        assert sum(s.state == "made" for s in made) == 5
        app = create_app(config, apply_migrations=True)
        server = TestServer(app, host="127.0.0.1", port=port)
        async with TestClient(server) as client:
            now = app[CLOCK].now()
            async with app[ENGINE].begin() as conn:
                admin = await apikeys.create(
                    conn, tenant_id=None, name="ops", scopes=["admin"], now=now
                )
                scoped = await apikeys.create(
                    conn, tenant_id="comune", name="g", scopes=["read", "write"], now=now
                )
            onboard = "/api/v1/admin/tenants/comune/onboard"
            # a tenant's own key never reaches onboarding, an unknown tenant is not found
            assert (await client.post(onboard, headers=auth(scoped))).status == 403
            assert (
                await client.get("/api/v1/admin/tenants/comune/readiness", headers=auth(scoped))
            ).status == 403
            r = await client.post("/api/v1/admin/tenants/altro/onboard", headers=auth(admin))
            assert r.status == 404 and r.content_type == "application/problem+json"
            r = await client.post(onboard + "?check=maybe", headers=auth(admin))
            assert r.status == 400 and "check" in (await r.json())["detail"]

            r = await client.post(onboard + "?check=false", headers=auth(admin))
            assert r.status == 200
            first = await r.json()
            kid = steps_of(first, "pdnd", "todo")[0]["values"]["kid"]
            public = (tmp_path / "keys" / "pdnd.pub.pem").read_text()
            # the PDND twin computes the kid of the uploaded key on its own: the same
            async with session.post(
                url_of(boxes["pdnd"]) + "/__sandbox/clients",
                json={
                    "client_id": CLIENT,
                    "public_key": public,
                    "purposes": {
                        PURPOSE: "https://anpr.example/C030",
                        SEND_PURPOSE: url_of(boxes["send"]),
                    },
                },
            ) as resp:
                assert resp.status == 201 and (await resp.json())["kid"] == kid

            r = await client.post(onboard, headers=auth(admin))
            report = await r.json()
            OnboardingReport.model_validate(report)
            assert report["made"] == 0
            results = {
                (c["platform"], c["name"]): c
                for p in report["platforms"].values()
                for c in p["checks"]
            }
            assert set(results) == {
                ("spid", "metadata"),
                ("cie", "metadata"),
                ("pdnd", "voucher C030"),
                ("io", f"service {DEMO_SERVICE_ID}"),
                ("pagopa", "station"),
                ("send", "api"),
            }
            assert all(c["ok"] for c in results.values()), results
            assert r.status == 200 and all(p["ready"] for p in report["platforms"].values())

            # the cached results, as the API and the CLI show them
            contract = Contract(await (await client.get("/api/v1/openapi.json")).json())
            r = await client.get("/api/v1/admin/tenants/comune/readiness", headers=auth(admin))
            row = await r.json()
            contract.check("/api/v1/admin/tenants/{tenant_id}/readiness", 200, row, r.content_type)
            TenantReadiness.model_validate(row)
            assert row["platforms"]["pdnd"]["state"] == "ready"
            assert row["platforms"]["webhooks"]["state"] == "configured"

            # now break things: a wrong PDND key, a wrong SAML certificate, IO down, another
            # station
            (tmp_path / "keys" / "pdnd.pem").write_bytes(generate_key()[0])
            from sportello.connectors.spid.keys import make_sp_certificate

            _, cert = make_sp_certificate(
                entity_id=f"{hub_url}/t/comune/cie/metadata",
                organization_name="Altro",
                common_name="Altro",
                locality="Z999",
                ipa_code="c_z999",
                key_size=2048,
            )
            (tmp_path / "keys" / "cie" / "current.crt").write_bytes(cert)
            # the file names another station than the one the running hub serves (not
            # reloaded): the station refuses the probe with the station's fault
            path.write_text(path.read_text().replace("00000000999_01", "00000000999_02"))
            await boxes["io"].close()

            status = await asyncio.to_thread(
                runner.invoke,
                main,
                ["tenants", "status", "--check", "--json", "--config", str(path)],
            )
            assert status.exit_code == 1, status.output
            (row,) = json.loads(status.stdout)
            cells = row["platforms"]

            def failure(platform: str) -> str:
                # SAML logins without an IdP list are "missing" (readiness) before "failing"
                expected = "missing" if platform in ("spid", "cie") else "failing"
                assert cells[platform]["state"] == expected, cells[platform]
                (bad,) = [c for c in cells[platform]["checks"] if not c["ok"]]
                return str(bad["detail"])

            assert "does not verify" in failure("cie")
            assert all(c["ok"] for c in cells["spid"]["checks"]), cells["spid"]
            assert cells["spid"]["missing"] == cells["cie"]["missing"] != []
            assert "cannot be reached" in failure("io") or "Connect" in failure("io")
            assert "kid" in failure("pdnd").lower() or "refused" in failure("pdnd").lower()
            assert "PAA_STAZIONE_INT_ERRATA" in failure("pagopa")
            assert "refused" in failure("send").lower()  # the voucher, with the wrong key

            # without --check, the same results come back from the database, with their time
            cached = await asyncio.to_thread(
                runner.invoke, main, ["tenants", "status", "--json", "--config", str(path)]
            )
            (again,) = json.loads(cached.stdout)
            assert again["platforms"]["cie"]["checks"] == cells["cie"]["checks"]
            table = await asyncio.to_thread(
                runner.invoke, main, ["tenants", "status", "--config", str(path)]
            )
            assert "failing" in table.stdout and "missing" in table.stdout
            assert (
                "comune pagopa: station:" in table.stdout
                and "PAA_STAZIONE_INT_ERRATA" in table.stdout
            )


async def test_the_oidc_keys_are_made_once_and_the_entity_configuration_checked(
    tmp_path: Path, db_url: str
) -> None:
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    (tmp_path / "anchor.json").write_text('{"keys": []}', encoding="utf-8")
    path = tmp_path / "sportello.toml"
    template = f"""
[server]
public_url = "{hub_url}"

[database]
url = "{db_url}"

[outbox]
workers = false

[[tenants]]
id = "comune"
name = "Comune di Prova"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"

[tenants.oidc]
keys_dir = "KEYS"
trust_anchor = "https://anchor.example.it"
trust_anchor_jwks = "anchor.json"
contacts = ["protocollo@comune.prova.it"]
allow_http = true
"""
    path.write_text(template.replace("KEYS", "keys/oidc"), encoding="utf-8")
    config = load_config(path)
    (made,) = [
        s
        for s in onboarding.steps(config, config.tenants[0], Plugins(), make=True)
        if s.state == "made"
    ]
    keys_file = tmp_path / "keys" / "oidc" / "keys.json"
    assert made.platform == "oidc" and stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    kid = json.loads(keys_file.read_text())["federation"]["active"]["kid"]

    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)):
        runner = CliRunner()
        r = await asyncio.to_thread(
            runner.invoke, main, ["tenants", "onboard", "comune", "--json", "--config", str(path)]
        )
        report = json.loads(r.stdout)
        oidc = report["platforms"]["oidc"]
        assert report["made"] == 0 and [s["state"] for s in oidc["steps"]] == ["present", "todo"]
        todo = oidc["steps"][1]["values"]
        assert (
            todo["entity_configuration"] == f"{hub_url}/t/comune/oidc/.well-known/openid-federation"
        )
        assert todo["federation_kid"] == kid
        (check,) = oidc["checks"]
        assert check["ok"] and kid in check["detail"], check

        # the file now names other keys than those the running hub serves (not reloaded)
        path.write_text(template.replace("KEYS", "keys/oidc-new"), encoding="utf-8")
        r = await asyncio.to_thread(
            runner.invoke, main, ["tenants", "onboard", "comune", "--json", "--config", str(path)]
        )
        report = json.loads(r.stdout)
        assert r.exit_code == 1 and report["made"] == 1
        (check,) = report["platforms"]["oidc"]["checks"]
        assert not check["ok"] and "does not verify with the federation key" in check["detail"]


def test_a_tenant_stored_in_the_database_is_onboarded_too(tmp_path: Path, db_url: str) -> None:
    path = write_config(tmp_path, db_url, hub="https://h.example", pdnd="https://p", io="https://i")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(path)]).exit_code == 0
    beta = tmp_path / "beta.toml"
    beta.write_text(
        'id = "beta"\nname = "Comune di Beta"\nipa_code = "c_b002"\n'
        'fiscal_code = "00000000002"\ncadastral_code = "B002"\n\n[pdnd]\n'
        f'client_id = "{CLIENT}"\nkey = {{ file = "beta/pdnd.pem" }}\n'
        'token_url = "https://auth.uat.interop.pagopa.it/token.oauth2"\n',
        encoding="utf-8",
    )
    assert runner.invoke(main, ["tenants", "add", str(beta), "--config", str(path)]).exit_code == 0
    r = runner.invoke(
        main, ["tenants", "onboard", "beta", "--no-check", "--json", "--config", str(path)]
    )
    report = json.loads(r.stdout)
    assert report["made"] == 1 and list(report["platforms"]) == ["pdnd"]
    key = tmp_path / "beta" / "pdnd.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert steps_of(report, "pdnd", "todo")[-1]["values"]["client_id"] == CLIENT
    # the other tenant's files are not touched
    assert not (tmp_path / "keys").exists()


async def test_the_gpd_check_asks_gpd_with_the_tenant_key(tmp_path: Path, db_url: str) -> None:
    from sportello.sandbox.pagopa.gpd_app import DEFAULT_API_KEY, GPD_PREFIX
    from sportello.sandbox.pagopa.gpd_app import create_app as gpd_sandbox

    gpd = TestServer(gpd_sandbox(), host="127.0.0.1")
    await gpd.start_server()
    key = tmp_path / "gpd-key"
    key.write_text(DEFAULT_API_KEY, encoding="utf-8")
    path = tmp_path / "sportello.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n[outbox]\nworkers = false\n\n[[tenants]]\n'
        'id = "comune"\nname = "Comune di Prova"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n\n[tenants.pagopa]\n'
        'ec_fiscal_code = "00000000999"\nbroker_id = "00000000999"\n'
        f'station_id = "00000000999_01"\nmode = "gpd"\nbase_url = "{url_of(gpd)}{GPD_PREFIX}"\n'
        'api_key = { file = "gpd-key" }\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    args = ["tenants", "onboard", "comune", "--json", "--config", str(path)]
    try:
        up = await asyncio.to_thread(runner.invoke, main, ["db", "upgrade", "--config", str(path)])
        assert up.exit_code == 0
        r = await asyncio.to_thread(runner.invoke, main, args)
        pagopa = json.loads(r.stdout)["platforms"]["pagopa"]
        (check,) = pagopa["checks"]
        assert r.exit_code == 0 and check["name"] == "gpd" and check["ok"], check
        assert pagopa["steps"][0]["values"]["api_key"] == f"file:{key}"

        key.write_text("not-the-key", encoding="utf-8")
        r = await asyncio.to_thread(runner.invoke, main, args)
        (check,) = json.loads(r.stdout)["platforms"]["pagopa"]["checks"]
        assert r.exit_code == 1 and not check["ok"] and "401" in check["detail"], check
    finally:
        await gpd.close()
    r = await asyncio.to_thread(runner.invoke, main, args)
    (check,) = json.loads(r.stdout)["platforms"]["pagopa"]["checks"]
    assert not check["ok"] and "Connect" in check["detail"], check

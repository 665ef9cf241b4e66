"""Schemathesis against the running service with its own OpenAPI document: no 5xx, every
status code and content type documented, every response matching its schema, and invalid
input refused. (The "valid by schema means accepted" check is left out: a CSV that is
valid JSON can still hold rows App IO would refuse, and those get a documented 422.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f"""
[server]
port = {port}
[database]
url = "sqlite:///{tmp_path}/hub.sqlite"
[outbox]
workers = false
[logging]
level = "ERROR"
[[tenants]]
id = "demo"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"
[tenants.io]
base_url = "http://127.0.0.1:9/api/v1"
services = [{{ id = "01DEMOSERVICE0000000000000", key = {{ env = "UNUSED_IO_KEY" }} }}]
[tenants.pagopa]
ec_fiscal_code = "00000000999"
broker_id = "00000000999"
station_id = "00000000999_01"
mode = "station"
checkout_url = "http://127.0.0.1:9/checkout/ec/v1"
checkout_api_key = {{ env = "UNUSED_CHECKOUT_KEY" }}
"""
    )
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    sportello = str(BIN / "sportello")
    subprocess.run([sportello, "db", "upgrade", "--config", str(cfg)], check=True, env=env)
    key = subprocess.run(
        [
            sportello,
            "apikeys",
            "create",
            "--config",
            str(cfg),
            "--tenant",
            "demo",
            "--name",
            "fuzz",
            "--scopes",
            "read,write,personal_data",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [sportello, "serve", "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/openapi.json"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        result = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "run",
                url,
                "-H",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "30",
                "--seed",
                "20261122",
                "--exclude-checks",
                "positive_data_acceptance",
            ],
            env={**env, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.terminate()
        server.wait(15)
    summary = result.stdout; open("/tmp/req_fuzz.txt","w").write(summary)
    assert result.returncode == 0, summary
    assert "generated" in summary and "unique failure" not in summary, summary

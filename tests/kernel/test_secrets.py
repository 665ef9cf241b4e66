"""Secrets at rest: files encrypted with a rotatable master key, read through SecretRef."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sportello.config import SecretRef
from sportello.secrets import (
    KEYS_ENV,
    PREFIX,
    SecretError,
    decrypt,
    encrypt,
    new_master_key,
    rotate_file,
    write_secret_file,
)

PEM = b"-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n"


def test_encrypted_file_reads_back_and_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k1, k2 = new_master_key(), new_master_key()
    monkeypatch.setenv(KEYS_ENV, f"k1={k1}")
    path = tmp_path / "pdnd.pem"
    write_secret_file(path, PEM, encrypted=True)
    stored = path.read_text()
    assert stored.startswith(f"{PREFIX}k1:") and "MIIfake" not in stored
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretRef(file=path).reveal() == PEM.decode().strip()

    monkeypatch.setenv(KEYS_ENV, f"k2={k2},k1={k1}")  # new key in front, old kept
    assert SecretRef(file=path).reveal() == PEM.decode().strip()
    assert rotate_file(path) == "k2"
    assert path.read_text().startswith(f"{PREFIX}k2:")
    monkeypatch.setenv(KEYS_ENV, f"k2={k2}")  # old key dropped
    assert SecretRef(file=path).reveal() == PEM.decode().strip()

    monkeypatch.setenv(KEYS_ENV, f"k3={new_master_key()}")
    with pytest.raises(
        LookupError, match="encrypted with master key 'k2', which is not configured"
    ):
        SecretRef(file=path).reveal()


def test_tampering_and_bad_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, f"k1={new_master_key()}")
    envelope = encrypt(b"io-key-123")
    assert decrypt(envelope) == b"io-key-123"
    head, payload = envelope.rsplit(":", 1)
    flipped = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SecretError, match="does not decrypt") as info:
        decrypt(f"{head}:{flipped}")
    assert "io-key-123" not in str(info.value)
    monkeypatch.setenv(KEYS_ENV, "k1=short")
    with pytest.raises(SecretError, match=r"not valid base64|must be 32 bytes"):
        encrypt(b"x")
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(SecretError, match="no master key"):
        encrypt(b"x")


def test_plain_files_still_work(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("plain-value\n")
    assert SecretRef(file=path).reveal() == "plain-value"


def test_keys_pdnd_encrypts_when_a_master_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        '[[tenants]]\nid = "demo"\nname = "Comune"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n'
    )
    env = {KEYS_ENV: f"main={new_master_key()}", "PATH": "/usr/bin:/bin"}
    sportello = str(Path(sys.executable).with_name("sportello"))
    out = subprocess.run(
        [sportello, "keys", "pdnd", "--config", str(cfg), "--tenant", "demo"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "encrypted with the master key" in out
    # the private key, not the .pub.pem beside it (a glob on the last letter would miss a
    # kid that happens to end in "b")
    [key_file] = [
        p
        for p in (tmp_path / "keys" / "demo").glob("pdnd-*.pem")
        if not p.name.endswith(".pub.pem")
    ]
    assert key_file.read_text().startswith(f"{PREFIX}main:")
    kid_line = next(line for line in out.splitlines() if line.startswith("kid"))
    from sportello.connectors.pdnd.keys import kid_for_private_key

    monkeypatch.setenv(KEYS_ENV, env[KEYS_ENV])
    private = SecretRef(file=key_file).reveal()
    assert kid_line.endswith(kid_for_private_key(private))

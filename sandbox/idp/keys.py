"""The sandbox IdP's signing keys: one RSA key and self-signed certificate per scheme.

``load_or_create(key_dir, scheme)`` reads ``{scheme}-key.pem`` and ``{scheme}-cert.pem`` from
``key_dir`` and creates them there when missing (so a developer's SP keeps trusting the same
certificate across restarts); without a directory the pair lives only in memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["KeyPair", "generate", "load_or_create"]


@dataclass(frozen=True)
class KeyPair:
    """A PEM private key and its PEM certificate."""

    key_pem: bytes
    cert_pem: bytes

    def cert_base64(self) -> str:
        """The certificate's DER as base64 on one line (what ``ds:X509Certificate`` holds)."""
        lines = self.cert_pem.decode("ascii").strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))


def generate(common_name: str, *, bits: int = 2048) -> KeyPair:
    """A fresh RSA key with a ten-year self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sportello sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def load_or_create(key_dir: Path | None, scheme: str) -> KeyPair:
    """The scheme's key pair from ``key_dir`` (created there on first use), or a new one."""
    common_name = f"Sportello sandbox {scheme.upper()} IdP"
    if key_dir is None:
        return generate(common_name)
    key_path, cert_path = key_dir / f"{scheme}-key.pem", key_dir / f"{scheme}-cert.pem"
    if key_path.exists() and cert_path.exists():
        return KeyPair(key_path.read_bytes(), cert_path.read_bytes())
    pair = generate(common_name)
    key_dir.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(pair.key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(pair.cert_pem)
    return pair

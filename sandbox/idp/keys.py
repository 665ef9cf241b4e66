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

__all__ = ["FEDERATION", "FEDERATION_CERT_PEM", "KeyPair", "generate", "load_or_create"]


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


# The sandbox plays AgID (and the CIE federation) too: this fixed, published, TEST-ONLY pair
# signs the sandbox IdPs' metadata and its IdP registry, so a hub can verify them against a
# certificate written in its configuration (the demo's ``[idps] signing_certs`` holds
# FEDERATION_CERT_PEM). It protects nothing: never trust it outside a sandbox.
FEDERATION_CERT_PEM = b"""-----BEGIN CERTIFICATE-----
MIIDfDCCAmSgAwIBAgIUSyI0lxWtF/ZMMcGkyseEXpsy0xQwDQYJKoZIhvcNAQEL
BQAwbjELMAkGA1UEBhMCSVQxJTAjBgNVBAoMHFNwb3J0ZWxsbyBzYW5kYm94IChO
T1QgQWdJRCkxODA2BgNVBAMML1Nwb3J0ZWxsbyBzYW5kYm94IGZlZGVyYXRpb24g
c2lnbmVyICh0ZXN0IG9ubHkpMCAXDTI1MDEwMTAwMDAwMFoYDzIwNTQxMjI1MDAw
MDAwWjBuMQswCQYDVQQGEwJJVDElMCMGA1UECgwcU3BvcnRlbGxvIHNhbmRib3gg
KE5PVCBBZ0lEKTE4MDYGA1UEAwwvU3BvcnRlbGxvIHNhbmRib3ggZmVkZXJhdGlv
biBzaWduZXIgKHRlc3Qgb25seSkwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEK
AoIBAQCxh3ajRBrm9cNgm9kqPaqIb1T0sF0ws/Wa3Sb+M5E5E6cY1Tjn20Pv0nSA
SHMNoMfwunwsPsG1WtXyyep4Jnn/6nmpgamOPW/SxqWyjHZKSJHIwQvdt7mu+pch
xeCh1lc9eDsuloufT/ytaUfWxT4m+SheK5v7OPQrIksSy+sAneoP5vIqgCzC6iB2
GRk7h4O+Fnz8XEKI913nq70T6gOhGXCd/VQ52t8V3rASVmzWmSJlXu5k36c5Dn9Y
+4tfiYtspIjaFBL4mudrr8RE9cda96QUAofWa4i2WO4IZEDix7exHcc8tciz8ANP
dTXuieRJjmb1dgnxUC83YWTF8jpfAgMBAAGjEDAOMAwGA1UdEwEB/wQCMAAwDQYJ
KoZIhvcNAQELBQADggEBAH1ebFH4ZQ30M+OmyKoRnHYwn5f9hx3dsGYRGImjSFg5
ewmzGCyEYcYyOSYCp9SZNoRxqy14b8Mt+jZM+MxIOuwmvuXKfoD6vXSXNLydz1Hi
06g43fHVC/OTdkUFL1qzsjrpDWOId9Mqtu912aJYb/WBB0qVr4RiZCTW33P65XLv
CMIXngvKT+HRyz/D0ugq1ESRH594qLX3hXbd4eFlk0Hpyep1J5U/b1N6RC5wKnjX
fohpIO/SP9dmEa4K0GVNDS4XmA0yQRreE7RKQQ5B68cT4zMMHg1iV0MmA+bbk8o3
+HgnncVLnM2WSRCRy7jWiVjbAj+P/L2OC7Ajz+pEARU=
-----END CERTIFICATE-----
"""
_FEDERATION_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCxh3ajRBrm9cNg
m9kqPaqIb1T0sF0ws/Wa3Sb+M5E5E6cY1Tjn20Pv0nSASHMNoMfwunwsPsG1WtXy
yep4Jnn/6nmpgamOPW/SxqWyjHZKSJHIwQvdt7mu+pchxeCh1lc9eDsuloufT/yt
aUfWxT4m+SheK5v7OPQrIksSy+sAneoP5vIqgCzC6iB2GRk7h4O+Fnz8XEKI913n
q70T6gOhGXCd/VQ52t8V3rASVmzWmSJlXu5k36c5Dn9Y+4tfiYtspIjaFBL4mudr
r8RE9cda96QUAofWa4i2WO4IZEDix7exHcc8tciz8ANPdTXuieRJjmb1dgnxUC83
YWTF8jpfAgMBAAECggEAGF5j5p1eo/1wSD6cXLQCSKAfpUbgQ+Mv/4YD6Djj4lXU
RhBes1ThynW1EDbhtCkxyNWQXfJvXJmPbLhSuxNtA7gH40CtKZ09UE18SToGssOr
X0dAfbrOfjpfrH8hCpYFe6aZWRfJKqEsKhGdjtmcYnUpGWQbES0MNy+J5pafN4I6
dnY5MaYR+FBWqJ/38pDKJZkRFU/yeAHvj7I40LVfOms5ldEbe3QCzLKd86Ru+haL
JXSpwnng+2guOWFo9WH6aPIjdf2YFjsDHY0ehCeIV2VeDR/DC/tmx1BMeM+/bbhW
oK30zvCd+UXWBgLNxb2oPto2Zj2XTTig9DQlU36NYQKBgQD5DiV0px2UVgFk1omz
ISysL3EqsyPGmnBb6+PRlnE82jzavoqHSz+rxOrialr4VWFiM/G1a0GN+hQmQolw
SIMLpHbOpo0ROawHVV7QvMu4W6Y6C2JFhlkU8UJ/Enm2LmKYXb9qrMNiyetU4lEj
lBTdJhszseQ5H5XgAAqAcsyhHQKBgQC2erxgt+GGX2ljYP5dfmOWJttQSIIjJZvZ
wXM3jtNFlmowFKS79KdQ5DS5VJeNls1JPhEoYXB4B0hjSa3MlS1vMZFt7r65Pf2/
oUtCCYdiPIJRt6R3QBEB+mK0XUQeLzjycsTDx3RdNZsRkz/3PyeRbOnGFvL7Mnve
ncDvt8ZMqwKBgQCPaLbmoeflZ1SsJODrdZnMmBDY3ogmLv2t4HmxUKhputy5tGf+
GbVTCjOaJlW1kyxdKL3wkg8QWsTJdxy+u/JBfPUwbzThi0zkeCL9nQjNYnCoEbAH
iqG27mk01IWjArihNbIoEcz8EHriyOKh0v3kjbGyJafdwLNDZaKmbfQofQKBgQCT
o3oGRsARF+EMps0ml7u7IHUQ35lrFmKiLAIsUUJeavQ/MnSWHbvBluGRkP+NbxVo
zO7U3QFCG6JVsqcLfybjcBdZ+nAVMDK9eKKLK2p98Lb/prVKRmt8TjjN9SfHxC0u
++x2+kkLoPN1pM18HXzGDHiX7Llqw820r64KRYYLQQKBgCx14AY5p1I3IiTWe2Ml
mDby4nx83V6G/EDV8CY9xmTwsP377D/VR1UjPKyuE7OluvfYV3ImwzV3h+doeg8e
7/QR1QUeOAbYNc06ZNJQYdCVCugtnw4zk+g3Om45tDx0N0kHEdtXKw8XlHIP/fz8
7W6G4sorWlMmJmmE34eH1gO2
-----END PRIVATE KEY-----
"""
FEDERATION = KeyPair(_FEDERATION_KEY_PEM, FEDERATION_CERT_PEM)

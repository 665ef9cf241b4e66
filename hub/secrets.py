"""Secrets at rest: files encrypted with a master key (AES-256-GCM, from `cryptography`).

A secret file (a tenant's PDND private key, a platform API key) may be stored encrypted as
``sportello-enc-v1:<key id>:<base64 of nonce + ciphertext>``. ``SecretRef(file=...)`` decrypts
it transparently when it is read. Master keys come from the environment
(``SPORTELLO_MASTER_KEYS="k2=<base64>,k1=<base64>"``, first = current) or from a file named
by ``SPORTELLO_MASTER_KEY_FILE`` (one ``id=<base64>`` per line, first = current). Rotation:
add a new key in front, run ``sportello secrets rotate FILE...`` (re-encrypts with the current
key), then drop the old key.
"""

from __future__ import annotations

import base64
import os
import secrets as _random
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sportello-enc-v1:"
KEYS_ENV = "SPORTELLO_MASTER_KEYS"
KEY_FILE_ENV = "SPORTELLO_MASTER_KEY_FILE"
_AAD = b"sportello-secret-v1"


class SecretError(Exception):
    """A secret that cannot be encrypted or decrypted; the message never holds the secret."""


def new_master_key() -> str:
    """A fresh 256-bit key, base64-encoded, for ``SPORTELLO_MASTER_KEYS``."""
    return base64.b64encode(_random.token_bytes(32)).decode()


def _parse(text: str, source: str) -> list[tuple[str, bytes]]:
    keys = []
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        kid, sep, value = part.partition("=")
        if not sep or not kid.strip():
            raise SecretError(f"{source}: expected id=<base64 key>, found an entry without '='")
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raise SecretError(f"{source}: key {kid.strip()!r} is not valid base64") from None
        if len(raw) != 32:
            raise SecretError(f"{source}: key {kid.strip()!r} must be 32 bytes (256 bits)")
        keys.append((kid.strip(), raw))
    return keys


def master_keys() -> list[tuple[str, bytes]]:
    """The configured master keys, current first (empty when none is configured)."""
    if os.environ.get(KEYS_ENV):
        return _parse(os.environ[KEYS_ENV], KEYS_ENV)
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        try:
            return _parse(Path(path).read_text(), path)
        except OSError as exc:
            raise SecretError(f"{path}: cannot read the master key file: {exc.strerror}") from None
    return []


def is_encrypted(data: bytes | str) -> bool:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return text.startswith(PREFIX)


def encrypt(plaintext: bytes) -> str:
    keys = master_keys()
    if not keys:
        raise SecretError(f"no master key: set {KEYS_ENV} or {KEY_FILE_ENV}")
    kid, key = keys[0]
    nonce = _random.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _AAD + kid.encode())
    return f"{PREFIX}{kid}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt(envelope: str, *, source: str = "secret") -> bytes:
    try:
        _, kid, payload = envelope.strip().split(":", 2)
        blob = base64.b64decode(payload, validate=True)
    except ValueError:
        raise SecretError(f"{source}: not a valid encrypted secret") from None
    key = dict(master_keys()).get(kid)
    if key is None:
        raise SecretError(
            f"{source}: encrypted with master key {kid!r}, which is not configured "
            f"({KEYS_ENV} or {KEY_FILE_ENV})"
        )
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], _AAD + kid.encode())
    except InvalidTag:
        raise SecretError(f"{source}: does not decrypt with master key {kid!r}") from None


def read_secret_file(path: Path) -> str:
    """The file's secret, decrypted when it is stored encrypted.

    Secrets are read where they are used, often on every request (a station's key) or for
    every tenant (``/readyz``): a plain (not encrypted) file is read again only when its
    ``stat`` changed (inode, size, modification and change times). A file modified less
    than :data:`SETTLED_SECONDS` ago is always read (a timestamp's granularity is coarser
    than a nanosecond, so two writes in quick succession could share one), so a rotated or
    edited secret is used at once."""
    st = os.stat(path)
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    key = str(path)
    cached = _READ.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    data = path.read_text(encoding="utf-8")
    if is_encrypted(data):  # never kept: it depends on the master keys of the moment too
        return decrypt(data, source=str(path)).decode("utf-8").strip()
    value = data.strip()
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLED_SECONDS * 1e9:
        if len(_READ) >= _READ_KEPT:
            _READ.clear()
        _READ[key] = (stamp, value)
    else:
        _READ.pop(key, None)
    return value


#: a secret file modified longer ago than this is kept (see :func:`read_secret_file`)
SETTLED_SECONDS = 2.0
_READ: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_READ_KEPT = 4096


def write_secret_file(path: Path, plaintext: bytes, *, encrypted: bool) -> None:
    """Write a secret file readable only by its owner, encrypted when asked."""
    content = (encrypt(plaintext) + "\n").encode() if encrypted else plaintext
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.replace(tmp, path)  # never a half-written secret


def rotate_file(path: Path) -> str:
    """Re-encrypt a secret file with the current master key (encrypting a plain one)."""
    secret = read_secret_file(path).encode()
    write_secret_file(path, secret, encrypted=True)
    return master_keys()[0][0]

"""The relying party's keys: federation (signs the entity configuration), core signing
(request objects, client assertions) and core encryption (userinfo / ID token JWE).

The rules want the federation keys distinct from the core ones, RSA of at least 2048 bits,
and every JWK with a ``kid``: here the ``kid`` is always the RFC 7638 thumbprint. Rotation
keeps the previous key published for an overlap (at least the trust chain lifetime, so every
OP has renewed the chain before the old key disappears: rules, "Upgrading strategy").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from joserfc.jwk import ECKey, KeySet, RSAKey

__all__ = [
    "KeyRing",
    "RetiredKey",
    "RpKeys",
    "generate_key",
    "generate_rp_keys",
    "key_from_dict",
    "public_jwk",
]

KeyKind = Literal["RSA", "EC"]
Use = Literal["sig", "enc"]
_PRIVATE = ("d", "p", "q", "dp", "dq", "qi")


def generate_key(kind: KeyKind = "RSA", *, use: Use = "sig", size: int = 2048) -> RSAKey | ECKey:
    """A new private key whose ``kid`` is its thumbprint. Encryption keys are RSA (the rules
    allow only RSA-OAEP(-256) for every scheme)."""
    if use == "enc" and kind != "RSA":
        raise ValueError("encryption keys must be RSA (RSA-OAEP, RSA-OAEP-256)")
    if kind == "RSA":
        if size < 2048:
            raise ValueError("RSA keys must have at least 2048 bits")
        key: RSAKey | ECKey = RSAKey.generate_key(size, parameters={"use": use})
    else:
        key = ECKey.generate_key("P-256", parameters={"use": use})
    key.ensure_kid()  # joserfc's kid is the RFC 7638 thumbprint
    return key


def key_from_dict(data: dict[str, Any]) -> RSAKey | ECKey:
    """A key from its JWK dict; the ``kid`` is reset to the thumbprint when missing."""
    kty = data.get("kty")
    if kty == "RSA":
        key: RSAKey | ECKey = RSAKey.import_key(data)
    elif kty == "EC":
        key = ECKey.import_key(data)
    else:
        raise ValueError(f"unsupported key type {kty!r}")
    key.ensure_kid()
    return key


def public_jwk(key: RSAKey | ECKey) -> dict[str, Any]:
    """The public JWK (with ``kid`` and ``use``), never a private member."""
    data: dict[str, Any] = dict(key.as_dict(private=False))
    for name in _PRIVATE:
        data.pop(name, None)
    data["kid"] = key.kid
    return data


@dataclass(frozen=True)
class RetiredKey:
    """A previous public key kept in the published JWKS until ``until``."""

    jwk: dict[str, Any]
    until: datetime


@dataclass
class KeyRing:
    """One role's keys: the active private key plus retired public keys still published.

    ``rotate(now, overlap)`` makes a new active key; the old one stays published for
    ``overlap``. ``jwks(now)`` is what goes in the metadata. Serialise with ``to_json`` (the
    private key is in it: store it as a secret).
    """

    active: RSAKey | ECKey
    retired: list[RetiredKey] = field(default_factory=list)

    @classmethod
    def new(cls, kind: KeyKind = "RSA", *, use: Use = "sig") -> KeyRing:
        return cls(generate_key(kind, use=use))

    def rotate(self, now: datetime, overlap: timedelta, *, kind: KeyKind | None = None) -> None:
        if overlap < timedelta(0):
            raise ValueError("overlap must not be negative")
        use = str(self.active.as_dict(private=False).get("use", "sig"))
        new_kind: KeyKind = kind or ("EC" if isinstance(self.active, ECKey) else "RSA")
        self.retired.append(RetiredKey(public_jwk(self.active), now + overlap))
        self.active = generate_key(new_kind, use="enc" if use == "enc" else "sig")
        self.prune(now)

    def prune(self, now: datetime) -> None:
        """Forget retired keys whose overlap has ended."""
        self.retired = [r for r in self.retired if r.until > now]

    def jwks(self, now: datetime) -> dict[str, Any]:
        """The public JWKS: the active key first, then retired keys still in overlap."""
        keys = [public_jwk(self.active)]
        keys += [r.jwk for r in self.retired if r.until > now]
        return {"keys": keys}

    def private_keyset(self) -> KeySet:
        return KeySet([self.active])

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": dict(self.active.as_dict(private=True)),
                "retired": [{"jwk": r.jwk, "until": r.until.isoformat()} for r in self.retired],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        data = json.loads(text)
        return cls(
            key_from_dict(data["active"]),
            [RetiredKey(r["jwk"], datetime.fromisoformat(r["until"])) for r in data["retired"]],
        )


@dataclass
class RpKeys:
    """A relying party's three key rings (federation, core signing, core encryption)."""

    federation: KeyRing
    signing: KeyRing
    encryption: KeyRing

    def core_jwks(self, now: datetime) -> dict[str, Any]:
        """The ``openid_relying_party`` ``jwks``: signing and encryption public keys."""
        return {"keys": self.signing.jwks(now)["keys"] + self.encryption.jwks(now)["keys"]}

    def decryption_keys(self) -> KeySet:
        """The active encryption key (JWE addressed to a retired key stays decryptable only
        while the caller keeps that ring: retired entries hold public keys only)."""
        return self.encryption.private_keyset()

    def to_json(self) -> str:
        return json.dumps(
            {
                "federation": json.loads(self.federation.to_json()),
                "signing": json.loads(self.signing.to_json()),
                "encryption": json.loads(self.encryption.to_json()),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RpKeys:
        data = json.loads(text)
        return cls(
            *(
                KeyRing.from_json(json.dumps(data[n]))
                for n in ("federation", "signing", "encryption")
            )
        )


def generate_rp_keys(kind: KeyKind = "RSA") -> RpKeys:
    """Fresh, distinct federation, signing and (RSA) encryption keys."""
    return RpKeys(
        KeyRing.new(kind, use="sig"), KeyRing.new(kind, use="sig"), KeyRing.new("RSA", use="enc")
    )

"""OIDC callbacks validated per second on one core, against the reference SDK, and the time to
resolve a cold trust chain against the federation twin.

    .venv/bin/python bench/oidc/run.py                  # or: make bench B=oidc
    .venv/bin/python bench/oidc/run.py --callbacks 500 --rounds 3 --chains 20

What it measures (the process pinned to core 0; the SDK's child process too):

- **ours**: per callback, what the hub's relying party does after the code exchange
  (``OidcRelyingParty.validate_id_token`` then ``decode_userinfo``): the ID token's RS256
  signature with the OP's key, ``iss``, ``aud``, ``nonce``, ``exp``/``iat``, ``acr`` at least
  the level asked, ``at_hash``; the userinfo JWE (RSA-OAEP-256, A256CBC-HS512) decrypted with
  the RP's key, its inner JWS verified, ``iss``, ``aud``, ``sub``, times. The code exchange
  is excluded (no network).
- **spid-cie-oidc** (baseline, PyPI ``spid-cie-oidc``, italia/spid-cie-oidc-django, in its own
  venv ``.venv-oidc``, a child process): what its RP callback does with the same tokens
  (``relying_party/views/rp_callback.py`` and ``relying_party/oidc``): ``verify_jws`` of the
  access token and of the ID token, ``verify_at_hash``, ``decrypt_jwe`` of the userinfo and
  ``verify_jws`` of its payload, through ``cryptojwt``. It does not check the ID token's
  ``iss``/``aud``/``nonce``/``exp``/``acr`` there (cheap JSON work); it does verify the access
  token's signature, which the hub does not (to the RP an access token is opaque): one RSA
  verification more per callback than ours. Its ``decrypt_jwe`` rebuilds the RP's private
  key from the JWK on every call (most of its time), so the same functions also run with the
  key parsed once, "(key once)"; the as-is path runs ``--sdk-callbacks`` callbacks a round.
- **cold trust chain**: a fresh ``TrustChainResolver`` (no cache, as the hub's, with the
  trust mark status check) resolves the CIE OP of the twin (``sportello.sandbox.oidc``,
  served in this process on loopback: its signing of the statements is in the time): OP
  configuration, anchor configuration, the anchor's statement about the OP, the trust mark
  status; median and p90 of ``--chains`` resolutions, and a cached one for contrast.

Both validators get the same tokens, made once before timing by neither of them (PyJWT signs,
joserfc encrypts, as the twin does); rounds are interleaved so load changes weigh on both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-oidc" / "bin" / "python"
OP = "https://op.example.it"
RP = "https://hub.example.it/t/comune/oidc"
ACR = "https://www.spid.gov.it/SpidL2"
FISCAL = "https://attributes.eid.gov.it/fiscal_number"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Material:
    op_public: dict[str, Any]
    rp_enc_private: dict[str, Any]
    callbacks: list[dict[str, str]]  # access_token, id_token, userinfo (JWE), nonce, sub


def build(count: int) -> tuple[Material, Any, Any]:
    """``count`` callbacks' tokens; also the connector's ``Provider`` and RP settings."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc import jwe
    from joserfc.jwk import KeySet, RSAKey
    from jwt.algorithms import RSAAlgorithm

    from sportello.connectors.oidc.keys import generate_rp_keys
    from sportello.connectors.oidc.rp import Provider, RelyingPartySettings

    op_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    op_public = json.loads(RSAAlgorithm.to_jwk(op_key.public_key()))
    op_public.pop("key_ops", None)  # cryptojwt refuses use and key_ops together
    op_public.update(kid="op-core-1", use="sig")
    rp_keys = generate_rp_keys()
    enc: RSAKey = rp_keys.encryption.active  # type: ignore[assignment]
    enc_public = enc.as_dict(private=False)
    now = int(time.time())
    callbacks = []
    for _ in range(count):
        sub = uuid.uuid4().hex
        nonce = _b64(os.urandom(32))
        head = {"kid": "op-core-1"}
        access = pyjwt.encode(
            {
                "iss": OP,
                "sub": sub,
                "aud": [f"{OP}/userinfo"],
                "client_id": RP,
                "scope": "openid",
                "jti": str(uuid.uuid4()),
                "iat": now,
                "exp": now + 3600,
            },
            op_key,
            algorithm="RS256",
            headers={**head, "typ": "at+jwt"},
        )
        at_hash = _b64(hashlib.sha256(access.encode()).digest()[:16])
        id_token = pyjwt.encode(
            {
                "iss": OP,
                "sub": sub,
                "aud": RP,
                "acr": ACR,
                "at_hash": at_hash,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": str(uuid.uuid4()),
                "nonce": nonce,
            },
            op_key,
            algorithm="RS256",
            headers=head,
        )
        inner = pyjwt.encode(
            {
                "iss": OP,
                "aud": RP,
                "sub": sub,
                "iat": now,
                "exp": now + 3600,
                "given_name": "Mario",
                "family_name": "Rossi",
                FISCAL: "TINIT-RSSMRA80A01H501U",
                "email": "mario.rossi@example.it",
            },
            op_key,
            algorithm="RS256",
            headers=head,
        )
        header = {"alg": "RSA-OAEP-256", "enc": "A256CBC-HS512", "cty": "JWT", "kid": enc.kid}
        userinfo = jwe.encrypt_compact(
            header,
            inner,
            RSAKey.import_key(enc_public),
            algorithms=["RSA-OAEP-256", "A256CBC-HS512"],
        )
        callbacks.append(
            {
                "access_token": access,
                "id_token": id_token,
                "userinfo": userinfo,
                "nonce": nonce,
                "sub": sub,
            }
        )
    provider = Provider(
        OP,
        OP,
        f"{OP}/authorization",
        f"{OP}/token",
        f"{OP}/userinfo",
        f"{OP}/revocation",
        {"keys": [op_public]},
    )
    settings = RelyingPartySettings(RP, f"{RP}/callback", rp_keys.signing.active, KeySet([enc]))
    private = {k: v for k, v in enc.as_dict(private=True).items() if k != "key_ops"}
    material = Material(op_public, private, callbacks)
    return material, provider, settings


class Ours:
    def __init__(self, provider: Any, settings: Any) -> None:
        import aiohttp  # noqa: F401  (the client is built without a session: no HTTP here)

        from sportello.connectors.oidc.rp import OidcRelyingParty, PendingAuthorization

        self.provider = provider
        self.client = OidcRelyingParty(None, settings)  # type: ignore[arg-type]
        self.pending_cls = PendingAuthorization

    def validate(self, cb: dict[str, str]) -> None:
        pending = self.pending_cls(
            OP, "s" * 43, cb["nonce"], "v", f"{RP}/callback", (ACR,), time.time()
        )
        id_token = self.client.validate_id_token(
            self.provider, cb["id_token"], pending, access_token=cb["access_token"]
        )
        claims = self.client.decode_userinfo(self.provider, cb["userinfo"], subject=id_token.sub)
        assert claims[FISCAL]


SDK_CHILD = r'''
import json, os, sys, time
import django
from django.conf import settings
settings.configure()
django.setup()
from spid_cie_oidc.entity.jwtse import (
    decrypt_jwe, unpad_jwt_head, unpad_jwt_payload, verify_at_hash, verify_jws,
)
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {0})
data = json.load(open(sys.argv[1]))
rounds = int(sys.argv[2])
op, rp = data["op_public"], data["rp_enc_private"]
fiscal = "https://attributes.eid.gov.it/fiscal_number"

def validate(cb):
    verify_jws(cb["access_token"], op)
    verify_jws(cb["id_token"], op)
    verify_at_hash(unpad_jwt_payload(cb["id_token"]), cb["access_token"])
    jws = decrypt_jwe(cb["userinfo"], rp)
    if isinstance(jws, bytes):
        jws = jws.decode()
    claims = verify_jws(jws, op)
    assert claims[fiscal]

from cryptojwt.jwe.jwe import factory
from cryptojwt.jwk.jwk import key_from_jwk_dict
rp_key = key_from_jwk_dict(rp)

def validate_key_once(cb):
    """The same, the RP key parsed once (decrypt_jwe parses the JWK on every call)."""
    verify_jws(cb["access_token"], op)
    verify_jws(cb["id_token"], op)
    verify_at_hash(unpad_jwt_payload(cb["id_token"]), cb["access_token"])
    head = unpad_jwt_head(cb["userinfo"])
    decrypter = factory(cb["userinfo"], alg=head["alg"], enc=head["enc"])
    msg = decrypter.decrypt(cb["userinfo"], [rp_key])
    claims = verify_jws(msg.decode() if isinstance(msg, bytes) else msg, op)
    assert claims[fiscal]

slow = int(sys.argv[3])  # the as-is path takes ~0.1 s a callback: fewer of them
out = {}
for name, fn, cbs in (
    ("times", validate, data["callbacks"][:slow]),
    ("key_once", validate_key_once, data["callbacks"]),
):
    fn(cbs[0])  # warm up, and a check that it accepts them
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for cb in cbs:
            fn(cb)
        rates.append(len(cbs) / (time.perf_counter() - started))
    out[name] = rates
print(json.dumps(out))
'''


def sdk_version() -> str | None:
    if not SDK_PYTHON.exists():
        return None
    out = subprocess.run(
        [
            str(SDK_PYTHON),
            "-c",
            "import importlib.metadata as m; print(m.version('spid-cie-oidc'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def run_sdk(material: Material, rounds: int, slow: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "material.json"
        path.write_text(json.dumps(material.__dict__))
        script = Path(tmp) / "child.py"
        script.write_text(SDK_CHILD)
        out = subprocess.run(
            [str(SDK_PYTHON), str(script), str(path), str(rounds), str(slow)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return list(result["times"]), list(result["key_once"])


async def cold_chains(count: int) -> tuple[list[float], float, int]:
    """Milliseconds per cold resolution of the twin's CIE OP; one cached; HTTP requests."""
    import socket

    import aiohttp
    from aiohttp.test_utils import TestServer

    from sportello.connectors.oidc.federation import ChainCache, TrustAnchor, TrustChainResolver
    from sportello.sandbox.oidc.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = TestServer(create_app(base_url=base), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/ta/.well-known/openid-federation") as resp:
                token = await resp.text()
            payload = token.split(".")[1]
            ta = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            anchor = TrustAnchor(f"{base}/ta", ta["jwks"])
            mark = f"{base}/ta/openid_provider/public/"
            times = []
            fetches = 0
            resolver = None
            for _ in range(count + 1):
                resolver = TrustChainResolver(
                    http,
                    [anchor],
                    allow_http=True,
                    cache=ChainCache(),
                    check_trust_mark_status=True,
                )
                started = time.perf_counter()
                await resolver.resolve(
                    f"{base}/cie", "openid_provider", required_trust_marks=[mark]
                )
                times.append((time.perf_counter() - started) * 1000)
                fetches = resolver.fetches
            assert resolver is not None
            started = time.perf_counter()
            await resolver.resolve(f"{base}/cie", "openid_provider", required_trust_marks=[mark])
            cached = (time.perf_counter() - started) * 1000
    finally:
        await server.close()
    return times[1:], cached, fetches  # the first one warms the connection pool up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callbacks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument(
        "--sdk-callbacks", type=int, default=40, help="callbacks per round for the SDK as is"
    )
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    version = sdk_version()
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores, pinned to core 0; "
        f"spid-cie-oidc {version or 'NOT INSTALLED (.venv-oidc)'}"
    )
    started = time.perf_counter()
    material, provider, settings = build(args.callbacks)
    print(f"{args.callbacks} callbacks' tokens built in {time.perf_counter() - started:.1f} s")
    ours = Ours(provider, settings)
    for cb in material.callbacks[:3]:
        ours.validate(cb)  # warm up, and a check that it accepts them
    our_rates: list[float] = []
    sdk_rates: list[float] = []
    sdk_once: list[float] = []
    sdk_error = None if version else "spid-cie-oidc is not installed in .venv-oidc"
    for _ in range(args.rounds):  # interleaved: one round of each at a time
        t0 = time.perf_counter()
        for cb in material.callbacks:
            ours.validate(cb)
        our_rates.append(len(material.callbacks) / (time.perf_counter() - t0))
        if sdk_error is None:
            try:
                as_is, key_once = run_sdk(material, 1, args.sdk_callbacks)
                sdk_rates += as_is
                sdk_once += key_once
            except (subprocess.SubprocessError, ValueError, KeyError) as exc:
                detail = getattr(exc, "stderr", "") or ""
                sdk_error = f"{type(exc).__name__}: {str(detail).strip().splitlines()[-1:]}"
    ours_rate = statistics.median(our_rates)
    sdk_rate = statistics.median(sdk_rates) if sdk_rates and sdk_error is None else None
    once_rate = statistics.median(sdk_once) if sdk_once and sdk_error is None else None
    chains, cached, fetches = asyncio.run(cold_chains(args.chains))
    median = statistics.median(chains)
    p90 = sorted(chains)[max(0, int(len(chains) * 0.9) - 1)]

    print()
    print("| validator      | callbacks/s (median of rounds) | vs spid-cie-oidc |")
    print("|----------------|-------------------------------:|-----------------:|")
    ratio = f"{ours_rate / sdk_rate:.2f}x" if sdk_rate else "n/a"
    print(f"| ours           | {ours_rate:>30,.0f} | {ratio:>16} |")
    if sdk_rate and once_rate:
        print(f"| spid-cie-oidc  | {sdk_rate:>30,.0f} | {'1.00x':>16} |")
        print(f"| (key once)     | {once_rate:>30,.0f} | {once_rate / sdk_rate:>15.2f}x |")
        print(
            "\n(key once): the SDK's own functions with the RP's private JWK parsed once; its "
            "decrypt_jwe parses it on every callback (RSAPrivateNumbers.private_key(), which "
            "checks the key). Ours vs (key once): "
            f"{ours_rate / once_rate:.2f}x"
        )
    else:
        print(f"| spid-cie-oidc  | not measured: {sdk_error}")
    print(
        f"\nCold trust chain of the twin's CIE OP: median {median:.1f} ms, p90 {p90:.1f} ms "
        f"({len(chains)} resolutions, {fetches} HTTP requests each); cached: {cached:.3f} ms"
    )
    if args.json:
        figures: list[dict[str, Any]] = [
            {
                "name": "callbacks validated (ID token + userinfo JWE/JWS + checks)",
                "value": ours_rate,
                "unit": "/s",
                **(
                    {"baseline": sdk_rate, "baseline_name": f"spid-cie-oidc {version}"}
                    if sdk_rate
                    else {}
                ),
            },
            *(
                [
                    {
                        "name": "callbacks validated, vs the SDK with its key parsed once",
                        "value": ours_rate,
                        "unit": "/s",
                        "baseline": once_rate,
                        "baseline_name": f"spid-cie-oidc {version} functions, key parsed once",
                    }
                ]
                if once_rate
                else []
            ),
            {"name": "cold trust chain (twin's CIE OP), median", "value": median, "unit": "ms"},
            {"name": "cold trust chain, p90", "value": p90, "unit": "ms"},
        ]
        args.json.write_text(
            json.dumps(
                {
                    "bench": "oidc",
                    "params": f"{args.callbacks} callbacks x {args.rounds} rounds, one core; "
                    f"{len(chains)} cold chains",
                    "figures": figures,
                }
            )
        )
    return 0 if sdk_error is None else 1


if __name__ == "__main__":
    sys.exit(main())

"""SPID ACS: logins validated per second on one core, ours against python3-saml and pysaml2.

    .venv/bin/python bench/acs/run.py [--responses 300] [--rounds 3] [--pysaml2-rounds 1]

The same set of --responses distinct signed SPID Responses (one per AuthnRequest, each with
its own request ID; built by the sandbox IdP's own builder, ``sandbox/idp/outbound.py``: the
Assertion and the Response both signed, RSA-SHA256, the full SPID attribute set of a test
citizen) is validated by three engines in this process, pinned to one core:

- **ours**: ``sportello.connectors.spid.response.validate_response`` with every SPID check on
  (structure/XSW, both signatures, issuers and formats, destination, recipient, audience,
  InResponseTo, times against the request's IssueInstant, level and comparison, attributes)
  and a fresh replay cache (``seen_assertion``) per round;
- **python3-saml** (the baseline): ``OneLogin_Saml2_Response(settings, b64).is_valid(...)``,
  strict, assertions and messages signed, the IdP certificate, the same SP entityID and ACS;
- **pysaml2**: ``Saml2Client.parse_authn_request_response`` with an ``SPConfig`` built here
  (IdP metadata inline, both signatures wanted), the request ID outstanding; signatures are
  checked by the ``xmlsec1`` binary (its default backend), which runs on the same core.

Every engine must refuse a copy altered after signing (the citizen's fiscal code changed)
and accept every real response: a benchmark of a refusal, or of a check that is not done,
would be meaningless, so any refusal during the timed rounds ends that engine's measure with
the error printed (and the run aborts when it is ours or the baseline). Each engine
validates the responses --rounds times (pysaml2 --pysaml2-rounds: it is much slower), after
a warm-up of 20; the rounds of the engines alternate (so a change in the machine's load
weighs on all alike) and the replay cache starts empty each round.
Printed: validations per second over all rounds, ms per validation (median, p99), and the
ratio to python3-saml.

Goal from the issue: ours at least 1.5x plain python3-saml.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sportello.connectors.spid.models import (
    Contact,
    IdpInfo,
    Organization,
    PendingRequest,
    SpSettings,
)
from sportello.connectors.spid.response import validate_response
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import KeyPair, generate
from sportello.sandbox.idp.metadata import ATTRIBUTE_NAMES, idp_metadata
from sportello.sandbox.idp.outbound import LoginAnswer, success_response
from sportello.sandbox.idp.xmlutil import new_id, tostring

GOAL = 1.5
WARMUP = 20
HOST = "sportello.example.it"
ACS_PATH = "/t/comune/spid/acs"
SP_ENTITY_ID = f"https://{HOST}/t/comune/spid/metadata"
ACS_URL = f"https://{HOST}{ACS_PATH}"
IDP_ENTITY_ID = "https://idp.sandbox.example.it/spid"
LEVEL = 2


@dataclass(frozen=True)
class Signed:
    """One signed Response and the AuthnRequest it answers."""

    b64: str
    request_id: str
    request_instant: datetime


@dataclass
class Material:
    idp_keys: KeyPair
    sp_keys: KeyPair
    responses: list[Signed]


def build(count: int) -> Material:
    idp_keys = generate("Sportello sandbox SPID IdP")
    sp_keys = generate("Comune di Prova")
    now = datetime.now(UTC).replace(microsecond=0)
    identity = DEFAULT_IDENTITIES[0]
    wanted = tuple(name for name, _ in ATTRIBUTE_NAMES["spid"])
    responses = []
    for n in range(count):
        request_id = new_id()
        answer = LoginAnswer("spid", IDP_ENTITY_ID, request_id, SP_ENTITY_ID, ACS_URL)
        root = success_response(
            answer,
            keys=idp_keys,
            now=now,
            identity=identity,
            level=LEVEL,
            attributes=wanted,
            name_id=f"_nameid{n:06d}",
            session_index=f"_session{n:06d}",
        )
        responses.append(
            Signed(
                base64.b64encode(tostring(root)).decode("ascii"),
                request_id,
                now - timedelta(seconds=2),
            )
        )
    return Material(idp_keys, sp_keys, responses)


# -- the engines: each returns a validate(signed) callable and a per-round reset ------------

Engine = tuple[Callable[[Signed], Any], Callable[[], None]]


def ours(m: Material) -> Engine:
    sp = SpSettings(
        kind="spid",
        entity_id=SP_ENTITY_ID,
        acs_url=ACS_URL,
        slo_url=f"https://{HOST}/t/comune/spid/slo",
        key_pem=m.sp_keys.key_pem,
        certs=(m.sp_keys.cert_pem,),
        organization=Organization("Comune di Prova", "Comune di Prova", "https://comune.example"),
        contact=Contact(email="protocollo@comune.example.it", ipa_code="c_z999"),
        attributes=("name", "familyName", "fiscalNumber", "email"),
    )
    idp = IdpInfo(
        entity_id=IDP_ENTITY_ID,
        name="SPID di prova",
        certs=(m.idp_keys.cert_pem,),
        sso_redirect=f"{IDP_ENTITY_ID}/sso",
        sso_post=f"{IDP_ENTITY_ID}/sso",
    )
    seen: set[str] = set()

    def seen_assertion(assertion_id: str) -> bool:
        if assertion_id in seen:
            return True
        seen.add(assertion_id)
        return False

    def validate(s: Signed) -> Any:
        pending = PendingRequest(s.request_id, s.request_instant, IDP_ENTITY_ID, LEVEL, "minimum")
        return validate_response(
            s.b64,
            sp=sp,
            idp=idp,
            pending=pending,
            now=datetime.now(UTC),
            seen_assertion=seen_assertion,
        )

    return validate, seen.clear


def python3_saml(m: Material) -> Engine:
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    settings = OneLogin_Saml2_Settings(
        {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": SP_ENTITY_ID,
                "assertionConsumerService": {
                    "url": ACS_URL,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                },
                "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
                "x509cert": _b64_cert(m.sp_keys),
                "privateKey": m.sp_keys.key_pem.decode(),
            },
            "idp": {
                "entityId": IDP_ENTITY_ID,
                "singleSignOnService": {
                    "url": f"{IDP_ENTITY_ID}/sso",
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                },
                "x509cert": _b64_cert(m.idp_keys),
            },
            "security": {
                "wantAssertionsSigned": True,
                "wantMessagesSigned": True,
                "wantNameId": True,
                "wantAttributeStatement": True,
                "rejectDeprecatedAlgorithm": True,
                "requestedAuthnContext": False,
            },
        },
        sp_validation_only=True,
    )
    request_data = {
        "https": "on",
        "http_host": HOST,
        "server_port": "443",
        "script_name": ACS_PATH,
        "get_data": {},
        "post_data": {},
    }

    def validate(s: Signed) -> Any:
        response = OneLogin_Saml2_Response(settings, s.b64)
        if not response.is_valid(request_data, request_id=s.request_id, raise_exceptions=True):
            raise RuntimeError(response.get_error())
        return response.get_attributes()

    return validate, lambda: None


def pysaml2(m: Material) -> Engine:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

    xmlsec1 = shutil.which("xmlsec1") or "/usr/bin/xmlsec1"
    tmp = tempfile.mkdtemp(prefix="bench-acs-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    key_file, cert_file = os.path.join(tmp, "sp-key.pem"), os.path.join(tmp, "sp-cert.pem")
    with open(key_file, "wb") as f:
        f.write(m.sp_keys.key_pem)
    with open(cert_file, "wb") as f:
        f.write(m.sp_keys.cert_pem)
    config = SPConfig()
    config.load(
        {
            "entityid": SP_ENTITY_ID,
            "xmlsec_binary": xmlsec1,
            "key_file": key_file,
            "cert_file": cert_file,
            "metadata": {"inline": [idp_metadata("spid", IDP_ENTITY_ID, m.idp_keys).decode()]},
            "accepted_time_diff": 10,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(ACS_URL, BINDING_HTTP_POST)],
                        "single_logout_service": [
                            (f"https://{HOST}/t/comune/spid/slo", BINDING_HTTP_REDIRECT)
                        ],
                    },
                    "want_assertions_signed": True,
                    "want_response_signed": True,
                    "allow_unsolicited": False,
                    "authn_requests_signed": True,
                    "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
                }
            },
        }
    )
    client = Saml2Client(config)
    logging.getLogger("saml2").setLevel(logging.CRITICAL)  # the forged copy logs errors

    def validate(s: Signed) -> Any:
        outstanding = {s.request_id: "/"}
        parsed = client.parse_authn_request_response(s.b64, BINDING_HTTP_POST, outstanding)
        if parsed is None:
            raise RuntimeError("parse_authn_request_response returned None")
        return parsed.get_identity()

    return validate, lambda: None


def _b64_cert(keys: KeyPair) -> str:
    return keys.cert_base64()


ENGINES: dict[str, Callable[[Material], Engine]] = {
    "ours": ours,
    "python3-saml": python3_saml,
    "pysaml2": pysaml2,
}


@dataclass
class Result:
    engine: str
    times: list[float]  # seconds per validation
    total: float
    error: str | None = None

    @property
    def rate(self) -> float:
        return len(self.times) / self.total if self.total else 0.0

    def ms(self, q: float) -> float:
        ordered = sorted(self.times)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tampered(s: Signed) -> Signed:
    """The same response with the citizen's fiscal code changed after signing."""
    xml = base64.b64decode(s.b64)
    code = DEFAULT_IDENTITIES[0].code.encode()
    assert code in xml
    forged = xml.replace(code, DEFAULT_IDENTITIES[1].code.encode())
    return Signed(base64.b64encode(forged).decode("ascii"), s.request_id, s.request_instant)


def prepare(result: Result, engine: Engine, responses: list[Signed]) -> None:
    """It must refuse a forged copy (or the figure is not that of a validation); then a
    warm-up. Sets ``result.error`` when not."""
    validate, reset = engine
    try:
        validate(tampered(responses[0]))
    except Exception:
        pass
    else:
        result.error = "accepted a response altered after signing"
        return
    reset()
    try:
        for s in responses[:WARMUP]:
            validate(s)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"


def one_round(result: Result, engine: Engine, responses: list[Signed]) -> None:
    """Every response once, each timed; any refusal ends the engine's measure."""
    validate, reset = engine
    reset()
    clock = time.perf_counter
    times: list[float] = []
    started = clock()
    for s in responses:
        t0 = clock()
        try:
            validate(s)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            return
        times.append(clock() - t0)
    result.total += clock() - started
    result.times.extend(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pysaml2-rounds", type=int, default=1)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", type=Path, help="also write the figures there (bench/report.py)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores, pinned to core 0; "
        f"python3-saml {_version('python3-saml')}, pysaml2 {_version('pysaml2')}, "
        f"xmlsec {_version('xmlsec')}, lxml {_version('lxml')}"
    )
    started = time.perf_counter()
    material = build(args.responses)
    print(
        f"{args.responses} signed SPID Responses built in {time.perf_counter() - started:.1f} s "
        f"({len(base64.b64decode(material.responses[0].b64)):,} bytes each)"
    )

    results: dict[str, Result] = {}
    engines: dict[str, Engine] = {}
    rounds: dict[str, int] = {}
    for name in args.engines.split(","):
        results[name] = Result(name, [], 0.0)
        try:
            engines[name] = ENGINES[name](material)
        except Exception as exc:  # e.g. pysaml2 without the xmlsec1 binary
            results[name].error = f"cannot set up: {type(exc).__name__}: {exc}"
            continue
        rounds[name] = args.pysaml2_rounds if name == "pysaml2" else args.rounds
        prepare(results[name], engines[name], material.responses)
    # rounds interleaved, so a change in the machine's load weighs on every engine alike
    for n in range(max(rounds.values(), default=0)):
        for name, engine in engines.items():
            if n < rounds[name] and not results[name].error:
                one_round(results[name], engine, material.responses)
    for name, result in results.items():
        if result.error:
            print(f"  {name}: NOT MEASURED: {result.error}")
        else:
            print(f"  {name}: {len(result.times):,} validations in {result.total:.1f} s")

    base = results.get("python3-saml")
    if base is None or base.error:
        print("python3-saml did not accept the responses: no baseline, aborting", file=sys.stderr)
        return 2
    if results.get("ours") and results["ours"].error:
        print("ours refused a benchmark response: aborting", file=sys.stderr)
        return 2

    print()
    print("| engine       | validations/s | median ms | p99 ms | vs python3-saml |")
    print("|--------------|--------------:|----------:|-------:|----------------:|")
    for r in results.values():
        if r.error:
            print(f"| {r.engine:<12} | not measured  |           |        |                 |")
            continue
        print(
            f"| {r.engine:<12} | {r.rate:>13,.0f} | {r.ms(0.5):>9.2f} | {r.ms(0.99):>6.2f} | "
            f"{r.rate / base.rate:>14.2f}x |"
        )
    if "ours" in results:
        ratio = results["ours"].rate / base.rate
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"\nGoal: ours >= {GOAL}x python3-saml: {ratio:.2f}x, {verdict}")
    if args.json:
        figures = [
            {
                "name": f"{r.engine}: validations/s",
                "value": r.rate,
                "unit": "/s",
                "baseline": base.rate,
                "baseline_name": "python3-saml",
                **(
                    {"goal": f">= {GOAL}x python3-saml", "met": r.rate >= GOAL * base.rate}
                    if r.engine == "ours"
                    else {}
                ),
            }
            for r in results.values()
            if not r.error and r.engine != "python3-saml"
        ]
        figures += [
            {"name": f"{r.engine}: p99", "value": r.ms(0.99), "unit": "ms"}
            for r in results.values()
            if not r.error and r.engine == "ours"
        ]
        args.json.write_text(
            json.dumps(
                {
                    "bench": "acs",
                    "params": f"{args.responses} responses, {args.rounds} rounds, one core",
                    "figures": figures,
                }
            )
        )
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())

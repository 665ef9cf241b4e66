"""Run AgID's spid-sp-test 1.2.18 against a running hub: `make spid-compliance`.

1. installs spid-sp-test in its own virtualenv (``.venv-spt``: it pins pysaml2 and friends);
2. makes a fresh key pair for the tool's IdP (its bundled certificate expired in 2025) and
   dumps that IdP's metadata with ``spid_sp_test --idp-metadata``;
3. starts ``sportello demo --trust-idp <that metadata>`` on its own port and data dir;
4. runs metadata (``--extra``), AuthnRequest (``--extra``) and the response suite (``-tr``)
   for spid-sp-public (tenant demo), spid-sp-private (demo-private), spid-sp-ag-public-full
   (demo-ag) and cie-sp-public (demo, CIE), writing JSON reports to var/compliance/;
5. prints what the tool printed ("executed N tests, M failed") per run and exits 1 unless
   every run executed its suites and failed none.

The figures are the tool's own: this script only starts things and reads its reports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from readiness import wait_ready

ROOT = Path(__file__).resolve().parents[2]
VERSION = "1.2.18"
IDP = "https://localhost:8443"
PROFILES = [
    # (profile, tenant, scheme, minimum number of tests the tool must have executed)
    ("spid-sp-public", "demo", "spid", 150),
    ("spid-sp-private", "demo-private", "spid", 150),
    ("spid-sp-ag-public-full", "demo-ag", "spid", 150),
    ("cie-sp-public", "demo", "cie", 140),
]
SUMMARY = re.compile(r"executed (\d+) tests, (\d+) failed")


def ensure_tool(venv: Path) -> Path:
    exe = venv / "bin" / "spid_sp_test"
    if exe.exists():
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        if out.stdout.strip().endswith(VERSION):
            return exe
    if venv.is_symlink() or (venv.exists() and not venv.is_dir()):
        venv.unlink()  # e.g. a link to a folder another machine had: make a real venv here
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"spid-sp-test=={VERSION}"], check=True
    )
    return exe


def idp_keys(folder: Path) -> None:
    """A fresh self-signed pair for the tool's IdP (private.key + public.cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spid-sp-test IdP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (folder / "private.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (folder / "public.cert").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def failures(report: Path) -> list[str]:
    """Every failed check in a spid-sp-test JSON report (its own verdicts)."""
    data = json.loads(report.read_text())
    out = []
    for category, checks in data.get("test", {}).get("sp", {}).items():
        for group, results in checks.items():
            for r in results:
                if r.get("result") not in ("success", "warning"):
                    out.append(f"{category}/{group}: {r.get('test_id') or r.get('test')}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "compliance")
    parser.add_argument("--profiles", nargs="*", default=[p[0] for p in PROFILES])
    parser.add_argument(
        "--install-only",
        action="store_true",
        help="only make .venv-spt (the metadata unit tests use it too), then stop",
    )
    args = parser.parse_args()
    tool = ensure_tool(ROOT / ".venv-spt")
    if args.install_only:
        return 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    certs = out / "idp-cert"
    idp_keys(certs)
    env = {**os.environ, "IDP_CERT_PATH": str(certs), "IDP_ENTITYID": IDP}
    idp_md = out / "spid-sp-test-idp.xml"
    dumped = subprocess.run(
        [str(tool), "--idp-metadata"], env=env, capture_output=True, text=True, check=True
    )
    idp_md.write_text(dumped.stdout[dumped.stdout.index("<") :])
    data_dir = out / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    hub = f"http://127.0.0.1:{args.port}"
    demo_env = {**os.environ, "SPORTELLO_DATABASE_URL": ""}
    demo_env.pop("SPORTELLO_DATABASE_URL")
    log = (out / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "sportello"),
            "demo",
            "--data-dir",
            str(data_dir),
            "--port",
            str(args.port),
            "--trust-idp",
            str(idp_md),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=demo_env,
        start_new_session=True,
    )
    bad = 0
    try:
        try:
            wait_ready(
                f"{hub}/t/demo/spid/metadata", proc, what="the demo", timeout=90.0, interval=0.5
            )
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        for profile, tenant, scheme, minimum in PROFILES:
            if profile not in args.profiles:
                continue
            base = f"{hub}/t/{tenant}/{scheme}"
            report = out / f"{profile}.json"
            cmd = [
                str(tool),
                "--metadata-url",
                f"{base}/metadata",
                "--authn-url",
                f"{base}/login?idp={IDP}",
                "--profile",
                profile,
                "--extra",
                "-tr",
                "--debug",
                "CRITICAL",
                "-rf",
                "json",
                "-o",
                str(report),
            ]
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            (out / f"{profile}.log").write_text(run.stdout + run.stderr)
            found = SUMMARY.search(run.stdout)
            failed = failures(report) if report.exists() else ["no report written"]
            executed = int(found.group(1)) if found else 0
            crashed = "Errors occourred during Check" in run.stderr
            ok = run.returncode == 0 and not failed and executed >= minimum and not crashed
            bad += not ok
            print(
                f"{'PASS' if ok else 'FAIL'} {profile:24} {tenant}/{scheme}: "
                f"{found.group(0) if found else 'no summary'} (exit {run.returncode})"
            )
            for line in failed[:40]:
                print(f"    {line}")
            if crashed:
                print("    the tool could not run a suite: see", out / f"{profile}.log")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    print(f"reports in {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""``sportello residents lookup`` and ``sportello keys pdnd``: the residents platform's
commands (``hub_cli_commands``), thin over ``lookup.ResidentLookup``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.cli.common import operator as cli_operator
from sportello.config import load_config

__all__ = ["keys_group", "residents_group"]


@click.group("keys")
def keys_group() -> None:
    """Key pairs a tenant registers with national platforms."""


@keys_group.command("pdnd")
@config_option
@click.option("--tenant", required=True)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to write the private key (default: keys/<tenant>/ next to the config file)",
)
@friendly
def keys_pdnd(config_path: Path, tenant: str, out_dir: Path | None) -> None:
    """Make the RSA key for a tenant's PDND client; print what to upload and the kid."""
    from sportello.connectors.pdnd.keys import generate_key, jwk_thumbprint, public_key_for_upload

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        fail(f"tenant {tenant!r} is not in {config_path}", 2)
    private_pem, public_pem = generate_key()
    kid = jwk_thumbprint(public_pem)
    folder = out_dir or config_path.resolve().parent / "keys" / tenant
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / f"pdnd-{kid[:12]}.pem"
    from sportello.secrets import master_keys, write_secret_file

    if key_file.exists():
        fail(f"{key_file} already exists", 1)
    encrypted = bool(master_keys())
    write_secret_file(key_file, private_pem, encrypted=encrypted)
    (folder / f"pdnd-{kid[:12]}.pub.pem").write_bytes(public_pem)
    how = "encrypted with the master key" if encrypted else "NOT encrypted: no master key set"
    click.echo(f"private key written to {key_file} (mode 600, {how}; never share it)")
    click.echo(f"kid (RFC 7638 thumbprint, as PDND computes it): {kid}")
    click.echo("public key to upload in the PDND back office (base64 of the PEM):")
    click.echo(public_key_for_upload(public_pem))
    click.echo("then set in the tenant's [tenants.pdnd] section:")
    click.echo(f'  kid = "{kid}"')
    rel = os.path.relpath(key_file, config_path.resolve().parent)
    shown = key_file if rel.startswith("..") else rel
    click.echo(f'  key = {{ file = "{shown}" }}')


# --- residents ----------------------------------------------------------------------------------
@click.group("residents")
def residents_group() -> None:
    """Resident look-ups (ANPR through PDND, and the comune's registry). Always audited."""


@residents_group.command("lookup")
@config_option
@click.option("--tenant", required=True)
@click.option("--purpose", required=True, help="file or protocol reference (motivoRichiesta)")
@click.option("--operator", default=None, help="who asks (default: the system user)")
@click.argument("fiscal_code")
@friendly
def residents_lookup(
    config_path: Path, tenant: str, purpose: str, operator: str | None, fiscal_code: str
) -> None:
    """Look up one resident; print JSON with the source of every field."""
    from sportello.platforms.residents.lookup import (
        LookupFailed,
        LookupRefused,
        Requester,
        ResidentLookup,
    )

    config = load_config(config_path)
    user = cli_operator()

    async def go() -> dict[str, Any]:
        async with hub_services(config) as services:
            lookup = ResidentLookup(services)
            try:
                who = Requester(actor=user, operator=operator or user, purpose=purpose)
                return await lookup.lookup(tenant, fiscal_code, who)
            finally:
                await lookup.close()

    try:
        result = run_async(go())
    except LookupRefused as exc:
        fail(str(exc), 1)
    except LookupFailed as exc:
        # not "nobody": a platform failed, so whether the person exists is unknown
        fail(exc.detail, 5 if exc.status == 503 else 4)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    for warning in result["warnings"]:
        click.echo(f"sportello: warning: {warning}", err=True)
    if not result["found"]:
        sys.exit(3)

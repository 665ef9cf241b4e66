"""``sportello keys spid``, ``sportello keys oidc`` and ``sportello idps refresh``: the
login platform's commands (``hub_cli_commands``), thin over ``keys`` and ``idps``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from sportello.cli.common import CONFIG_ENV, config_option, fail, friendly, run_async
from sportello.config import load_config

__all__ = ["idps_group", "keys_group"]


@click.group("keys")
def keys_group() -> None:
    """Key pairs a tenant registers with national platforms."""


@keys_group.command("spid")
@config_option
@click.option("--tenant", required=True)
@click.option("--scheme", type=click.Choice(["spid", "cie"]), default="spid", show_default=True)
@click.option(
    "--rotate",
    is_flag=True,
    help="replace the current pair; the old certificate "
    "stays in the metadata until it expires or --retire",
)
@click.option("--retire", is_flag=True, help="drop previous certificates from the metadata")
@click.option("--aggregator", is_flag=True, help="make the aggregator's signing key instead")
@click.option("--days", type=int, default=730, show_default=True)
@friendly
def keys_spid(
    config_path: Path,
    tenant: str,
    scheme: str,
    rotate: bool,
    retire: bool,
    aggregator: bool,
    days: int,
) -> None:
    """Make a tenant's SAML key and self-signed certificate (SPID subject and policy OIDs)."""
    from sportello.connectors.spid.keys import make_sp_certificate
    from sportello.platforms.login.keys import (
        LoginConfigError,
        entity_id,
        login_settings,
        retire_previous,
        write_keys,
    )

    config = load_config(config_path)
    t = config.tenant(tenant)
    if t is None:
        fail(f"tenant {tenant!r} is not in {config_path}", 2)
    assert t is not None
    kind: Literal["spid", "cie"] = "cie" if scheme == "cie" else "spid"
    try:
        settings = login_settings(t, kind)
    except LoginConfigError as exc:
        fail(str(exc), 2)
        raise
    keys_dir = settings.keys_dir
    if aggregator:
        if settings.aggregator is None:
            fail(f"tenant {tenant!r} has no [tenants.{kind}.aggregator] section", 2)
        assert settings.aggregator is not None
        keys_dir = settings.aggregator.keys_dir
    if retire:
        gone = retire_previous(keys_dir)
        click.echo(f"retired {len(gone)} previous certificate(s) from {keys_dir}")
        return
    private = settings.profile == "private"
    agg = settings.aggregator if aggregator else None
    key_pem, cert_pem = make_sp_certificate(
        entity_id=entity_id(config, t, kind),
        organization_name=agg.company if agg else t.name,
        common_name=agg.company if agg else t.name,
        locality=t.cadastral_code,
        ipa_code=None if (private or agg) else t.ipa_code,
        vat_number=(
            agg.vat_number if agg else (settings.billing.vat_number if settings.billing else None)
        ),
        fiscal_code=(agg.fiscal_code if agg else (t.fiscal_code if private else None)),
        private=private or agg is not None,
        days=days,
    )
    try:
        kept = write_keys(keys_dir, key_pem, cert_pem, rotate=rotate)
    except LoginConfigError as exc:
        fail(str(exc), 1)
    click.echo(f"key and certificate written to {keys_dir} (current.key, current.crt)")
    if kept is not None:
        click.echo(f"previous certificate kept in the metadata: {kept.name} (--retire drops it)")
    click.echo("publish the new metadata to AgID / the CIE federation before the old one expires")


@keys_group.command("oidc")
@config_option
@click.option("--tenant", default=None, help="the tenant whose relying party's keys to make")
@click.option(
    "--federation",
    is_flag=True,
    help="the software house's intermediate ([oidc_federation]) instead of a tenant",
)
@click.option(
    "--rotate",
    is_flag=True,
    help="new federation, signing and encryption keys; the old public keys stay published "
    "for --overlap-hours",
)
@click.option("--overlap-hours", type=int, default=48, show_default=True)
@friendly
def keys_oidc(
    config_path: Path, tenant: str | None, federation: bool, rotate: bool, overlap_hours: int
) -> None:
    """Make (or rotate) a tenant's OpenID Connect keys: federation, signing, encryption;
    with --federation, the intermediate's federation key."""
    from datetime import UTC, datetime, timedelta

    from sportello.platforms.login.oidc_keys import OidcConfigError, make_or_rotate
    from sportello.platforms.login.settings import oidc_tenant_settings

    config = load_config(config_path)
    if federation == (tenant is not None):
        fail("give either --tenant <id> or --federation", 2)
    if federation:
        _keys_federation(config, config_path, rotate, overlap_hours)
        return
    assert tenant is not None
    t = config.tenant(tenant)
    settings = oidc_tenant_settings(t) if t is not None else None
    if settings is None:
        fail(f"tenant {tenant!r} has no [tenants.oidc] section in {config_path}", 2)
    assert settings is not None
    if overlap_hours < 24:
        fail("--overlap-hours must be at least 24 (a trust chain's lifetime)", 2)
    keys_dir = settings.keys_dir
    try:
        keys = make_or_rotate(
            keys_dir,
            rotate=rotate,
            now=datetime.now(UTC),
            overlap=timedelta(hours=overlap_hours),
        )
    except OidcConfigError as exc:
        fail(str(exc), 1)
    kids = ", ".join(str(r.active.kid) for r in (keys.federation, keys.signing, keys.encryption))
    click.echo(f"OIDC keys written to {keys_dir / 'keys.json'} (active kids: {kids})")
    if rotate:
        click.echo(f"the previous public keys stay published for {overlap_hours} hours")


def _keys_federation(config: Any, config_path: Path, rotate: bool, overlap_hours: int) -> None:
    from datetime import UTC, datetime, timedelta

    from sportello.platforms.login.oidc_federation import make_or_rotate_federation
    from sportello.platforms.login.oidc_keys import OidcConfigError
    from sportello.platforms.login.settings import oidc_federation_settings

    settings = oidc_federation_settings(config)
    if settings is None:
        fail(f"no [oidc_federation] section in {config_path}", 2)
    assert settings is not None
    if overlap_hours < 24:
        fail("--overlap-hours must be at least 24 (a trust chain's lifetime)", 2)
    try:
        ring = make_or_rotate_federation(
            settings.keys_dir,
            rotate=rotate,
            now=datetime.now(UTC),
            overlap=timedelta(hours=overlap_hours),
        )
    except OidcConfigError as exc:
        fail(str(exc), 1)
    path = settings.keys_dir / "keys.json"
    click.echo(f"intermediate federation key written to {path} (active kid: {ring.active.kid})")
    if rotate:
        click.echo(f"the previous public key stays published for {overlap_hours} hours")


@click.group("idps")
def idps_group() -> None:
    """The identity providers tenants trust."""


@idps_group.command("refresh")
@click.option(
    "--url",
    default="https://registry.spid.gov.it/metadata/idp/spid-entities-idps.xml",
    show_default=True,
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/idps/spid-entities-idps.xml"),
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    help=f"TOML configuration whose [idps] signing_certs verify the document (or ${CONFIG_ENV})",
)
@click.option(
    "--cert",
    "cert_paths",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="AgID's signing certificate (PEM), instead of the configuration's (repeatable)",
)
@friendly
def idps_refresh(
    url: str, cache: Path, config_path: Path | None, cert_paths: tuple[Path, ...]
) -> None:
    """Fetch the official SPID IdP metadata, verify AgID's signature, cache it.

    A document that is unsigned, badly signed, expired or empty is refused (exit 1) and the
    last good copy stays in use.
    """
    import aiohttp

    from sportello.connectors.spid.errors import SamlConfigError
    from sportello.platforms.login.idps import refresh_registry
    from sportello.platforms.login.settings import IdpTrustSettings, idp_trust

    try:
        if cert_paths:
            certs = IdpTrustSettings(signing_certs=[str(p) for p in cert_paths]).pems()
        else:
            certs = idp_trust(load_config(config_path)).pems() if config_path else []
    except ValueError as exc:
        fail(str(exc), 2)
    if not certs:
        fail(
            "no certificate to verify the registry's signature: give --cert AGID.pem or "
            "--config with [idps] signing_certs",
            2,
        )
    try:
        count = run_async(refresh_registry(url, cache, certs))
    except (SamlConfigError, aiohttp.ClientError, TimeoutError) as exc:
        kept = f"the last good copy in {cache} is kept" if cache.exists() else "nothing cached"
        fail(f"{exc or type(exc).__name__}; {kept}", 1)
    click.echo(f"{count} identity providers verified and cached in {cache}")

"""What `sportello demo` prepares so a newcomer can use every platform with no credentials:
the IO sandbox key, a PDND key pair registered with the PDND sandbox, and an API key."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

import aiohttp
from aiohttp import web

from sportello import apikeys
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.config import HubConfig
from sportello.plugins import Plugins

log = logging.getLogger("sportello.demo")

IO_KEY_ENV = "SPORTELLO_DEMO_IO_KEY"
PDND_KEY_ENV = "SPORTELLO_DEMO_PDND_KEY"
CHECKOUT_KEY_ENV = "SPORTELLO_DEMO_CHECKOUT_KEY"
STATION_KEY_ENV = "SPORTELLO_DEMO_STATION_KEY"
FDR_KEY_ENV = "SPORTELLO_DEMO_FDR_KEY"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare_demo_secrets(data_dir: Path) -> None:
    """Set the environment the demo configuration refers to (never overriding the user's)."""
    from sportello.connectors.pdnd.keys import generate_key
    from sportello.sandbox.io.app import DEMO_PRIMARY_KEY  # a sandbox value, not a secret
    from sportello.sandbox.pagopa.checkout import DEFAULT_CHECKOUT_API_KEY  # likewise
    from sportello.sandbox.pagopa.fdr_routes import DEFAULT_FDR_API_KEY  # likewise

    os.environ.setdefault(IO_KEY_ENV, DEMO_PRIMARY_KEY)
    os.environ.setdefault(CHECKOUT_KEY_ENV, DEFAULT_CHECKOUT_API_KEY)
    # the key the sandbox Node sends to the demo station: fresh each run, never written down
    os.environ.setdefault(STATION_KEY_ENV, secrets.token_urlsafe(32))
    os.environ.setdefault(FDR_KEY_ENV, DEFAULT_FDR_API_KEY)
    key_file = data_dir / "keys" / "demo-pdnd.pem"
    if not key_file.exists():
        private_pem, _ = generate_key()
        _write_private(key_file, private_pem)
    os.environ.setdefault(PDND_KEY_ENV, key_file.read_text())


async def register_demo_pdnd_client(config: HubConfig, data_dir: Path) -> None:
    """Register the demo tenant's PDND client (key + purposes) with the PDND sandbox."""
    from sportello.connectors.pdnd.keys import load_private_key, public_key_for_upload
    from sportello.sandbox.anpr.app import modi_audience_for

    tenant = config.tenant("demo")
    if tenant is None or tenant.pdnd is None or tenant.anpr is None:
        return
    from cryptography.hazmat.primitives import serialization

    private = load_private_key(tenant.pdnd.key.reveal())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    door = tenant.anpr.base_url.removesuffix("-PDND")
    audiences = {
        purpose: modi_audience_for(door, code) for code, purpose in tenant.pdnd.purposes.items()
    }
    pdnd_base = tenant.pdnd.token_url.rsplit("/", 1)[0]
    body = {
        "client_id": tenant.pdnd.client_id,
        "public_key": public_key_for_upload(public_pem),
        "purposes": audiences,
    }
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(pdnd_base + "/__sandbox/clients", json=body) as response,
        ):
            if response.status >= 300:
                log.warning("demo: PDND sandbox refused the demo client: %s", await response.text())
    except aiohttp.ClientError as exc:
        log.warning("demo: PDND sandbox not reachable (%s); ANPR look-ups will fail", exc)


async def register_demo_pagopa_station(config: HubConfig, hub_url: str) -> None:
    """Tell the pagoPA sandbox Node where the demo tenant's station is (station mode)."""
    tenant = config.tenant("demo")
    if tenant is None or tenant.pagopa is None or tenant.pagopa.mode != "station":
        return
    p = tenant.pagopa
    station: dict[str, object] = {
        "url": f"{hub_url}/t/demo/pagopa/station",
        "broker_id": p.broker_id,
    }
    auth = p.station_auth
    if auth is not None and auth.key is not None:
        try:  # the Node sends the station's key, as its back-office configuration says
            station["headers"] = {auth.key_header: auth.key.reveal()}
        except LookupError as exc:
            log.warning("demo: no station key for the sandbox Node (%s)", exc)
    body = {p.ec_fiscal_code: {**station, "station_id": p.station_id}}
    sandbox = (p.checkout_url or "").split("/checkout/", 1)[0]
    if not sandbox.startswith("http"):
        return
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(sandbox + "/__sandbox/stations", json=body) as response,
        ):
            if response.status >= 300:
                log.warning("demo: pagoPA sandbox refused the station: %s", await response.text())
    except aiohttp.ClientError as exc:
        log.warning("demo: pagoPA sandbox not reachable (%s); payments will fail", exc)


async def seed_demo(app: web.Application) -> None:
    """Each platform seeds its demo data once the hub and the sandboxes listen
    (``hub_demo_seed``: pagoPA gives the FdR sandbox a flow to reconcile)."""
    await app[PLUGINS].demo_seed(app)


async def demo_api_key(app: web.Application, key_file: Path) -> None:
    """A tenant API key for trying the REST API, made once and kept in var/."""
    if await asyncio.to_thread(key_file.exists) or app[CONFIG].tenant("demo") is None:
        return
    async with app[ENGINE].begin() as conn:
        key = await apikeys.create(
            conn,
            tenant_id="demo",
            name="demo",
            scopes=["read", "write", "personal_data"],
            now=app[CLOCK].now(),
        )
    await asyncio.to_thread(_write_private, key_file, key.encode())


def prepare_demo_platforms(
    config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...] = ()
) -> HubConfig:
    """The demo configuration with what each platform makes under ``data_dir``
    (``hub_demo_prepare``: login gives every demo tenant with SPID/CIE its keys, made on the
    first run, and trusts the extra IdP metadata files of ``sportello demo --trust-idp``)."""
    return Plugins(config.plugins.disabled).demo_prepare(config, data_dir, trust_idps)

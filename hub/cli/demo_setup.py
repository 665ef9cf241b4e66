"""What `sportello demo` prepares so a newcomer can use every platform with no credentials:
a PDND key pair registered with the PDND sandbox (with the purposes the platforms use) and
an API key. Each platform prepares and seeds its own part through the ``hub_demo_prepare``,
``hub_demo_pdnd_purposes`` and ``hub_demo_seed`` hooks."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import aiohttp
from aiohttp import web

from sportello import apikeys
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.config import HubConfig
from sportello.plugins import Plugins

log = logging.getLogger("sportello.demo")

PDND_KEY_ENV = "SPORTELLO_DEMO_PDND_KEY"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare_demo_secrets(data_dir: Path, plugins: Plugins | None = None) -> None:
    """Set the environment the demo configuration refers to (never overriding the user's):
    each sandbox's demo keys (``SandboxApp.demo_env``) and the demo's ``[tenants.pdnd]`` key,
    made on the first run. Each platform sets its own in ``hub_demo_prepare``."""
    from sportello.connectors.pdnd.keys import generate_key

    for app in (plugins if plugins is not None else Plugins()).sandbox_apps():
        for name, value in app.demo_env.items():
            os.environ.setdefault(name, value)

    key_file = data_dir / "keys" / "demo-pdnd.pem"
    if not key_file.exists():
        private_pem, _ = generate_key()
        _write_private(key_file, private_pem)
    os.environ.setdefault(PDND_KEY_ENV, key_file.read_text())


async def register_demo_pdnd_client(config: HubConfig, plugins: Plugins | None = None) -> None:
    """Register each tenant's PDND client (key and purposes) with the PDND sandbox: the
    purposes are those the platforms use (``hub_demo_pdnd_purposes``), none: nothing to do."""
    from cryptography.hazmat.primitives import serialization

    from sportello.connectors.pdnd.keys import load_private_key, public_key_for_upload

    plugins = plugins if plugins is not None else Plugins(config.plugins.disabled)
    for tenant in config.tenants:
        if tenant.pdnd is None:
            continue
        audiences = plugins.demo_pdnd_purposes(config, tenant)
        if not audiences:
            continue
        private = load_private_key(tenant.pdnd.key.reveal())
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
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
                    text = await response.text()
                    log.warning("demo: PDND sandbox refused the demo client: %s", text)
        except aiohttp.ClientError as exc:
            log.warning("demo: PDND sandbox not reachable (%s); PDND calls will fail", exc)


async def seed_demo(app: web.Application) -> None:
    """Each platform seeds its demo data once the hub and the sandboxes listen
    (``hub_demo_seed``: pagoPA registers the demo station with the sandbox Node and gives
    the FdR sandbox a flow to reconcile; login onboards the OpenID Connect RP)."""
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

"""What `sportello demo` prepares so a newcomer can use every platform with no credentials:
the IO sandbox key, a PDND key pair registered with the PDND sandbox, and an API key."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import aiohttp
from aiohttp import web

from . import apikeys
from .appkeys import CLOCK, CONFIG, ENGINE
from .config import HubConfig

log = logging.getLogger("sportello.demo")

IO_KEY_ENV = "SPORTELLO_DEMO_IO_KEY"
PDND_KEY_ENV = "SPORTELLO_DEMO_PDND_KEY"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare_demo_secrets(data_dir: Path) -> None:
    """Set the environment the demo configuration refers to (never overriding the user's)."""
    from sportello.connectors.pdnd.keys import generate_key
    from sportello.sandbox.io.app import DEMO_PRIMARY_KEY  # a sandbox value, not a secret

    os.environ.setdefault(IO_KEY_ENV, DEMO_PRIMARY_KEY)
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

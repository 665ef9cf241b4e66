"""``sportello demo`` for pagoPA: the sandbox keys the demo configuration refers to, and the
demo tenant's station registered with the sandbox Node (station mode)."""

from __future__ import annotations

import logging
import os
import secrets

import aiohttp

from sportello.config import HubConfig
from sportello.platforms.pagopa.settings import pagopa_settings

log = logging.getLogger("sportello.demo")

STATION_KEY_ENV = "SPORTELLO_DEMO_STATION_KEY"


def prepare_demo_env() -> None:
    """Set the key the sandbox Node sends to the demo station, where the demo's
    ``[tenants.pagopa.station_auth]`` looks for it (fresh each run, never written down, never
    overriding the user's). The sandbox's own Checkout and FdR keys come from its
    ``SandboxApp.demo_env``."""
    os.environ.setdefault(STATION_KEY_ENV, secrets.token_urlsafe(32))


def hub_url(config: HubConfig) -> str:
    """Where the sandbox Node reaches the hub: its public URL, else host and port."""
    if config.server.public_url:
        return config.server.public_url.rstrip("/")
    return f"http://{config.server.host}:{config.server.port}"


async def register_demo_station(config: HubConfig, hub_url: str) -> None:
    """Tell the pagoPA sandbox Node where the demo tenant's station is (station mode)."""
    tenant = config.tenant("demo")
    p = pagopa_settings(tenant) if tenant is not None else None
    if p is None or p.mode != "station":
        return
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

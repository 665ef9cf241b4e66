"""What `sportello demo` prepares so a newcomer can use every platform with no credentials:
the IO sandbox key, a PDND key pair registered with the PDND sandbox, and an API key."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from sportello import apikeys
from sportello.appkeys import CLOCK, CONFIG, ENGINE
from sportello.config import HubConfig

log = logging.getLogger("sportello.demo")
ROME = ZoneInfo("Europe/Rome")

IO_KEY_ENV = "SPORTELLO_DEMO_IO_KEY"
PDND_KEY_ENV = "SPORTELLO_DEMO_PDND_KEY"
CHECKOUT_KEY_ENV = "SPORTELLO_DEMO_CHECKOUT_KEY"
STATION_KEY_ENV = "SPORTELLO_DEMO_STATION_KEY"
FDR_KEY_ENV = "SPORTELLO_DEMO_FDR_KEY"
#: The demo creditor's account (the ISO 13616 example of an Italian IBAN, not a real one).
DEMO_IBAN = "IT60X0542811101000000123456"


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


async def seed_demo_fdr(app: web.Application) -> str | None:
    """Give the FdR sandbox a flow to reconcile: one notice of the demo tenant (station mode)
    is created, paid through the sandbox Node (which calls the hub's station) and its flow
    published. Done at every start, because the sandbox keeps no state; the sandbox numbers
    its flows so that a restart does not reuse an id. Returns the notice number paid."""
    from datetime import timedelta

    from sportello.platforms.pagopa.store import PagopaStore, PagopaStoreError

    config = app[CONFIG]
    tenant = config.tenant("demo")
    p = tenant.pagopa if tenant is not None else None
    if p is None or p.mode != "station" or p.fdr_base_url is None:
        return None
    sandbox = p.fdr_base_url.split("/fdr-org/", 1)[0]
    if not sandbox.startswith("http"):
        return None
    now = app[CLOCK].now()
    text = "Diritti di segreteria (demo)"
    position = {
        "iupd": f"DEMO-FDR-{now:%Y%m%d%H%M%S%f}",
        "type": "F",
        "fiscal_code": "VRDGNN70D04H501W",  # Giovanni Verdi, in the demo registry
        "full_name": "Giovanni Verdi",
        "company_name": tenant.name if tenant is not None else "Comune di Esempio",
        "payment_options": [
            {
                "amount": 1600,
                "description": text,
                "due_date": now + timedelta(days=30),
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 1600,
                        "organization_fiscal_code": p.ec_fiscal_code,
                        "remittance_information": text,
                        "category": "9/0301109AP/",
                        "iban": DEMO_IBAN,
                    }
                ],
            }
        ],
    }
    try:
        stored = await PagopaStore(app[ENGINE], config, app[CLOCK]).create_position(
            "demo", position
        )
    except PagopaStoreError as exc:
        log.warning("demo: no notice for the FdR sandbox (%s)", exc)
        return None
    nav = stored.options[0].nav
    day = now.astimezone(ROME).date().isoformat()
    try:
        async with aiohttp.ClientSession() as session:
            pay = {"fiscalCode": p.ec_fiscal_code, "noticeNumber": nav}
            async with session.post(sandbox + "/psp/pay", json=pay) as response:
                result = await response.json(content_type=None)
            if response.status >= 300 or result.get("outcome") != "OK":
                log.warning("demo: the sandbox Node did not pay notice %s: %s", nav, result)
                return None
            async with session.post(f"{sandbox}/__sandbox/fdr/publish?date={day}") as response:
                if response.status >= 300:
                    log.warning("demo: the FdR sandbox did not publish: %s", await response.text())
                    return None
    except (aiohttp.ClientError, ValueError) as exc:
        log.warning("demo: pagoPA sandbox not reachable (%s); no FdR flow to reconcile", exc)
        return None
    return nav


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


def prepare_demo_logins(
    config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...] = ()
) -> HubConfig:
    """Give every demo tenant with SPID/CIE its keys under ``data_dir`` (made on first run)
    and trust the extra IdP metadata files (``sportello demo --trust-idp``)."""
    from sportello.connectors.spid.keys import make_sp_certificate
    from sportello.platforms.login.keys import CURRENT_CERT, entity_id, write_keys

    tenants = []
    for tenant in config.tenants:
        updates: dict[str, object] = {}
        for kind in ("spid", "cie"):
            settings = getattr(tenant, kind)
            if settings is None:
                continue
            keys_dir = data_dir / "keys" / tenant.id / kind
            change: dict[str, object] = {
                "keys_dir": keys_dir,
                "idp_metadata": [*settings.idp_metadata, *(str(p.resolve()) for p in trust_idps)],
            }
            private = settings.profile == "private"
            if not (keys_dir / CURRENT_CERT).exists():
                key_pem, cert_pem = make_sp_certificate(
                    entity_id=entity_id(config, tenant, kind),
                    organization_name=tenant.name,
                    common_name=tenant.name,
                    locality=tenant.cadastral_code,
                    ipa_code=None if private else tenant.ipa_code,
                    vat_number=settings.billing.vat_number if settings.billing else None,
                    private=private,
                    key_size=2048,
                )
                write_keys(keys_dir, key_pem, cert_pem, rotate=False)
            if settings.aggregator is not None:
                agg_dir = data_dir / "keys" / tenant.id / f"{kind}-aggregator"
                agg = settings.aggregator
                if not (agg_dir / CURRENT_CERT).exists():
                    key_pem, cert_pem = make_sp_certificate(
                        entity_id=entity_id(config, tenant, kind),
                        organization_name=agg.company,
                        common_name=agg.company,
                        locality=tenant.cadastral_code,
                        vat_number=agg.vat_number,
                        fiscal_code=agg.fiscal_code,
                        private=True,
                        key_size=2048,
                    )
                    write_keys(agg_dir, key_pem, cert_pem, rotate=False)
                change["aggregator"] = agg.model_copy(update={"keys_dir": agg_dir})
            updates[kind] = settings.model_copy(update=change)
        tenants.append(tenant.model_copy(update=updates) if updates else tenant)
    return config.model_copy(update={"tenants": tenants})

"""Builders shared by the tests of every folder (imported by name: ``from factories import
free_port``; pytest puts ``tests/`` on ``sys.path``, see pyproject's ``pythonpath``).

- ``free_port()``: a TCP port of 127.0.0.1 nobody listens on (for a server the test starts
  on a known port, or a URL that must refuse connections);
- ``tenant(...)``: a tenant's configuration table (id, name, IPA code, fiscal code, cadastral
  code), platform sections added by keyword;
- ``login_section(...)`` / ``spid_tenant(...)``: a tenant with SPID and/or CIE login, its SP
  keys and certificate made and written to ``keys_dir`` as ``sportello keys`` does;
- ``iban_with(abi, account)``: a valid Italian IBAN (check digits computed here);
- ``POSITION_COLUMNS`` / ``SECOND_TRANSFER_COLUMNS``: the header of a debt positions' CSV;
- ``drain_outbox(app)``: run one outbox worker on a hub app until no job is pending or running.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sportello.app import ENGINE, SERVICES
from sportello.connectors.spid.keys import make_sp_certificate
from sportello.outbox import OutboxWorker, store
from sportello.outbox.worker import handlers_from
from sportello.platforms.login.keys import write_keys
from sportello.plugins import Plugins

TENANT_NAME = "Comune di Prova"
TENANT_IPA = "c_z999"
TENANT_FISCAL_CODE = "00000000999"
TENANT_CADASTRAL = "Z999"

# The debt positions' CSV columns (the reference csv accounting adapter): one row per
# instalment, its first transfer to the comune; ``SECOND_TRANSFER_COLUMNS`` follow for a share
# to another entity.
POSITION_COLUMNS = [
    "iupd",
    "debtor_fiscal_code",
    "debtor_name",
    "description",
    "installment",
    "due_date",
    "transfer1_amount",
    "transfer1_iban",
    "transfer1_category",
]
SECOND_TRANSFER_COLUMNS = [
    "transfer2_amount",
    "transfer2_fiscal_code",
    "transfer2_iban",
    "transfer2_category",
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tenant(
    tenant_id: str = "comune",
    *,
    name: str = TENANT_NAME,
    ipa_code: str = TENANT_IPA,
    fiscal_code: str = TENANT_FISCAL_CODE,
    cadastral_code: str = TENANT_CADASTRAL,
    **sections: Any,
) -> dict[str, Any]:
    """One ``[[tenants]]`` table; ``sections`` are the platform tables (``spid=...``)."""
    return {
        "id": tenant_id,
        "name": name,
        "ipa_code": ipa_code,
        "fiscal_code": fiscal_code,
        "cadastral_code": cadastral_code,
        **sections,
    }


def login_section(
    keys_dir: Path,
    *,
    hub_url: str,
    tenant_id: str,
    kind: str,
    idp_metadata: Iterable[str],
    return_urls: Iterable[str],
    **extra: Any,
) -> dict[str, Any]:
    """A tenant's ``spid`` or ``cie`` table: a fresh SP key and certificate (2048-bit RSA,
    entityID ``{hub_url}/t/{tenant_id}/{kind}/metadata``) written to ``keys_dir``."""
    key, cert = make_sp_certificate(
        entity_id=f"{hub_url}/t/{tenant_id}/{kind}/metadata",
        organization_name=TENANT_NAME,
        common_name=TENANT_NAME,
        locality=TENANT_CADASTRAL,
        ipa_code=TENANT_IPA,
        key_size=2048,
    )
    write_keys(keys_dir, key, cert, rotate=False)
    return {
        "keys_dir": str(keys_dir),
        "contact_email": "protocollo@comune.prova.it",
        "contact_phone": "+390612345678",
        "idp_metadata": list(idp_metadata),
        "return_urls": list(return_urls),
        "level": 2 if kind == "spid" else 3,
        "province": "RM",
        **extra,
    }


def spid_tenant(
    tmp_path: Path,
    *,
    hub_url: str,
    idps: Iterable[str],
    return_urls: Iterable[str],
    tenant_id: str = "comune",
    kinds: Iterable[str] = ("spid", "cie"),
    **extra: Any,
) -> dict[str, Any]:
    """A tenant with SPID and CIE login (keys under ``tmp_path/keys/<kind>``) trusting the
    sandbox IdPs at ``idps`` (base URLs); ``extra`` goes into each login table."""
    idps, return_urls = list(idps), list(return_urls)
    sections = {
        kind: login_section(
            tmp_path / "keys" / kind,
            hub_url=hub_url,
            tenant_id=tenant_id,
            kind=kind,
            idp_metadata=[f"{idp}/{kind}/metadata" for idp in idps],
            return_urls=return_urls,
            **extra,
        )
        for kind in kinds
    }
    return tenant(tenant_id, **sections)


def iban_with(abi: str, account: str) -> str:
    """A valid Italian IBAN for bank ``abi``, branch 03200, ``account`` (12 characters)."""
    bban = "X" + abi + "03200" + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


async def drain_outbox(app: Any, *, outbox: Any = None, timeout: float = 60.0) -> None:
    """Run one outbox worker on the hub ``app`` until no job is pending or running.

    The worker runs with every platform's outbox handlers and ``outbox`` (the outbox settings;
    default the hub's); ``timeout`` seconds without draining fail the test (``TimeoutError``).
    """
    engine = app[ENGINE]
    services = app[SERVICES]
    worker = OutboxWorker(
        engine,
        handlers_from(Plugins().outbox_handlers(), services),
        outbox if outbox is not None else services.config.outbox,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with engine.connect() as conn:
                    counts = await store.counts_by_status(conn)
                if not counts.get("pending") and not counts.get("running"):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task

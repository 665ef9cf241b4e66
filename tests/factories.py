"""Builders shared by the tests of every folder (imported by name: ``from factories import
free_port``; pytest puts ``tests/`` on ``sys.path``, see pyproject's ``pythonpath``).

- ``free_port()``: a TCP port of 127.0.0.1 nobody listens on (for a server the test starts
  on a known port, or a URL that must refuse connections);
- ``tenant(...)``: a tenant's configuration table (id, name, IPA code, fiscal code, cadastral
  code), platform sections added by keyword;
- ``login_section(...)`` / ``spid_tenant(...)``: a tenant with SPID and/or CIE login, its SP
  keys and certificate made and written to ``keys_dir`` as ``sportello keys`` does;
- ``iban_with(abi, account)``: a valid Italian IBAN (check digits computed here).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sportello.connectors.spid.keys import make_sp_certificate
from sportello.platforms.login.keys import write_keys

TENANT_NAME = "Comune di Prova"
TENANT_IPA = "c_z999"
TENANT_FISCAL_CODE = "00000000999"
TENANT_CADASTRAL = "Z999"


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

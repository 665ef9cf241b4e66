"""What the SEND tests share (imported by name: ``from send_stack import Stack``): the
sandboxes' ``Stack`` (PDND token sandbox, SEND twin, INAD twin on real sockets, and the hub's
real clients for them), the PDND client key, the notification import's columns and a CLI
configuration writer. The ``stack`` fixture that builds one is in this folder's conftest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from sportello.connectors.inad.client import InadClient
from sportello.connectors.pdnd.client import PdndClient
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
from sportello.connectors.pdnd.keys import generate_key
from sportello.connectors.retry import RetryPolicy
from sportello.connectors.send.client import SendClient
from sportello.sandbox.inad.app import BASE_PATH
from sportello.sandbox.send.app import DEMO_API_KEY

# The columns of a notification import (docs/send.md), in the reference CSV's order.
NOTIFICATION_COLUMNS = [
    "paProtocolNumber",
    "subject",
    "taxonomyCode",
    "document",
    "recipientType",
    "taxId",
    "denomination",
    "address",
    "zip",
    "municipality",
    "province",
    "digitalDomicile",
    "noticeCode",
    "creditorTaxId",
    "amount",
    "applyCost",
]
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@cache
def client_key() -> tuple[bytes, bytes]:
    return generate_key()


@cache
def pdnd_key() -> bytes:
    return generate_key()[0]


@dataclass
class Stack:
    session: aiohttp.ClientSession
    pdnd_url: str
    send_url: str
    inad_url: str
    client_id: str
    kid: str
    send_purpose: str
    inad_purpose: str
    other_purpose: str
    send_app: Any
    inad_app: Any
    servers: list[TestServer] = field(default_factory=list)

    def pdnd_section(self, key_file: Path) -> dict[str, Any]:
        """A tenant's ``[tenants.pdnd]`` for this stack's PDND client, its private key
        written to ``key_file``."""
        key_file.write_bytes(client_key()[0])
        return {
            "client_id": self.client_id,
            "key": {"file": str(key_file)},
            "kid": self.kid,
            "token_url": self.pdnd_url + "/token.oauth2",
            "assertion_audience": SANDBOX_ASSERTION_AUDIENCE,
        }

    def pdnd(self) -> PdndClient:
        private_pem, _ = client_key()
        return PdndClient(
            self.session,
            self.pdnd_url + "/token.oauth2",
            client_id=self.client_id,
            kid=self.kid,
            private_key=lambda: private_pem,
            assertion_audience=SANDBOX_ASSERTION_AUDIENCE,
        )

    def send(self, *, api_key: str = DEMO_API_KEY, purpose: str | None = None) -> SendClient:
        return SendClient(
            self.session,
            self.send_url,
            api_key=api_key,
            pdnd=self.pdnd(),
            purpose_id=purpose or self.send_purpose,
            retry=FAST,
        )

    def inad(self, *, purpose: str | None = None) -> InadClient:
        return InadClient(
            self.session,
            self.inad_url + BASE_PATH,
            pdnd=self.pdnd(),
            purpose_id=purpose or self.inad_purpose,
            retry=FAST,
        )

    async def voucher(self, purpose: str) -> str:
        return await self.pdnd().token(purpose)


def write_cli_config(path: Path, db_url: str, tenant: dict[str, Any], sections: str) -> Path:
    """A TOML configuration for the CLI, written by hand as an operator would: the database,
    ``tenant``'s identity and its ``[tenants.pdnd]`` (from its configuration table), then
    ``sections`` (the platform tables, as TOML text)."""
    pdnd = tenant["pdnd"]
    text = f"""
[database]
url = {json.dumps(db_url)}

[[tenants]]
id = {json.dumps(tenant["id"])}
name = {json.dumps(tenant["name"])}
ipa_code = {json.dumps(tenant["ipa_code"])}
fiscal_code = {json.dumps(tenant["fiscal_code"])}
cadastral_code = {json.dumps(tenant["cadastral_code"])}

[tenants.pdnd]
client_id = {json.dumps(pdnd["client_id"])}
key = {{ file = {json.dumps(pdnd["key"]["file"])} }}
kid = {json.dumps(pdnd["kid"])}
token_url = {json.dumps(pdnd["token_url"])}
assertion_audience = {json.dumps(SANDBOX_ASSERTION_AUDIENCE)}
{sections}"""
    path.write_text(text)
    return path

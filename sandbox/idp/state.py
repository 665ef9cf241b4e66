"""The sandbox IdP's run-time state, kept on the app under :data:`STATE`.

Transactions (parsed AuthnRequests waiting for the user's choice) and IdP-initiated logouts
expire; sessions live until logged out or ``reset``; the request log keeps the last
:data:`MAX_RECORDS` inbound messages.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from sportello.clock import Clock

from .identities import TestIdentity
from .keys import FEDERATION, KeyPair
from .spmeta import SpRegistry

__all__ = [
    "FAULT_NAMES",
    "STATE",
    "AuthnTxn",
    "Fault",
    "IdpSession",
    "IdpState",
    "PendingLogout",
    "Problem",
]

MAX_RECORDS = 100
TXN_TTL = 900.0  # seconds a login page stays answerable
LOGOUT_TTL = 300.0

#: What ``POST /__sandbox/faults`` accepts; each one spoils the next login answer(s).
FAULT_NAMES: dict[str, str] = {
    "unsigned_assertion": "the Assertion carries no signature (the Response still does)",
    "unsigned_response": "the Response carries no signature (the Assertion still does: legal)",
    "wrong_audience": "Audience is another SP's entityID",
    "expired": "Conditions and SubjectConfirmationData NotOnOrAfter are in the past",
    "not_yet_valid": "Conditions NotBefore is ten minutes in the future",
    "wrong_in_response_to": "InResponseTo (Response and SubjectConfirmationData) is a random ID",
    "wrong_destination": "the Response Destination is not the ACS URL",
    "wrong_recipient": "SubjectConfirmationData Recipient is not the ACS URL",
    "wrong_issuer": "Response and Assertion Issuer are another IdP",
    "sha1_signature": "both signatures use RSA-SHA1 and SHA-1 digests",
    "foreign_key": "both signatures use a key that is not in the IdP metadata",
    "lower_level": "AuthnContextClassRef is one level below the one granted",
    "legacy_acr": "AuthnContextClassRef is the legacy urn:oasis:...:ac:classes:SpidLn form",
    "no_attributes": "the Assertion has no AttributeStatement",
    "stale_issue_instant": "Response and Assertion IssueInstant are ten minutes old",
}


@dataclass(frozen=True)
class Problem:
    """Why an inbound message was refused: a stable ``code`` for tests and the
    ``X-Sandbox-Error`` header, the sentence the error page shows, and the SPID error
    code (ErrorCode nrNN) a real IdP would show, when there is one."""

    code: str
    message: str
    spid_code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuthnTxn:
    """A validated AuthnRequest waiting on the login page (never rebuilt from the form)."""

    txn: str
    scheme: str
    request_id: str
    sp_entity_id: str
    acs_url: str
    level: int
    comparison: str
    attributes: tuple[str, ...]
    relay_state: str | None
    created: float


@dataclass
class IdpSession:
    """A login the IdP answered: what SLO needs to find and end it."""

    session_index: str
    scheme: str
    sp_entity_id: str
    name_id: str
    identity: str
    level: int
    started: str
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PendingLogout:
    """An IdP-initiated LogoutRequest waiting for the SP's LogoutResponse."""

    request_id: str
    session_index: str
    sp_entity_id: str
    created: float


@dataclass
class Fault:
    """Spoil the next ``remaining`` login answers with every fault in ``names``."""

    names: tuple[str, ...]
    remaining: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "remaining": self.remaining}


@dataclass
class IdpState:
    """Everything the IdP remembers; ``reset()`` empties it (keys and pinned SPs stay)."""

    base_url: str | None
    keys: dict[str, KeyPair]
    identities: tuple[TestIdentity, ...]
    registry: SpRegistry
    clock: Clock
    transactions: dict[str, AuthnTxn] = field(default_factory=dict)
    sessions: dict[str, IdpSession] = field(default_factory=dict)
    pending_logouts: dict[str, PendingLogout] = field(default_factory=dict)
    records: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    faults: list[Fault] = field(default_factory=list)
    metadata_cache: dict[str, bytes] = field(default_factory=dict)
    federation: KeyPair = field(default_factory=lambda: FEDERATION)  # signs metadata, registry

    def reset(self) -> None:
        self.transactions.clear()
        self.sessions.clear()
        self.pending_logouts.clear()
        self.records.clear()
        self.faults.clear()
        self.registry.reset()

    def prune(self) -> None:
        """Drop expired transactions and IdP-initiated logouts."""
        now = self.clock.monotonic()
        for txn_id in [k for k, v in self.transactions.items() if now - v.created > TXN_TTL]:
            del self.transactions[txn_id]
        for req_id in [k for k, v in self.pending_logouts.items() if now - v.created > LOGOUT_TTL]:
            del self.pending_logouts[req_id]

    def new_txn_id(self) -> str:
        return secrets.token_urlsafe(24)

    def identity(self, code: str) -> TestIdentity | None:
        """A test identity by fiscal code (``TINIT-`` prefix and case ignored)."""
        wanted = code.strip().upper().removeprefix("TINIT-")
        return next((i for i in self.identities if i.code == wanted), None)

    def take_fault(self) -> frozenset[str]:
        """The faults to apply to this answer (consumes one use of the first fault)."""
        if not self.faults:
            return frozenset()
        fault = self.faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self.faults.pop(0)
        return frozenset(fault.names)

    def record(self, entry: dict[str, Any]) -> None:
        self.records.append(entry)


STATE = web.AppKey("idp_sandbox_state", IdpState)

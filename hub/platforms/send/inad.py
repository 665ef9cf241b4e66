"""INAD for the hub: who has a digital domicile, before a SEND notification is sent.

One ``InadClient`` per tenant (``[tenants.inad]`` with the voucher from ``[tenants.pdnd]``).
Every read is a personal-data read: ``Domiciles`` writes one audit entry per fiscal code
asked (found, not found or failed), with the caller's purpose, which is also INAD's
``practicalReference``. A platform failure is an ``InadFailed`` (502, or 503 when INAD or
PDND is rate limiting or unavailable), never "no domicile": only INAD's own 404 says that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from sportello import audit
from sportello.connectors.errors import ConnectorError, ConnectorTimeout, RateLimited
from sportello.connectors.inad import DigitalDomicile, InadClient, NoDigitalDomicile
from sportello.connectors.pdnd.client import PdndClient
from sportello.connectors.pdnd.environments import assertion_audience_for
from sportello.connectors.pdnd.keys import kid_for_private_key
from sportello.platforms.send.settings import inad_settings
from sportello.services import HubServices

__all__ = [
    "INAD_DOMICILES",
    "Domiciles",
    "InadFailed",
    "InadNotConfigured",
    "Requester",
    "view",
]


class InadNotConfigured(Exception):
    """The tenant has no ``[tenants.inad]`` (or no ``[tenants.pdnd]`` for the voucher)."""


class InadFailed(Exception):
    """INAD (or PDND, for the voucher) failed: whether the person has a domicile is unknown."""

    def __init__(self, error: ConnectorError) -> None:
        self.platform = "PDND" if (error.platform or "").lower() == "pdnd" else "INAD"
        unavailable = isinstance(error, RateLimited) or error.status == 503
        self.status = 503 if unavailable else 502
        self.retry_after = error.retry_after
        what = f"HTTP {error.status}" if error.status else type(error).__name__
        if isinstance(error, ConnectorTimeout):
            what = "no answer in time"
        self.detail = (
            f"{self.platform} failed ({what}): whether this fiscal code has a digital domicile "
            "is unknown; try again later"
            if self.platform == "INAD"
            else f"PDND refused the voucher for INAD ({what}): check [tenants.pdnd] and "
            "[tenants.inad].purpose_id"
        )
        super().__init__(self.detail)


@dataclass(frozen=True, slots=True)
class Requester:
    actor: str
    operator: str
    purpose: str


def view(found: DigitalDomicile) -> dict[str, Any]:
    """The API's and the CLI's shape of one INAD answer."""
    return {
        "fiscal_code": found.codiceFiscale,
        "found": found.has_domicile,
        "since": found.since,
        "addresses": [
            {
                "address": a.digitalAddress,
                "profession": a.practicedProfession,
                "ends_on": a.usageInfo.dateEndValidity if a.usageInfo else None,
                "end_reason": a.usageInfo.motivation if a.usageInfo else None,
            }
            for a in found.digitalAddress
        ],
    }


class Domiciles:
    """The tenants' INAD clients, built on first use, and the audited reads."""

    def __init__(self, services: HubServices) -> None:
        self.services = services
        self._clients: dict[str, InadClient] = {}

    def client(self, tenant_id: str) -> InadClient:
        if tenant_id not in self._clients:
            tenant = self.services.config.tenant(tenant_id)
            inad = inad_settings(tenant) if tenant is not None else None
            if tenant is None or inad is None or tenant.pdnd is None:
                raise InadNotConfigured(
                    f"tenant {tenant_id!r} has no [tenants.inad] and [tenants.pdnd]"
                )
            pdnd = tenant.pdnd
            key_ref = pdnd.key

            def private_key() -> bytes:
                return key_ref.reveal().encode()

            vouchers = PdndClient(
                self.services.session,
                str(pdnd.token_url),
                client_id=pdnd.client_id,
                kid=pdnd.kid or kid_for_private_key(private_key()),
                private_key=private_key,
                assertion_audience=pdnd.assertion_audience
                or assertion_audience_for(str(pdnd.token_url)),
            )
            self._clients[tenant_id] = InadClient(
                self.services.session,
                str(inad.base_url).rstrip("/"),
                pdnd=vouchers,
                purpose_id=inad.purpose_id,
            )
        return self._clients[tenant_id]

    async def _audit(
        self, tenant_id: str, who: Requester, codes: Sequence[str], outcome: str, detail: str
    ) -> None:
        now = self.services.clock.now()
        async with self.services.engine.begin() as conn:
            for code in codes:
                await audit.record(
                    conn,
                    audit.AuditEntry(
                        tenant_id=tenant_id,
                        actor=who.actor,
                        action="inad.lookup",
                        subject=code,
                        purpose=who.purpose,
                        sources="inad",
                        outcome=outcome,
                        detail=f"{detail}; operator {who.operator}"[:500],
                    ),
                    at=now,
                )

    async def now(self, tenant_id: str, fiscal_code: str, who: Requester) -> dict[str, Any]:
        """The domicile now (``found`` false when INAD has none); audited."""
        client = self.client(tenant_id)
        try:
            found = await client.extract(fiscal_code, practical_reference=who.purpose)
        except NoDigitalDomicile:
            await self._audit(tenant_id, who, [fiscal_code], "not_found", "extract")
            return {"fiscal_code": fiscal_code, "found": False, "since": None, "addresses": []}
        except ConnectorError as exc:
            await self._audit(tenant_id, who, [fiscal_code], "failed", f"extract: {exc.status}")
            raise InadFailed(exc) from exc
        await self._audit(tenant_id, who, [fiscal_code], "ok", "extract")
        return view(found)

    async def on(
        self, tenant_id: str, fiscal_code: str, address: str, day: date, who: Requester
    ) -> dict[str, Any]:
        """Whether ``address`` was the domicile on ``day`` (INAD's verify); audited."""
        client = self.client(tenant_id)
        try:
            outcome = await client.verify(
                fiscal_code, address, since=day, practical_reference=who.purpose
            )
        except ConnectorError as exc:
            await self._audit(tenant_id, who, [fiscal_code], "failed", f"verify: {exc.status}")
            raise InadFailed(exc) from exc
        await self._audit(tenant_id, who, [fiscal_code], "ok", f"verify on {day.isoformat()}")
        return {
            "fiscal_code": fiscal_code,
            "found": outcome,
            "since": None,
            "addresses": [{"address": address}] if outcome else [],
            "date": day.isoformat(),
            "address": address,
            "was_domicile": outcome,
        }

    async def bulk(
        self,
        tenant_id: str,
        fiscal_codes: Sequence[str],
        who: Requester,
        *,
        interval: float | None = None,
        max_wait: float | None = None,
    ) -> list[dict[str, Any]]:
        """INAD's asynchronous list (request, poll, read) for up to 1,000 codes; audited."""
        client = self.client(tenant_id)
        tenant = self.services.config.tenant(tenant_id)
        settings = inad_settings(tenant) if tenant is not None else None
        assert settings is not None
        try:
            found = await client.extract_many(
                fiscal_codes,
                practical_reference=who.purpose,
                interval=interval if interval is not None else settings.bulk_poll_seconds,
                max_wait=max_wait if max_wait is not None else settings.bulk_max_wait_seconds,
            )
        except ConnectorError as exc:
            await self._audit(tenant_id, who, fiscal_codes, "failed", "bulk list")
            raise InadFailed(exc) from exc
        await self._audit(tenant_id, who, fiscal_codes, "ok", "bulk list")
        return [view(f) for f in found]


INAD_DOMICILES = web.AppKey("inad_domiciles", Domiciles)

"""Resident look-ups: ANPR (through PDND, ModI-signed and audited) merged with the comune's
own registry (an adapter), every field saying where it came from.

Precedence, field by field:

1. **ANPR** is the national registry of record: when it answers, its identity (names, sex,
   birth), residence and household win.
2. **The comune's registry** fills what ANPR does not give (e-mail, phone, the local family
   id) and answers alone when the tenant has no ANPR configured, when ANPR is unreachable,
   or when ANPR does not know the person (each case adds a warning to the answer).

A platform failure is never "not found". When PDND (the voucher), ANPR or the registry fails
and nobody found the person, the look-up raises ``LookupFailed`` naming the failed platform
and a support id (the look-up's ``request_id``: it is in the hub's log and in the audit log);
the API answers 502 (503 when the platform is rate limiting or unavailable). When another
source found the person, the answer is 200 with a warning naming the failed platform.

Every look-up writes one audit entry (who, tenant, subject, purpose, sources, outcome),
also when it fails, before the answer leaves the hub.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sportello import audit
from sportello.adapters.registry.base import RegistryAdapter, RegistryDataError, RegistryRecord
from sportello.config import TenantConfig
from sportello.connectors import fiscal_code as fiscal_codes
from sportello.connectors.anpr.client import AnprClient
from sportello.connectors.anpr.errors import SubjectNotFound
from sportello.connectors.errors import ConnectorError, RateLimited, TransportError
from sportello.connectors.pdnd.client import ModiCaller, PdndClient
from sportello.connectors.pdnd.environments import assertion_audience_for
from sportello.connectors.pdnd.keys import kid_for_private_key
from sportello.connectors.pdnd.modi import AuditContext
from sportello.platforms.residents.settings import anpr_settings
from sportello.plugins import Plugins
from sportello.services import HubServices
from sportello.tenant_adapters import AdapterNotInstalled

ANPR, REGISTRY = "anpr", "registry"
FISCAL_CODE = re.compile(r"[A-Z0-9]{16}|\d{11}")
#: How a failed platform is named to people (API problems, warnings, the CLI).
PLATFORM_NAMES = {"pdnd": "PDND", "anpr": "ANPR", REGISTRY: "the comune's registry"}

log = logging.getLogger("sportello.platforms.residents.lookup")


class LookupRefused(Exception):
    """The request cannot be served as asked (no source configured, bad fiscal code...)."""


@dataclass(frozen=True)
class SourceFailure:
    """A platform that failed during a look-up (it did not answer found or not found)."""

    platform: str  # PDND, ANPR or "the comune's registry"
    error: str  # the error class, e.g. RateLimited
    status: int | None  # the platform's HTTP status, when it answered
    platform_id: str | None  # the platform's own id (PDND correlationId, GovWay id)
    unavailable: bool  # rate limited, 503 or unreachable: trying later may work
    retry_after: float | None = None

    @classmethod
    def of(cls, exc: Exception, default_platform: str) -> SourceFailure:
        if isinstance(exc, ConnectorError):
            key = exc.platform or default_platform
            unavailable = isinstance(exc, RateLimited | TransportError) or exc.status in (429, 503)
            return cls(
                PLATFORM_NAMES.get(key, key.upper()),
                type(exc).__name__,
                exc.status,
                exc.request_id,
                unavailable,
                exc.retry_after,
            )
        return cls(
            PLATFORM_NAMES.get(default_platform, default_platform),
            type(exc).__name__,
            None,
            None,
            isinstance(exc, OSError),
        )

    def describe(self, support_id: str) -> str:
        """``ANPR unavailable (ServerError, support id …; HTTP 503, ANPR id …)``."""
        extra = "".join(
            (
                f"; HTTP {self.status}" if self.status is not None else "",
                f", {self.platform} id {self.platform_id}" if self.platform_id else "",
            )
        )
        verb = "unavailable" if self.unavailable else "failed"
        return f"{self.platform} {verb} ({self.error}, support id {support_id}{extra})"

    def view(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "error": self.error,
            "status": self.status,
            "platform_id": self.platform_id,
        }


class LookupFailed(Exception):
    """Nobody found the person and a platform failed: the answer is unknown, not "not found".

    ``status`` is what the API answers: 503 when every failure is a platform rate limiting
    or unavailable (try later), else 502. ``answered`` lists the sources that did answer
    (they do not know the person); ``support_id`` is the look-up's request id, in the logs.
    """

    def __init__(self, failures: list[SourceFailure], answered: list[str], support_id: str) -> None:
        self.failures = failures
        self.answered = answered
        self.support_id = support_id
        self.status = 503 if all(f.unavailable for f in failures) else 502
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        self.retry_after = max(waits) if waits else None
        super().__init__(self.detail)

    @property
    def platforms(self) -> list[str]:
        return [f.platform for f in self.failures]

    @property
    def detail(self) -> str:
        failed = "; ".join(f.describe(self.support_id) for f in self.failures)
        if self.answered:
            names = " and ".join(PLATFORM_NAMES.get(a, a) for a in self.answered)
            tail = f"{names} answered and did not find this fiscal code"
        else:
            tail = "no source could answer"
        return (
            f"{failed}: {tail}, so whether the person exists is unknown "
            f"(quote support id {self.support_id})"
        )


@dataclass(frozen=True)
class Requester:
    """Who asks, for the audit log and the ModI TrackingEvidence."""

    actor: str  # the API key or CLI user
    operator: str  # the person at the counter (TrackingEvidence userID)
    purpose: str  # motivoRichiesta: file or protocol reference


def _field(value: Any, source: str) -> dict[str, Any]:
    return {"value": value, "source": source}


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class ResidentLookup:
    """Built once per app; builds each tenant's clients and adapters on first use."""

    def __init__(self, services: HubServices, plugins: Plugins | None = None) -> None:
        self.services = services
        self.plugins = plugins if plugins is not None else services.plugins
        self._anpr: dict[str, AnprClient] = {}

    def anpr_for(self, tenant: TenantConfig) -> AnprClient | None:
        anpr = anpr_settings(tenant)
        if anpr is None or tenant.pdnd is None:
            return None
        if tenant.id not in self._anpr:
            pdnd = tenant.pdnd
            key_ref = pdnd.key

            def private_key() -> bytes:
                return key_ref.reveal().encode()

            client = PdndClient(
                self.services.session,
                pdnd.token_url,
                client_id=pdnd.client_id,
                kid=pdnd.kid or kid_for_private_key(private_key()),
                private_key=private_key,
                assertion_audience=pdnd.assertion_audience
                or assertion_audience_for(pdnd.token_url),
            )
            self._anpr[tenant.id] = AnprClient(
                self.services.session,
                anpr.base_url,
                modi=ModiCaller(client),
                purposes=pdnd.purposes,
                clock=self.services.clock,
            )
        return self._anpr[tenant.id]

    def registry_for(self, tenant: TenantConfig) -> RegistryAdapter | None:
        """The tenant's registry adapter (``services.adapters``: built once, closed with
        the services)."""
        try:
            adapter: RegistryAdapter | None = self.services.adapters.get(tenant, "registry")
        except AdapterNotInstalled as exc:
            raise LookupRefused(str(exc)) from None
        return adapter

    async def close(self) -> None:
        """Nothing of its own to release: the adapters belong to ``services.adapters``."""

    async def lookup(
        self, tenant_id: str, fiscal_code: str, who: Requester, *, household: bool = True
    ) -> dict[str, Any]:
        tenant = self.services.config.tenant(tenant_id)
        if tenant is None:
            raise LookupRefused(f"tenant {tenant_id!r} not found")
        cf = fiscal_code.strip().upper()
        reason = fiscal_codes.problem(cf)  # with the check character
        if reason is not None:
            raise LookupRefused(f"fiscal_code: {reason}")
        if not who.purpose.strip():
            raise LookupRefused("purpose is required (the file or protocol reference)")
        if not who.operator.strip():
            # ANPR's audit token names the operator (AuditContext.user_id): never blank
            raise LookupRefused("operator: must not be blank (who is at the counter)")
        anpr, registry = self.anpr_for(tenant), self.registry_for(tenant)
        if anpr is None and registry is None:
            raise LookupRefused(f"tenant {tenant_id!r} has neither ANPR nor a registry adapter")
        request_id = uuid.uuid4().hex
        used: list[str] = []
        outcome, detail = "error", ""
        try:
            result = await self._merge(tenant, cf, who, anpr, registry, household, used, request_id)
            outcome = "ok" if result["found"] else "not_found"
            detail = ",".join(sorted(k for k, v in result["fields"].items() if v is not None))
            return result
        except LookupFailed as exc:
            detail = "failed: " + ",".join(
                f"{f.platform}:{f.error}:{f.status or '-'}:{f.platform_id or '-'}"
                for f in exc.failures
            )
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}"
            raise
        finally:
            async with self.services.engine.begin() as conn:
                await audit.record(
                    conn,
                    audit.AuditEntry(
                        tenant_id=tenant_id,
                        actor=who.actor,
                        action="resident.lookup",
                        subject=cf[:32],
                        purpose=who.purpose[:200],
                        sources="+".join(used) or "none",
                        outcome=outcome,
                        detail=detail[:2000],
                        request_id=request_id,
                    ),
                    at=self.services.clock.now(),
                )

    async def _merge(
        self,
        tenant: TenantConfig,
        cf: str,
        who: Requester,
        anpr: AnprClient | None,
        registry: RegistryAdapter | None,
        household: bool,
        used: list[str],
        request_id: str,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = dict.fromkeys(
            (
                "id_anpr",
                "family_name",
                "given_name",
                "sex",
                "birth_date",
                "birth_place",
                "address",
                "municipality",
                "municipality_istat",
                "email",
                "phone",
                "family_id",
            )
        )
        members: list[dict[str, Any]] | None = None
        warnings: list[str] = []
        failures: list[SourceFailure] = []
        answered: list[str] = []  # sources that gave an answer (found or not)
        found = False
        settings = anpr_settings(tenant)
        if anpr is not None and settings is not None:
            context = AuditContext(
                user_id=who.operator, user_location=settings.user_location, loa=settings.loa
            )
            try:
                used.append(ANPR)
                id_anpr = await anpr.id_anpr(cf, purpose=who.purpose, audit=context)
                found = True
                fields["id_anpr"] = _field(id_anpr, ANPR)
                residences = await anpr.residence(id_anpr, purpose=who.purpose, audit=context)
                if residences:
                    r = residences[0]
                    fields["address"] = _field(r.address, ANPR)
                    fields["municipality"] = _field(r.municipality, ANPR)
                    fields["municipality_istat"] = _field(r.istat_code, ANPR)
                family = await anpr.family(id_anpr, purpose=who.purpose, audit=context)
                me = next((m for m in family if m.person.id_anpr == id_anpr), None)
                person = (
                    me.person
                    if me
                    else await anpr.personal_data(id_anpr, purpose=who.purpose, audit=context)
                )
                for name in ("family_name", "given_name", "sex", "birth_date"):
                    value = getattr(person, name)
                    if value is not None:
                        fields[name] = _field(_iso(value), ANPR)
                if person.birth_place is not None:
                    fields["birth_place"] = _field(person.birth_place.name, ANPR)
                if household:
                    members = [
                        {
                            "fiscal_code": m.person.fiscal_code,
                            "family_name": m.person.family_name,
                            "given_name": m.person.given_name,
                            "relationship": m.relationship,
                            "relationship_code": m.relationship_code,
                            "source": ANPR,
                        }
                        for m in family
                    ]
                answered.append(ANPR)
            except SubjectNotFound:
                answered.append(ANPR)
                warnings.append("ANPR does not know this fiscal code (EN122)")
            except ConnectorError as exc:
                failures.append(self._failed(tenant, exc, ANPR, request_id))
        if registry is not None:
            used.append(REGISTRY)
            try:
                record = await registry.lookup(cf)
                if record is not None:
                    found = True
                    self._fill(fields, record)
                    if household and members is None:
                        members = [
                            {
                                "fiscal_code": m.fiscal_code,
                                "family_name": m.family_name,
                                "given_name": m.given_name,
                                "relationship": m.relationship,
                                "relationship_code": None,
                                "source": REGISTRY,
                            }
                            for m in await registry.household(cf)
                        ]
                answered.append(REGISTRY)
            except (ConnectorError, OSError, RegistryDataError) as exc:
                failures.append(self._failed(tenant, exc, REGISTRY, request_id))
        if failures and not found:
            raise LookupFailed(failures, answered, request_id)
        for failure in failures:
            others = " and ".join(PLATFORM_NAMES.get(a, a) for a in answered) or "nobody"
            warnings.append(
                f"{failure.describe(request_id)}: {others} answered"
                + (" alone" if len(answered) == 1 else "")
            )
        return {
            "fiscal_code": cf,
            "found": found,
            "fields": fields,
            "household": members,
            "sources": list(used),
            "warnings": warnings,
            "failures": [f.view() for f in failures],
            "request_id": request_id,
        }

    @staticmethod
    def _failed(
        tenant: TenantConfig, exc: Exception, source: str, request_id: str
    ) -> SourceFailure:
        """The failure of one source, logged once with the support id (no personal data)."""
        failure = SourceFailure.of(exc, source)
        log.warning(
            "resident lookup %s: %s failed (%s)",
            request_id,
            failure.platform,
            failure.error,
            extra={
                "tenant": tenant.id,
                "support_id": request_id,
                "platform": failure.platform,
                "error": failure.error,
                "upstream_status": failure.status,
                "platform_id": failure.platform_id,
            },
        )
        return failure

    @staticmethod
    def _fill(fields: dict[str, Any], record: RegistryRecord) -> None:
        """Registry values only where ANPR gave nothing (see the precedence above)."""
        mapping = {
            "family_name": record.family_name,
            "given_name": record.given_name,
            "sex": record.sex,
            "birth_date": _iso(record.birth_date),
            "birth_place": record.birth_place,
            "address": record.address,
            "municipality_istat": record.municipality_istat,
            "email": record.email,
            "phone": record.phone,
            "family_id": record.family_id,
        }
        for name, value in mapping.items():
            if fields.get(name) is None and value is not None:
                fields[name] = _field(value, REGISTRY)


#: The app's ResidentLookup, made by the platform's ``hub_platform_setup``.
RESIDENTS = web.AppKey("residents", ResidentLookup)

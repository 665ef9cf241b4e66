"""Resident look-ups: ANPR (through PDND, ModI-signed and audited) merged with the comune's
own registry (an adapter), every field saying where it came from.

Precedence, field by field:

1. **ANPR** is the national registry of record: when it answers, its identity (names, sex,
   birth), residence and household win.
2. **The comune's registry** fills what ANPR does not give (e-mail, phone, the local family
   id) and answers alone when the tenant has no ANPR configured, when ANPR is unreachable,
   or when ANPR does not know the person (each case adds a warning to the answer).

Every look-up writes one audit entry (who, tenant, subject, purpose, sources, outcome),
also when it fails, before the answer leaves the hub.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sportello.adapters.registry.base import RegistryAdapter, RegistryRecord
from sportello.connectors.anpr.client import AnprClient
from sportello.connectors.anpr.errors import SubjectNotFound
from sportello.connectors.errors import ConnectorError
from sportello.connectors.pdnd.client import ModiCaller, PdndClient
from sportello.connectors.pdnd.environments import assertion_audience_for
from sportello.connectors.pdnd.keys import kid_for_private_key
from sportello.connectors.pdnd.modi import AuditContext

from . import audit
from .config import TenantConfig
from .plugins import Plugins
from .services import HubServices

ANPR, REGISTRY = "anpr", "registry"
FISCAL_CODE = re.compile(r"[A-Z0-9]{16}|\d{11}")


class LookupRefused(Exception):
    """The request cannot be served as asked (no source configured, bad fiscal code...)."""


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

    def __init__(self, services: HubServices, plugins: Plugins) -> None:
        self.services = services
        self.plugins = plugins
        self._anpr: dict[str, AnprClient] = {}
        self._registry: dict[str, RegistryAdapter] = {}

    def anpr_for(self, tenant: TenantConfig) -> AnprClient | None:
        if tenant.anpr is None or tenant.pdnd is None:
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
                tenant.anpr.base_url,
                modi=ModiCaller(client),
                purposes=pdnd.purposes,
                clock=self.services.clock,
            )
        return self._anpr[tenant.id]

    def registry_for(self, tenant: TenantConfig) -> RegistryAdapter | None:
        ref = tenant.adapters.get("registry")
        if ref is None:
            return None
        if tenant.id not in self._registry:
            classes = self.plugins.registry_adapters()
            if ref.plugin not in classes:
                raise LookupRefused(
                    f"registry adapter {ref.plugin!r} is not installed "
                    f"(installed: {', '.join(sorted(classes)) or 'none'})"
                )
            base = Path(self.services.config.source).resolve().parent
            self._registry[tenant.id] = classes[ref.plugin](ref.options, base_dir=base)
        return self._registry[tenant.id]

    async def close(self) -> None:
        for adapter in self._registry.values():
            await adapter.close()

    async def lookup(
        self, tenant_id: str, fiscal_code: str, who: Requester, *, household: bool = True
    ) -> dict[str, Any]:
        tenant = self.services.config.tenant(tenant_id)
        if tenant is None:
            raise LookupRefused(f"tenant {tenant_id!r} not found")
        cf = fiscal_code.strip().upper()
        if not FISCAL_CODE.fullmatch(cf):
            raise LookupRefused("fiscal_code: expected 16 letters and digits (or 11 digits)")
        if not who.purpose.strip():
            raise LookupRefused("purpose is required (the file or protocol reference)")
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
        found = False
        if anpr is not None and tenant.anpr is not None:
            context = AuditContext(
                user_id=who.operator, user_location=tenant.anpr.user_location, loa=tenant.anpr.loa
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
            except SubjectNotFound:
                warnings.append("ANPR does not know this fiscal code (EN122)")
            except ConnectorError as exc:
                warnings.append(
                    f"ANPR unavailable ({type(exc).__name__}"
                    + (f", support id {exc.request_id}" if exc.request_id else "")
                    + "): the comune's registry answered alone"
                )
        if registry is not None:
            used.append(REGISTRY)
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
        return {
            "fiscal_code": cf,
            "found": found,
            "fields": fields,
            "household": members,
            "sources": list(used),
            "warnings": warnings,
            "request_id": request_id,
        }

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

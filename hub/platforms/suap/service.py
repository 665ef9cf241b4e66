"""SUAP practices: read from the comune's back office through a SUAP adapter, shown to the
applicant through the API (audited), and announced when their status changes: an App IO
message to the applicant and a ``suap.practice.status`` webhook, queued in the same
transaction that moves the tenant's change-feed cursor, so a change is announced once.

The cursor moves by compare-and-set (``UPDATE ... WHERE last_seen = <the value read>``): of
two rounds that read the same cursor at once (two replicas, or a replica and
``sportello suap notify``) only the first to commit announces; the other queues nothing."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from sportello import audit
from sportello.adapters.suap.base import Practice, PracticeEvent, SuapAdapter
from sportello.config import TenantConfig
from sportello.connectors.io.models import MessageContent, NewMessage
from sportello.events import emit
from sportello.platforms.suap.settings import suap_settings
from sportello.platforms.suap.tables import suap_cursors
from sportello.plugins import Plugins
from sportello.services import HubServices
from sportello.tenant_adapters import AdapterNotInstalled

log = logging.getLogger("sportello.platforms.suap.service")


class SuapUnavailable(Exception):
    """The tenant has no SUAP adapter configured (or it is not installed)."""


def practice_view(p: Practice) -> dict[str, Any]:
    return p.model_dump(mode="json")


class SuapService:
    def __init__(self, services: HubServices, plugins: Plugins | None = None) -> None:
        self.services = services
        # a command's services have no plugins of their own: those their adapters load
        self.plugins: Plugins = plugins or services.plugins or services.adapters.plugins
        self._env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

    def adapter_for(self, tenant: TenantConfig) -> SuapAdapter:
        """The tenant's SUAP adapter (``services.adapters``: built once, closed with the
        services)."""
        try:
            adapter: SuapAdapter | None = self.services.adapters.get(tenant, "suap")
        except AdapterNotInstalled as exc:
            raise SuapUnavailable(
                f"SUAP adapter {exc.plugin!r} is not installed "
                f"(installed: {', '.join(exc.installed) or 'none'})"
            ) from None
        if adapter is None:
            raise SuapUnavailable(f"tenant {tenant.id!r} has no SUAP adapter configured")
        return adapter

    async def close(self) -> None:
        """Nothing of its own to release: the adapters belong to ``services.adapters``."""

    async def _audit(self, tenant_id: str, actor: str, action: str, subject: str, n: int) -> None:
        async with self.services.engine.begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=actor,
                    action=action,
                    subject=subject[:32],
                    purpose="SUAP practice status for its applicant",
                    sources="suap",
                    outcome="ok" if n else "not_found",
                    detail=f"{n} practice(s)",
                ),
                at=self.services.clock.now(),
            )

    async def practices(self, tenant: TenantConfig, applicant: str, actor: str) -> list[Practice]:
        found = await self.adapter_for(tenant).practices(applicant.upper())
        await self._audit(tenant.id, actor, "suap.practices", applicant.upper(), len(found))
        return found

    async def practice(
        self, tenant: TenantConfig, practice_id: str, actor: str
    ) -> dict[str, Any] | None:
        adapter = self.adapter_for(tenant)
        found = await adapter.practice(practice_id)
        if found is None:
            return None
        await self._audit(tenant.id, actor, "suap.practice", found.applicant_fiscal_code, 1)
        return {
            **practice_view(found),
            "timeline": [e.model_dump(mode="json") for e in await adapter.timeline(found.id)],
            "documents": [d.model_dump(mode="json") for d in await adapter.documents(found.id)],
        }

    def _message(
        self, tenant: TenantConfig, practice: Practice, event: PracticeEvent
    ) -> NewMessage | None:
        settings = suap_settings(tenant)
        if settings is None or settings.io_service is None:
            return None
        if not self.plugins.queues_messages():
            return None  # no App IO platform (disabled): reported as "io": false
        if len(practice.applicant_fiscal_code) != 16:
            return None  # a company (11 digits) has no App IO inbox
        context = {"practice": practice, "event": event}
        try:
            content = MessageContent(
                subject=self._env.from_string(settings.subject).render(context).strip(),
                markdown=self._env.from_string(settings.markdown).render(context).strip(),
            )
            return NewMessage(fiscal_code=practice.applicant_fiscal_code, content=content)
        except (TemplateError, ValidationError):
            return None  # reported through the webhook event's "io" field

    async def notify(self, tenant_id: str) -> dict[str, int]:
        """Announce every change since the tenant's cursor; the first run only sets it.

        A round that finds the cursor moved by another round since it read it announces
        nothing (all zeros): the other round announced those changes."""
        tenant = self.services.config.tenant(tenant_id)
        if tenant is None:
            raise SuapUnavailable(f"tenant {tenant_id!r} not found")
        adapter = self.adapter_for(tenant)
        now = self.services.clock.now()
        engine = self.services.engine
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(suap_cursors.c.last_seen).where(suap_cursors.c.tenant_id == tenant_id)
                )
            ).first()
        if row is None:  # the first round only records where the feed starts
            async with engine.begin() as conn:
                ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
                    suap_cursors
                )
                await conn.execute(
                    ins.values(tenant_id=tenant_id, last_seen=now).on_conflict_do_nothing(
                        index_elements=["tenant_id"]
                    )
                )
            return {"changes": 0, "messages": 0, "events": 0}
        changes = await adapter.changes_since(row.last_seen)
        if not changes:
            return {"changes": 0, "messages": 0, "events": 0}
        payloads: list[tuple[str, str, dict[str, Any]]] = []
        planned: list[NewMessage] = []
        for event in changes:
            practice = await adapter.practice(event.practice_id)
            if practice is None:
                continue
            message = self._message(tenant, practice, event)
            if message is not None:
                planned.append(message)
            payloads.append(
                (
                    tenant_id,
                    "suap.practice.status",
                    {
                        "practice_id": practice.id,
                        "status": event.status,
                        "at": event.at.isoformat(),
                        "io": message is not None,
                    },
                )
            )
        last = max(e.at for e in changes)
        settings = suap_settings(tenant)
        service_id = settings.io_service if settings else None
        async with engine.begin() as conn:
            # compare-and-set: only the round that still sees the cursor it read announces
            # (a replica's poller and `sportello suap notify` may read the same cursor)
            moved = await conn.execute(
                update(suap_cursors)
                .where(
                    suap_cursors.c.tenant_id == tenant_id,
                    suap_cursors.c.last_seen == row.last_seen,
                )
                .values(last_seen=last)
            )
            if moved.rowcount != 1:
                log.info(
                    "suap: changes already announced by another round", extra={"tenant": tenant_id}
                )
                return {"changes": 0, "messages": 0, "events": 0}
            for message in planned:  # only planned when the tenant has an io_service
                assert service_id is not None
                await self.plugins.queue_message(
                    conn, tenant_id=tenant_id, service_id=service_id, message=message, now=now
                )
            events = await emit(conn, self.services.config, payloads, now=now)
        return {"changes": len(changes), "messages": len(planned), "events": events}


#: The app's SuapService, made by the platform's ``hub_platform_setup``.
SUAP = web.AppKey("suap", SuapService)

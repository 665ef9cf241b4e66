"""Onboarding of the tenant's App IO services (``hub_onboard``, ``hub_tenant_checks``).

Nothing is made here: App IO issues each service's id and keys in its back office (Area
Riservata / Selfcare). Left to do: create each service there and put its id and keys where
``[[tenants.io.services]]`` references them. Checked: App IO accepts each service's key (a
profile read of a probe fiscal code: 200, 404 "no profile" or 403 "recipient forbidden" of
a draft service all prove the key and the service; 401 means the key is refused).
"""

from __future__ import annotations

from sportello.config import HubConfig, TenantConfig
from sportello.hookspecs import CheckContext, CheckFailed, OnboardStep, TenantCheck

from .settings import IoServiceSettings, io_settings

#: a well-formed fiscal code nobody is expected to have: the probe of the key check
PROBE_FISCAL_CODE = "AAAAAA00A00A000A"


def onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    io = io_settings(tenant)
    if io is None:
        return []
    if not io.services:
        return [
            OnboardStep(
                "io",
                "blocked",
                "no App IO service: create one in the App IO back office (Selfcare) and add "
                "[[tenants.io.services]] with its id and key",
            )
        ]
    out: list[OnboardStep] = []
    for svc in io.services:
        values = {"service_id": svc.id, "key": svc.key.describe(), "base_url": io.base_url}
        if svc.secondary_key is not None:
            values["secondary_key"] = svc.secondary_key.describe()
        out.append(
            OnboardStep(
                "io",
                "todo",
                f"service {svc.name or svc.id}: published in the App IO back office, with "
                "its primary key at the reference (App IO issues the keys)",
                values,
            )
        )
    return out


def _key_check(tenant: TenantConfig, svc: IoServiceSettings) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from sportello.connectors.errors import NotFound
        from sportello.connectors.io.client import IoClient
        from sportello.connectors.io.errors import RecipientForbidden, Unauthorized
        from sportello.connectors.retry import RetryPolicy

        io = io_settings(tenant)
        assert io is not None
        try:
            svc.key.reveal()
        except LookupError as exc:
            raise CheckFailed(f"key: {exc}") from None
        client = IoClient(
            ctx.session,
            io.base_url,
            primary_key=svc.key.reveal,
            secondary_key=svc.secondary_key.reveal if svc.secondary_key else None,
            retry=RetryPolicy(max_attempts=1),
        )
        try:
            await client.get_profile(PROBE_FISCAL_CODE)
        except Unauthorized:
            raise CheckFailed(f"App IO refuses the key of service {svc.id} (401)") from None
        except RecipientForbidden:
            return f"service {svc.id}: key accepted (a draft service: authorized recipients only)"
        except NotFound:
            pass
        return f"service {svc.id}: key accepted by App IO"

    return TenantCheck("io", f"service {svc.id}", run)


def tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck]:
    io = io_settings(tenant)
    return [] if io is None else [_key_check(tenant, s) for s in io.services]

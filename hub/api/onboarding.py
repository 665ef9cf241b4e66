"""The onboarding API (admin keys): onboard a tenant, read its readiness per platform
(``sportello.onboarding``; the CLI's ``tenants onboard`` and ``tenants status``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from sportello import onboarding
from sportello.api.core import PREFIX, _Problem, handles_problems, require_admin
from sportello.api.openapi import Query, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS, SESSION
from sportello.config import TenantConfig
from sportello.hookspecs import hookimpl


class OnboardStepView(BaseModel):
    state: Literal["made", "present", "todo", "blocked"] = Field(
        description="made now, present (kept), to do elsewhere, or blocked (fix the configuration)"
    )
    what: str
    values: dict[str, str] = Field(
        description="what to register or upload (URLs, ids, public keys, kid); secrets appear "
        "as their reference only"
    )


class CheckView(BaseModel):
    platform: str
    name: str
    ok: bool
    detail: str = Field(description="what was seen, or the reason of the failure")
    checked_at: datetime


class OnboardPlatform(BaseModel):
    steps: list[OnboardStepView]
    checks: list[CheckView]
    ready: bool = Field(description="nothing blocked and every check passed")


class OnboardingReport(BaseModel):
    tenant: str
    made: int = Field(description="how many items this run made (0 on a second run)")
    checked: bool = Field(description="whether the checks ran")
    platforms: dict[str, OnboardPlatform]


class PlatformReadiness(BaseModel):
    state: Literal["ready", "failing", "missing", "unchecked", "configured"]
    missing: list[str] = Field(description="what stops the platform (the readiness checks)")
    checks: list[CheckView] = Field(description="the last results, with their time")
    last_error: str | None = Field(description="the platform's latest outbox error")


class TenantReadiness(BaseModel):
    tenant: str
    platforms: dict[str, PlatformReadiness]
    last_error: str | None


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _Problem(400, "Bad Request", f"{name}: expected true or false")


def _tenant(request: web.Request) -> TenantConfig:
    require_admin(request)
    tenant_id = request.match_info["tenant_id"]
    tenant = request.app[CONFIG].tenant(tenant_id)
    if tenant is None:
        raise _Problem(404, "Not Found", f"tenant {tenant_id!r} not found")
    return tenant


@operation(
    "onboardTenant",
    "Make what the hub can make for the tenant (keys, certificates, secrets; never replacing "
    "one: a second run makes nothing), list what is left to do on each platform and with "
    "which values, and check what can be checked (admin key)",
    path={"tenant_id": str},
    query=(
        Query("dry_run", bool, "make nothing: show what would be made"),
        Query("check", bool, "ask the platforms (default true)"),
    ),
    responses={200: OnboardingReport},
    scope="admin",
)
@handles_problems
async def onboard_tenant(request: web.Request) -> web.StreamResponse:

    tenant = _tenant(request)
    dry_run, check = _flag(request, "dry_run", False), _flag(request, "check", True)
    app = request.app
    report = await onboarding.onboard_tenant(
        app[CONFIG],
        tenant,
        app[PLUGINS],
        engine=app[ENGINE],
        session=app[SESSION],
        now=app[CLOCK].now(),
        make=not dry_run,
        check=check,
    )
    return web.json_response(report)


@operation(
    "getTenantReadiness",
    "The tenant's readiness on each platform: ready, failing, missing what, its last checks "
    "and last outbox error (admin key; check=true asks the platforms now)",
    path={"tenant_id": str},
    query=(Query("check", bool, "run the checks now (default: the last results)"),),
    responses={200: TenantReadiness},
    scope="admin",
)
@handles_problems
async def tenant_readiness(request: web.Request) -> web.StreamResponse:

    tenant = _tenant(request)
    check = _flag(request, "check", False)
    app = request.app
    (row,) = await onboarding.status_rows(
        app[CONFIG],
        app[PLUGINS],
        engine=app[ENGINE],
        session=app[SESSION],
        now=app[CLOCK].now(),
        check=check,
        tenant_ids=[tenant.id],
    )
    return web.json_response(row)


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    """The onboarding routes (this module is the kernel plugin ``onboarding``: the API
    kernel's own routes cannot import it without a cycle)."""
    return [*routes()]


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/admin/tenants/{tenant_id}"
    return [
        web.post(f"{base}/onboard", onboard_tenant),
        web.get(f"{base}/readiness", tenant_readiness),
    ]

"""SPID and CIE login: the platform's hook implementations (a built-in plugin, named
``login``, registered like an outside one through ``sportello.platforms``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import HandlerFactory, hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table

    from sportello.config import HubConfig, TenantConfig
    from sportello.periodic import PeriodicTask
    from sportello.services import HubServices

    from .settings import LoginSettings

log = logging.getLogger("sportello.platforms.login")


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_settings() -> dict[str, type[BaseModel]]:
    from .settings import HUB_SECTIONS

    return dict(HUB_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import (
        login_codes,
        login_sessions,
        oidc_requests,
        oidc_sessions,
        oidc_trust_marks,
        saml_assertions,
        saml_requests,
    )

    return [
        saml_requests,
        saml_assertions,
        login_sessions,
        login_codes,
        oidc_requests,
        oidc_sessions,
        oidc_trust_marks,
    ]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .oidc_logout import REVOKE_KIND, oidc_revoke_handler

    # a token revocation the OP did not confirm at logout, retried
    return {REVOKE_KIND: oidc_revoke_handler}


@hookimpl
def hub_web_app(app: web.Application) -> None:
    from .returns import install
    from .routes import web_app

    install(app)

    web_app(app)


@hookimpl
def hub_web_routes() -> list[web.AbstractRouteDef]:
    from . import demo_app, oidc_federation, oidc_logout, oidc_routes, routes

    # the OIDC routes first: /t/{tenant}/oidc/login must not match /t/{tenant}/{kind}/login
    return [
        *oidc_routes.routes(),
        *oidc_logout.routes(),
        *oidc_federation.routes(),
        *routes.routes(),
        *demo_app.routes(),
    ]


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _setup(services, app)


@contextlib.asynccontextmanager
async def _setup(services: HubServices, app: web.Application) -> AsyncIterator[None]:
    """SAML logins (``login_ctx``) and the OpenID Connect relying parties (``oidc_ctx``)."""
    from .oidc_federation import federation_ctx
    from .oidc_routes import oidc_ctx
    from .routes import login_ctx

    async with (
        login_ctx(app),
        oidc_ctx(app, services.session),
        federation_ctx(app, services.session),
    ):
        yield


@hookimpl
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    from sportello.periodic import PeriodicTask

    tasks = _trust_mark_tasks(config, app)
    every = config.periodic.idp_registry_refresh_seconds
    if every is None:
        return tasks

    async def round_() -> None:
        from .routes import LOGIN

        count = await app[LOGIN].idps.refresh_registry(config.periodic.idp_registry_url)
        log.info("login: IdP registry refreshed", extra={"idps": count})

    # every replica refreshes its own copy (the cache is a local file): no lease
    return [*tasks, PeriodicTask("idps.registry", every, round_, exclusive=False)]


def _trust_mark_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    """Per tenant with OpenID Connect: its RP's trust marks renewed before they expire
    (leased: one replica asks the issuers; the result is shared through the database)."""
    from sportello.periodic import PeriodicTask

    from .settings import oidc_tenant_settings

    tasks = []
    for tenant in config.tenants:
        settings = oidc_tenant_settings(tenant)
        if settings is None or settings.trust_mark_refresh_seconds is None:
            continue

        def round_(tenant: TenantConfig = tenant) -> Any:
            return _refresh_trust_marks(app, config, tenant)

        tasks.append(
            PeriodicTask(
                f"oidc.trust_marks:{tenant.id}", settings.trust_mark_refresh_seconds, round_
            )
        )
    return tasks


async def _refresh_trust_marks(
    app: web.Application, config: HubConfig, tenant: TenantConfig
) -> None:
    from sportello.appkeys import CLOCK

    from .oidc_keys import OidcConfigError
    from .oidc_marks import refresh_trust_marks
    from .oidc_routes import OIDC

    service = app[OIDC]
    try:
        await refresh_trust_marks(
            service.store, service.resolver(tenant), config, tenant, app[CLOCK].now()
        )
    except OidcConfigError as exc:  # /readyz and `sportello config check` say it too
        log.warning("OIDC trust marks not checked: %s", exc, extra={"tenant": tenant.id})


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    service = None
    if app is not None:
        from .routes import LOGIN

        service = app.get(LOGIN)
    out: list[tuple[str, str]] = []
    from .settings import oidc_tenant_settings, saml_settings

    for kind in ("spid", "cie"):
        settings = saml_settings(tenant, kind)
        if settings is None:
            continue
        known = len(service.idps.all(tenant, kind)) if service is not None else None
        out += [(kind, p) for p in _login_problems(config, kind, settings, known)]
    if oidc_tenant_settings(tenant) is not None:
        out += [("oidc", p) for p in _oidc_problems(config, tenant)]
    return out


def _oidc_problems(config: HubConfig, tenant: TenantConfig) -> Iterator[str]:
    from .oidc_keys import OidcConfigError, read_keys, read_trust_marks, trust_anchor
    from .settings import oidc_tenant_settings

    settings = oidc_tenant_settings(tenant)
    assert settings is not None
    if config.server.public_url is None:
        yield "server.public_url is not set: the RP's entity ID would not be reachable"
    for check in (
        lambda: read_keys(settings.keys_dir),
        lambda: trust_anchor(settings),
        lambda: read_trust_marks(settings.keys_dir),
    ):
        try:
            check()
        except OidcConfigError as exc:
            yield str(exc)
    if not any(settings.providers.values()):
        yield "providers: no OpenID provider is listed for spid or cie"
    from .oidc_federation import intermediate_problems

    yield from intermediate_problems(config, tenant)


def _login_problems(
    config: HubConfig, kind: str, settings: LoginSettings, known: int | None
) -> Iterator[str]:
    """``known``: how many IdPs the running app trusts for the tenant (None: not running)."""
    from sportello.readiness import readable

    from .idps import REGISTRY_CACHE
    from .keys import LoginConfigError, read_keys

    if config.server.public_url is None:
        yield (
            "server.public_url is not set: the metadata and return URLs would name "
            f"http://{config.server.host}:{config.server.port}, which IdPs cannot reach"
        )
    dirs = [("keys_dir", settings.keys_dir)]
    if settings.aggregator is not None:
        dirs.append(("aggregator.keys_dir", settings.aggregator.keys_dir))
    for name, keys_dir in dirs:
        try:
            read_keys(keys_dir)
        except LoginConfigError as exc:
            yield f"{name}: {exc}"
        except (OSError, ValueError) as exc:
            yield f"{name}: {keys_dir}: unusable keys ({type(exc).__name__})"
    if known == 0:
        yield (
            "no IdP is known: list IdP metadata in idp_metadata, or set use_registry = true "
            "and run `sportello idps refresh`"
        )
    elif known is None:
        sources = list(settings.idp_metadata)
        uses_registry = settings.use_registry and kind == "spid"
        if not sources and not uses_registry:
            yield "no IdP list: set idp_metadata (files or URLs) or use_registry = true"
        if uses_registry and not sources and not REGISTRY_CACHE.exists():
            yield (
                f"use_registry: no cached IdP list at {REGISTRY_CACHE}: "
                "run `sportello idps refresh`"
            )
        for source in sources:
            if not source.startswith(("http://", "https://")):
                why = readable(Path(source))
                if why is not None:
                    yield f"idp_metadata: {why}"


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import idps_group, keys_group  # keys_group has `keys spid` and `keys oidc`

    return [keys_group, idps_group]


@hookimpl
def hub_demo_prepare(config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...]) -> HubConfig:
    """``sportello demo``: SPID/CIE keys for the demo tenants, the extra IdPs trusted."""
    from .keys import prepare_demo_logins
    from .oidc_keys import prepare_demo_oidc_tenants

    return prepare_demo_oidc_tenants(prepare_demo_logins(config, data_dir, trust_idps), data_dir)


@hookimpl
async def hub_demo_seed(app: web.Application) -> None:
    """``sportello demo``, once the sandboxes listen: each tenant's OpenID Connect RP is
    onboarded at the oidc sandbox's trust anchor (its JWKS copied, the RP registered, the
    trust marks written), so ``/t/demo/app`` offers CIE over OpenID Connect."""
    import aiohttp

    from sportello.appkeys import CONFIG

    from .oidc_keys import OidcConfigError, onboard_demo_oidc
    from .oidc_routes import OIDC

    try:
        async with aiohttp.ClientSession() as session:
            done = await onboard_demo_oidc(app[CONFIG], session)
    except (aiohttp.ClientError, OidcConfigError, OSError, ValueError) as exc:
        log.warning("demo: OpenID Connect onboarding failed (%s); OIDC logins will fail", exc)
        return
    service = app.get(OIDC)
    for tenant_id in done:  # the anchor's keys may be new: resolve chains afresh
        if service is not None:
            service.forget_chains(tenant_id)


@hookimpl
def hub_onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[Any]:
    from .onboard import onboard

    return onboard(config, tenant, make)


@hookimpl
def hub_tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[Any]:
    from .onboard import tenant_checks

    return tenant_checks(config, tenant)


@hookimpl
def hub_login_handoff(app: web.Application) -> Any:
    from .handoff import Handoff

    return Handoff(app)


@hookimpl
def hub_console_panels() -> list[Any]:
    from .console import PANELS

    return list(PANELS)

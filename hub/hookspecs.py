"""Every plugin hook of Sportello, in one file.

Hooks are synchronous, typed and prefixed ``hub_``. They return classes or factories; the
things they return do their I/O in ``async`` methods. Built-in connectors, adapters,
sandboxes and platforms (``sportello.platforms.<p>``) register through these same hooks
(entry-point group ``sportello``), exactly as a third-party plugin does: the kernel imports
no platform. Every hook here must be documented in ``docs/plugins.md`` with its exact
signature (a test checks it).

Lifecycle, in the order the web app runs it: ``hub_tables`` (when the schema is needed),
``hub_web_app`` and the route hooks while the app is built; at start-up, once the database
and the HTTP sessions are open, each ``hub_platform_setup`` context is entered (and exited
in reverse order at shutdown, after the outbox workers and periodic tasks have stopped);
then the outbox workers (``hub_outbox_handlers``) and ``hub_periodic_tasks`` run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime
    from pathlib import Path

    import click
    from aiohttp import web
    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.connectors.io.models import NewMessage

    from .config import HubConfig, TenantConfig
    from .outbox import Handler
    from .periodic import PeriodicTask
    from .services import HubServices
    from .web.area import AreaSource
    from .web.console import ConsolePanel
    from .web.handoff import LoginHandoff

PROJECT = "sportello"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class SandboxApp:
    """A sandbox twin of a national platform, served on ``base_port + port_offset``.

    ``factory()`` builds the app. When ``wants_peers`` is true it is called as
    ``factory(peers={name: base URL})`` instead, so a sandbox can find the others (the ANPR
    gateway needs the PDND token server's keys) on whatever ports they were given.
    ``demo_env`` holds the environment variables ``sportello demo`` sets (never overriding
    the user's) so that the demo configuration's secrets reach this sandbox (its demo keys).
    """

    name: str
    port_offset: int
    factory: Callable[..., web.Application]
    description: str = ""
    wants_peers: bool = False
    demo_env: Mapping[str, str] = field(default_factory=dict)

    def build(self, peers: dict[str, str]) -> web.Application:
        return self.factory(peers=peers) if self.wants_peers else self.factory()


def sandbox_urls(apps: list[SandboxApp], host: str, base_port: int) -> dict[str, str]:
    """Each sandbox's base URL for the given host and base port."""
    return {a.name: f"http://{host}:{base_port + a.port_offset}" for a in apps}


HandlerFactory = Callable[["HubServices"], "Handler"]


@hookspec
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    """Outbox kinds this plugin delivers, as ``{kind: factory}``.

    ``factory(services)`` is called once per worker and returns ``async handler(job)``.
    """


@hookspec
def hub_connectors() -> list[type[Any]]:
    """Connector classes (outbound clients of a national platform or of tenant systems)."""


@hookspec
def hub_registry_adapters() -> dict[str, type[Any]]:
    """Registry (anagrafe) adapter classes by name, chosen per tenant in the configuration."""


@hookspec
def hub_accounting_adapters() -> dict[str, type[Any]]:
    """Accounting (ragioneria) adapter classes by name, chosen per tenant."""


@hookspec
def hub_suap_adapters() -> dict[str, type[Any]]:
    """SUAP back-office adapter classes by name, chosen per tenant."""


@dataclass(frozen=True)
class AdapterKind:
    """A kind of tenant adapter (``[tenants.adapters.<kind>]``) declared by a platform, beside
    the kernel's own (registry, accounting, suap): ``contract`` is the ``Protocol`` its
    adapters follow; their classes come from ``hub_adapters``."""

    contract: type[Any]
    description: str = ""


@hookspec
def hub_adapter_kinds() -> dict[str, AdapterKind]:
    """The adapter kinds this plugin declares, by name (e.g. ``booking``: an agenda)."""


@hookspec
def hub_adapters() -> dict[str, dict[str, type[Any]]]:
    """Adapter classes of declared kinds, as ``{kind: {name: class}}``, built per tenant as
    ``cls(options, base_dir=...)``."""


@hookspec
def hub_campaign_sources() -> dict[str, type[Any]]:
    """App IO campaign sources by name: classes built as ``cls(options, base_dir=...)`` whose
    ``async rows()`` yields mappings with the campaign columns (``fiscal_code``,
    ``expedition_date``, ``due_date``, ``notice_number``, ``amount``) and template fields."""


@hookspec
def hub_send_sources() -> dict[str, type[Any]]:
    """SEND notification sources by name (fines, tax assessments from the comune's software):
    classes built as ``cls(options, base_dir=...)`` with a ``label`` (named in row errors) and
    ``async rows()`` yielding ``(row_number, mapping)`` with the notification columns
    (``paProtocolNumber``, ``subject``, ``taxonomyCode``, ``document``, the recipient's and
    the payment's; docs/send.md). File-level problems raise ``ValueError``."""


@hookspec
def hub_sandbox_apps() -> list[SandboxApp]:
    """Sandbox apps that ``sportello sandbox`` and ``sportello demo`` start."""


@hookspec
def hub_web_routes() -> list[web.AbstractRouteDef]:
    """Routes this plugin adds to the hub's web app (inbound endpoints, pages)."""


@hookspec
def hub_cli_commands() -> list[click.Command]:
    """Extra ``sportello`` sub-commands."""


@hookspec
def hub_plugins() -> dict[str, object]:
    """Further plugins this plugin brings, as ``{name: module or object}``.

    Each is registered under its name, like an entry point (``SPORTELLO_DISABLE_PLUGINS``
    and ``[plugins] disabled`` block it by that name). ``sportello.platforms`` lists the
    built-in platforms this way.
    """


@hookspec
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None] | None:
    """Start what this plugin needs in the web app; return an async context manager.

    Called at start-up, once the database and the HTTP sessions are open (``services``:
    engine, config, clock, sessions, plugins, tenant adapters). The kernel enters the
    context then and exits it at shutdown, in reverse order of entry, after the outbox
    workers and the periodic tasks have stopped: close there what you opened. Keep the
    objects you build under your own ``web.AppKey`` on ``app``. None: nothing to start.
    """


@hookspec
def hub_web_app(app: web.Application) -> None:
    """Adjust the web app while it is built, before it is frozen: response signals
    (``app.on_response_prepare``), sub-apps. Not for routes (``hub_web_routes``,
    ``hub_api_routes``) nor for resources (``hub_platform_setup``)."""


@hookspec
def hub_api_routes() -> list[web.AbstractRouteDef]:
    """REST API routes under ``/api/v1`` (API-key authentication applies to them, and the
    OpenAPI document must describe each one)."""


@hookspec
def hub_migration_locations() -> list[Path]:
    """Folders of Alembic revision files this plugin ships (its tables' migrations).

    Each folder is a branch of its own: its first revision has ``down_revision = None``,
    ``branch_labels = ("<plugin>",)`` and ``depends_on`` the kernel revision it needs. The
    hub upgrades every branch (``heads``). The built-in platforms' older tables are in the
    kernel's chain (``migrations/versions``, 0001 onwards), kept there for existing
    databases."""


@hookspec
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    """The ``[tenants.<name>]`` sections this plugin reads, as ``{name: pydantic model}``
    (derive the model from ``sportello.config.ConfigModel``: unknown fields refused).

    The kernel builds the configuration model from every enabled plugin's sections: each is
    optional (``tenant.<name>`` is None when absent), validation errors name its path
    (``tenants[0].<name>.<field>``) and a section no plugin declares is refused. Typed code
    reads it through an accessor of the platform's ``settings.py``."""


@hookspec
def hub_settings() -> dict[str, type[BaseModel]]:
    """Top-level sections of the configuration this plugin reads (``[idps]`` of login), as
    ``{name: pydantic model}``; present with its defaults when every field has one, else
    None when absent (``config.section(name)``)."""


@hookspec
def hub_tables() -> list[Table]:
    """SQLAlchemy tables this plugin keeps, defined on ``sportello.schema.metadata``.

    The migrations and the schema-against-migrations test load every plugin's tables
    through this hook; the plugin still ships the Alembic migration that creates them.
    """


@hookspec
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    """Periodic tasks to run in the web app (``sportello.periodic.PeriodicTask``).

    Called while the app starts, before any ``hub_platform_setup`` has run: a task's round
    reaches what it needs through ``app`` when it runs. An exclusive task (the default)
    runs once across replicas under a database lease, and only where the outbox workers run;
    ``exclusive=False`` runs in every replica.
    """


@hookspec
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    """What stops one of this plugin's platforms from working for ``tenant``, as
    ``(platform, problem)`` pairs (``sportello config check`` and ``/readyz``).

    Cheap checks only (files, environment variables, no network): ``/readyz`` runs them
    on every probe. ``app`` is the running web app (None in the CLI).
    """


# --- platforms meeting through the kernel ---------------------------------------------------
# A platform never imports another (docs/architecture.md "Layers and import rules"): what one
# offers the others goes through these hooks. Each returns an awaitable (write the hook
# implementation as ``async def``); ``sportello.plugins.Plugins`` awaits it.


@dataclass(frozen=True, slots=True)
class KnownNotice:
    """A notice of a debt position the hub keeps: what a message about it carries."""

    amount: int  # cents
    due: datetime | None
    debtor: str  # the debtor's fiscal code
    payable: bool  # still payable (not paid, expired or cancelled)


@hookspec
def hub_known_notices(
    services: HubServices, tenant_id: str, notice_numbers: frozenset[str]
) -> Awaitable[dict[str, KnownNotice]] | None:
    """The notices among ``notice_numbers`` whose debt positions this plugin keeps for the
    tenant, by notice number (App IO campaigns take their payment data from them). None or
    an empty mapping: none."""


@hookspec(firstresult=True)
def hub_queue_message(
    conn: AsyncConnection,
    tenant_id: str,
    service_id: str,
    message: NewMessage,
    now: datetime,
    expedition_at: datetime | None,
) -> Awaitable[int] | None:
    """Queue one App IO message in the caller's transaction ``conn``, from the tenant's
    service ``service_id``, to go at ``expedition_at`` (None: now); the awaitable gives the
    message's id. The first plugin that returns an awaitable queues it (built-in: ``io``)."""


@dataclass(frozen=True, slots=True)
class NoticeDocument:
    """The payment notice (avviso) of a notice whose debt position a plugin keeps, for a
    SEND notification's payment attachment."""

    pdf: bytes
    creditor_tax_id: str  # the creditor's fiscal code (SEND's ``creditorTaxId``)
    debtor: str  # the debtor's fiscal code
    payable: bool  # still payable (not paid, expired or cancelled)
    station: bool  # the hub's EC station answers the Node for it (applyCost is served there)
    #: the outbox lock key of the position's pending work where the Node reads it (GPD mode:
    #: its creation in GPD); a job holding it runs after that work. None: nothing to wait for
    lock: str | None = None


@hookspec(firstresult=True)
def hub_notice_document(
    services: HubServices, tenant_id: str, notice_number: str, actor: str
) -> Awaitable[NoticeDocument | None] | None:
    """The payment notice PDF of ``notice_number`` when this plugin keeps its position for
    the tenant (the read is audited as ``actor``'s), else an awaitable of None. The first
    plugin that returns an awaitable answers (built-in: ``pagopa``)."""


@dataclass(frozen=True, slots=True)
class NoticeRequest:
    """A debt position another platform asks the hub to create (a SEND fine's notice): one
    payment option of ``amount`` cents due ``due``, one transfer to the creditor's ``iban``.
    ``reference`` is stable per tenant (SEND: ``paProtocolNumber``): asking again with the
    same reference and content gives the same position, never a second one."""

    reference: str
    debtor: str  # the debtor's fiscal code
    debtor_type: str  # "F" (a person) or "G" (a legal person)
    full_name: str
    amount: int  # cents
    due: datetime
    description: str
    iban: str
    category: str  # the transfer's taxonomy code (e.g. 9/0101108TS/)


@dataclass(frozen=True, slots=True)
class CreatedNotice:
    """The notice of the position :class:`NoticeRequest` created (or found again)."""

    notice_number: str
    document: NoticeDocument


class NoticeRefused(Exception):
    """The position cannot be created (no pagoPA for the tenant, a bad field, the reference
    taken by other content); ``field`` names the request's field when one is at fault."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.field = detail, field


@hookspec(firstresult=True)
def hub_create_notice(
    conn: AsyncConnection,
    services: HubServices,
    tenant_id: str,
    request: NoticeRequest,
    actor: str,
) -> Awaitable[CreatedNotice] | None:
    """Create the tenant's debt position of ``request`` in the caller's transaction ``conn``
    (rolled back with it: nothing half made) and give its notice with the notice PDF (the
    read audited as ``actor``'s); raises :class:`NoticeRefused`. The first plugin that
    returns an awaitable answers (built-in: ``pagopa``)."""


class NoticeSurchargeUnavailable(Exception):
    """The amount to add to a notice cannot be known now (SEND's price API failed): the
    station answers PAA_SYSTEM_ERROR so the PSP retries, never a wrong amount."""


@hookspec(firstresult=True)
def hub_notice_surcharge(
    app: web.Application, tenant_id: str, notice_number: str
) -> Awaitable[int | None] | None:
    """Cents to add to the amount of the tenant's notice ``notice_number`` when the Node asks
    for it (a SEND notification with ``applyCost``: SEND's current notification cost), or an
    awaitable of None for no surcharge; raises ``NoticeSurchargeUnavailable`` when the
    amount cannot be known. The first plugin that returns an awaitable answers (built-in:
    ``send``)."""


@hookspec
def hub_notice_paid(
    conn: AsyncConnection,
    tenant_id: str,
    notice_number: str,
    creditor_tax_id: str,
    amount: int,
    paid_at: datetime,
    now: datetime,
) -> Awaitable[None] | None:
    """A notice of the tenant was paid: its receipt (``amount`` cents, paid at ``paid_at``)
    is being stored in the caller's transaction ``conn``; act on it in that transaction
    (queue outbox work, never call out). Every plugin's awaitable is awaited (built-in:
    ``send`` queues the payment event for SEND)."""


@hookspec(firstresult=True)
def hub_login_handoff(app: web.Application) -> LoginHandoff | None:
    """The login platform's service for the hub's own pages (front office, console): the
    tenant's login buttons and the one-time code exchange (:mod:`sportello.web.handoff`).
    None: no login platform is enabled."""


@hookspec
def hub_login_return_paths() -> list[str]:
    """Paths of the hub's own pages that receive login codes, with ``{tenant}`` for the
    tenant's id (e.g. ``/t/{tenant}/sportello/accesso``): the login platform accepts them
    as ``return_to`` on the hub's public URL, besides each tenant's ``return_urls``."""


@hookspec
def hub_personal_area() -> list[AreaSource]:
    """This plugin's sections of the citizen's personal area (:mod:`sportello.web.area`):
    what it holds for one fiscal code (payments, practices, appointments, messages...)."""


@hookspec(firstresult=True)
def hub_web_site(tenant: TenantConfig) -> Mapping[str, Any] | None:
    """The header and footer of the citizen's pages of ``tenant`` (:mod:`sportello.web.site`):
    the comune's name, logo, site and the front office's menu, for every platform's pages
    (booking, requests...). None: the platform has nothing for this tenant. The first
    plugin that answers wins (built-in: ``frontoffice``)."""


@hookspec
def hub_console_panels() -> list[ConsolePanel]:
    """This plugin's panels of the operator console (:mod:`sportello.web.console`): what it
    holds for one tenant (positions, receipts, campaigns, notifications, bookings) as a
    table or a chart, read with ``await panel.rows(app, tenant_id, filters)``."""


@hookspec
def hub_demo_prepare(
    config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...]
) -> HubConfig | None:
    """``sportello demo``, before the web app is built: the demo configuration with what
    this plugin needs made under ``data_dir`` (keys made on the first run), or None to keep
    it. Each plugin receives the configuration the previous one returned."""


@hookspec
def hub_demo_pdnd_purposes(config: HubConfig, tenant: TenantConfig) -> dict[str, str] | None:
    """``sportello demo``, once the sandboxes listen: the PDND purposes this plugin's
    platforms use for ``tenant``, as ``{purposeId: audience}`` (the ``aud`` of the e-service
    that purpose reaches). The kernel registers the tenant's ``[tenants.pdnd]`` client with
    the PDND sandbox once, with every plugin's purposes."""


@hookspec
def hub_demo_seed(app: web.Application) -> Awaitable[object] | None:
    """``sportello demo``, once the hub and every sandbox listen: seed this plugin's demo
    data (``app`` is the running web app). Failures are logged, never raised."""


# --- onboarding and readiness checks (sportello tenants onboard / status) -------------------


@dataclass(frozen=True, slots=True)
class OnboardStep:
    """One line of a tenant's onboarding on ``platform``.

    ``state``: ``made`` (the hub made it in this run), ``present`` (it was there: kept as
    is, never overwritten), ``todo`` (someone must do it elsewhere, with ``values``: a URL to
    register, a public key and its kid to upload...) or ``blocked`` (the hub cannot make it
    as configured; ``what`` says how to fix the configuration). ``values`` never hold a
    secret: a private key or a shared secret appears as its reference (``file:...``)."""

    platform: str
    state: str  # made | present | todo | blocked
    what: str
    values: Mapping[str, str] = field(default_factory=dict)


class CheckFailed(Exception):
    """A tenant check failed; ``str()`` names the reason (never a secret)."""


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a tenant check may use: the configuration, the shared HTTP session, the time."""

    config: HubConfig
    session: Any  # aiohttp.ClientSession
    now: datetime


@dataclass(frozen=True, slots=True)
class TenantCheck:
    """One check that asks a platform (or the hub's own public routes) whether the tenant is
    ready there. ``run(ctx)`` returns a short detail on success and raises
    :class:`CheckFailed` with the reason otherwise (other exceptions are reported by type)."""

    platform: str
    name: str
    run: Callable[[CheckContext], Awaitable[str]]


@hookspec
def hub_onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep] | None:
    """The tenant's onboarding on this plugin's platforms: with ``make`` the plugin first
    makes what the hub can make where the tenant's configuration references it (keys and
    certificates under ``keys_dir``, key files of ``{file = ...}`` references; mode 0600;
    never replacing one that exists), then lists what is left to do elsewhere and with
    which values. Without ``make`` nothing is written. None: nothing to onboard."""


@hookspec
def hub_tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck] | None:
    """Checks of the tenant's readiness on this plugin's platforms that ask the platform
    (network allowed: run by ``sportello tenants onboard``, ``tenants status --check`` and
    the onboarding API, never by ``/readyz``). None: nothing to check."""

"""Onboarding a tenant and asking the platforms whether it is ready there.

``sportello tenants onboard ID`` and ``POST /api/v1/admin/tenants/{id}/onboard`` ask every
plugin's ``hub_onboard``: each makes what the hub can make where the tenant's configuration
references it (keys and certificates, key files; mode 0600; an existing one is never
replaced, so a second run makes nothing) and lists what someone must still do elsewhere,
with the values to use. Then each plugin's ``hub_tenant_checks`` run (the platforms asked
over the network, each under a time limit) and their results are stored in
``tenant_checks``: ``sportello tenants status`` shows them with the time of the check, and
``--check`` runs them again.

The kernel knows no platform: it makes only what its own sections reference (the secrets
of ``[[tenants.webhooks]]``) and reads the rest through the hooks.
"""

from __future__ import annotations

import asyncio
import secrets as _random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .config import HubConfig, SecretRef, TenantConfig
from .hookspecs import CheckContext, CheckFailed, OnboardStep, TenantCheck
from .schema import outbox, tenant_checks
from .secrets import master_keys, write_secret_file

#: seconds each check may take before it counts as failed
CHECK_TIMEOUT = 15.0
#: the longest detail kept for a check (an upstream error body is cut there)
DETAIL_MAX = 300


def make_secret_file(ref: SecretRef | None, *, make: bool, size: int = 32) -> str:
    """``made``, ``present`` or ``blocked`` for a random secret at a ``{file = ...}``
    reference: written (mode 0600, encrypted with the master key when one is set) only when
    ``make`` and no file is there."""
    if ref is None:
        return "blocked"
    if ref.file is None:
        try:
            return "present" if ref.reveal().strip() else "blocked"
        except LookupError:
            return "blocked"
    if ref.file.exists():
        return "present"
    if not make:
        return "todo"
    ref.file.parent.mkdir(parents=True, exist_ok=True)
    value = _random.token_urlsafe(size).encode("ascii")
    write_secret_file(ref.file, value, encrypted=bool(master_keys()))
    return "made"


def _webhook_steps(tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    out: list[OnboardStep] = []
    for i, hook in enumerate(tenant.webhooks):
        where = f"webhooks[{i}].secret"
        if hook.secret is None:
            out.append(
                OnboardStep(
                    "webhooks",
                    "todo",
                    f"{hook.url} receives unsigned events: add {where} = "
                    '{ file = "..." } and onboard again',
                    {"url": hook.url},
                )
            )
            continue
        state = make_secret_file(hook.secret, make=make)
        ref = hook.secret.describe()
        if state == "blocked":
            what = f"{where} ({ref}) is not set: set it, or use a file reference the hub fills"
            out.append(OnboardStep("webhooks", "blocked", what, {"secret": ref}))
            continue
        label = {
            "made": "signing secret made",
            "present": "signing secret (kept)",
            "todo": "signing secret to make (onboard without --dry-run)",
        }[state]
        out.append(OnboardStep("webhooks", state, f"{label} for {hook.url}", {"secret": ref}))
        out.append(
            OnboardStep(
                "webhooks",
                "todo",
                "give the signing secret to the system at the URL: it checks the "
                "Sportello-Signature header (HMAC-SHA256) of each event",
                {"url": hook.url, "secret": ref, "events": ", ".join(hook.events)},
            )
        )
    return out


#: one onboarding at a time in this process: each step looks for its file and writes it
#: when missing, so two runs at once (the API called twice) would both write it, and the
#: second would replace a key the first had reported (or fail on the first's temporary file)
_STEPS_LOCK = threading.Lock()


def steps(
    config: HubConfig, tenant: TenantConfig, plugins: Any, *, make: bool
) -> list[OnboardStep]:
    """Every onboarding step of the tenant: the kernel's (webhooks) and each plugin's."""
    with _STEPS_LOCK:
        out = _webhook_steps(tenant, make)
        hook = plugins.pm.hook.hub_onboard
        for group in reversed(hook(config=config, tenant=tenant, make=make)):
            out.extend(group or [])
        return out


def checks(config: HubConfig, tenant: TenantConfig, plugins: Any) -> list[TenantCheck]:
    """Every check of the tenant's readiness the plugins offer."""
    out: list[TenantCheck] = []
    for group in reversed(plugins.pm.hook.hub_tenant_checks(config=config, tenant=tenant)):
        out.extend(group or [])
    return out


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check of one tenant."""

    tenant_id: str
    platform: str
    name: str
    ok: bool
    detail: str
    checked_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "checked_at": self.checked_at.isoformat(),
        }


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


async def _one(
    tenant_id: str, check: TenantCheck, ctx: CheckContext, seconds: float
) -> CheckResult:
    try:
        async with asyncio.timeout(seconds):
            detail, ok = await check.run(ctx), True
    except CheckFailed as exc:
        detail, ok = str(exc), False
    except TimeoutError:
        detail, ok = f"no answer within {seconds:g} s", False
    except Exception as exc:  # a connector's error: its type and message name the reason
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return CheckResult(tenant_id, check.platform, check.name, ok, _short(detail), ctx.now)


async def run_checks(
    config: HubConfig,
    tenant: TenantConfig,
    plugins: Any,
    *,
    session: Any,
    now: datetime,
    seconds: float = CHECK_TIMEOUT,
) -> list[CheckResult]:
    """Run the tenant's checks concurrently, each under ``seconds``."""
    ctx = CheckContext(config=config, session=session, now=now)
    todo = checks(config, tenant, plugins)
    return list(await asyncio.gather(*(_one(tenant.id, c, ctx, seconds) for c in todo)))


async def save_results(conn: AsyncConnection, tenant_id: str, results: list[CheckResult]) -> None:
    """Keep ``results`` as the tenant's latest (the previous ones are replaced)."""
    await conn.execute(delete(tenant_checks).where(tenant_checks.c.tenant_id == tenant_id))
    if results:
        await conn.execute(
            insert(tenant_checks),
            [
                {
                    "tenant_id": r.tenant_id,
                    "platform": r.platform,
                    "name": r.name,
                    "ok": r.ok,
                    "detail": r.detail,
                    "checked_at": r.checked_at,
                }
                for r in results
            ],
        )


async def store_results(engine: Any, tenant_id: str, results: list[CheckResult]) -> None:
    """:func:`save_results` in a transaction of its own, again when a run of the same
    tenant's checks committed in between (both inserted the same rows: a duplicate key)."""
    for attempt in range(50):
        try:
            async with engine.begin() as conn:
                await save_results(conn, tenant_id, results)
            return
        except IntegrityError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.01 * (attempt % 5))


async def load_results(
    conn: AsyncConnection, tenant_ids: Iterable[str] | None = None
) -> dict[str, list[CheckResult]]:
    """The latest stored results, by tenant."""
    query = select(tenant_checks).order_by(
        tenant_checks.c.tenant_id, tenant_checks.c.platform, tenant_checks.c.name
    )
    if tenant_ids is not None:
        query = query.where(tenant_checks.c.tenant_id.in_(list(tenant_ids)))
    out: dict[str, list[CheckResult]] = {}
    for r in await conn.execute(query):
        out.setdefault(r.tenant_id, []).append(
            CheckResult(r.tenant_id, r.platform, r.name, r.ok, r.detail, r.checked_at)
        )
    return out


def platform_of_kind(kind: str) -> str:
    """The platform an outbox kind belongs to (``io.message`` -> ``io``, ``webhook`` ->
    ``webhooks``)."""
    head = kind.split(".", 1)[0]
    return "webhooks" if head == "webhook" else head


async def last_errors(
    conn: AsyncConnection, tenant_ids: Iterable[str] | None = None
) -> dict[str, dict[str, str]]:
    """The latest outbox error still pending or failed, by tenant and platform."""
    query = (
        select(outbox.c.tenant_id, outbox.c.kind, outbox.c.last_error, outbox.c.updated_at)
        .where(outbox.c.last_error.is_not(None), outbox.c.status.in_(("pending", "failed")))
        .order_by(outbox.c.updated_at.desc())
        .limit(10_000)
    )
    if tenant_ids is not None:
        query = query.where(outbox.c.tenant_id.in_(list(tenant_ids)))
    out: dict[str, dict[str, str]] = {}
    for r in await conn.execute(query):
        when = r.updated_at.strftime("%Y-%m-%d %H:%M:%S")
        text = f"{when} {r.kind}: {_short(r.last_error)[:120]}"
        out.setdefault(r.tenant_id, {}).setdefault(platform_of_kind(r.kind), text)
    return out


def platform_status(
    tenant: TenantConfig,
    problems: Iterable[Any],
    results: Iterable[CheckResult],
    errors: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """One tenant's row of ``tenants status``: for each configured platform (and each one
    with a problem, a check or an error) its state, what is missing (the readiness
    problems), its checks with their time, and its last outbox error.

    State: ``missing`` (a readiness problem), ``failing`` (a check failed), ``ready``
    (checked, every check passed), ``unchecked`` (nothing missing, no check run yet) or
    ``configured`` (nothing missing, no check exists for it)."""
    cells: dict[str, dict[str, Any]] = {}

    def cell(name: str) -> dict[str, Any]:
        return cells.setdefault(
            name, {"state": "", "missing": [], "checks": [], "last_error": None}
        )

    for name in tenant.sections():
        cell(name)
    if tenant.webhooks:
        cell("webhooks")
    for p in problems:
        cell(p.platform)["missing"].append(p.problem)
    for r in results:
        cell(r.platform)["checks"].append(r.view())
    for name, text in errors.items():
        cell(name)["last_error"] = text
    for c in cells.values():
        if c["missing"]:
            c["state"] = "missing"
        elif any(not k["ok"] for k in c["checks"]):
            c["state"] = "failing"
        elif c["checks"]:
            c["state"] = "ready"
        else:
            c["state"] = "unchecked"
    return dict(sorted(cells.items()))


def mark_uncheckable(
    cells: dict[str, dict[str, Any]], checkable: set[str]
) -> dict[str, dict[str, Any]]:
    """``configured`` for the platforms no check exists for (nothing to ask them)."""
    for name, c in cells.items():
        if c["state"] == "unchecked" and name not in checkable:
            c["state"] = "configured"
    return cells


def report(
    tenant: TenantConfig, made: list[OnboardStep], results: list[CheckResult] | None
) -> dict[str, Any]:
    """The onboarding report (CLI ``--json`` and the API): per platform, its steps and the
    results of its checks (None: not run)."""
    platforms: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return platforms.setdefault(name, {"steps": [], "checks": []})

    for s in made:
        entry(s.platform)["steps"].append(
            {"state": s.state, "what": s.what, "values": dict(s.values)}
        )
    for r in results or []:
        entry(r.platform)["checks"].append(r.view())
    for p in platforms.values():
        # what is left to do elsewhere cannot be seen from here: the checks say if it is done
        p["ready"] = not any(s["state"] == "blocked" for s in p["steps"]) and all(
            c["ok"] for c in p["checks"]
        )
    return {
        "tenant": tenant.id,
        "made": sum(1 for s in made if s.state == "made"),
        "checked": results is not None,
        "platforms": dict(sorted(platforms.items())),
    }


async def onboard_tenant(
    config: HubConfig,
    tenant: TenantConfig,
    plugins: Any,
    *,
    engine: Any,
    session: Any,
    now: datetime,
    make: bool = True,
    check: bool = True,
) -> dict[str, Any]:
    """Onboard ``tenant`` (:func:`steps`, in a thread: making keys takes a while), run its
    checks and keep their results; the report of :func:`report`."""
    made = await asyncio.to_thread(steps, config, tenant, plugins, make=make)
    results = None
    if check:
        results = await run_checks(config, tenant, plugins, session=session, now=now)
        await store_results(engine, tenant.id, results)
    return report(tenant, made, results)


async def status_rows(
    config: HubConfig,
    plugins: Any,
    *,
    engine: Any,
    session: Any = None,
    now: datetime | None = None,
    check: bool = False,
    tenant_ids: Iterable[str] | None = None,
    concurrency: int = 8,
) -> list[dict[str, Any]]:
    """``sportello tenants status``: one row per tenant, each platform's state, what is
    missing (the readiness problems), its checks (run now with ``check``, else the stored
    results with their time) and its last outbox error."""
    from .db import reading
    from .readiness import installed_adapters, tenant_problems

    wanted = set(tenant_ids) if tenant_ids is not None else None
    tenants = [t for t in config.tenants if wanted is None or t.id in wanted]
    if check:
        assert session is not None and now is not None
        gate = asyncio.Semaphore(concurrency)

        async def one(t: TenantConfig) -> None:
            async with gate:
                results = await run_checks(config, t, plugins, session=session, now=now)
            await store_results(engine, t.id, results)

        await asyncio.gather(*(one(t) for t in tenants))
    ids = [t.id for t in tenants]
    async with reading(engine) as conn:
        stored = await load_results(conn, ids)
        errors = await last_errors(conn, ids)
    installed = installed_adapters(plugins)
    rows = []
    for t in tenants:
        problems = tenant_problems(config, t, installed=installed, plugins=plugins)
        cells = platform_status(t, problems, stored.get(t.id, []), errors.get(t.id, {}))
        mark_uncheckable(cells, {c.platform for c in checks(config, t, plugins)})
        latest = max(errors.get(t.id, {}).values(), default=None)
        rows.append({"tenant": t.id, "platforms": cells, "last_error": latest})
    return rows

"""What stops a configured platform from working, per tenant and per platform.

``sportello config check`` and ``/readyz`` both ask :func:`config_problems`: a tenant's SPID
or CIE login without its keys or any IdP, a secret whose environment variable or file is
missing, PDND without the purposes ANPR look-ups need, an adapter plugin that is not
installed or whose file cannot be read... Each problem names the tenant, the platform and
what to do; nothing here prints a secret value.

The checks are cheap (files and environment variables, no network), so ``/readyz`` runs
them on every probe and reports a problem as long as it lasts, and only then.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .config import HubConfig, LoginSettings, SecretRef, TenantConfig

#: The ANPR e-services a resident look-up calls (each needs a PDND purpose).
LOOKUP_SERVICES = ("C030", "C020", "C021")


@dataclass(frozen=True)
class Problem:
    """One thing that stops ``platform`` from working for ``tenant`` (None: the whole hub)."""

    tenant: str | None
    platform: str
    problem: str

    def view(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "platform": self.platform, "problem": self.problem}

    def __str__(self) -> str:
        where = f"tenant {self.tenant}: " if self.tenant else ""
        return f"{where}{self.platform}: {self.problem}"


def _secrets(model: Any, path: str) -> Iterator[tuple[str, SecretRef]]:
    """Every ``SecretRef`` inside a settings object, with its field path."""
    if isinstance(model, SecretRef):
        yield path, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _secrets(getattr(model, name), f"{path}.{name}" if path else name)
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            yield from _secrets(item, f"{path}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            yield from _secrets(item, f"{path}.{key}")


def _readable(path: Path) -> str | None:
    """None when ``path`` is a readable file, else why not."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{path} cannot be read (permissions)"
    return None


def _login_problems(
    config: HubConfig,
    tenant: TenantConfig,
    kind: str,
    settings: LoginSettings,
    idp_count: Callable[[TenantConfig, str], int | None] | None,
) -> Iterator[str]:
    from sportello.platforms.login.idps import REGISTRY_CACHE
    from sportello.platforms.login.keys import LoginConfigError, read_keys

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
    known = idp_count(tenant, kind) if idp_count is not None else None
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
                why = _readable(Path(source))
                if why is not None:
                    yield f"idp_metadata: {why}"


def _adapter_problems(
    config: HubConfig, tenant: TenantConfig, installed: dict[str, set[str]] | None
) -> Iterator[tuple[str, str]]:
    base = Path(config.source).resolve().parent
    for kind, ref in tenant.adapters.items():
        platform = f"adapters.{kind}"
        if installed is not None and kind in installed and ref.plugin not in installed[kind]:
            names = ", ".join(sorted(installed[kind])) or "none"
            yield platform, f"plugin {ref.plugin!r} is not installed (installed: {names})"
            continue
        raw = ref.options.get("path")
        if isinstance(raw, str) and raw:
            path = Path(raw) if Path(raw).is_absolute() else base / raw
            why = _readable(path)
            if why is not None:
                yield platform, f"options.path: {why}"


def tenant_problems(
    config: HubConfig,
    tenant: TenantConfig,
    *,
    installed: dict[str, set[str]] | None = None,
    idp_count: Callable[[TenantConfig, str], int | None] | None = None,
) -> list[Problem]:
    out: list[Problem] = []

    def add(platform: str, problem: str) -> None:
        out.append(Problem(tenant.id, platform, problem))

    for kind in ("spid", "cie"):
        settings = getattr(tenant, kind)
        if settings is not None:
            for problem in _login_problems(config, tenant, kind, settings, idp_count):
                add(kind, problem)
    for platform in ("spid", "cie", "pagopa", "io", "pdnd", "anpr", "suap", "webhooks"):
        for path, ref in _secrets(getattr(tenant, platform, None), ""):
            try:
                value = ref.reveal()
            except LookupError as exc:
                add(platform, f"{path}: {exc}")
                continue
            if not value.strip():
                add(platform, f"{path}: the secret ({ref.describe()}) is empty")
    if tenant.pdnd is not None:
        from sportello.connectors.pdnd.keys import load_private_key

        try:
            load_private_key(tenant.pdnd.key.reveal().encode())
        except LookupError:
            pass  # reported above
        except Exception as exc:
            add("pdnd", f"key: not a usable RSA private key ({type(exc).__name__})")
    if tenant.anpr is not None:
        if tenant.pdnd is None:
            add("anpr", "ANPR is reached through PDND: add [tenants.pdnd]")
        else:
            missing = [c for c in LOOKUP_SERVICES if not tenant.pdnd.purposes.get(c)]
            if missing:
                add(
                    "anpr",
                    f"pdnd.purposes has no purposeId for {', '.join(missing)} "
                    "(resident look-ups call them)",
                )
    if tenant.pagopa is not None and tenant.pagopa.mode == "gpd" and tenant.pagopa.api_key is None:
        add("pagopa", "mode gpd needs api_key (the GPD subscription key)")
    if tenant.io is not None and not tenant.io.services:
        add("io", "no App IO service: add [[tenants.io.services]] with its key")
    if tenant.suap is not None and "suap" not in tenant.adapters:
        add("suap", "[tenants.suap] needs a SUAP adapter in [tenants.adapters.suap]")
    for platform, problem in _adapter_problems(config, tenant, installed):
        add(platform, problem)
    return out


def installed_adapters(plugins: Any) -> dict[str, set[str]]:
    """The adapter plugins installed, by kind (what ``[tenants.adapters.<kind>]`` may name)."""
    return {
        "registry": set(plugins.registry_adapters()),
        "suap": set(plugins.suap_adapters()),
        "accounting": set(plugins.accounting_adapters()),
    }


def config_problems(
    config: HubConfig,
    *,
    plugins: Any = None,
    idp_count: Callable[[TenantConfig, str], int | None] | None = None,
) -> list[Problem]:
    """Everything that stops a configured platform from working, tenant by tenant."""
    installed = installed_adapters(plugins) if plugins is not None else None
    out: list[Problem] = []
    for tenant in config.tenants:
        out += tenant_problems(config, tenant, installed=installed, idp_count=idp_count)
    return out

"""What stops a configured platform from working, per tenant and per platform.

``sportello config check`` and ``/readyz`` both ask :func:`config_problems`. The kernel checks
what is common to every platform (a secret whose environment variable or file is missing,
an adapter plugin that is not installed or whose file cannot be read); each platform adds
its own checks through the ``hub_config_problems`` hook (a SPID or CIE login without its
keys or any IdP, PDND without the purposes ANPR look-ups need...). Each problem names the
tenant, the platform and what to do; nothing here prints a secret value.

The checks are cheap (files and environment variables, no network), so ``/readyz`` runs
them on every probe and reports a problem as long as it lasts, and only then.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .config import HubConfig, SecretRef, TenantConfig


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


def readable(path: Path) -> str | None:
    """None when ``path`` is a readable file, else why not."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{path} cannot be read (permissions)"
    return None


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
            why = readable(path)
            if why is not None:
                yield platform, f"options.path: {why}"


def tenant_problems(
    config: HubConfig,
    tenant: TenantConfig,
    *,
    installed: dict[str, set[str]] | None = None,
    plugins: Any = None,
    app: Any = None,
) -> list[Problem]:
    """The tenant's problems: each platform's own checks (``hub_config_problems`` of the
    plugins, given ``plugins``), then its secrets and its adapters."""
    out: list[Problem] = []

    def add(platform: str, problem: str) -> None:
        out.append(Problem(tenant.id, platform, problem))

    if plugins is not None:
        for platform, problem in plugins.config_problems(config, tenant, app):
            add(platform, problem)
    sections: dict[str, Any] = {**tenant.sections(), "webhooks": tenant.webhooks}
    for platform, section in sections.items():
        for path, ref in _secrets(section, ""):
            try:
                value = ref.reveal()
            except LookupError as exc:
                add(platform, f"{path}: {exc}")
                continue
            if not value.strip():
                add(platform, f"{path}: the secret ({ref.describe()}) is empty")
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


def config_problems(config: HubConfig, *, plugins: Any = None, app: Any = None) -> list[Problem]:
    """Everything that stops a configured platform from working, tenant by tenant
    (``app``: the running web app, for the checks that can use its state)."""
    installed = installed_adapters(plugins) if plugins is not None else None
    out: list[Problem] = []
    for tenant in config.tenants:
        out += tenant_problems(config, tenant, installed=installed, plugins=plugins, app=app)
    return out

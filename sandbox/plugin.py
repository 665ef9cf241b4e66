"""Registers the bundled sandbox apps through the ``hub_sandbox_apps`` hook.

Each twin declares itself in its own folder: ``sandbox/<name>/plugin.py`` holds ``SANDBOX``,
a :class:`~sportello.hookspecs.SandboxApp` (name, port offset, factory, description), found
here by walking the package; nothing here lists the twins. A twin's port offset is its own
and stays stable (the demo configuration names the ports): two twins may not share one.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from sportello.hookspecs import SandboxApp, hookimpl


def declared() -> list[SandboxApp]:
    """Every ``SANDBOX`` of ``sandbox/<name>/plugin.py``, by port offset."""
    apps: list[SandboxApp] = []
    package = importlib.import_module(__package__ or "sportello.sandbox")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        module = f"{__package__}.{info.name}.plugin"
        if importlib.util.find_spec(module) is None:
            continue
        app = getattr(importlib.import_module(module), "SANDBOX", None)
        if isinstance(app, SandboxApp):
            apps.append(app)
    seen: dict[int, str] = {}
    for app in apps:
        if app.port_offset in seen:
            raise ValueError(
                f"sandboxes {seen[app.port_offset]!r} and {app.name!r} share port offset "
                f"{app.port_offset}"
            )
        seen[app.port_offset] = app.name
    return sorted(apps, key=lambda a: a.port_offset)


@hookimpl
def hub_sandbox_apps() -> list[SandboxApp]:
    return declared()

"""The package list, computed: every folder with an ``__init__.py`` under the four folders
that ``[tool.setuptools] package-dir`` maps under ``sportello`` (hub/, connectors/, adapters/,
sandbox/), plus the data-only folders that ``[tool.setuptools.package-data]`` names. A new
platform, sandbox or connector folder needs no line in pyproject.toml. Everything else is
declared in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def packages(root: Path = ROOT) -> list[str]:
    tool = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    mapping: dict[str, str] = tool["setuptools"]["package-dir"]
    found: set[str] = set()
    for prefix, folder in mapping.items():
        base = root / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            name = ".".join([prefix, *rel.parts])
            nested = [m for m in mapping if m != prefix and m.startswith(prefix + ".")]
            if any(name == m or name.startswith(m + ".") for m in nested):
                continue  # a nested mapping (sportello.connectors) owns its own folder
            found.add(name)
    data_only = {
        name
        for name in tool["setuptools"].get("package-data", {})
        if name != "*" and _folder(root, mapping, name).is_dir()
    }
    return sorted(found | data_only)


def _folder(root: Path, mapping: dict[str, str], name: str) -> Path:
    """The folder of package ``name`` (a data-only folder may be absent, e.g. the UI kit
    before ``npm ci``: then it is not listed)."""
    prefix = max((m for m in mapping if name == m or name.startswith(m + ".")), key=len)
    rest = name[len(prefix) :].lstrip(".")
    return root / mapping[prefix] / Path(*rest.split(".")) if rest else root / mapping[prefix]


if __name__ == "__main__":
    from setuptools import setup

    setup(packages=packages())

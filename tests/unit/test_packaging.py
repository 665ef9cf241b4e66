"""Packaging facts the rest of the project relies on."""

from __future__ import annotations

import importlib.metadata as md
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_lxml_and_xmlsec_share_one_libxml2() -> None:
    import lxml.etree
    import xmlsec

    assert lxml.etree.LIBXML_VERSION == xmlsec.get_libxml_version()
    assert lxml.etree.LIBXML_COMPILED_VERSION == xmlsec.get_libxml_compiled_version()


def test_every_package_folder_is_listed_and_mapped() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = pyproject["tool"]["setuptools"]
    mapping: dict[str, str] = tool["package-dir"]
    listed = set(tool["packages"])
    found = set()
    for prefix, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([prefix, *rel.parts]) if rel.parts else prefix
            # a nested mapping (sportello.connectors) owns its own folder
            if not any(
                name.startswith(m + ".") or name == m
                for m in mapping
                if m != prefix and m.startswith(prefix + ".")
            ):
                found.add(name)
    assert found == listed, f"missing from pyproject: {found - listed}; stale: {listed - found}"


def test_no_generic_top_level_names_are_installed() -> None:
    dist = md.distribution("sportello")
    tops = {p.parts[0] for p in dist.files or [] if p.suffix == ".py" or p.name == "py.typed"}
    assert not tops & {"hub", "connectors", "adapters", "sandbox"}
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "sportello"}
    assert eps == {
        "connectors": "sportello.connectors.plugin",
        "adapters": "sportello.adapters.plugin",
        "sandbox": "sportello.sandbox.plugin",
    }
    scripts = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"sportello"}

"""Packaging facts the rest of the project relies on."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_lxml_and_xmlsec_share_one_libxml2() -> None:
    import lxml.etree
    import xmlsec

    assert lxml.etree.LIBXML_VERSION == xmlsec.get_libxml_version()
    assert lxml.etree.LIBXML_COMPILED_VERSION == xmlsec.get_libxml_compiled_version()


def _computed_packages() -> list[str]:
    """setup.py's package list (every folder with an __init__.py, and the data-only ones)."""
    spec = importlib.util.spec_from_file_location("sportello_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.packages()  # type: ignore[no-any-return]


def test_every_package_folder_is_listed_and_mapped() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = pyproject["tool"]["setuptools"]
    mapping: dict[str, str] = tool["package-dir"]
    assert "packages" not in tool, "setup.py computes the package list"
    listed = set(_computed_packages())
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
    # data-only folders (templates, demo files) are listed so their files ship as declared
    # package data; they hold no Python code
    data_only = set()
    for name in listed - found:
        prefix = max((m for m in mapping if name == m or name.startswith(m + ".")), key=len)
        folder = ROOT / mapping[prefix] / Path(*name[len(prefix) :].strip(".").split("."))
        if folder.is_dir() and not list(folder.glob("*.py")):
            data_only.add(name)
    assert found == listed - data_only, (
        f"missing from pyproject: {found - listed}; stale: {listed - found - data_only}"
    )
    data = tool["package-data"]
    for name in data_only:
        assert name in data, f"{name} is listed but none of its files is declared"


def test_the_wheel_builds_without_packaging_warnings(tmp_path: Path) -> None:
    """setuptools warns (and will refuse) when a folder with files is importable but not
    declared, or the licence is a TOML table: build the wheel as pip does and read its
    output. The declared data files must be in the wheel."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("hub", "connectors", "adapters", "sandbox"):
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = tmp_path / "dist"
    code = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=src,
        # PYTHONDONTWRITEBYTECODE makes distutils print "byte-compiling is disabled" warnings
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    noise = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "warning" in line.lower() or "deprecat" in line.lower()
    ]
    assert noise == [], "\n".join(noise)
    wheel = out / done.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta).decode()
    assert "License-Expression: EUPL-1.2" in metadata
    assert "sportello/migrations/script.py.mako" in names
    assert any(n.startswith("sportello/demo/") and n.endswith(".toml") for n in names)
    assert any(
        n.startswith("sportello/adapter_kit/template/") and n.endswith(".tmpl") for n in names
    )
    # each platform's status.yaml (what of its spec it covers) ships with it
    for status in sorted((ROOT / "hub" / "platforms").glob("*/status.yaml")):
        assert f"sportello/platforms/{status.parent.name}/status.yaml" in names


def test_no_generic_top_level_names_are_installed() -> None:
    dist = md.distribution("sportello")
    tops = {p.parts[0] for p in dist.files or [] if p.suffix == ".py" or p.name == "py.typed"}
    assert not tops & {"hub", "connectors", "adapters", "sandbox"}
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "sportello"}
    assert eps == {
        "connectors": "sportello.connectors.plugin",
        "adapters": "sportello.adapters.plugin",
        "sandbox": "sportello.sandbox.plugin",
        "platforms": "sportello.platforms",
    }
    scripts = {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"sportello"}

"""Each platform's ``status.yaml`` (hub/platforms/<p>/) and docs/platforms.md say the same thing.

``status.yaml`` lists, feature by feature, what of the official specification a platform
covers (``covers``: built or partial, ``where`` in code and tests) and what it does not
(``not_covered``, with ``why``). docs/platforms.md says it in prose: the Status column of its
table and one "Not built:" sentence per platform section. These tests fail when one changes
without the other, when a ``where`` path no longer exists (a module moved, a test renamed),
when a spec file named does not exist or declares another version, or when the file would
not ship with the package.

The "Not built:" sentence is read as a list: parenthesised remarks are dropped, the text
stops at the first ``;`` or the final full stop, items are separated by commas (so an item
holds no comma outside parentheses), and a leading "and" is dropped.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS_DIR = ROOT / "hub" / "platforms"
DOC = ROOT / "docs" / "platforms.md"
SPECS = ROOT.parent / "shared" / "specs"

OVERALL = {"built", "mostly built", "partial", "not built"}
FEATURE = {"built", "partial", "not built"}


def platform_names() -> list[str]:
    return sorted(p.parent.name for p in PLATFORMS_DIR.glob("*/__init__.py"))


PLATFORMS = platform_names()


def load(platform: str) -> dict[str, Any]:
    data = yaml.safe_load((PLATFORMS_DIR / platform / "status.yaml").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def norm(text: str) -> str:
    """Lower case, no parenthesised remarks nor backticks, one space between words."""
    text = strip_parens(text).replace("`", "")
    return " ".join(text.lower().split()).strip(" .")


def strip_parens(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def sections() -> dict[str, str]:
    """``## `` sections of docs/platforms.md by title."""
    found: dict[str, str] = {}
    title = None
    for line in DOC.read_text("utf-8").splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found


def not_built_items(section: str) -> list[str]:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", section)]
    sentences = [p for p in paragraphs if p.startswith("Not built:")]
    assert len(sentences) == 1, f"expected one 'Not built:' paragraph, found {len(sentences)}"
    text = strip_parens(sentences[0].removeprefix("Not built:"))
    text = text.split(";", 1)[0].strip().rstrip(".")
    items = [re.sub(r"^and\s+", "", i.strip()) for i in text.split(",")]
    return [norm(i) for i in items if i]


def table_status() -> dict[str, str]:
    """docs/platforms.md's table: the Platform column -> the bold words of Status."""
    rows: dict[str, str] = {}
    for line in DOC.read_text("utf-8").splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        bold = re.match(r"\*\*(.+?)\*\*", cells[1]) if len(cells) > 1 else None
        if bold:
            rows[cells[0]] = bold.group(1)
    return rows


def test_platform_folders_are_found() -> None:
    assert {"pagopa", "io", "login", "residents", "suap"} <= set(PLATFORMS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_status_file_has_the_format(platform: str) -> None:
    path = PLATFORMS_DIR / platform / "status.yaml"
    assert path.is_file(), f"hub/platforms/{platform}/ has no status.yaml"
    data = load(platform)
    assert data["platform"] == platform
    assert data["status"] in OVERALL
    assert data["section"] and data["table_rows"]
    assert data["spec"], "name the files of the official specification (../shared/specs)"
    for spec in data["spec"]:
        assert spec["file"] and str(spec["version"]) and spec["covered"], spec
    assert data["covers"]
    for item in data["covers"]:
        assert item["feature"] and item["status"] in FEATURE, item
        assert item["where"], f"{item['feature']}: where is it?"
    for item in data.get("not_covered") or []:
        assert item["feature"] and item["why"], item


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_where_path_exists(platform: str) -> None:
    missing = [
        f"{item['feature']}: {where}"
        for item in load(platform)["covers"]
        for where in item["where"]
        if not (ROOT / where).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_status_column_is_the_files_status(platform: str) -> None:
    data = load(platform)
    table = table_status()
    for row in data["table_rows"]:
        assert row in table, f"docs/platforms.md's table has no row {row!r}"
        assert table[row] == data["status"], row


@pytest.mark.parametrize("platform", PLATFORMS)
def test_not_built_sentence_is_the_files_list(platform: str) -> None:
    data = load(platform)
    section = sections().get(data["section"])
    assert section is not None, f"docs/platforms.md has no section '## {data['section']}'"
    in_file = {norm(i["feature"]) for i in data.get("not_covered") or []} | {
        norm(i["feature"]) for i in data["covers"] if i["status"] == "not built"
    }
    in_doc = set(not_built_items(section))
    assert in_doc - in_file == set(), "in docs/platforms.md, not in status.yaml"
    assert in_file - in_doc == set(), "in status.yaml, not in docs/platforms.md"


def declared_version(path: Path) -> str | None:
    """The version a spec file declares itself: OpenAPI's info.version, a schema's
    ``version`` attribute; None when it declares none."""
    if path.suffix == ".json":
        return str(json.loads(path.read_text("utf-8"))["info"]["version"])
    if path.suffix in (".yaml", ".yml"):
        doc = yaml.safe_load(path.read_text("utf-8"))
        info = doc.get("info") if isinstance(doc, dict) else None
        return str(info["version"]) if info else None
    from lxml import etree

    root = etree.parse(str(path)).getroot()
    return root.get("version")


@pytest.mark.skipif(not SPECS.is_dir(), reason="../shared/specs not found")
@pytest.mark.parametrize("platform", PLATFORMS)
def test_spec_files_exist_at_the_version_named(platform: str) -> None:
    for spec in load(platform)["spec"]:
        path = SPECS / spec["file"]
        assert path.is_file(), f"../shared/specs/{spec['file']} does not exist"
        version = declared_version(path)
        if version is not None:
            assert str(spec["version"]) == version, spec["file"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_status_file_ships_with_the_package(platform: str) -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    package = f"sportello.platforms.{platform}"
    package_data = data["tool"]["setuptools"]["package-data"]
    declared = [*package_data.get("*", []), *package_data.get(package, [])]
    assert "status.yaml" in declared, 'declare "*" = ["status.yaml"] in package-data'
    installed = importlib.resources.files(package).joinpath("status.yaml")
    assert installed.is_file(), "not in the installed package: run `make install`"
    assert yaml.safe_load(installed.read_text("utf-8"))["platform"] == platform

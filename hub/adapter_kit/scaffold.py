"""``scaffold()``: a new adapter plugin project (registry or accounting), ready to install
and to test.

The files come from ``template/`` (package data): every ``*.tmpl`` file is rendered by
replacing ``{{name}}``, ``{{project}}``, ``{{package}}``, ``{{class_name}}``,
``{{kind_title}}`` and ``{{sportello_requirement}}``; a ``__package__`` folder becomes the
package's folder. ``template/`` itself is the registry adapter; ``template/kinds/<kind>/``
holds the files another kind replaces or adds.
"""

from __future__ import annotations

import re
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .. import __version__
from ..plugins import BUILTIN_PLUGINS

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
MAX_NAME = 24
TEMPLATE_SUFFIX = ".tmpl"
RENAMED = {"gitignore": ".gitignore"}
KINDS_DIR = "kinds"
#: kind -> (title in texts, class name suffix)
KINDS: dict[str, tuple[str, str]] = {
    "registry": ("registry (anagrafe)", "Registry"),
    "accounting": ("accounting (ragioneria)", "Accounting"),
}


class ScaffoldError(ValueError):
    """The project cannot be created (bad name, destination exists); the message says why."""


@dataclass(frozen=True)
class ProjectNames:
    """The names derived from an adapter name, e.g. ``acme-json``."""

    name: str  # the adapter's name and the plugin's entry-point name: acme-json
    project: str  # the distribution and its folder: sportello-adapter-acme-json
    package: str  # the import package: sportello_adapter_acme_json
    class_name: str  # the adapter class: AcmeJsonRegistry
    kind: str = "registry"  # registry or accounting

    @classmethod
    def of(cls, name: str, kind: str = "registry") -> ProjectNames:
        validate_name(name, kind)
        words = re.split(r"[-_]", name)
        return cls(
            name=name,
            project=f"sportello-adapter-{name}",
            package="sportello_adapter_" + "_".join(words),
            class_name="".join(w.capitalize() for w in words) + KINDS[kind][1],
            kind=kind,
        )


def reserved_names(kind: str = "registry") -> set[str]:
    """Names a new adapter cannot take: the built-in plugins and adapters of its kind."""
    from ..adapters import plugin

    hook = plugin.hub_accounting_adapters if kind == "accounting" else plugin.hub_registry_adapters
    return set(BUILTIN_PLUGINS) | set(hook())


def validate_name(name: str, kind: str = "registry") -> None:
    """Raise :class:`ScaffoldError` unless ``name`` is a usable adapter name."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown adapter kind {kind!r}: choose one of {', '.join(KINDS)}")
    if not NAME_RE.fullmatch(name):
        raise ScaffoldError(
            f"invalid adapter name {name!r}: use lowercase letters and digits, separated by "
            "single '-' or '_', starting with a letter (for example acme-json)"
        )
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"invalid adapter name {name!r}: at most {MAX_NAME} characters")
    if name in reserved_names(kind):
        raise ScaffoldError(
            f"the name {name!r} is taken by a built-in plugin or adapter: "
            "prefix it, for example with your company's name (acme-csv)"
        )


def sportello_requirement(version: str = __version__) -> str:
    """The dependency on the running Sportello's release series, e.g. ``sportello>=0.1,<0.2``."""
    major, minor = (int(p) for p in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"sportello>={major}.{minor},<{upper}"


def template_root() -> Traversable:
    return resources.files("sportello.adapter_kit").joinpath("template")


def _files(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__" and not (not prefix and entry.name == KINDS_DIR):
                out.extend(_files(entry, (*prefix, entry.name)))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            out.append(((*prefix, entry.name), entry.read_text(encoding="utf-8")))
    return out


def render(text: str, names: ProjectNames) -> str:
    values = {
        "name": names.name,
        "project": names.project,
        "package": names.package,
        "class_name": names.class_name,
        "kind_title": KINDS[names.kind][0],
        "sportello_requirement": sportello_requirement(),
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{\s*\w+\s*\}\}", text)
    if left:
        raise AssertionError(f"unknown placeholder {left.group(0)} in the adapter template")
    return text


def _target(parts: tuple[str, ...], names: ProjectNames) -> Path:
    *folders, filename = parts
    filename = filename[: -len(TEMPLATE_SUFFIX)]
    filename = RENAMED.get(filename, filename)
    return Path(*(names.package if f == "__package__" else f for f in folders), filename)


def template_files(kind: str = "registry") -> list[tuple[tuple[str, ...], str]]:
    """``[(path parts, text)]`` of the template of ``kind``: the registry template with the
    files of ``kinds/<kind>/`` replacing or adding to it."""
    root = template_root()
    if not root.is_dir():
        return []
    files = dict(_files(root))
    overlay = root.joinpath(KINDS_DIR, kind)
    if kind != "registry" and overlay.is_dir():
        files.update(_files(overlay))
    return sorted(files.items())


def scaffold(name: str, dest: Path, kind: str = "registry") -> Path:
    """Write the project ``sportello-adapter-<name>/`` under ``dest`` and return its path.

    ``kind`` is ``registry`` (the default) or ``accounting``. The project holds
    ``pyproject.toml`` (entry point ``<name>`` in the group ``sportello``),
    ``src/<package>/{__init__,adapter,plugin}.py``, ``tests/test_contract.py`` and a README.
    ``dest`` is created when missing; an existing project folder is never overwritten.
    """
    names = ProjectNames.of(name, kind)
    dest = Path(dest)
    project = dest / names.project
    if project.exists() or project.is_symlink():
        raise ScaffoldError(
            f"{project} already exists: remove it, or choose another name or destination"
        )
    if dest.exists() and not dest.is_dir():
        raise ScaffoldError(f"{dest} is not a directory")
    files = template_files(kind)
    if not files:
        raise ScaffoldError("the adapter template is missing from this installation of sportello")
    dest.mkdir(parents=True, exist_ok=True)
    # Build in a hidden sibling folder, then rename: an error never leaves half a project.
    work = dest / f".{names.project}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        for parts, text in files:
            target = work / _target(parts, names)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(text, names), encoding="utf-8")
        if project.exists():
            raise ScaffoldError(f"{project} already exists: it appeared while writing the project")
        work.rename(project)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return project

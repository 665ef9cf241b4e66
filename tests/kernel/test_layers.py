"""Layering (issue 13, docs/architecture.md "Layers and import rules"): the import contracts
of pyproject's [tool.importlinter] hold, their kernel lists name every kernel module, and
no module of ``sportello`` is part of an import cycle."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "hub"


def _config() -> dict:  # type: ignore[type-arg]
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]  # type: ignore[no-any-return]


def _contract(contract_id: str) -> dict:  # type: ignore[type-arg]
    [found] = [c for c in _config()["contracts"] if c["id"] == contract_id]
    return found  # type: ignore[no-any-return]


def test_import_contracts_hold() -> None:
    """``lint-imports``: every contract kept. A listed (ignored) import that no longer
    exists fails too, so the allow-lists only shrink."""
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "0 broken" in run.stdout


def _kernel_modules() -> set[str]:
    """Every top-level module and package of hub/ except the platforms."""
    names = {p.stem for p in HUB.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in HUB.iterdir() if (p / "__init__.py").is_file()}
    return {f"sportello.{n}" for n in names} - {"sportello.platforms"}


def test_contracts_name_every_kernel_module() -> None:
    """A new kernel module is covered by the contracts the day it is added."""
    kernel = _kernel_modules()
    assert {"sportello.app", "sportello.schema", "sportello.api", "sportello.cli"} <= kernel
    assert kernel - set(_contract("kernel-no-platform")["source_modules"]) == set()
    assert kernel - set(_contract("connectors-standalone")["forbidden_modules"]) == set()


def test_contract_allow_lists_say_why() -> None:
    """Every ignored import is explained by a comment in pyproject.toml naming the issue."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("[tool.importlinter]") :]
    for contract in _config()["contracts"]:
        for line in contract.get("ignore_imports", []):
            before = section[: section.index(f'"{line}"')]
            block = before[before.rindex("ignore_imports") :]
            assert "# " in block and ("issue" in block or "client of the twin" in block), line


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components (two modules or more) of the runtime import
    graph, each as one cycle through it. Imports under ``if TYPE_CHECKING`` do not run and
    are left out."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(root: str) -> None:  # iterative Tarjan
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    cycles = []
    for component in components:
        first = component[0]
        back = graph.find_shortest_chain(
            importer=next(m for m in edges[first] if m in component), imported=first
        )
        cycles.append([first, *(back or [])])
    return sorted(cycles)


def test_import_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert import_cycles(graph) == [["p.a", "p.b", "p.a"]]


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("sportello", cache_dir=None, exclude_type_checking_imports=True)
    cycles = import_cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)

"""`make bench`: run every benchmark with its defaults and rewrite the table in bench/README.md.

    .venv/bin/python bench/report.py                 # every benchmark, README rewritten
    .venv/bin/python bench/report.py --only anpr,acs # some of them (the table lists only those)
    .venv/bin/python bench/report.py --no-write      # print the table, leave the README alone

Benchmarks are found, not listed: every ``bench/<name>/run.py``, and every other
``bench/<name>/<script>.py`` that takes ``--json`` (as ``bench/pagopa/notice_pdf.py`` does).
Each is run in its own process with its defaults plus ``--json PATH``; its human output goes
through to this terminal as it comes. The result it writes at PATH is one JSON object:

    {"bench": "outbox", "params": "20,000 jobs, concurrency 128",
     "figures": [{"name": "SQLite: delivered", "value": 2490.0, "unit": "jobs/s",
                  "baseline": 6645.0, "baseline_name": "bare aiohttp POSTs",
                  "ratio": 0.37, "goal": ">= 2,000 jobs/s", "met": true}]}

``baseline``, ``baseline_name``, ``ratio``, ``goal`` and ``met`` are optional; the ratio is
value / baseline when the script gives none. A script without ``--json`` may instead print
that object as the last line of its output. A benchmark that fails, or gives no result, has
a row saying so, the table is still written, and the command exits 1.

The table goes between the two markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->``
of bench/README.md (added before the first section when missing), with the date, the CPU
model (/proc/cpuinfo), the core count, the load average before and after, and the Python
version; everything else in the README is left as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


@dataclass
class Outcome:
    """One benchmark's run: its figures, or why there are none."""

    name: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    params: str = ""
    seconds: float = 0.0
    error: str | None = None


def discover(root: Path = HERE) -> list[tuple[str, Path]]:
    """(name, script) of every benchmark under ``root``, in a stable order."""
    found: list[tuple[str, Path]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        run = folder / "run.py"
        if run.is_file():
            found.append((folder.name, run))
        for script in sorted(folder.glob("*.py")):
            if script.name == "run.py":
                continue
            if "--json" in script.read_text(encoding="utf-8", errors="replace"):
                found.append((f"{folder.name}/{script.stem}", script))
    return found


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def parse_result(name: str, data: Any) -> Outcome:
    """Check a script's JSON result; anything malformed becomes an error, not a crash."""
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        return Outcome(name, error="result is not an object with a list of figures")
    figures: list[dict[str, Any]] = []
    for i, raw in enumerate(data["figures"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return Outcome(name, error=f"figure {i} has no name")
        value = raw.get("value")
        if not _finite(value):
            return Outcome(name, error=f"figure {raw['name']!r} has no numeric value")
        fig = dict(raw)
        base = fig.get("baseline")
        if base is not None and not _finite(base):
            return Outcome(name, error=f"figure {raw['name']!r} has a non-numeric baseline")
        if fig.get("ratio") is None and base:
            fig["ratio"] = value / base
        figures.append(fig)
    return Outcome(name, figures, params=str(data.get("params", "")))


def last_json_line(output: str) -> Any:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
        if line:
            return None
    return None


def run_one(name: str, script: Path, python: str = sys.executable) -> Outcome:
    """Run one benchmark with its defaults; its output is echoed line by line."""
    with tempfile.TemporaryDirectory(prefix="sportello-bench-") as tmp:
        out = Path(tmp) / "result.json"
        takes_json = "--json" in script.read_text(encoding="utf-8", errors="replace")
        cmd = [python, str(script), *(["--json", str(out)] if takes_json else [])]
        print(f"\n=== bench/{name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent
        )
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        rc = proc.wait()
        seconds = time.perf_counter() - started
        if rc != 0:
            tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
            return Outcome(name, seconds=seconds, error=f"exit {rc}: {tail[:120]}")
        if out.is_file():
            try:
                data = json.loads(out.read_text(encoding="utf-8"))
            except ValueError as exc:
                return Outcome(name, seconds=seconds, error=f"invalid JSON result: {exc}")
        else:
            data = last_json_line("".join(lines))
            if data is None:
                return Outcome(name, seconds=seconds, error="no machine-readable result")
        outcome = parse_result(name, data)
        outcome.seconds = seconds
        return outcome


def cpu_model(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return platform.processor() or "unknown CPU"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return " ".join(value.split())
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def number(x: float) -> str:
    """1234.5 -> '1,234'; 12.34 -> '12.3'; 1.234 -> '1.23'; 0.0123 -> '0.0123'."""
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.1 or ax == 0:
        return f"{x:.2f}"
    return f"{x:.3g}"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(outcomes: list[Outcome], machine: dict[str, str]) -> str:
    """The block between the markers (markers included)."""
    lines = [
        BEGIN,
        "<!-- written by `make bench` (bench/report.py): edits here are overwritten -->",
        "",
        f"Last `make bench`: {machine['date']}; {machine['cpu']}, {machine['cores']} cores; "
        f"load average {machine['load_before']} before, {machine['load_after']} after; "
        f"Python {machine['python']}. Every benchmark ran with its defaults; each figure's "
        "baseline was measured in the same run (ratio = figure / baseline).",
        "",
        "| bench | figure | value | baseline | ratio | goal |",
        "|-------|--------|------:|---------:|------:|------|",
    ]
    for o in outcomes:
        label = f"{o.name}" + (f" ({cell(o.params)})" if o.params else "")
        if o.error:
            lines.append(f"| {label} | **not measured**: {cell(o.error)} | | | | |")
            continue
        if not o.figures:
            lines.append(f"| {label} | no figures | | | | |")
            continue
        for n, fig in enumerate(o.figures):
            if n == 1:
                label = ""  # the bench and its parameters once, on its first row
            unit = f" {fig['unit']}" if fig.get("unit") else ""
            value = f"{number(fig['value'])}{unit}"
            base = ""
            if fig.get("baseline") is not None:
                base = f"{number(fig['baseline'])}{unit}"
                if fig.get("baseline_name"):
                    base += f" ({cell(fig['baseline_name'])})"
            ratio = f"{fig['ratio']:.2f}x" if fig.get("ratio") is not None else ""
            goal = cell(fig.get("goal") or "")
            if goal and fig.get("met") is not None:
                goal += ": met" if fig["met"] else ": **NOT met**"
            lines.append(f"| {label} | {cell(fig['name'])} | {value} | {base} | {ratio} | {goal} |")
    lines += ["", END]
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    """Put ``block`` between the markers; without markers, before the first ``## `` section."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start != -1 and end > start:
        return readme[:start] + block + readme[end + len(END) :]
    if (start == -1) != (end == -1) or start > end:
        raise ValueError("bench/README.md has one table marker without the other")
    lines = readme.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("## "):
            return "".join(lines[:i]) + block + "\n\n" + "".join(lines[i:])
    return readme.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names (outbox,io,...)")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    benches = discover()
    if args.only:
        wanted = set(args.only.split(","))
        benches = [(n, s) for n, s in benches if n in wanted]
        if not benches:
            parser.error(f"no benchmark named {args.only}")
    machine = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "cpu": cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "load_before": load_average(),
        "python": platform.python_version(),
    }
    print(f"bench: {', '.join(n for n, _ in benches)}; load average {machine['load_before']}")
    outcomes = [run_one(name, script) for name, script in benches]
    machine["load_after"] = load_average()
    block = render(outcomes, machine)
    print("\n" + block)
    if not args.no_write:
        args.readme.write_text(
            replace_block(args.readme.read_text(encoding="utf-8"), block), encoding="utf-8"
        )
        print(f"\n{args.readme} rewritten")
    failed = [o.name for o in outcomes if o.error]
    if failed:
        print(f"not measured: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/report.py (`make bench`): discovery, result parsing, table writing; no benchmark runs.

The scripts run here are tiny stand-ins written to a temporary folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


report = _load()

MACHINE = {
    "date": "2026-12-07 18:00 UTC",
    "cpu": "Test CPU @ 2.0GHz",
    "cores": "2",
    "load_before": "0.10 0.20 0.30",
    "load_after": "1.00 0.50 0.40",
    "python": "3.11.7",
}

README = """# Benchmarks

Intro paragraph that must stay.

## bench/outbox: durable outbox throughput

Narrative that must stay, with | a pipe.
"""


def test_every_run_py_and_opted_in_script_is_found(tmp_path: Path) -> None:
    (tmp_path / "zeta").mkdir()
    (tmp_path / "zeta" / "run.py").write_text("print(1)\n")
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "run.py").write_text("print(1)\n")
    (tmp_path / "alpha" / "extra.py").write_text('p.add_argument("--json")\n')
    (tmp_path / "alpha" / "sink.py").write_text("print('helper, not a bench')\n")
    (tmp_path / "empty").mkdir()
    names = [name for name, _ in report.discover(tmp_path)]
    assert names == ["alpha", "alpha/extra", "zeta"]


def test_the_repository_benches_all_take_json() -> None:
    found = dict(report.discover())
    for name in ("acs", "anpr", "io", "outbox", "pagopa", "pagopa/notice_pdf"):
        assert name in found
        assert "--json" in found[name].read_text(), name


def test_ratio_is_computed_when_missing_and_kept_when_given() -> None:
    out = report.parse_result(
        "x",
        {
            "params": "10 jobs",
            "figures": [
                {"name": "a", "value": 50, "unit": "/s", "baseline": 200},
                {"name": "b", "value": 1.5, "baseline": 3.0, "ratio": 0.25},
                {"name": "c", "value": 7},
            ],
        },
    )
    assert out.error is None and out.params == "10 jobs"
    assert [f.get("ratio") for f in out.figures] == [0.25, 0.25, None]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "list of figures"),
        ({"figures": "nope"}, "list of figures"),
        ({"figures": [{"value": 1}]}, "figure 0 has no name"),
        ({"figures": [{"name": "a", "value": "12"}]}, "no numeric value"),
        ({"figures": [{"name": "a", "value": True}]}, "no numeric value"),
        ({"figures": [{"name": "a", "value": float("nan")}]}, "no numeric value"),
        ({"figures": [{"name": "a", "value": 1, "baseline": "x"}]}, "non-numeric baseline"),
    ],
)
def test_malformed_results_become_errors(data: object, error: str) -> None:
    out = report.parse_result("x", data)
    assert out.error is not None and error in out.error
    assert out.figures == []


def test_last_json_line() -> None:
    assert report.last_json_line('hello\n{"figures": []}\n\n') == {"figures": []}
    assert report.last_json_line('{"figures": []}\nlast words\n') is None
    assert report.last_json_line("{broken\n") is None
    assert report.last_json_line("") is None


def test_table_has_values_baselines_ratios_goals_and_failures() -> None:
    ok = report.parse_result(
        "outbox",
        {
            "params": "20,000 jobs",
            "figures": [
                {
                    "name": "SQLite: delivered",
                    "value": 2490.4,
                    "unit": "jobs/s",
                    "baseline": 6645,
                    "baseline_name": "bare POSTs",
                    "goal": ">= 2,000 jobs/s",
                    "met": True,
                },
                {"name": "p99", "value": 7.88, "unit": "ms", "goal": "< 5 ms", "met": False},
                {"name": "a|b", "value": 0.0123},
            ],
        },
    )
    failed = report.Outcome("io", error="exit 2: boom | bang")
    block = report.render([ok, failed], MACHINE)
    assert block.startswith(report.BEGIN) and block.endswith(report.END)
    assert "2026-12-07 18:00 UTC; Test CPU @ 2.0GHz, 2 cores" in block
    assert "0.10 0.20 0.30 before, 1.00 0.50 0.40 after; Python 3.11.7" in block
    lines = block.splitlines()
    row = next(ln for ln in lines if "SQLite: delivered" in ln)
    assert row == (
        "| outbox (20,000 jobs) | SQLite: delivered | 2,490 jobs/s | 6,645 jobs/s (bare POSTs)"
        " | 0.37x | >= 2,000 jobs/s: met |"
    )
    assert "| 7.88 ms |  |  | < 5 ms: **NOT met** |" in block
    assert "|  | a\\|b | 0.0123 |" in block  # a pipe in a name does not break the table
    assert block.count("outbox (20,000 jobs)") == 1  # the bench named on its first row only
    assert "| io | **not measured**: exit 2: boom \\| bang | | | | |" in block
    # every table row has the same number of columns as the header
    header = next(ln for ln in lines if ln.startswith("| bench "))
    for ln in lines:
        if ln.startswith("| "):
            assert ln.replace("\\|", "").count("|") == header.count("|"), ln


def test_block_goes_before_the_first_section_then_is_replaced_in_place() -> None:
    first = report.replace_block(README, f"{report.BEGIN}\nOLD\n{report.END}")
    assert first.index(report.BEGIN) < first.index("## bench/outbox")
    assert first.index("Intro paragraph") < first.index(report.BEGIN)
    second = report.replace_block(first, f"{report.BEGIN}\nNEW\n{report.END}")
    assert "OLD" not in second and "NEW" in second
    assert second.count(report.BEGIN) == 1 and second.count(report.END) == 1
    # the narrative is untouched, byte for byte
    assert second.replace(f"{report.BEGIN}\nNEW\n{report.END}", "") == first.replace(
        f"{report.BEGIN}\nOLD\n{report.END}", ""
    )
    with pytest.raises(ValueError, match="marker"):
        report.replace_block(README + report.BEGIN, "x")
    assert report.replace_block("# only a title\n", "B").endswith("\n\nB\n")


def test_cpu_model_from_proc_cpuinfo() -> None:
    info = "processor\t: 0\nvendor_id\t: X\nmodel name\t: AMD  EPYC 7B13 64-Core Processor\n"
    assert report.cpu_model(info) == "AMD EPYC 7B13 64-Core Processor"
    assert report.cpu_model("processor : 0\nModel : Raspberry Pi 4\n") == "Raspberry Pi 4"


def _script(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True)
    path = folder / "run.py"
    path.write_text(body)
    return path


def test_run_one_reads_the_json_file_the_last_line_or_reports_why_not(tmp_path: Path) -> None:
    with_json = _script(
        tmp_path / "a",
        "import json, sys\n"
        "# takes --json\n"
        "print('human output')\n"
        "path = sys.argv[sys.argv.index('--json') + 1]\n"
        "json.dump({'figures': [{'name': 'f', 'value': 3, 'baseline': 6}]}, open(path, 'w'))\n",
    )
    out = report.run_one("a", with_json)
    assert out.error is None and out.figures[0]["ratio"] == 0.5

    last_line = _script(
        tmp_path / "b", 'print(\'hi\')\nprint(\'{"figures": [{"name": "g", "value": 1}]}\')\n'
    )
    out = report.run_one("b", last_line)
    assert out.error is None and out.figures[0]["name"] == "g"

    silent = _script(tmp_path / "c", "print('figures only for humans')\n")
    assert report.run_one("c", silent).error == "no machine-readable result"

    failing = _script(tmp_path / "d", "import sys\nprint('boom')\nsys.exit(3)\n")
    assert report.run_one("d", failing).error == "exit 3: boom"


def test_main_rewrites_only_the_block_and_exits_1_on_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _script(
        tmp_path / "good",
        'print(\'{"params": "p", "figures": [{"name": "speed", "value": 1234.5,'
        ' "unit": "/s", "baseline": 2469}]}\')\n',
    )
    bad = _script(tmp_path / "bad", "raise SystemExit(2)\n")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    monkeypatch.setattr(report, "discover", lambda: [("good", good), ("bad", bad)])
    assert report.main(["--readme", str(readme)]) == 1
    text = readme.read_text()
    assert "| good (p) | speed | 1,234 /s | 2,469 /s | 0.50x |  |" in text
    assert "| bad | **not measured**: exit 2" in text
    assert "Intro paragraph that must stay." in text and "with | a pipe." in text

    monkeypatch.setattr(report, "discover", lambda: [("good", good)])
    assert report.main(["--readme", str(readme), "--only", "good"]) == 0
    text = readme.read_text()
    assert "bad" not in text and text.count(report.BEGIN) == 1

    before = readme.read_text()
    assert report.main(["--readme", str(readme), "--no-write"]) == 0
    assert readme.read_text() == before

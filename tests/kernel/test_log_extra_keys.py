"""Log records keep their schema: no ``extra=`` key may replace a field of the JSON line.

The hub's JSON formatter writes ``ts``, ``level``, ``logger``, ``msg`` (and ``exc``) and then
every extra attribute of the record; ``extra={"level": 2}`` used to overwrite the severity.
Keys that are LogRecord attributes make ``logging`` raise KeyError at the call. This test reads
the source tree (AST) and lists every literal key of an ``extra=`` dict (``{...}`` or
``dict(...)``) in hub/, connectors/, adapters/ and sandbox/.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

from sportello.logs import FORMAT_FIELDS, RESERVED_EXTRA_KEYS, JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
TREES = ("hub", "connectors", "adapters", "sandbox")


def _extra_keys(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != "extra":
                continue
            value = kw.value
            if isinstance(value, ast.Dict):
                for key in value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        found.append((key.lineno, key.value))
            elif (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "dict"
            ):
                found.extend((k.value.lineno, k.arg) for k in value.keywords if k.arg)
    return found


def _scan(paths: list[Path]) -> list[str]:
    bad = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, key in _extra_keys(tree):
            if key in RESERVED_EXTRA_KEYS:
                bad.append(f"{path.relative_to(ROOT)}:{line}: extra key {key!r}")
    return bad


def test_the_format_fields_and_record_attributes_are_reserved() -> None:
    assert {"ts", "level", "logger", "msg", "exc"} == set(FORMAT_FIELDS)
    assert {"levelname", "name", "message", "args", "module"} <= RESERVED_EXTRA_KEYS


def test_the_scanner_finds_a_reserved_key() -> None:
    tree = ast.parse('log.info("x", extra={"tenant": t, "level": 2})\nf(extra=dict(msg=1))')
    assert [k for _, k in _extra_keys(tree)] == ["tenant", "level", "msg"]


def test_no_extra_key_uses_a_reserved_field() -> None:
    files = sorted(p for tree in TREES for p in (ROOT / tree).rglob("*.py"))
    assert len(files) > 50  # the tree is really there
    assert _scan(files) == []


def test_an_extra_field_never_overwrites_the_severity() -> None:
    record = logging.makeLogRecord({"levelname": "INFO", "msg": "login accepted", "level": 2})
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info"
    assert line["extra_level"] == 2

"""Structured JSON logs. Secrets never reach a log line: connectors log references, not values,
and this formatter also masks any field whose name says it holds a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
#: the fields every JSON line starts with: an ``extra`` key must never be one of these
FORMAT_FIELDS = ("ts", "level", "logger", "msg", "exc")
#: every name an ``extra={...}`` key may not use (the format's fields, LogRecord attributes)
RESERVED_EXTRA_KEYS = frozenset(FORMAT_FIELDS) | _RESERVED
_SECRET_FIELD = re.compile(r"(key|secret|password|token|authorization|assertion)", re.I)


# Third-party loggers that would print personal data (request paths holding fiscal codes,
# SQL parameters) below these levels: the hub never lets them speak that low.
QUIET_LOGGERS = {
    "aiohttp.access": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "sqlalchemy.engine": logging.WARNING,
    "alembic": logging.WARNING,
}


def emitted_by_hub(record: logging.LogRecord) -> bool:
    """Whether the hub's logging setup lets this record through (see QUIET_LOGGERS)."""
    for name, quiet in QUIET_LOGGERS.items():
        if (record.name == name or record.name.startswith(name + ".")) and record.levelno < quiet:
            return False
    return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _RESERVED or name.startswith("_"):
                continue
            if name in FORMAT_FIELDS:  # an extra field never overwrites the line's own fields
                name = f"extra_{name}"
            entry[name] = "***" if _SECRET_FIELD.search(name) else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO", *, json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)

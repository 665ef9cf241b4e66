"""Reference SEND notification source: a CSV file, one row per notification.

Options: ``path`` (the file; relative paths resolve against ``base_dir``), ``encoding``
(default ``utf-8``; a byte-order mark is skipped), ``delimiter`` (default: ``;`` or ``,``,
whichever the header has more of) and ``max_bytes`` (default 200 MB). The first row names
the columns (the notification columns of docs/send.md). Rows count as a spreadsheet
shows them: the header is row 1. The source only reads: every value is checked by the hub.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

#: A cell longer than this is refused (csv's own limit would be 128 KiB).
MAX_CELL = 4096
MAX_BYTES = 200 * 1024 * 1024


class CsvNotificationSource:
    name: ClassVar[str] = "csv"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        if not options.get("path"):
            raise ValueError("the csv notification source needs a file (--file or option path)")
        path = Path(str(options["path"]))
        self.path = path if path.is_absolute() else base_dir / path
        self.label = self.path.name
        self.encoding = str(options.get("encoding") or "utf-8")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"option encoding: unknown encoding {self.encoding!r}") from None
        delimiter = options.get("delimiter")
        if delimiter is not None and (len(str(delimiter)) != 1 or str(delimiter) in '"\r\n'):
            raise ValueError("option delimiter: one character (such as ; or ,)")
        self.delimiter = str(delimiter) if delimiter else None
        try:
            self.max_bytes = int(options.get("max_bytes") or MAX_BYTES)
        except ValueError:
            raise ValueError("option max_bytes: a number of bytes") from None

    def _text(self) -> str:
        try:
            size = self.path.stat().st_size
            if not self.path.is_file():
                raise ValueError(f"{self.label}: not a regular file")
        except OSError as exc:
            raise ValueError(f"{self.label}: cannot read it ({exc.strerror})") from None
        if size > self.max_bytes:
            raise ValueError(
                f"{self.label}: {size} bytes, more than the {self.max_bytes} allowed "
                "(split it, or raise option max_bytes)"
            )
        data = self.path.read_bytes()[: self.max_bytes + 1]
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ValueError(
                f"{self.label}: line {line}: not {self.encoding} text (byte {exc.start}); "
                "save the file as UTF-8, or give --option encoding=cp1252"
            ) from None
        if "\x00" in text:
            raise ValueError(f"{self.label}: contains NUL bytes: not a text file")
        return text.removeprefix("\ufeff")

    async def rows(self) -> AsyncIterator[tuple[int, dict[str, str]]]:
        text = await asyncio.to_thread(self._text)
        first = text.split("\n", 1)[0]
        delimiter = self.delimiter or (";" if first.count(";") >= first.count(",") else ",")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        rowno = 1
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise ValueError(f"{self.label}: row 1: the header (column names) is missing")
            names = [h.strip() for h in header]
            seen: set[str] = set()
            for name in names:
                if not name:
                    raise ValueError(f"{self.label}: row 1: a column without a name")
                if name.lower() in seen:
                    raise ValueError(f"{self.label}: row 1: column {name!r} appears twice")
                seen.add(name.lower())
            for raw in reader:
                rowno += 1
                if not any(c.strip() for c in raw):
                    continue
                if len(raw) != len(names):
                    raise ValueError(
                        f"{self.label}: row {rowno}: expected {len(names)} cells, found {len(raw)}"
                    )
                for name, cell in zip(names, raw, strict=True):
                    if len(cell) > MAX_CELL:
                        raise ValueError(
                            f"{self.label}: row {rowno}: {name}: longer than {MAX_CELL} characters"
                        )
                yield rowno, dict(zip(names, raw, strict=True))
        except csv.Error as exc:
            raise ValueError(f"{self.label}: row {rowno + 1}: not valid CSV ({exc})") from None

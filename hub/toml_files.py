"""Many TOML files parsed on every core: a ``tenants_dir`` of thousands of comuni at start-up.

``tomllib`` is pure Python (about half a millisecond for a tenant file with every platform):
8,000 tenant files take seconds on one core. :func:`parse_all` parses them in worker
processes when there are at least :data:`PARALLEL_FROM` of them, the machine has more than
one core and the caller is the process's only thread (``sportello serve`` reading its
configuration before it starts serving; a reload runs in a thread of the serving process
and parses only the files that changed, see ``sportello.config``). Results and errors are
the same as parsing one file after another.

This module imports nothing of the hub: a worker process starts by importing only it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import tomllib
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: the fewest files worth starting worker processes for
PARALLEL_FROM = 1000
#: files per task sent to a worker
CHUNK = 250
#: at most this many worker processes
MAX_WORKERS = 8

Parsed = dict[str, Any] | list[str]
"""A file's TOML document, or the problems that make it unusable (one line each)."""


def parse_bytes(raw: bytes, replace: dict[str, str] | None = None) -> Parsed:
    """One file's bytes as TOML (``replace``: text substituted before parsing)."""
    try:
        text = raw.decode("utf-8")
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        return tomllib.loads(text)
    except UnicodeDecodeError:
        return ["is not UTF-8 text"]
    except tomllib.TOMLDecodeError as exc:
        return [f"invalid TOML: {exc}"]


def _parse_chunk(raws: list[bytes], replace: dict[str, str] | None) -> list[Parsed]:
    return [parse_bytes(raw, replace) for raw in raws]


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(cores, MAX_WORKERS)


def parse_all(raws: list[bytes], replace: dict[str, str] | None = None) -> list[Parsed]:
    """Every file's bytes parsed, in order: on several cores when it is worth it and safe."""
    workers = _workers()
    if (
        len(raws) < PARALLEL_FROM
        or workers < 2
        or threading.current_thread() is not threading.main_thread()
    ):
        return _parse_chunk(raws, replace)
    # fork is cheap and safe with no other thread; otherwise a fresh interpreter
    method = "fork" if threading.active_count() == 1 else "spawn"
    chunks = [raws[i : i + CHUNK] for i in range(0, len(raws), CHUNK)]
    out: list[Parsed] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        for parsed in pool.map(_parse_chunk, chunks, [replace] * len(chunks)):
            out.extend(parsed)
    return out

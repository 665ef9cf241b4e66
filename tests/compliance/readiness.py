"""Shared by the compliance runners (imported as ``readiness``: run as scripts, their folder
is on ``sys.path``; under pytest, ``tests/compliance`` is put there for its test module)."""

from __future__ import annotations

import subprocess
import time
import urllib.request


def wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    what: str,
    timeout: float,
    interval: float = 0.3,
) -> None:
    """Poll ``url`` until it answers 200 while ``proc`` (``what``, named in the errors) runs.

    ``RuntimeError`` if the process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")

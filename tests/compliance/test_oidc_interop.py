"""``make oidc-interop`` inside the suite: the hub's OIDC relying party against italia's
spid-cie-oidc (its trust anchor and OpenID provider, SPID and CIE profiles), directly under
the anchor and through the hub's software-house intermediate, logins completed in Chromium
(see ``oidc_interop.py``). Skipped only when ``.venv-oidc`` cannot be built (no PyPI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from compliance.oidc_interop import Outcome, ensure_sdk, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


async def test_logins_against_the_reference_implementation(tmp_path: Path) -> None:
    try:
        python = ensure_sdk()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f".venv-oidc with spid-cie-oidc cannot be built here: {exc}")
    results: list[Outcome] = await run(python, tmp_path)
    assert len(results) == 4
    failed = [f"{r.profile}/{r.way}: {r.detail}" for r in results if not r.ok]
    assert not failed, "\n\n".join(failed)

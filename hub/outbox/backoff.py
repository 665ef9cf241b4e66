"""When to try a failed job again."""

from __future__ import annotations

import random


def next_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with jitter, never shorter than the platform's ``retry_after``.

    ``attempt`` is the attempt that just failed (1 for the first). The jitter draws from
    half to all of the exponential step, so replicas that failed together spread out.
    """
    step = min(cap, base * 2.0 ** max(0, attempt - 1))
    jitter = rng.uniform(0.5, 1.0) if rng is not None else random.uniform(0.5, 1.0)
    delay = jitter * step
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay

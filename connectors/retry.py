"""Retry policy shared by all connectors: how long to wait, and when to give up.

Retries here are short and in-process. A server asking for a long pause (more than
``max_retry_after``) gets none: the error is raised at once with its ``retry_after`` so the
durable outbox can schedule the job later instead of holding a worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import tenacity
from tenacity import RetryCallState
from tenacity.stop import stop_after_attempt, stop_base, stop_before_delay
from tenacity.wait import wait_base

# parse_retry_after lives with the errors it fills in (errors.py imports nothing from here)
from .errors import ConnectorError, parse_retry_after

__all__ = ["RetryPolicy", "Sleep", "build_retrying", "parse_retry_after"]

log = logging.getLogger("sportello.connectors")

Sleep = Callable[[float], Awaitable[None]]

# 2**62 times any sane base delay already exceeds every max_delay: cap the exponent so a
# large attempt number cannot overflow a float.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """How a connector retries one call.

    ``max_attempts`` counts the first try. ``deadline`` bounds the whole call in seconds
    (attempts plus waits): no wait starts that would end past it. ``rng`` is there so tests
    can make the jitter deterministic.
    """

    max_attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    deadline: float | None = None
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("delays must not be negative")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be positive")

    def backoff_cap(self, attempt: int) -> float:
        """Upper bound of the jittered backoff after failed attempt number ``attempt``."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return min(self.max_delay, self.base_delay * 2.0**exponent)

    def compute_delay(self, attempt: int, error: ConnectorError | None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Jittered exponential backoff in ``[0.5, 1.0] * backoff_cap(attempt)``, raised to
        the error's ``retry_after`` when the server asked for longer.
        """
        uniform = self.rng.uniform if self.rng is not None else random.uniform
        delay = uniform(0.5, 1.0) * self.backoff_cap(attempt)
        if error is not None and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def should_retry(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another in-process attempt.

        Not when an inner connector already spent its own retries on it (``retries_spent``):
        retrying the outer call would run the inner retry loop again, multiplying the calls
        to a platform that is already failing.
        """
        if not isinstance(error, ConnectorError) or not error.retryable:
            return False
        if getattr(error, "retries_spent", False):  # getattr: errors unpickled from old state
            return False
        return error.retry_after is None or error.retry_after <= self.max_retry_after


class _PolicyWait(wait_base):
    """tenacity wait strategy delegating to ``RetryPolicy.compute_delay``."""

    def __init__(self, policy: RetryPolicy, offset: int = 0) -> None:
        self.policy = policy
        self.offset = offset

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        connector_error = error if isinstance(error, ConnectorError) else None
        return self.policy.compute_delay(retry_state.attempt_number + self.offset, connector_error)


def _log_retry(retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning(
        "attempt %d failed (%s), retrying in %.2fs",
        retry_state.attempt_number,
        error,
        retry_state.upcoming_sleep,
    )


def build_retrying(
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    attempts_done: int = 0,
    elapsed: float = 0.0,
) -> tenacity.AsyncRetrying:
    """A tenacity ``AsyncRetrying`` applying ``policy``; the last error is re-raised as is.

    ``attempts_done`` and ``elapsed`` continue a policy whose first attempts were made
    outside tenacity (``BaseConnector`` makes the first one directly: most calls succeed).
    """
    stop: stop_base = stop_after_attempt(policy.max_attempts - attempts_done)
    if policy.deadline is not None:
        stop = stop | stop_before_delay(max(0.0, policy.deadline - elapsed))
    return tenacity.AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=_PolicyWait(policy, attempts_done),
        retry=tenacity.retry_if_exception(policy.should_retry),
        before_sleep=_log_retry,
        reraise=True,
    )

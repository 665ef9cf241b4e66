"""Typed errors raised by every platform connector.

Callers branch on the class (``NotFound``, ``Conflict``...) or on ``retryable``; the
durable outbox reads ``retryable`` and ``retry_after`` to decide when to try again.

Errors never carry request headers: those hold bearer tokens and subscription keys.
The upstream body is kept (truncated) on ``.body`` for diagnosis but is left out of
``str()``, because answers from ANPR and similar services can contain personal data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

__all__ = [
    "MAX_BODY_CHARS",
    "REQUEST_ID_HEADERS",
    "AuthError",
    "BadRequest",
    "ClientRequestError",
    "Conflict",
    "ConnectorError",
    "ConnectorTimeout",
    "NotFound",
    "PermanentError",
    "ProtocolError",
    "RateLimited",
    "ServerError",
    "SigningError",
    "TransportError",
    "Unprocessable",
    "UpstreamError",
    "error_from_response",
    "parse_retry_after",
    "request_id_from_headers",
]

MAX_BODY_CHARS = 2_000
_MAX_DETAIL_CHARS = 200
_MAX_PARSED_BYTES = 64 * 1024

#: Response headers that carry the upstream's id for a request, in order of preference.
REQUEST_ID_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "x-correlation-id",
    "govway-transaction-id",
    "x-amzn-requestid",
    "request-id",
)


class ConnectorError(Exception):
    """Base of every connector error.

    ``retryable`` defaults to the class's ``default_retryable``. ``attempts`` is set by
    ``BaseConnector`` to the number of attempts made before the error was raised.

    ``retries_spent`` is set when the error leaves ``BaseConnector.request``: the connector
    that raised it already made every in-process attempt its policy allows. Another
    connector that meets it inside one of its own attempts (a PDND voucher fetched while
    signing an ANPR call) does not retry it: one look-up, one retry budget. ``retryable``
    still says whether trying again later (the outbox) can help.
    """

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        retryable: bool | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.retryable = self._resolve_retryable(retryable, status)
        self.retry_after = retry_after
        self.status = status
        self.request_id = request_id
        self.body = body[:MAX_BODY_CHARS] if body is not None else None
        self.attempts = 0
        self.retries_spent = False

    @classmethod
    def _resolve_retryable(cls, requested: bool | None, status: int | None) -> bool:
        return cls.default_retryable if requested is None else requested

    def __str__(self) -> str:
        head = f"[{self.platform}] " if self.platform else ""
        if self.status is not None:
            head += f"HTTP {self.status}: "
        tail = f" (request-id: {self.request_id})" if self.request_id else ""
        return f"{head}{self.message}{tail}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, platform={self.platform!r}, "
            f"status={self.status!r}, request_id={self.request_id!r}, "
            f"retryable={self.retryable!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments would be lost by Exception's default pickling.
        return (_restore, (type(self), self.message, dict(self.__dict__)))


def _restore(cls: type[ConnectorError], message: str, state: dict[str, Any]) -> ConnectorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransportError(ConnectorError):
    """No HTTP answer: connection refused, reset or dropped, DNS failure."""

    default_retryable = True


class ConnectError(TransportError):
    """The connection could not be opened (refused, unreachable, DNS): nothing was sent."""


class ConnectorTimeout(TransportError):
    """The attempt did not complete within its timeout."""


class UpstreamError(ConnectorError):
    """The upstream answered with a status the caller did not expect."""


class RateLimited(UpstreamError):
    """429: wait ``retry_after`` seconds (when known) before trying again."""

    default_retryable = True


class ServerError(UpstreamError):
    """5xx. Retryable, except 501 Not Implemented."""

    default_retryable = True

    @classmethod
    def _resolve_retryable(cls, requested: bool | None, status: int | None) -> bool:
        if requested is None and status == 501:
            return False
        return super()._resolve_retryable(requested, status)


class ClientRequestError(UpstreamError):
    """4xx: the request itself is wrong; sending it again will not help."""


class BadRequest(ClientRequestError):
    """400."""


class AuthError(ClientRequestError):
    """401 or 403: credentials missing, expired or not allowed."""


class NotFound(ClientRequestError):
    """404."""


class Conflict(ClientRequestError):
    """409: for example a debt position or message that already exists."""


class Unprocessable(ClientRequestError):
    """422: well-formed but rejected by the upstream's validation."""


class ProtocolError(ConnectorError):
    """The answer could not be parsed or was not what the API documents."""


class SigningError(ConnectorError):
    """The request could not be signed (missing key, token provider failure...)."""


class PermanentError(ConnectorError):
    """Raised by handlers to say "give up": never retried."""

    @classmethod
    def _resolve_retryable(cls, requested: bool | None, status: int | None) -> bool:
        return False


_BY_STATUS: dict[int, type[UpstreamError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
}


def request_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The upstream request id from response headers (case-insensitive), if any."""
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered.setdefault(key.lower(), value)
    for name in REQUEST_ID_HEADERS:
        value = lowered.get(name, "").strip()
        if value:
            return value
    return None


def _problem_detail(text: str) -> str | None:
    """``detail`` or ``title`` of an RFC 9457 problem document (pagoPA and App IO use them)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for key in ("detail", "title", "message"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:_MAX_DETAIL_CHARS]
    return None


_EPOCH_THRESHOLD = 1e9


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _http_date_delta(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime format carries no zone; RFC 9110 says GMT
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait, or ``None`` when it does not say.

    Looks, in order, at ``Retry-After`` (delta-seconds or HTTP-date, RFC 9110 §10.2.3),
    ``x-rate-limit-retry-after`` (App IO, seconds), ``RateLimit-Reset`` and
    ``X-RateLimit-Reset`` (seconds, or a Unix epoch when larger than 10^9). Header names
    are case-insensitive; an unparseable value is skipped; a past time gives 0.
    """
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered.setdefault(key.lower(), value)
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)

    delay: float | None = None
    if "retry-after" in lowered:
        raw = lowered["retry-after"]
        delay = _seconds(raw)
        if delay is None:
            delay = _http_date_delta(raw, current)
    if delay is None and "x-rate-limit-retry-after" in lowered:
        delay = _seconds(lowered["x-rate-limit-retry-after"])
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        if delay is None and name in lowered:
            delay = _seconds(lowered[name])
            if delay is not None and delay > _EPOCH_THRESHOLD:
                delay -= current.timestamp()
    if delay is None:
        return None
    return max(0.0, delay)


def error_from_response(
    platform: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    """Build the error for an unexpected HTTP answer.

    Status picks the class; ``retry_after`` comes from ``Retry-After`` and the rate-limit
    headers (see ``parse_retry_after``), ``request_id`` from ``REQUEST_ID_HEADERS``.
    A status that is not an error (an unexpected 2xx or 3xx) gives a plain, non-retryable
    ``UpstreamError``.
    """
    cls: type[UpstreamError]
    if status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif 500 <= status <= 599:
        cls = ServerError
    elif 400 <= status <= 499:
        cls = ClientRequestError
    else:
        cls = UpstreamError
    text = body[:_MAX_PARSED_BYTES].decode("utf-8", errors="replace") if body else ""
    message = _problem_detail(text) or f"unexpected HTTP status {status}"
    text = text[:MAX_BODY_CHARS]
    return cls(
        message,
        platform=platform,
        status=status,
        retry_after=parse_retry_after(headers),
        request_id=request_id_from_headers(headers),
        body=text or None,
    )

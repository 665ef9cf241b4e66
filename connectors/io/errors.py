"""App IO errors: the base connector errors, refined by what App IO documents.

``map_io_error`` turns the generic error ``BaseConnector`` raised for an unexpected answer
into one of the classes below, using the status and the body: App IO's backend answers
with a ProblemJson (``title``/``detail``), its API gateway (Azure APIM: 401, 429, unknown
routes) with ``{"statusCode": …, "message": …}``. Everything else (5xx, transport errors,
timeouts) keeps its base class: ``ServerError`` and ``TransportError`` are retryable.

- 400 ProblemJson: ``InvalidPayload`` (a ``BadRequest``), or ``PaymentAmountTooHigh`` when
  the title is "Error while sending payment metadata" (amount above the service's
  ``max_allowed_payment_amount``).
- 401 (gateway: missing, wrong or revoked key): ``Unauthorized`` (an ``AuthError``).
- 403 "Recipient forbidden": ``RecipientForbidden``; any other 403 ("You are not allowed
  here" for ADVANCED, payee or third-party data, "Production call forbidden"...):
  ``PermissionDenied``. Both are ``AuthError``.
- 404 ProblemJson: ``ProfileNotFound`` on a profile (no profile, or inbox disabled),
  ``MessageNotFound`` on a message. Both are ``NotFound``. The gateway's own 404 (unknown
  route: a wrong base URL) stays a plain ``NotFound``.
- 429 (gateway): ``IoRateLimited``, a retryable ``RateLimited`` whose ``retry_after`` comes
  from ``x-rate-limit-retry-after``.
- ``SenderNotAllowed`` (a ``PermanentError``) is raised by the client itself when the
  profile says ``sender_allowed: false``.

None of these is retryable except ``IoRateLimited``.

Messages never include the values App IO echoes in a 400 detail (``value [...]``): they
can be a fiscal code or a message text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ConnectorError,
    ConnectorTimeout,
    NotFound,
    PermanentError,
    RateLimited,
    ServerError,
    TransportError,
    UpstreamError,
)

__all__ = [
    "InvalidPayload",
    "IoRateLimited",
    "MessageNotFound",
    "PaymentAmountTooHigh",
    "PermissionDenied",
    "ProfileNotFound",
    "RecipientForbidden",
    "SenderNotAllowed",
    "Unauthorized",
    "map_io_error",
    "outcome_unknown",
    "redact_detail",
]

PLATFORM = "io"
_MAX_MESSAGE_CHARS = 300
_VALUE_RE = re.compile(r"value \[.*?\] at \[root", re.DOTALL)


class InvalidPayload(BadRequest):
    """400: App IO (or the client, before sending) refused the payload."""


class PaymentAmountTooHigh(BadRequest):
    """400: the amount is above the service's ``max_allowed_payment_amount``."""


class Unauthorized(AuthError):
    """401: the subscription key is missing, wrong or revoked (after trying both keys)."""


class RecipientForbidden(AuthError):
    """403 "Recipient forbidden": a draft service writing outside its authorized recipients."""


class PermissionDenied(AuthError):
    """403 for a missing permission: ADVANCED, payee, third-party data, production calls."""


class ProfileNotFound(NotFound):
    """404: the citizen has no App IO profile, or has disabled the inbox."""


class MessageNotFound(NotFound):
    """404: no such message for this fiscal code."""


class IoRateLimited(RateLimited):
    """429 from the App IO gateway (150 calls per 5 s per subscription)."""


class SenderNotAllowed(PermanentError):
    """The citizen's profile says ``sender_allowed: false``: the message was not sent."""


def redact_detail(detail: str) -> str:
    """``detail`` with the values io-ts echoes (``value [...] at [root…``) blanked out."""
    return _VALUE_RE.sub("value [...] at [root", detail)


def _parse(body: str | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value.strip() if isinstance(value, str) else ""


def _describe(doc: dict[str, Any], fallback: str) -> str:
    title, detail = _text(doc, "title"), redact_detail(_text(doc, "detail"))
    text = f"{title}: {detail}" if title and detail else title or detail or _text(doc, "message")
    text = " ".join(text.split())  # io-ts details are multi-line: one line for logs
    return (text or fallback)[:_MAX_MESSAGE_CHARS]


def map_io_error(error: UpstreamError, *, operation: str) -> ConnectorError:
    """The App IO error for ``error``; ``operation`` is ``"profile"``, ``"message"`` or
    ``"submit"``. Errors that need no refinement are returned unchanged."""
    doc = _parse(error.body)
    status = error.status
    cls: type[UpstreamError] | None = None
    message = _describe(doc, str(error.message))
    if status == 400:
        title = _text(doc, "title").lower()
        detail = _text(doc, "detail").lower()
        if "payment" in title or "exceeds the maximum allowed" in detail:
            cls = PaymentAmountTooHigh
        else:
            cls = InvalidPayload
    elif status == 401:
        cls = Unauthorized
        message = _text(doc, "message") or "missing or invalid subscription key"
    elif status == 403:
        recipient = _text(doc, "title") == "Recipient forbidden"
        cls = RecipientForbidden if recipient else PermissionDenied
    elif status == 404 and "title" in doc:  # ProblemJson from the backend, not APIM's
        cls = ProfileNotFound if operation == "profile" else MessageNotFound
    elif status == 429:
        cls = IoRateLimited
        message = _text(doc, "message") or "rate limit exceeded"
    if cls is None or isinstance(error, cls):
        return error
    mapped = cls(
        message,
        platform=error.platform or PLATFORM,
        retryable=error.retryable,
        retry_after=error.retry_after,
        status=status,
        request_id=error.request_id,
        body=error.body,
    )
    mapped.attempts = error.attempts
    return mapped


def outcome_unknown(error: BaseException) -> bool:
    """Whether a failed ``submit_message`` may still have created the message.

    True for a timeout, a connection dropped after it was established and a 5xx: App IO
    may have stored the message and only the answer was lost. App IO has no idempotency
    key, so sending again may deliver the message twice. False when nothing reached App
    IO (the connection could not be opened, the gateway answered 401 or 429, the payload
    was refused with a 4xx).
    """
    if isinstance(error, ConnectorTimeout | ServerError):
        return True
    if isinstance(error, TransportError):
        return not isinstance(error, ConnectError)  # refused or unreachable: nothing sent
    return False

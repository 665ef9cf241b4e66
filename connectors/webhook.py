"""Webhook delivery: a JSON POST to a tenant's system, carrying the outbox idempotency key
and, when the tenant has a secret, an HMAC-SHA256 signature over timestamp and body.

The hub's ``webhook`` outbox kind (``sportello.events.webhook_handler``) delivers through
:class:`WebhookConnector`, one attempt per outbox claim: the outbox owns retries. Like every
connector, this module imports nothing from the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp

from .errors import ConnectorTimeout, PermanentError, TransportError, error_from_response

SIGNATURE_HEADER = "Sportello-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex hmac-sha256 of "t." + body>`` (verify with :func:`verify`)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: float, tolerance: float = 300) -> bool:
    """Check a signature header; reject timestamps outside ``tolerance`` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookConnector:
    """Delivers one event to one URL through the shared session."""

    platform = "webhook"

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 20.0) -> None:
        self.session = session
        self.timeout = timeout

    async def deliver(
        self,
        url: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
        secret: bytes | None = None,
        now: float | None = None,
    ) -> str | None:
        """POST ``body``; the receiver's ``X-Request-ID`` (None when it sends none)."""
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if secret:
            headers[SIGNATURE_HEADER] = sign(
                secret, raw, int(now if now is not None else time.time())
            )
        try:
            async with self.session.post(
                url, data=raw, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                payload = await resp.read()
                if resp.status >= 300:
                    raise error_from_response(self.platform, resp.status, resp.headers, payload)
                return resp.headers.get("X-Request-ID")
        except TimeoutError as exc:
            raise ConnectorTimeout(
                f"no answer from {url} within {self.timeout}s", platform=self.platform
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"invalid webhook URL {url!r}", platform=self.platform) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"{type(exc).__name__} while posting to {url}", platform=self.platform
            ) from exc

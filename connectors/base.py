"""``BaseConnector``: one HTTP call to a platform, signed, timed out, retried, typed errors.

Platform connectors (pagoPA GPD, App IO, PDND, ANPR) subclass it, set ``platform`` and
build their API methods on ``request``. The ``aiohttp.ClientSession`` is injected: the
app owns one shared session and closes it; a connector never creates or closes one.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from yarl import URL, Query

from .errors import (
    ConnectError,
    ConnectorError,
    ConnectorTimeout,
    ProtocolError,
    SigningError,
    TransportError,
    error_from_response,
    request_id_from_headers,
)
from .http1 import BadResponse, ConnectFailed, LeanHttpClient
from .retry import RetryPolicy, Sleep, build_retrying
from .signing import OutgoingRequest, Signer

__all__ = ["DEFAULT_EXPECTED", "BaseConnector", "Response"]

log = logging.getLogger("sportello.connectors")

# An Italian personal fiscal code (with omocodia letters) anywhere in a path segment.
_FISCAL_CODE = re.compile(
    r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]", re.I
)


def redact_path(path: str) -> str:
    """The path with fiscal codes masked, fit for a log line."""
    return _FISCAL_CODE.sub("***", path)


DEFAULT_EXPECTED: tuple[int, ...] = (200, 201, 202, 204)


@dataclass
class Response:
    """A successful answer. ``attempts`` counts the tries it took (1 = no retry)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str | None = None
    attempts: int = 1
    platform: str = ""

    def json(self) -> Any:
        """The body parsed as JSON; ``ProtocolError`` when it is not JSON."""
        try:
            return jsonlib.loads(self.body)
        except ValueError as exc:
            raise ProtocolError(
                "response body is not valid JSON",
                platform=self.platform,
                status=self.status,
                request_id=self.request_id,
                body=self.body.decode("utf-8", errors="replace"),
            ) from exc


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    lowered = name.lower()
    return {k: v for k, v in headers.items() if k.lower() != lowered}


class BaseConnector:
    """Base class of the platform connectors; see the module docstring."""

    platform: ClassVar[str] = ""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        signer: Signer | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        transport: LeanHttpClient | None = None,
    ) -> None:
        if not self.platform:
            raise TypeError(f"{type(self).__name__} must set the `platform` class attribute")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        # Calls go through ``transport`` when given (high-volume JSON calls, see http1.py),
        # else through the aiohttp session.
        self.transport = transport

    def url_for(self, path: str, params: Query = None) -> str:
        """Absolute, encoded URL for ``path`` (relative to ``base_url``) and ``params``.

        Absolute URLs are refused so credentials are never sent to another host.
        """
        if "://" in path or path.startswith("//"):
            raise ValueError("path must be relative to base_url")
        url = URL(f"{self.base_url}/{path.lstrip('/')}")
        if params:
            url = url.extend_query(params)
        return str(url)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Query = None,
        idempotency_key: str | None = None,
        expected: Collection[int] = DEFAULT_EXPECTED,
    ) -> Response:
        """Send a request, retrying per ``retry_policy``; raise a ``ConnectorError`` on failure.

        The body is serialised once and the same ``Idempotency-Key`` goes on every attempt;
        the signer runs on every attempt with a fresh copy of the headers. Redirects are
        not followed (a signature covers one URL). Errors carry ``platform`` and
        ``attempts``.
        """
        if json is not None and data is not None:
            raise ValueError("pass either json or data, not both")
        method = method.upper()
        url = self.url_for(path, params)
        base_headers = dict(headers or {})
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            if not any(k.lower() == "content-type" for k in base_headers):
                base_headers["Content-Type"] = "application/json"
        elif data is not None:
            body = data
        if idempotency_key is not None:
            base_headers = _without(base_headers, "Idempotency-Key")
            base_headers["Idempotency-Key"] = idempotency_key
        wanted = frozenset(expected)
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = 0

        async def attempt() -> Response:
            nonlocal attempts
            attempts += 1
            outgoing = OutgoingRequest(
                method=method,
                url=url,
                headers=dict(base_headers),
                body=body,
                attempt=attempts,
                idempotency_key=idempotency_key,
            )
            try:
                response = await self._send(outgoing, wanted, self._attempt_timeout(started))
            except ConnectorError as error:
                if error.retries_spent:  # another connector's (e.g. the signer's voucher
                    raise  # call): its platform and attempt count stay as they are
                error.platform = error.platform or self.platform
                error.attempts = attempts
                raise
            response.attempts = attempts
            return response

        # The first attempt runs directly (most calls succeed, and tenacity's machinery costs
        # more than the call's own bookkeeping); a retryable failure continues the same
        # policy under tenacity, with the same waits it would have chosen.
        policy = self.retry_policy
        try:
            try:
                response: Response = await attempt()
            except ConnectorError as error:
                if policy.max_attempts <= 1 or not policy.should_retry(error):
                    raise
                delay = policy.compute_delay(1, error)
                elapsed = loop.time() - started
                if policy.deadline is not None and elapsed + delay > policy.deadline:
                    raise
                log.warning("attempt 1 failed (%s), retrying in %.2fs", error, delay)
                await self._sleep(delay)
                retrying = build_retrying(
                    policy, sleep=self._sleep, attempts_done=1, elapsed=loop.time() - started
                )
                response = await retrying(attempt)
        except ConnectorError as error:
            error.retries_spent = True  # an outer connector must not retry it again
            raise
        if log.isEnabledFor(logging.DEBUG):  # the URL parse and redaction cost: skip them
            log.debug(
                "%s %s %s -> %d (attempts=%d)",
                self.platform,
                method,
                redact_path(URL(url).path),  # no query, no fiscal codes: they are personal data
                response.status,
                response.attempts,
            )
        return response

    def _attempt_timeout(self, started: float) -> float:
        """Per-attempt timeout, shortened so the attempt cannot outlive the policy deadline."""
        deadline = self.retry_policy.deadline
        if deadline is None:
            return self.timeout
        remaining = deadline - (asyncio.get_running_loop().time() - started)
        if remaining <= 0:
            raise ConnectorTimeout(f"deadline of {deadline:g}s exceeded", retryable=False)
        return min(self.timeout, remaining)

    async def _sign(self, outgoing: OutgoingRequest) -> None:
        if self.signer is None:
            return
        try:
            await self.signer.sign(outgoing)
        except ConnectorError:
            raise
        except Exception as exc:
            # The message names the exception type only: its text might quote a secret.
            raise SigningError(f"signer failed: {type(exc).__name__}") from exc

    async def _send(
        self, outgoing: OutgoingRequest, expected: frozenset[int], time_limit: float
    ) -> Response:
        """One attempt: sign, send, read the whole body, map failures to ``ConnectorError``."""
        await self._sign(outgoing)
        if self.transport is not None:
            return await self._send_lean(self.transport, outgoing, expected, time_limit)
        try:
            async with self.session.request(
                outgoing.method,
                URL(outgoing.url, encoded=True),
                headers=outgoing.headers,
                data=outgoing.body or None,
                timeout=aiohttp.ClientTimeout(total=time_limit),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                resp_headers = resp.headers
                body = await resp.read()
        except TimeoutError as exc:  # includes aiohttp's ServerTimeoutError
            raise ConnectorTimeout(f"no complete answer within {time_limit:g}s") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            # A certificate that fails verification will fail again: do not retry.
            raise TransportError(f"TLS certificate error: {exc}", retryable=False) from exc
        except aiohttp.ClientConnectorError as exc:  # nothing was sent
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            # e.g. a malformed status line or headers. Its text can quote the URL: left out.
            raise ProtocolError(f"invalid HTTP answer: {type(exc).__name__}") from exc
        return self._answer(status, resp_headers, body, expected)

    async def _send_lean(
        self,
        transport: LeanHttpClient,
        outgoing: OutgoingRequest,
        expected: frozenset[int],
        time_limit: float,
    ) -> Response:
        try:
            result = await transport.request(
                outgoing.method,
                outgoing.url,
                headers=outgoing.headers,
                body=outgoing.body,
                time_limit=time_limit,
            )
        except TimeoutError as exc:
            raise ConnectorTimeout(f"no complete answer within {time_limit:g}s") from exc
        except ConnectFailed as exc:
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                # A certificate that fails verification will fail again: do not retry.
                raise TransportError(f"TLS certificate error: {exc}", retryable=False) from exc
            raise ConnectError(str(exc)) from exc
        except OSError as exc:  # ConnectionDropped and other socket errors
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except BadResponse as exc:
            raise ProtocolError(str(exc)) from exc
        return self._answer(result.status, result.headers, result.body, expected)

    def _answer(
        self, status: int, headers: Mapping[str, str], body: bytes, expected: frozenset[int]
    ) -> Response:
        if status not in expected:
            raise error_from_response(self.platform, status, headers, body)
        return Response(
            status=status,
            headers=headers,
            body=body,
            request_id=request_id_from_headers(headers),
            platform=self.platform,
        )

"""What the REST reference adapters share: options, the HTTP session, typed errors.

Options every REST adapter takes:

- ``base_url`` (required): the comune's service, e.g. ``https://gestionale.comune.example/api``;
- ``token``: a secret reference (``{env = "NAME"}`` or ``{file = "path"}``), sent as
  ``Authorization: Bearer <token>``; ``auth_header`` and ``auth_scheme`` change the header's
  name and prefix (``auth_scheme = ""`` sends the token alone, e.g. ``X-Api-Key``);
- ``timeout``: seconds for a whole request (default 10).

Errors are the connectors' typed errors (:mod:`sportello.connectors.errors`): no answer is a
``TransportError`` (``ConnectorTimeout`` after ``timeout``), 401/403 an ``AuthError``, 5xx a
``ServerError``, 429 ``RateLimited`` (the retryable ones are retried by the outbox), an answer
that is not the expected JSON a ``ProtocolError``. They never carry the token, and their
``str()`` never carries the answer's body (it may hold personal data).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from sportello.config import SecretRef
from sportello.connectors.errors import (
    ConnectorTimeout,
    ProtocolError,
    TransportError,
    error_from_response,
)

DEFAULT_TIMEOUT = 10.0


class RestClient:
    """A small JSON client for one comune service; the session opens on first use."""

    def __init__(self, options: Mapping[str, Any], *, base_dir: Path, platform: str) -> None:
        base = options.get("base_url")
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            raise ValueError(f"the {platform} adapter needs options.base_url (an http(s) URL)")
        self.base_url = base.rstrip("/")
        self.platform = platform
        raw = options.get("token")
        self.token = (
            None if raw is None else SecretRef.model_validate(raw, context={"base_dir": base_dir})
        )
        self.auth_header = str(options.get("auth_header", "Authorization"))
        self.auth_scheme = str(options.get("auth_scheme", "Bearer"))
        timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        if timeout <= 0:
            raise ValueError(f"the {platform} adapter's options.timeout must be positive")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        token = self.token.describe() if self.token else "none"
        return f"RestClient({self.base_url!r}, token={token})"

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        if self.token is not None:
            secret = self.token.reveal()
            headers[self.auth_header] = f"{self.auth_scheme} {secret}".strip()
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or None)`` for a status in ``ok``; any other raises."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        url = self.base_url + path
        where = f"{method} {path}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        sent = self._headers(headers)
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=sent
            ) as resp:
                raw = await resp.read()
                if resp.status not in ok:
                    raise error_from_response(self.platform, resp.status, resp.headers, raw)
                status = resp.status
                content_type = resp.content_type
        except TimeoutError:
            raise ConnectorTimeout(f"{where}: no answer in time", platform=self.platform) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{where}: {type(exc).__name__}", platform=self.platform) from None
        if not raw.strip():
            return status, None
        if "json" not in content_type:
            raise ProtocolError(
                f"{where}: expected JSON, got {content_type}", platform=self.platform, status=status
            )
        try:
            return status, json.loads(raw)
        except ValueError:
            raise ProtocolError(
                f"{where}: the answer is not valid JSON", platform=self.platform, status=status
            ) from None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
            await asyncio.sleep(0)

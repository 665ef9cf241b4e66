"""Provider-side PDND voucher check shared by the sandboxes of plain-voucher e-services
(SEND, INAD): the twin fetches the PDND sandbox's JWKS (as a real provider is configured
with PDND's JWKS URL), refreshes it when an unknown ``kid`` shows up, and checks every
``Authorization: Bearer`` voucher with ``sandbox.pdnd.verify.verify_voucher``: signature,
``typ``, issuer, audience, times, and optionally the purpose.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import aiohttp
import jwt

from .pdnd.verify import VoucherInvalid, verify_voucher

__all__ = ["VoucherChecker", "VoucherInvalid"]

_REFRESH_SECONDS = 5.0


class VoucherChecker:
    """Checks vouchers against a JWKS (a URL, fetched lazily, or a dict given directly).

    ``audience`` is the e-service audience the voucher must carry (a string, or a function
    of the request's base URL, so a twin on a free port checks its own URL).
    ``purposes``, when given, restricts the accepted ``purposeId`` values.
    """

    def __init__(
        self,
        jwks: str | Mapping[str, Any],
        *,
        issuer: str,
        audience: str | Callable[[str], str],
        purposes: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = jwks
        self._jwks: Mapping[str, Any] | None = jwks if not isinstance(jwks, str) else None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self.issuer = issuer
        self.audience = audience
        self.purposes = frozenset(purposes) if purposes is not None else None
        self.clock = clock

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _keys(self, kid: str) -> Mapping[str, Any]:
        if not isinstance(self._source, str):
            return self._source
        known = self._jwks is not None and any(
            k.get("kid") == kid for k in self._jwks.get("keys", []) if isinstance(k, dict)
        )
        if known:
            return self._jwks or {"keys": []}
        async with self._lock:
            if time.monotonic() - self._fetched_at >= _REFRESH_SECONDS or self._jwks is None:
                self._fetched_at = time.monotonic()
                if self._http is None:
                    self._http = aiohttp.ClientSession()
                try:
                    async with self._http.get(
                        self._source, timeout=aiohttp.ClientTimeout(total=5)
                    ) as response:
                        if response.status == 200:
                            doc = await response.json()
                            if isinstance(doc, dict):
                                self._jwks = doc
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
        return self._jwks or {"keys": []}

    async def check(self, authorization: str | None, base_url: str) -> dict[str, Any]:
        """The voucher's claims; ``VoucherInvalid`` (``reason`` names the failed check)."""
        if not authorization:
            raise VoucherInvalid("missing", "no Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise VoucherInvalid("malformed", "not a Bearer token")
        token = token.strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise VoucherInvalid("malformed", "not a compact JWS") from exc
        keys = await self._keys(str(kid))
        audience = self.audience if isinstance(self.audience, str) else self.audience(base_url)
        claims = verify_voucher(
            token, keys, audience=audience, issuer=self.issuer, now=self.clock()
        )
        if self.purposes is not None and claims.get("purposeId") not in self.purposes:
            raise VoucherInvalid("invalidPurpose", "purposeId not allowed for this e-service")
        return claims

"""Request signing: the one place where credentials are put on an outgoing request.

``BaseConnector`` calls ``Signer.sign`` on every attempt with a fresh header dict, so a
retry is always signed anew (ModI/PDND JWTs carry their own ``jti`` and ``iat``) and a
token refreshed between attempts is picked up. Signers must never log secret values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import SigningError

__all__ = [
    "BearerTokenSigner",
    "HeaderKeySigner",
    "OutgoingRequest",
    "SecretProvider",
    "Signer",
    "static_secret",
]

SecretProvider = Callable[[], Awaitable[str]]


@dataclass
class OutgoingRequest:
    """One attempt of a request, exactly as it will be sent (``url`` includes the query)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    attempt: int = 1
    idempotency_key: str | None = None


class Signer(Protocol):
    async def sign(self, request: OutgoingRequest) -> None:
        """Add authentication to ``request.headers`` (mutating it) for this attempt."""
        ...


def static_secret(value: str) -> SecretProvider:
    """A provider for a secret that never changes (tests, fixed subscription keys)."""

    async def provide() -> str:
        return value

    return provide


async def _fetch(provider: SecretProvider, what: str) -> str:
    value = await provider()
    if not isinstance(value, str) or not value:
        raise SigningError(f"{what} provider returned no value")
    if any(ch in value for ch in "\r\n\0"):
        # Never echo the value: it is a secret.
        raise SigningError(f"{what} provider returned a value with control characters")
    return value


class BearerTokenSigner:
    """Sets ``Authorization: Bearer <token>``, asking the provider on every attempt.

    The provider owns caching and refresh (for example a PDND voucher client).
    """

    def __init__(self, token_provider: SecretProvider) -> None:
        self._token_provider = token_provider

    def __repr__(self) -> str:
        return "BearerTokenSigner()"

    async def sign(self, request: OutgoingRequest) -> None:
        token = await _fetch(self._token_provider, "token")
        request.headers["Authorization"] = f"Bearer {token}"


class HeaderKeySigner:
    """Puts an API key in a header, e.g. App IO's ``Ocp-Apim-Subscription-Key``."""

    def __init__(self, header_name: str, key_provider: SecretProvider) -> None:
        if not header_name or any(ch in header_name for ch in " :\r\n"):
            raise ValueError(f"invalid header name {header_name!r}")
        self.header_name = header_name
        self._key_provider = key_provider

    def __repr__(self) -> str:
        return f"HeaderKeySigner({self.header_name!r})"

    async def sign(self, request: OutgoingRequest) -> None:
        request.headers[self.header_name] = await _fetch(self._key_provider, "key")

"""Why an OpenID Connect Federation message or flow was refused.

Every error has a short stable ``check`` (tests and logs branch on it) and a ``reason`` for
people. Reasons never quote tokens, personal claims or keys.
"""

from __future__ import annotations

__all__ = [
    "FederationError",
    "MetadataPolicyError",
    "OidcError",
    "ProviderError",
    "TokenRejected",
    "TrustChainError",
    "TrustMarkError",
]


class OidcError(Exception):
    """Base of every OIDC connector error."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


class FederationError(OidcError):
    """An entity statement or configuration cannot be fetched, parsed or verified."""


class TrustChainError(FederationError):
    """No valid trust chain from the subject to a configured trust anchor."""


class MetadataPolicyError(TrustChainError):
    """A superior's metadata policy is broken, or the subject's metadata violates it."""


class TrustMarkError(TrustChainError):
    """A trust mark is missing, badly signed, expired, of another subject, or revoked."""


class TokenRejected(OidcError):
    """A token, an authorization response or a userinfo answer failed a check
    (signature, issuer, audience, nonce, state, expiry, acr, decryption...)."""


class ProviderError(OidcError):
    """The OpenID provider answered with an OAuth error (``error``/``error_description``),
    or did not answer usably. ``check`` is the provider's ``error`` code when it sent one."""

    def __init__(self, check: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(check, reason)
        self.status = status

"""The PDND environments: token URL, client-assertion audience, voucher issuer, JWKS.

Each environment has its own clients, keys and purposes: a key uploaded in Collaudo is
unknown in Produzione. Attestazione's issuer and JWKS URL follow the pattern of the other
two but are not confirmed by a published document.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "ATTESTAZIONE",
    "COLLAUDO",
    "ENVIRONMENTS",
    "PRODUZIONE",
    "SANDBOX_ASSERTION_AUDIENCE",
    "SANDBOX_ISSUER",
    "PdndEnvironment",
    "assertion_audience_for",
]

SANDBOX_ISSUER = "sandbox.interop.pagopa.local"
SANDBOX_ASSERTION_AUDIENCE = "auth.sandbox.interop.pagopa.local/client-assertion"


@dataclass(frozen=True)
class PdndEnvironment:
    name: str
    token_url: str
    assertion_audience: str
    voucher_issuer: str
    jwks_url: str


COLLAUDO = PdndEnvironment(
    name="collaudo",
    token_url="https://auth.uat.interop.pagopa.it/token.oauth2",
    assertion_audience="auth.uat.interop.pagopa.it/client-assertion",
    voucher_issuer="uat.interop.pagopa.it",
    jwks_url="https://uat.interop.pagopa.it/.well-known/jwks.json",
)
ATTESTAZIONE = PdndEnvironment(
    name="attestazione",
    token_url="https://auth.att.interop.pagopa.it/token.oauth2",
    assertion_audience="auth.att.interop.pagopa.it/client-assertion",
    voucher_issuer="att.interop.pagopa.it",
    jwks_url="https://att.interop.pagopa.it/.well-known/jwks.json",
)
PRODUZIONE = PdndEnvironment(
    name="produzione",
    token_url="https://auth.interop.pagopa.it/token.oauth2",
    assertion_audience="auth.interop.pagopa.it/client-assertion",
    voucher_issuer="interop.pagopa.it",
    jwks_url="https://interop.pagopa.it/.well-known/jwks.json",
)

ENVIRONMENTS: dict[str, PdndEnvironment] = {
    env.name: env for env in (COLLAUDO, ATTESTAZIONE, PRODUZIONE)
}


def assertion_audience_for(token_url: str) -> str:
    """The client-assertion ``aud`` for a token URL.

    The three real environments follow one rule, ``<token host>/client-assertion`` (no
    scheme). A sandbox on ``127.0.0.1`` does not: configure its audience explicitly
    (``SANDBOX_ASSERTION_AUDIENCE`` by default).
    """
    host = urlsplit(token_url).hostname
    if not host:
        raise ValueError("token_url must be an absolute URL")
    return f"{host}/client-assertion"

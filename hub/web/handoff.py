"""What the hub's own pages (front office, console) need from the login platform, as
kernel types: the login buttons to show and the one-time code exchange. The login platform
provides it through ``hub_login_handoff``; the pages never import that platform.

A page sends the browser to a choice's ``url`` with its own ``return_to`` (a path it
declared with ``hub_login_return_paths``) and a ``state``; after the login the browser
comes back with ``code`` and ``state``, and the page exchanges the code server-side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..config import TenantConfig


@dataclass(frozen=True)
class IdpChoice:
    """One identity provider of a scheme: its name and the URL that starts the login there."""

    name: str
    entity_id: str
    url: str


@dataclass(frozen=True)
class LoginChoice:
    """A login button: ``scheme`` is ``spid`` or ``cie``; ``protocol`` ``saml`` or ``oidc``;
    ``url`` starts the login (the IdP chooser for SPID); ``idps`` lists SPID's providers (in
    random order, as AgID's button requires) for a page that draws its own chooser."""

    scheme: str
    protocol: str
    label: str
    url: str
    idps: tuple[IdpChoice, ...] = field(default_factory=tuple)


class LoginHandoff(Protocol):
    async def choices(
        self, tenant: TenantConfig, *, return_to: str, state: str
    ) -> list[LoginChoice]:
        """The tenant's login buttons, each leading back to ``return_to`` with ``state``."""
        ...

    async def exchange(
        self, tenant_id: str, code: str, *, actor: str, purpose: str, now: datetime
    ) -> dict[str, Any] | None:
        """The identity behind a code (once; audited), or None: the same payload as
        ``POST /api/v1/tenants/{tenant}/logins/exchange`` (``fiscal_code``, ``scheme``,
        ``level``, ``attributes``...)."""
        ...

"""The login platform's side of :mod:`sportello.web.handoff`: the login buttons of a
tenant for the hub's own pages (front office, console) and the code exchange, both going
through the same routes and store as a tenant application's login."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sportello.config import TenantConfig
from sportello.web.handoff import IdpChoice, LoginChoice

from .routes import LOGIN
from .settings import oidc_tenant_settings, saml_settings

LABELS = {"spid": "Entra con SPID", "cie": "Entra con CIE"}


class Handoff:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def choices(
        self, tenant: TenantConfig, *, return_to: str, state: str
    ) -> list[LoginChoice]:
        out: list[LoginChoice] = []
        service = self.app.get(LOGIN)
        for kind in ("spid", "cie"):
            if service is None or saml_settings(tenant, kind) is None:
                continue
            base = f"/t/{tenant.id}/{kind}/login"
            query = {"return_to": return_to, "state": state}
            await service.idps.ensure(tenant, kind)
            idps = [
                IdpChoice(
                    name=i.name or i.entity_id,
                    entity_id=i.entity_id,
                    url=f"{base}?{urlencode({**query, 'idp': i.entity_id})}",
                )
                for i in service.idps.all(tenant, kind)
            ]
            random.shuffle(idps)  # AgID's SPID button: providers in random order
            out.append(
                LoginChoice(
                    scheme=kind,
                    protocol="saml",
                    label=LABELS[kind],
                    url=f"{base}?{urlencode(query)}",
                    idps=tuple(idps),
                )
            )
        oidc = oidc_tenant_settings(tenant)
        if oidc is not None:
            for scheme, providers in oidc.providers.items():
                if not providers or any(c.scheme == scheme for c in out):
                    continue
                base = f"/t/{tenant.id}/oidc/login"
                query = {"return_to": return_to, "state": state}
                listed = [
                    IdpChoice(
                        name=str(p).split("//", 1)[-1].rstrip("/"),
                        entity_id=str(p),
                        url=f"{base}?{urlencode({'provider': str(p), **query})}",
                    )
                    for p in providers
                ]
                random.shuffle(listed)
                out.append(
                    LoginChoice(
                        scheme=scheme,
                        protocol="oidc",
                        label=LABELS[scheme],
                        url=listed[0].url,
                        idps=tuple(listed),
                    )
                )
        return out

    async def exchange(
        self, tenant_id: str, code: str, *, actor: str, purpose: str, now: datetime
    ) -> dict[str, Any] | None:
        service = self.app.get(LOGIN)
        if service is None:
            return None
        return await service.hand_over(tenant_id, code, actor=actor, purpose=purpose, now=now)

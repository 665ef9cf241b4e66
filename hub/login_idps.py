"""Which identity providers each tenant trusts, for SPID and for CIE.

Sources, per tenant and scheme (``[tenants.spid]`` / ``[tenants.cie]``):

- ``idp_metadata``: files, or http(s) URLs (the sandbox IdP, a test IdP) fetched at start and
  again, at most every ``REFETCH_SECONDS``, when a login names an IdP not yet known;
- ``use_registry = true``: the official SPID list, from the last good copy that
  ``sportello idps refresh`` keeps under ``var/idps/`` (a failed refresh never loses it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from sportello.connectors.spid.idps import parse_idp_metadata
from sportello.connectors.spid.models import IdpInfo, Kind

from .config import HubConfig, TenantConfig

log = logging.getLogger("sportello.login")

REFETCH_SECONDS = 30.0
REGISTRY_CACHE = Path("var/idps/spid-entities-idps.xml")


class IdpDirectory:
    def __init__(self, config: HubConfig, registry_cache: Path | None = None) -> None:
        self.config = config
        self.registry_cache = registry_cache or REGISTRY_CACHE
        self._known: dict[tuple[str, str], dict[str, IdpInfo]] = {}
        self._fetched: dict[str, float] = {}
        self._registry: dict[str, IdpInfo] = {}
        self._lock = asyncio.Lock()

    def _sources(self, tenant: TenantConfig, kind: Kind) -> list[str]:
        settings = tenant.spid if kind == "spid" else tenant.cie
        return list(settings.idp_metadata) if settings is not None else []

    def _uses_registry(self, tenant: TenantConfig, kind: Kind) -> bool:
        settings = tenant.spid if kind == "spid" else tenant.cie
        return bool(settings and settings.use_registry and kind == "spid")

    async def load_all(self) -> None:
        """Load every tenant's sources; a source that fails is logged and retried later."""
        if self.registry_cache.exists():
            try:
                for idp in parse_idp_metadata(self.registry_cache.read_bytes()):
                    self._registry[idp.entity_id] = idp
            except Exception as exc:  # a bad cache must not stop the hub
                log.error("IdP registry cache %s unusable: %s", self.registry_cache, exc)
        for tenant in self.config.tenants:
            for kind in ("spid", "cie"):
                if (tenant.spid if kind == "spid" else tenant.cie) is not None:
                    await self._load(tenant, kind)

    async def _load(self, tenant: TenantConfig, kind: Kind, *, only_urls: bool = False) -> None:
        known = self._known.setdefault((tenant.id, kind), {})
        for source in self._sources(tenant, kind):
            is_url = source.startswith(("http://", "https://"))
            if only_urls and not is_url:
                continue
            try:
                data = await (_fetch(source) if is_url else asyncio.to_thread(_read, source))
                self._fetched[source] = time.monotonic()
                for idp in parse_idp_metadata(data):
                    known[idp.entity_id] = idp
            except Exception as exc:  # one bad source never hides the others
                self._fetched[source] = time.monotonic()
                log.warning("IdP metadata %s not loaded: %s", source, exc)

    def all(self, tenant: TenantConfig, kind: Kind) -> list[IdpInfo]:
        found = dict(self._known.get((tenant.id, kind), {}))
        if self._uses_registry(tenant, kind):
            found = {**self._registry, **found}
        return sorted(found.values(), key=lambda i: (i.name or i.entity_id).lower())

    def resolver(self, tenant: TenantConfig, kind: Kind) -> Callable[[str], IdpInfo | None]:
        table = {i.entity_id: i for i in self.all(tenant, kind)}
        return table.get

    async def ensure(self, tenant: TenantConfig, kind: Kind) -> None:
        """When no IdP is known yet (a URL source was down at start), try the URLs again."""
        if not self.all(tenant, kind):
            await self.get(tenant, kind, "")

    async def get(self, tenant: TenantConfig, kind: Kind, entity_id: str) -> IdpInfo | None:
        found = self.resolver(tenant, kind)(entity_id)
        if found is not None:
            return found
        stale = [
            s
            for s in self._sources(tenant, kind)
            if s.startswith(("http://", "https://"))
            and time.monotonic() - self._fetched.get(s, 0.0) > REFETCH_SECONDS
        ]
        if stale:
            async with self._lock:
                await self._load(tenant, kind, only_urls=True)
        return self.resolver(tenant, kind)(entity_id)


async def _fetch(url: str) -> bytes:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        resp.raise_for_status()
        return await resp.read()


async def refresh_registry(url: str, cache: Path) -> int:
    """Fetch the aggregated IdP metadata into ``cache``: replaced only when it parses."""
    data = await _fetch(url)
    idps = parse_idp_metadata(data)  # raises on a bad document: the old copy stays
    if not idps:
        raise ValueError(f"{url}: no identity provider in the document; cache kept")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cache)
    return len(idps)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()

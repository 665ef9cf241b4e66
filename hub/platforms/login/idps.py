"""Which identity providers each tenant trusts, for SPID and for CIE.

Sources, per tenant and scheme (``[tenants.spid]`` / ``[tenants.cie]``):

- ``idp_metadata``: files, or http(s) URLs (the sandbox IdP, a test IdP) fetched at start and
  again, at most every ``REFETCH_SECONDS``, when a login names an IdP not yet known;
- ``use_registry = true``: the official SPID list, from the last good copy that
  ``sportello idps refresh`` keeps under ``var/idps/`` (a failed refresh never loses it).

Whatever comes over the network (a metadata URL, the registry) counts only when one of the
``[idps] signing_certs`` signed it (AgID's certificate for the registry); the cached registry
copy is checked again when it is read. Local files are trusted as configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from sportello.config import HubConfig, TenantConfig
from sportello.connectors.spid.idps import parse_idp_metadata, parse_signed_idp_metadata
from sportello.connectors.spid.models import IdpInfo, Kind
from sportello.platforms.login.settings import idp_trust, saml_settings

log = logging.getLogger("sportello.platforms.login.routes")

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
        try:
            self.certs = idp_trust(config).pems()
        except ValueError as exc:  # logged; every fetched document is then refused
            log.error("IdP metadata signing certificates unusable: %s", exc)
            self.certs = []

    def reload_registry(self) -> None:
        """Read the registry's cached copy again (after a refresh); a bad one changes nothing."""
        if not self.registry_cache.exists():
            return
        try:
            data = self.registry_cache.read_bytes()
            what = f"IdP registry cache {self.registry_cache}"
            found = {i.entity_id: i for i in parse_signed_idp_metadata(data, self.certs, what=what)}
        except Exception as exc:  # a bad cache must not stop the hub
            log.error("IdP registry cache %s unusable: %s", self.registry_cache, exc)
            return
        self._registry = found

    async def refresh_registry(self, url: str) -> int:
        """Fetch the registry into this replica's cache and use it (the periodic task)."""
        count = await refresh_registry(url, self.registry_cache, self.certs)
        self.reload_registry()
        return count

    def _sources(self, tenant: TenantConfig, kind: Kind) -> list[str]:
        settings = saml_settings(tenant, kind)
        return list(settings.idp_metadata) if settings is not None else []

    def _uses_registry(self, tenant: TenantConfig, kind: Kind) -> bool:
        settings = saml_settings(tenant, kind)
        return bool(settings and settings.use_registry and kind == "spid")

    async def load_all(self) -> None:
        """Load every tenant's sources; a source that fails is logged and retried later.

        Each source is read and parsed once however many tenants list it (thousands of
        tenants usually trust the same IdP metadata files): the tenants share its IdPs."""
        self.reload_registry()
        memo: dict[str, list[IdpInfo] | Exception] = {}
        for tenant in self.config.tenants:
            for kind in ("spid", "cie"):
                if saml_settings(tenant, kind) is not None:
                    await self._load(tenant, kind, memo=memo)

    async def _load(
        self,
        tenant: TenantConfig,
        kind: Kind,
        *,
        only_urls: bool = False,
        memo: dict[str, list[IdpInfo] | Exception] | None = None,
    ) -> None:
        known = self._known.setdefault((tenant.id, kind), {})
        for source in self._sources(tenant, kind):
            is_url = source.startswith(("http://", "https://"))
            if only_urls and not is_url:
                continue
            found = memo.get(source) if memo is not None else None
            if found is None:
                found = await self._read_source(source, is_url)
                if memo is not None:
                    memo[source] = found
            if isinstance(found, Exception):  # one bad source never hides the others
                continue
            for idp in found:
                known[idp.entity_id] = idp

    async def _read_source(self, source: str, is_url: bool) -> list[IdpInfo] | Exception:
        try:
            data = await (_fetch(source) if is_url else asyncio.to_thread(_read, source))
            self._fetched[source] = time.monotonic()
            return (
                parse_signed_idp_metadata(
                    data, self.certs, now=datetime.now(UTC), what=f"IdP metadata {source}"
                )
                if is_url
                else parse_idp_metadata(data)
            )
        except Exception as exc:  # logged once per source, not per tenant listing it
            self._fetched[source] = time.monotonic()
            log.warning("IdP metadata %s not loaded: %s", source, exc)
            return exc

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


async def refresh_registry(url: str, cache: Path, certs: Sequence[bytes]) -> int:
    """Fetch the aggregated IdP metadata into ``cache``: replaced only when one of ``certs``
    (AgID's) signed it, it has not expired and it lists IdPs. Any failure raises (the
    message says why) and leaves the last good copy untouched."""
    data = await _fetch(url)
    idps = parse_signed_idp_metadata(data, certs, now=datetime.now(UTC), what=f"IdP registry {url}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cache)
    return len(idps)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()

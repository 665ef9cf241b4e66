"""Service providers as the sandbox IdP knows them: read from their SAML metadata.

In this hub an SP's entityID is its metadata URL, so the IdP fetches the metadata from the
AuthnRequest's Issuer on first sight and caches it for ``ttl`` seconds. Metadata given to
``create_app(sp_metadata=...)`` or pushed to ``POST /__sandbox/sp-metadata`` is pinned: it
never expires and is never refetched (tests use it to run without an SP server).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import aiohttp

from .xmlutil import DS, MD, XmlRefused, parse_xml

__all__ = ["Endpoint", "SpMetadata", "SpRegistry", "parse_sp_metadata"]

BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


@dataclass(frozen=True)
class Endpoint:
    """An ACS or SLO endpoint of the SP."""

    binding: str
    location: str
    index: int | None = None
    is_default: bool = False
    response_location: str | None = None


@dataclass(frozen=True)
class SpMetadata:
    """What the IdP needs of an SP: signing certs, ACS and SLO endpoints, attribute sets."""

    entity_id: str
    certs: tuple[bytes, ...]
    acs: tuple[Endpoint, ...]
    slo: tuple[Endpoint, ...]
    attribute_sets: dict[int, tuple[str, ...]] = field(default_factory=dict)
    default_attribute_set: int | None = None

    def acs_by_index(self, index: int | None) -> Endpoint | None:
        """The ACS with that index, or the default one (``isDefault``, else the first)."""
        if index is not None:
            return next((e for e in self.acs if e.index == index), None)
        return next((e for e in self.acs if e.is_default), self.acs[0] if self.acs else None)

    def acs_by_url(self, url: str, binding: str | None) -> Endpoint | None:
        """The ACS with that Location (and binding, when given)."""
        return next(
            (e for e in self.acs if e.location == url and binding in (None, e.binding)), None
        )

    def requested_attributes(self, index: int | None) -> tuple[str, ...] | None:
        """The attribute names of that ``AttributeConsumingService`` (default when None);
        None when the index is not in the metadata."""
        if index is None:
            index = self.default_attribute_set
            if index is None:
                return ()
        return self.attribute_sets.get(index)

    def slo_endpoint(self, prefer: str = BINDING_REDIRECT) -> Endpoint | None:
        """The SLO endpoint for the preferred binding, else any."""
        return next((e for e in self.slo if e.binding == prefer), self.slo[0] if self.slo else None)


def _pem(b64: str) -> bytes:
    body = "".join(b64.split())
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(body, 64))).encode(
        "ascii"
    ) + b"\n-----END CERTIFICATE-----\n"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_sp_metadata(data: bytes) -> SpMetadata:
    """Read an ``EntityDescriptor`` with an ``SPSSODescriptor`` (the metadata's own signature
    is not checked: the sandbox trusts whoever configures it)."""
    root = parse_xml(data)
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise XmlRefused("sp_metadata", "the SP metadata root is not md:EntityDescriptor")
    entity_id = root.get("entityID")
    sp = root.find(f"{{{MD}}}SPSSODescriptor")
    if not entity_id or sp is None:
        raise XmlRefused("sp_metadata", "the SP metadata has no entityID or no SPSSODescriptor")
    certs = tuple(
        _pem(node.text or "")
        for kd in sp.findall(f"{{{MD}}}KeyDescriptor")
        if kd.get("use") in (None, "signing")
        for node in kd.iterfind(f".//{{{DS}}}X509Certificate")
        if (node.text or "").strip()
    )

    def endpoints(tag: str) -> tuple[Endpoint, ...]:
        found: list[Endpoint] = []
        for node in sp.findall(f"{{{MD}}}{tag}"):
            location = node.get("Location")
            if location:
                found.append(
                    Endpoint(
                        binding=node.get("Binding", ""),
                        location=location,
                        index=_int(node.get("index")),
                        is_default=node.get("isDefault") in ("true", "1"),
                        response_location=node.get("ResponseLocation"),
                    )
                )
        return tuple(found)

    sets: dict[int, tuple[str, ...]] = {}
    default_set: int | None = None
    for acs in sp.findall(f"{{{MD}}}AttributeConsumingService"):
        index = _int(acs.get("index"))
        if index is None:
            continue
        sets[index] = tuple(
            name
            for node in acs.findall(f"{{{MD}}}RequestedAttribute")
            if (name := node.get("Name"))
        )
        if acs.get("isDefault") in ("true", "1") and default_set is None:
            default_set = index
    if default_set is None and sets:
        default_set = min(sets)
    return SpMetadata(
        entity_id=entity_id,
        certs=certs,
        acs=endpoints("AssertionConsumerService"),
        slo=endpoints("SingleLogoutService"),
        attribute_sets=sets,
        default_attribute_set=default_set,
    )


@dataclass
class _Cached:
    metadata: SpMetadata
    fetched_at: float
    pinned: bool


class SpRegistry:
    """SP metadata by entityID: pinned entries plus fetched ones with a TTL."""

    def __init__(self, ttl: float = 60.0, timeout: float = 5.0) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._entries: dict[str, _Cached] = {}
        self._pinned: dict[str, SpMetadata] = {}

    def pin(self, metadata: SpMetadata, *, initial: bool = False) -> None:
        """Add metadata that never expires; ``initial`` ones survive ``reset()``."""
        self._entries[metadata.entity_id] = _Cached(metadata, 0.0, True)
        if initial:
            self._pinned[metadata.entity_id] = metadata

    def reset(self) -> None:
        """Forget everything but the metadata given at start."""
        self._entries = {k: _Cached(v, 0.0, True) for k, v in self._pinned.items()}

    def known(self) -> list[dict[str, object]]:
        """A JSON-able summary of the SPs in the cache."""
        return [
            {
                "entity_id": key,
                "pinned": entry.pinned,
                "acs": [e.location for e in entry.metadata.acs],
                "slo": [e.location for e in entry.metadata.slo],
                "certs": len(entry.metadata.certs),
                "attribute_sets": {
                    str(k): list(v) for k, v in entry.metadata.attribute_sets.items()
                },
            }
            for key, entry in self._entries.items()
        ]

    async def get(self, entity_id: str, now: float) -> SpMetadata:
        """The SP's metadata, fetched from its entityID URL when not cached or stale.

        Raises :class:`XmlRefused` (code ``sp_metadata``) when it cannot be had."""
        entry = self._entries.get(entity_id)
        if entry is not None and (entry.pinned or now - entry.fetched_at < self.ttl):
            return entry.metadata
        if not entity_id.startswith(("http://", "https://")):
            raise XmlRefused(
                "sp_metadata", f"unknown SP {entity_id!r} and its entityID is not a URL to fetch"
            )
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(entity_id) as resp,
            ):
                body = await resp.read()
                if resp.status != 200:
                    raise XmlRefused(
                        "sp_metadata",
                        f"fetching the SP metadata at {entity_id} answered HTTP {resp.status}",
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise XmlRefused(
                "sp_metadata", f"cannot fetch the SP metadata at {entity_id}: {exc!r}"
            ) from exc
        metadata = parse_sp_metadata(body)
        if metadata.entity_id != entity_id:
            raise XmlRefused(
                "sp_metadata",
                f"the metadata at {entity_id} declares entityID {metadata.entity_id!r}",
            )
        self._entries[entity_id] = _Cached(metadata, now, False)
        return metadata

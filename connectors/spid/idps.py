"""Trusted identity providers: parsing IdP metadata, checking its signature, caching it.

SPID IdPs come from AgID's signed aggregated metadata (``spid-entities-idps.xml``), CIE
from the Ministry's IdP metadata; extra metadata files (test IdPs, spid-sp-test, the
sandbox) are added per scheme. A refresh never loses the last good copy: the fetched
document replaces the cached file only after it parses (and, with a configured signing
certificate, verifies). The store itself is hand-written; lxml parses and xmlsec verifies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from xmlsec import constants as xc

from .errors import SamlConfigError
from .models import IdpInfo, Kind
from .xmlsign import DS_NS

log = logging.getLogger(__name__)

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

SPID_REGISTRY_METADATA_URL = "https://registry.spid.gov.it/metadata/idp/spid-entities-idps.xml"
SPID_REGISTRY_JSON_URL = "https://registry.spid.gov.it/entities-idp?&output=json"
CIE_METADATA_URL = "https://idserver.servizicie.interno.gov.it/idp/shibboleth?Metadata"

_NS = {"md": MD_NS, "ds": DS_NS}


def parse_xml(xml: bytes) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network; a DOCTYPE is refused."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise SamlConfigError(f"metadata is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise SamlConfigError("metadata with a DOCTYPE is refused")
    return root


def _b64_to_pem(text: str) -> bytes | None:
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    return cert.public_bytes(serialization.Encoding.PEM)


def _idp_from_entity(entity: etree._Element) -> IdpInfo | None:
    desc = entity.find("md:IDPSSODescriptor", _NS)
    entity_id = entity.get("entityID")
    if desc is None or not entity_id:
        return None
    certs: list[bytes] = []
    for kd in desc.findall("md:KeyDescriptor", _NS):
        if kd.get("use") not in (None, "signing"):
            continue
        for el in kd.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
            pem = _b64_to_pem(el.text or "")
            if pem and pem not in certs:
                certs.append(pem)
    sso = {s.get("Binding"): s.get("Location") for s in desc.findall("md:SingleSignOnService", _NS)}
    slo: dict[str | None, etree._Element] = {
        s.get("Binding"): s for s in desc.findall("md:SingleLogoutService", _NS)
    }
    slo_redirect = slo.get(REDIRECT)
    slo_post = slo.get(POST)
    return IdpInfo(
        entity_id=entity_id,
        name=_display_name(entity) or entity_id,
        certs=tuple(certs),
        sso_redirect=sso.get(REDIRECT),
        sso_post=sso.get(POST),
        slo_redirect=slo_redirect.get("Location") if slo_redirect is not None else None,
        slo_post=slo_post.get("Location") if slo_post is not None else None,
        slo_redirect_response=(
            slo_redirect.get("ResponseLocation") if slo_redirect is not None else None
        ),
    )


def _display_name(entity: etree._Element) -> str | None:
    for tag in ("OrganizationDisplayName", "OrganizationName"):
        names = entity.findall(f"md:Organization/md:{tag}", _NS)
        chosen = [n for n in names if n.get(XML_LANG) == "it"] or names
        if chosen and (chosen[0].text or "").strip():
            return (chosen[0].text or "").strip()
    return None


def parse_idp_metadata(xml: bytes) -> list[IdpInfo]:
    """Every IdP in an ``EntityDescriptor`` or (nested) ``EntitiesDescriptor`` document.

    Entities without an ``IDPSSODescriptor`` are skipped.
    """
    return _idps_from_root(parse_xml(xml))


def _idps_from_root(root: etree._Element) -> list[IdpInfo]:
    if root.tag == f"{{{MD_NS}}}EntityDescriptor":
        entities = [root]
    elif root.tag == f"{{{MD_NS}}}EntitiesDescriptor":
        entities = list(root.iter(f"{{{MD_NS}}}EntityDescriptor"))
    else:
        raise SamlConfigError("not SAML metadata (no EntityDescriptor/EntitiesDescriptor)")
    idps = [i for i in (_idp_from_entity(e) for e in entities) if i is not None]
    return idps


def verify_metadata_signature(xml: bytes, cert_pem: bytes) -> bool:
    """Whether the document root carries a valid enveloped signature by ``cert_pem``.

    The signature must be a direct child of the root and its only Reference must point at
    the root (``#ID`` or ``""``), so nothing outside the signed element is trusted; only
    enveloped/exc-c14n/c14n transforms are accepted (no XSLT, no XPath).
    """
    try:
        root = parse_xml(xml)
    except SamlConfigError:
        return False
    return _verify_root(root, cert_pem)


_REFERENCE_TRANSFORMS = (
    xc.TransformEnveloped,
    xc.TransformExclC14N,
    xc.TransformInclC14N,
    xc.TransformSha256,
    xc.TransformSha384,
    xc.TransformSha512,
)
_SIGNATURE_TRANSFORMS = (
    xc.TransformExclC14N,
    xc.TransformInclC14N,
    xc.TransformRsaSha256,
    xc.TransformRsaSha384,
    xc.TransformRsaSha512,
    xc.TransformEcdsaSha256,
    xc.TransformEcdsaSha384,
    xc.TransformEcdsaSha512,
)


def _verify_root(root: etree._Element, cert_pem: bytes) -> bool:
    sigs = root.findall("ds:Signature", _NS)
    if len(sigs) != 1:
        return False
    refs = sigs[0].findall("ds:SignedInfo/ds:Reference", _NS)
    if len(refs) != 1:
        return False
    uri = refs[0].get("URI")
    root_id = root.get("ID")
    if not (uri == "" or (root_id and uri == f"#{root_id}")):
        return False
    try:
        key = xmlsec.Key.from_memory(cert_pem, xc.KeyDataFormatCertPem)
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        for transform in _REFERENCE_TRANSFORMS:
            ctx.enable_reference_transform(transform)
        for transform in _SIGNATURE_TRANSFORMS:
            ctx.enable_signature_transform(transform)
        if root_id:
            ctx.register_id(root, "ID")
        ctx.verify(sigs[0])
    except xmlsec.Error:
        return False
    return True


def parse_signed_idp_metadata(
    xml: bytes,
    certs: Sequence[bytes],
    *,
    now: datetime | None = None,
    what: str = "IdP metadata",
) -> list[IdpInfo]:
    """The IdPs of a document fetched over the network, only when one of ``certs`` signed it.

    Refuses (:class:`SamlConfigError`, with a message fit for an operator) a document that
    is not signed, whose signature does not verify against any configured certificate,
    whose ``validUntil`` has passed (with ``now``), or that lists no IdP. With no
    certificate configured nothing fetched is trusted.
    """
    if not certs:
        raise SamlConfigError(
            f"{what}: no signing certificate configured to verify it ([idps] signing_certs)"
        )
    root = parse_xml(xml)
    if not root.findall("ds:Signature", _NS):
        raise SamlConfigError(f"{what} is not signed: refused")
    if not any(_verify_root(root, cert) for cert in certs):
        raise SamlConfigError(
            f"{what}: the signature does not verify against the configured certificate(s): refused"
        )
    if now is not None and _expired(root, now):
        raise SamlConfigError(f"{what}: validUntil is in the past: refused")
    idps = _idps_from_root(root)
    if not idps:
        raise SamlConfigError(f"{what} holds no identity provider: refused")
    return idps


def _expired(root: etree._Element, now: datetime) -> bool:
    valid_until = root.get("validUntil")
    if not valid_until:
        return False
    try:
        when = datetime.fromisoformat(valid_until.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < now


@dataclass(frozen=True)
class RegistryEntry:
    """One IdP of the AgID registry JSON (``entities-idp?&output=json``, Avviso 42).

    Assumed shape (observed in public SPID button code, not in a spec): a JSON list of
    objects with ``entity_id``, ``organization_name`` and optionally ``logo_uri``,
    ``registry_link`` and ``file_name``; unknown fields are ignored.
    """

    entity_id: str
    organization_name: str
    logo_uri: str | None = None
    registry_link: str | None = None
    file_name: str | None = None


def parse_registry_json(
    data: bytes | str | Sequence[Any] | Mapping[str, Any],
) -> list[RegistryEntry]:
    """Parse the registry's IdP list; items without ``entity_id`` are skipped."""
    obj: Any = json.loads(data) if isinstance(data, (bytes, str)) else data
    if isinstance(obj, Mapping):
        obj = obj.get("data") or obj.get("entities") or obj.get("items") or []
    if not isinstance(obj, Sequence):
        raise SamlConfigError("registry JSON is not a list of IdPs")
    out: list[RegistryEntry] = []
    for item in obj:
        if not isinstance(item, Mapping):
            continue
        entity_id = item.get("entity_id") or item.get("entityID")
        if not isinstance(entity_id, str) or not entity_id:
            continue

        def opt(key: str, item: Mapping[str, Any] = item) -> str | None:
            value = item.get(key)
            return value if isinstance(value, str) and value else None

        out.append(
            RegistryEntry(
                entity_id=entity_id,
                organization_name=opt("organization_name") or entity_id,
                logo_uri=opt("logo_uri"),
                registry_link=opt("registry_link"),
                file_name=opt("file_name"),
            )
        )
    return out


@dataclass(frozen=True)
class MetadataSource:
    """A remote metadata document the store refreshes and caches as ``cache_name``."""

    kind: Kind
    url: str
    cache_name: str
    signing_cert: bytes | None = None  # when set, the document must be signed by it


SPID_REGISTRY_SOURCE = MetadataSource("spid", SPID_REGISTRY_METADATA_URL, "spid-entities-idps.xml")

Fetch = Callable[[str], Awaitable[bytes]]


class IdpStore:
    """Trusted IdPs per scheme, from remote sources (cached on disk) and extra files.

    Extra files win over remote entries with the same entityID (e.g. a test IdP).
    """

    def __init__(
        self,
        *,
        sources: Sequence[MetadataSource] = (SPID_REGISTRY_SOURCE,),
        files: Mapping[Kind, Sequence[Path]] | None = None,
    ) -> None:
        self.sources = tuple(sources)
        self.files: dict[Kind, tuple[Path, ...]] = {k: tuple(v) for k, v in (files or {}).items()}
        self._remote: dict[str, list[IdpInfo]] = {}
        self._extra: dict[Kind, list[IdpInfo]] = {}
        self._index: dict[Kind, dict[str, IdpInfo]] = {"spid": {}, "cie": {}}

    # --- loading -------------------------------------------------------------------------

    def load(self, cache_dir: Path | None = None) -> list[str]:
        """Read the extra files and the cached copies; returns the problems found.

        A missing or unreadable cached copy is reported, not raised (the next refresh may
        fix it); an unreadable extra file raises :class:`SamlConfigError` (configuration).
        """
        problems: list[str] = []
        extra: dict[Kind, list[IdpInfo]] = {}
        for kind, paths in self.files.items():
            for path in paths:
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise SamlConfigError(f"cannot read IdP metadata {path}: {exc}") from exc
                extra.setdefault(kind, []).extend(parse_idp_metadata(data))
        self._extra = extra
        if cache_dir is not None:
            for source in self.sources:
                path = cache_dir / source.cache_name
                if not path.exists():
                    problems.append(f"{source.cache_name}: no cached copy yet")
                    continue
                try:
                    self._remote[source.cache_name] = self._accept(
                        source, path.read_bytes(), check_expiry=False
                    )
                except (OSError, SamlConfigError) as exc:
                    problems.append(f"{source.cache_name}: cached copy refused: {exc}")
        self._reindex()
        return problems

    async def refresh(self, fetch: Fetch, cache_dir: Path) -> list[str]:
        """Fetch every source; replace its cached copy only when the new one is good.

        Returns the problems (empty = all sources refreshed). On any failure the last good
        copy, in memory and on disk, stays in use.
        """
        problems: list[str] = []
        for source in self.sources:
            try:
                data = await fetch(source.url)
                idps = self._accept(source, data, check_expiry=True)
            except Exception as exc:  # any fetch/parse failure keeps the old copy
                log.warning("IdP metadata refresh failed for %s: %s", source.url, exc)
                problems.append(f"{source.url}: {exc}")
                continue
            await asyncio.to_thread(_atomic_write, cache_dir, source.cache_name, data)
            self._remote[source.cache_name] = idps
        self._reindex()
        return problems

    def _accept(self, source: MetadataSource, data: bytes, *, check_expiry: bool) -> list[IdpInfo]:
        root = parse_xml(data)
        if source.signing_cert is not None and not _verify_root(root, source.signing_cert):
            raise SamlConfigError("metadata signature does not verify")
        if check_expiry and _expired(root, datetime.now(UTC)):
            raise SamlConfigError("metadata validUntil is in the past")
        idps = _idps_from_root(root)
        if not idps:
            raise SamlConfigError("metadata holds no identity provider")
        return idps

    def _reindex(self) -> None:
        index: dict[Kind, dict[str, IdpInfo]] = {"spid": {}, "cie": {}}
        for source in self.sources:
            for idp in self._remote.get(source.cache_name, []):
                index[source.kind][idp.entity_id] = idp
        for kind, idps in self._extra.items():
            for idp in idps:
                index[kind][idp.entity_id] = idp
        self._index = index

    # --- queries -------------------------------------------------------------------------

    def get(self, entity_id: str, kind: Kind | None = None) -> IdpInfo | None:
        """The trusted IdP with this entityID (in ``kind`` only, when given)."""
        kinds: tuple[Kind, ...] = (kind,) if kind else ("spid", "cie")
        for k in kinds:
            idp = self._index[k].get(entity_id)
            if idp is not None:
                return idp
        return None

    def kind_of(self, entity_id: str) -> Kind | None:
        """Which scheme trusts this entityID."""
        kinds: tuple[Kind, ...] = ("spid", "cie")
        for k in kinds:
            if entity_id in self._index[k]:
                return k
        return None

    def all(self, kind: Kind) -> list[IdpInfo]:
        """Every trusted IdP of a scheme, sorted by name."""
        return sorted(self._index[kind].values(), key=lambda i: (i.name.lower(), i.entity_id))


def _atomic_write(cache_dir: Path, name: str, data: bytes) -> None:
    """Write-then-rename, so a crash never leaves a half-written cached copy."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / name
    tmp = cache_dir / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)

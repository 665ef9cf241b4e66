"""Deployment configuration: one TOML file, validated by pydantic into typed objects.

Secrets are never written inline: a secret field holds a reference, ``{env = "NAME"}`` or
``{file = "path"}``, resolved only when a connector needs the value and never printed.
A bad file raises :class:`ConfigError`, whose message names the file, the field path and
what was expected, one problem per line.

This module holds the kernel's sections only. Each platform declares its own in its
``settings.py`` (``hub_tenant_settings``, ``hub_settings``): :func:`parse_config` validates
with the model :func:`config_model` builds from the enabled plugins' sections.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from . import toml_files

SECRET_HINT = 'secrets must be references: write {env = "NAME"} or {file = "path"}, not the value'


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is ready to show to a person."""

    def __init__(self, path: str | os.PathLike[str], problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


class ConfigModel(BaseModel):
    """Base of every settings model, the platforms' included: unknown fields are refused
    and the objects are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_Model = ConfigModel


#: whitespace (``str.isspace``) or a control character below 32
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


@functools.lru_cache(maxsize=4096)  # thousands of tenant files repeat the same URLs
def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host: ``sportello.example.it`` or ``htps//...`` would
    end up in SAML entityIDs, return URLs and platform calls as relative nonsense."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or _SPACE_OR_CONTROL.search(value)
    ):
        raise ValueError(
            "expected an absolute http:// or https:// URL with a host, "
            "e.g. https://sportello.example.it"
        )
    return value


#: A configured URL: scheme http or https and a host are required.
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class SecretRef(_Model):
    """A reference to a secret held outside the configuration file."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(SECRET_HINT)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError('give exactly one of env = "NAME" or file = "path"')
        return self

    @field_validator("file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    def reveal(self) -> str:
        """Return the secret value. Call it at the point of use; never log the result."""
        if self.env is not None:
            try:
                return os.environ[self.env]
            except KeyError:
                raise LookupError(f"secret environment variable {self.env} is not set") from None
        assert self.file is not None
        from .secrets import SecretError, read_secret_file

        try:
            return read_secret_file(self.file)
        except OSError as exc:
            raise LookupError(f"secret file {self.file} cannot be read: {exc.strerror}") from None
        except SecretError as exc:
            raise LookupError(str(exc)) from None

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"

    __str__ = __repr__


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_url: HttpUrl | None = Field(
        default=None, description="URL citizens and platforms use to reach the hub"
    )
    max_body_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 1024 * 1024)] = Field(
        default=1024 * 1024,
        description="largest request body accepted (bytes); larger ones get 413",
    )


class DatabaseSettings(_Model):
    url: str = Field(
        default="sqlite+aiosqlite:///var/sportello.sqlite",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    pool_size: Annotated[int, Field(ge=1, le=200)] = 10

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith("sqlite:"):
            value = "sqlite+aiosqlite:" + value[len("sqlite:") :]
        elif value.startswith(("postgresql:", "postgres:")):
            value = "postgresql+asyncpg:" + value.split(":", 1)[1]
        if not value.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
            raise ValueError(
                "expected sqlite+aiosqlite:///path/to/file.sqlite or "
                "postgresql+asyncpg://user@host:port/database"
            )
        base = (info.context or {}).get("base_dir") if info.context else None
        prefix = "sqlite+aiosqlite:///"
        if value.startswith(prefix) and base is not None:
            path = value[len(prefix) :]
            if path and path != ":memory:" and not Path(path).is_absolute():
                value = prefix + str(Path(base) / path)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class OutboxSettings(_Model):
    workers: bool = Field(default=True, description="run delivery workers in this process")
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 128
    lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 12
    backoff_base: Annotated[float, Field(gt=0)] = 2.0
    backoff_cap: Annotated[float, Field(gt=0)] = 3600.0
    poll_interval: Annotated[float, Field(gt=0)] = 0.5
    shutdown_grace: Annotated[float, Field(ge=0)] = 10.0
    http_timeout: Annotated[float, Field(gt=0)] = 20.0
    job_timeout: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="longest one delivery attempt may run (its lease is renewed meanwhile)",
    )

    @property
    def http_connections(self) -> int:
        """Connections per origin for the hub's HTTP clients: room for every job in flight."""
        return max(100, self.concurrency * 2)


class PeriodicSettings(_Model):
    """Periodic tasks (the SUAP poller, the GPD receipts poller, the IdP registry refresh)."""

    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="how long a replica holds a periodic task without renewing its lease "
        "(renewed every third of it): a replica that dies is replaced within about this long",
    )
    idp_registry_refresh_seconds: Annotated[float, Field(ge=60)] | None = Field(
        default=None,
        description="`sportello serve` refreshes the official SPID IdP list this often, in "
        "every replica (none: run `sportello idps refresh` yourself)",
    )
    config_poll_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        default=2.0,
        description="how often each replica reads the configuration generation in the "
        "database, to reload its tenants when they changed (see docs/tenants.md)",
    )
    idp_registry_url: str = Field(
        default="https://registry.spid.gov.it/metadata/idp/spid-entities-idps.xml",
        description="where the refresh reads the SPID IdP list",
    )


class SandboxSettings(_Model):
    host: str = "127.0.0.1"
    base_port: Annotated[int, Field(ge=1024, le=65000)] = 8100


class PluginSettings(_Model):
    disabled: list[str] = Field(default_factory=list)


class LoggingSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="json")


class AdapterRef(_Model):
    """Which adapter plugin serves a tenant for one kind of legacy software."""

    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)


def relative_to_base(value: Path, info: ValidationInfo) -> Path:
    """A configured path, relative to the configuration file's folder (for a validator)."""
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        return Path(base) / value
    return value


class PdndTenantSettings(_Model):
    """The tenant's PDND client (one per environment) and its purposes."""

    client_id: str
    key: SecretRef = Field(description="the client's RSA private key (PEM)")
    kid: str | None = Field(
        default=None, description="the key's thumbprint as PDND shows it (computed when omitted)"
    )
    token_url: HttpUrl = Field(description="e.g. https://auth.uat.interop.pagopa.it/token.oauth2")
    assertion_audience: str | None = Field(
        default=None, description="client-assertion aud (derived from token_url when omitted)"
    )
    purposes: dict[str, str] = Field(
        default_factory=dict, description="e-service code (C030, C020...) -> purposeId"
    )


class WebhookSettings(_Model):
    """A tenant system that wants to hear about events (signed, through the outbox)."""

    url: HttpUrl = Field(description="https endpoint of the tenant's system")
    secret: SecretRef | None = Field(
        default=None, description="HMAC-SHA256 key: requests carry Sportello-Signature"
    )
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description="event names (e.g. io.message.status) or prefixes ending in '*'",
    )

    def wants(self, event: str) -> bool:
        return any(
            e == event or (e.endswith("*") and event.startswith(e[:-1])) for e in self.events
        )


_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")


class TenantConfig(_Model):
    """One public body (ente) served by this hub: the kernel's fields.

    Each platform's section (``[tenants.pagopa]``, ``[tenants.spid]``...) is declared by the
    platform (``hub_tenant_settings``); the configuration is validated by a subclass built
    from the plugins (:func:`config_model`), so ``tenant.pagopa`` exists at run time. Typed
    code reads a section through its platform's accessor (``pagopa_settings(tenant)``) or
    :meth:`section`.
    """

    id: Annotated[str, Field(description="short slug used in URLs: /t/{id}/...")]
    name: str
    ipa_code: Annotated[str, Field(min_length=1, max_length=20)]
    fiscal_code: Annotated[str, Field(pattern=r"^\d{11}$")]
    cadastral_code: Annotated[str, Field(pattern=r"^[A-Z]\d{3}$")]
    pdnd: PdndTenantSettings | None = None
    adapters: dict[str, AdapterRef] = Field(default_factory=dict)
    webhooks: list[WebhookSettings] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _TENANT_ID.match(value):
            raise ValueError(
                "expected 2-40 lowercase letters, digits or '-', starting alphanumeric"
            )
        return value

    def section(self, name: str) -> Any:
        """The tenant's ``[tenants.<name>]`` section: None when it is not configured or no
        enabled plugin declares it."""
        return getattr(self, name, None)

    def sections(self) -> dict[str, BaseModel]:
        """Every configured section, the kernel's (``pdnd``) and the platforms', by name."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                out[name] = value
        return out


class HubConfig(_Model):
    """The whole deployment."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    periodic: PeriodicSettings = Field(default_factory=PeriodicSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    tenants: list[TenantConfig] = Field(default_factory=list)
    tenants_dir: Path | None = Field(
        default=None,
        description="folder of tenant files (one *.toml per tenant, read in name order) "
        "added to the [[tenants]] of this file; relative to this file",
    )
    source: str = Field(default="<memory>", exclude=True, description="file it was read from")
    stored_tenants: frozenset[str] = Field(
        default=frozenset(), exclude=True, description="ids of the tenants read from the database"
    )

    @field_validator("tenants_dir")
    @classmethod
    def _dir_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else relative_to_base(value, info)

    @field_validator("tenants")
    @classmethod
    def _unique_ids(cls, tenants: list[TenantConfig]) -> list[TenantConfig]:
        seen: set[str] = set()
        for tenant in tenants:
            if tenant.id in seen:
                raise ValueError(f"tenant id {tenant.id!r} appears twice")
            seen.add(tenant.id)
        return tenants

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        """The tenant with this id (a dict look-up: called on every request, with thousands
        of tenants). The index lives in the instance's ``__dict__`` beside the fields (not
        a field: equality and dumps ignore it) and is rebuilt when ``tenants`` is another
        list (``model_copy(update=...)`` copies the ``__dict__``) or changed length."""
        tenants = self.tenants
        cached = self.__dict__.get("_tenant_index")
        if cached is None or cached[0] is not tenants or len(cached[1]) != len(tenants):
            cached = (tenants, {t.id: t for t in tenants})
            self.__dict__["_tenant_index"] = cached
        found: TenantConfig | None = cached[1].get(tenant_id)
        return found

    def section(self, name: str) -> Any:
        """A hub-level section a plugin declares (``hub_settings``, e.g. login's ``[idps]``)."""
        return getattr(self, name, None)


SectionModels = tuple[tuple[str, type[BaseModel]], ...]


@functools.lru_cache(maxsize=32)
def _build_model(tenant_sections: SectionModels, hub_sections: SectionModels) -> type[HubConfig]:
    kernel_tenant = set(TenantConfig.model_fields)
    kernel_hub = set(HubConfig.model_fields)
    for name, _ in tenant_sections:
        if name in kernel_tenant:
            raise ValueError(f"a plugin declares the tenant section {name!r} the kernel keeps")
    for name, _ in hub_sections:
        if name in kernel_hub:
            raise ValueError(f"a plugin declares the hub section {name!r} the kernel keeps")
    tenant_fields: dict[str, Any] = {name: (model | None, None) for name, model in tenant_sections}
    tenant_model = create_model(
        "TenantConfig", __base__=TenantConfig, __module__=__name__, **tenant_fields
    )
    hub_fields: dict[str, Any] = {
        "tenants": (list[tenant_model], Field(default_factory=list)),  # type: ignore[valid-type]
    }
    for name, model in hub_sections:
        optional = all(not f.is_required() for f in model.model_fields.values())
        hub_fields[name] = (
            (model, Field(default_factory=model)) if optional else (model | None, None)
        )
    built: type[HubConfig] = create_model(
        "HubConfig", __base__=HubConfig, __module__=__name__, **hub_fields
    )
    return built


def config_model(
    tenant_sections: Mapping[str, type[BaseModel]] | None = None,
    hub_sections: Mapping[str, type[BaseModel]] | None = None,
) -> type[HubConfig]:
    """The configuration model with the given sections: ``[tenants.<name>]`` tables
    (``tenant_sections``) and top-level tables (``hub_sections``), each an optional pydantic
    model (a top-level one whose fields all have defaults is always present). Built once per
    set of sections; any other section is refused as an unknown field."""
    return _build_model(
        tuple(sorted((tenant_sections or {}).items())),
        tuple(sorted((hub_sections or {}).items())),
    )


def _disabled_in(data: Mapping[str, Any]) -> frozenset[str]:
    section = data.get("plugins")
    listed = section.get("disabled") if isinstance(section, Mapping) else None
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(p for p in listed if isinstance(p, str))


@functools.lru_cache(maxsize=8)
def _default_model(disabled: frozenset[str], env: str) -> type[HubConfig]:
    from .plugins import Plugins

    return plugins_model(Plugins(disabled))


def plugins_model(plugins: Any) -> type[HubConfig]:
    """The configuration model with the sections ``plugins`` (a
    :class:`sportello.plugins.Plugins`) declare (built once per set of sections)."""
    return config_model(plugins.tenant_settings(), plugins.hub_settings())


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


_SENSITIVE = re.compile(r"key|secret|password|token", re.IGNORECASE)


def format_validation_error(exc: ValidationError) -> list[str]:
    """One readable line per problem: field path, what is expected, what was found."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = _loc(loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling and the configuration reference)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        found = ""
        if err["type"] not in ("missing", "extra_forbidden") and not _SENSITIVE.search(where):
            shown = repr(err.get("input"))
            found = f" (found {shown[:60]})" if len(shown) < 200 else ""
        lines.append(f"{where}: {msg}{found}")
    return lines


def parse_config(
    data: dict[str, Any],
    *,
    source: str = "<memory>",
    base_dir: Path | None = None,
    plugins: Any = None,
) -> HubConfig:
    """Validate an already-parsed mapping; relative paths resolve against ``base_dir``.

    The sections are those the plugins declare (``plugins``, a
    :class:`sportello.plugins.Plugins`; default: the installed plugins less those disabled by
    ``[plugins] disabled`` and ``SPORTELLO_DISABLE_PLUGINS``)."""
    model = _model_for(data, plugins)
    if "stored_tenants" in data:  # set by the hub from the database, never by a file
        raise ConfigError(source, [_loc(("stored_tenants",)) + ": unknown field"])
    data = dict(data)
    env_url = os.environ.get("SPORTELLO_DATABASE_URL")
    if env_url:
        data["database"] = {**data.get("database", {}), "url": env_url}
    data["source"] = source
    try:
        config: HubConfig = model.model_validate(data, context={"base_dir": base_dir})
        return config
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None


def tenant_model(model: type[HubConfig]) -> type[TenantConfig]:
    """The tenant model of a configuration model (with its plugins' sections)."""
    (item,) = get_args(model.model_fields["tenants"].annotation)
    assert isinstance(item, type) and issubclass(item, TenantConfig)
    return item


def validate_tenant(
    data: Any, *, model: type[HubConfig], source: str, base_dir: Path | None = None
) -> TenantConfig:
    """One tenant table (a tenant file, a stored tenant document) validated as at start-up;
    a :class:`ConfigError` names ``source`` and each bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, ["(top level): expected a table of tenant fields"])
    try:
        return tenant_model(model).model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None


def read_toml(p: Path, replace: dict[str, str] | None = None) -> dict[str, Any]:
    return parse_toml(p, _read_bytes(p), replace)


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(p, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(p, [f"cannot be read: {exc.strerror}"]) from None


def parse_toml(p: Path, raw: bytes, replace: dict[str, str] | None = None) -> dict[str, Any]:
    """``raw``, the bytes of the file ``p`` (named in errors), parsed as TOML."""
    return _document(p, toml_files.parse_bytes(raw, replace))


def _document(p: Path, parsed: toml_files.Parsed) -> dict[str, Any]:
    if isinstance(parsed, list):
        raise ConfigError(p, parsed)
    return parsed


def _model_for(data: Mapping[str, Any], plugins: Any) -> type[HubConfig]:
    if plugins is not None:
        return plugins_model(plugins)
    return _default_model(_disabled_in(data), os.environ.get("SPORTELLO_DISABLE_PLUGINS", ""))


def read_tenants_dir(
    folder: Path,
    *,
    model: type[HubConfig],
    taken: Mapping[str, str] | None = None,
    replace: dict[str, str] | None = None,
) -> list[tuple[str, TenantConfig]]:
    """Every ``*.toml`` of ``folder`` (name order) as (file, tenant), each validated alone:
    a bad file raises a :class:`ConfigError` naming that file and field, an id already in
    ``taken`` (id -> where it is) or in an earlier file one naming both files."""
    if not folder.is_dir():
        raise ConfigError(folder, ["tenants_dir: not a folder"])
    seen: dict[str, str] = dict(taken or {})
    out: list[tuple[str, TenantConfig]] = []
    base_dir = folder.resolve()
    cache_key = (str(base_dir), model, tuple(sorted((replace or {}).items())))
    previous = _TENANT_FILES.pop(cache_key, {})
    current: dict[str, tuple[bytes, TenantConfig]] = {}
    try:
        _read_tenant_files(folder, model, replace, base_dir, previous, current, seen, out)
    except BaseException:  # a bad file: what validated stays known for the next read
        _TENANT_FILES[cache_key] = {**previous, **current}
        raise
    _TENANT_FILES[cache_key] = current
    while len(_TENANT_FILES) > _TENANT_DIRS_KEPT:
        del _TENANT_FILES[next(iter(_TENANT_FILES))]
    return out


def _read_tenant_files(
    folder: Path,
    model: type[HubConfig],
    replace: dict[str, str] | None,
    base_dir: Path,
    previous: dict[str, tuple[bytes, TenantConfig]],
    current: dict[str, tuple[bytes, TenantConfig]],
    seen: dict[str, str],
    out: list[tuple[str, TenantConfig]],
) -> None:
    paths = sorted(folder.glob("*.toml"))
    raws: list[bytes | ConfigError] = []
    for path in paths:
        try:
            raws.append(_read_bytes(path))
        except ConfigError as exc:  # raised in its turn, after the files before it
            raws.append(exc)
    changed = [
        i
        for i, (path, raw) in enumerate(zip(paths, raws, strict=True))
        if isinstance(raw, bytes) and previous.get(str(path), (None,))[0] != raw
    ]
    # the files that changed (all of them at start-up) parsed at once, on every core
    texts = [raw for i in changed if isinstance(raw := raws[i], bytes)]
    documents = toml_files.parse_all(texts, replace)
    parsed = dict(zip(changed, documents, strict=True))
    for i, path in enumerate(paths):
        raw = raws[i]
        if isinstance(raw, ConfigError):
            raise raw
        if i in parsed:
            data = _document(path, parsed[i])
            tenant = validate_tenant(data, model=model, source=str(path), base_dir=base_dir)
        else:
            tenant = previous[str(path)][1]
        current[str(path)] = (raw, tenant)
        if tenant.id in seen:
            raise ConfigError(path, [f"id: tenant {tenant.id!r} is already in {seen[tenant.id]}"])
        seen[tenant.id] = str(path)
        out.append((str(path), tenant))


#: Tenant files already validated, per folder (and model, and text replacements): path ->
#: (the file's bytes, the tenant). A reload of thousands of tenant files reads them all
#: but parses and validates again only those whose bytes changed (TOML parsing and
#: validation cost a hundred times the read; comparing bytes, not timestamps, cannot miss
#: a change made within a timestamp's granularity); the others are the same frozen objects.
#: Only files that validated are kept; a folder read replaces its entry whole, so removed
#: files leave it. The last :data:`_TENANT_DIRS_KEPT` folders are kept.
_TENANT_FILES: dict[tuple[Any, ...], dict[str, tuple[bytes, TenantConfig]]] = {}
_TENANT_DIRS_KEPT = 8


def load_config(
    path: str | os.PathLike[str], *, replace: dict[str, str] | None = None, plugins: Any = None
) -> HubConfig:
    """Read and validate a TOML configuration file.

    ``replace`` substitutes text before parsing (the demo moves its URLs to another port).
    """
    p = Path(path)
    data = read_toml(p, replace)
    base_dir = p.resolve().parent
    folder = data.get("tenants_dir")
    if not isinstance(folder, str):  # absent, or wrong: parse_config names the field
        return parse_config(data, source=str(p), base_dir=base_dir, plugins=plugins)
    inline = data.get("tenants", [])
    taken = {
        t["id"]: str(p)
        for t in (inline if isinstance(inline, list) else [])
        if isinstance(t, Mapping) and isinstance(t.get("id"), str)
    }
    found = read_tenants_dir(
        base_dir / folder, model=_model_for(data, plugins), taken=taken, replace=replace
    )
    data["tenants"] = [*(inline if isinstance(inline, list) else [inline]), *(t for _, t in found)]
    return parse_config(data, source=str(p), base_dir=base_dir, plugins=plugins)

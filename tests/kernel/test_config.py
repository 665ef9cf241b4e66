"""Configuration: typed loading, secret references, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sportello.cli.main import demo_config_path
from sportello.config import ConfigError, SecretRef, load_config, parse_config

GOOD = """
[database]
url = "sqlite:///data/hub.sqlite"

[[tenants]]
id = "roccasecca"
name = "Comune di Roccasecca"
ipa_code = "c_h443"
fiscal_code = "81000310604"
cadastral_code = "H443"

[tenants.io]
base_url = "http://127.0.0.1:8103"
services = [{ id = "01ABC", key = { env = "IO_KEY" } }]

[tenants.pdnd]
client_id = "c1"
kid = "k1"
key = { file = "keys/pdnd.pem" }
token_url = "https://auth.uat.interop.pagopa.it/token.oauth2"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(text)
    return p


def test_demo_config_loads() -> None:
    config = load_config(demo_config_path())
    # the comune, plus a private SP and an aggregated comune that show the other SPID profiles
    assert [t.id for t in config.tenants] == ["demo", "demo-private", "demo-ag"]
    assert config.tenants[0].name == "Comune di Esempio"
    assert [t.spid.profile for t in config.tenants if t.spid] == ["public", "private", "aggregated"]
    assert config.database.is_sqlite


def test_good_file_is_typed_and_paths_resolve_next_to_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path}/data/hub.sqlite"
    tenant = config.tenant("roccasecca")
    assert tenant is not None and tenant.pdnd is not None and tenant.io is not None
    assert tenant.pdnd.key.file == tmp_path / "keys/pdnd.pem"
    assert tenant.io.services[0].key.env == "IO_KEY"
    assert config.tenant("missing") is None


def test_secrets_resolve_only_when_asked_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IO_KEY", "s3cr3t-io")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/pdnd.pem").write_text("PEM-DATA\n")
    config = load_config(write(tmp_path, GOOD))
    tenant = config.tenants[0]
    assert tenant.io is not None and tenant.pdnd is not None
    assert tenant.io.services[0].key.reveal() == "s3cr3t-io"
    assert tenant.pdnd.key.reveal() == "PEM-DATA"
    dumped = repr(config) + str(config.model_dump())
    assert "s3cr3t-io" not in dumped and "PEM-DATA" not in dumped
    monkeypatch.delenv("IO_KEY")
    with pytest.raises(LookupError, match="secret environment variable IO_KEY is not set"):
        tenant.io.services[0].key.reveal()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('fiscal_code = "81000310604"', 'fiscal_code = "8100"'),
            "tenants[0].fiscal_code: String should match pattern",
        ),
        (
            ('id = "roccasecca"', 'id = "Rocca Secca"'),
            "tenants[0].id: expected 2-40 lowercase letters",
        ),
        (('name = "Comune di Roccasecca"', 'nmae = "x"'), "tenants[0].nmae: unknown field"),
        (
            ('key = { env = "IO_KEY" }', 'key = "plain-text-key"'),
            'tenants[0].io.services[0].key: secrets must be references: write {env = "NAME"}',
        ),
        (
            ('key = { file = "keys/pdnd.pem" }', 'key = { env = "A", file = "b" }'),
            "tenants[0].pdnd.key: give exactly one of",
        ),
        (
            ('url = "sqlite:///data/hub.sqlite"', 'url = "mysql://x"'),
            "database.url: expected sqlite+aiosqlite:///",
        ),
        (('cadastral_code = "H443"\n', ""), "tenants[0].cadastral_code: required field is missing"),
    ],
)
def test_bad_fields_are_named_with_their_path(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "plain-text-key" not in message  # an inline secret is not echoed back


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = = 3\n")
    with pytest.raises(ConfigError, match=r"hub.toml: invalid TOML: .*line 2"):
        load_config(path)


def test_missing_file_and_duplicate_tenant(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml")
    doubled = GOOD + GOOD[GOOD.index("[[tenants]]") : GOOD.index("[tenants.io]")]
    with pytest.raises(ConfigError, match="tenant id 'roccasecca' appears twice"):
        load_config(write(tmp_path, doubled))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace('fiscal_code = "81000310604"', 'fiscal_code = "x"').replace(
        'cadastral_code = "H443"', 'cadastral_code = "h443"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    assert len(info.value.problems) == 2


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPORTELLO_DATABASE_URL", "postgresql://u:pw@db:5432/hub")
    config = parse_config({})
    assert config.database.url == "postgresql+asyncpg://u:pw@db:5432/hub"
    assert not config.database.is_sqlite


def test_secret_ref_repr() -> None:
    ref = SecretRef(env="X")
    assert repr(ref) == "SecretRef(env:X)" and str(ref) == "SecretRef(env:X)"


TENANT_BASE = {
    "id": "demo",
    "name": "Comune",
    "ipa_code": "c_z999",
    "fiscal_code": "00000000999",
    "cadastral_code": "Z999",
}
SPID = {"keys_dir": "keys", "contact_email": "urp@example.it"}
PDND = {"client_id": "c", "key": {"env": "K"}, "token_url": "https://auth.example.it/token.oauth2"}
PAGOPA = {
    "ec_fiscal_code": "00000000999",
    "broker_id": "00000000999",
    "station_id": "00000000999_01",
}
URL_FIELDS = [
    ({"server": {"public_url": "{u}"}}, "server.public_url"),
    (
        {"tenants": [{**TENANT_BASE, "spid": {**SPID, "entity_id": "{u}"}}]},
        "tenants[0].spid.entity_id",
    ),
    (
        {"tenants": [{**TENANT_BASE, "cie": {**SPID, "return_urls": ["{u}"]}}]},
        "tenants[0].cie.return_urls[0]",
    ),
    (
        {"tenants": [{**TENANT_BASE, "spid": {**SPID, "organization_url": "{u}"}}]},
        "tenants[0].spid.organization_url",
    ),
    (
        {"tenants": [{**TENANT_BASE, "pdnd": {**PDND, "token_url": "{u}"}}]},
        "tenants[0].pdnd.token_url",
    ),
    ({"tenants": [{**TENANT_BASE, "anpr": {"base_url": "{u}"}}]}, "tenants[0].anpr.base_url"),
    ({"tenants": [{**TENANT_BASE, "io": {"base_url": "{u}"}}]}, "tenants[0].io.base_url"),
    (
        {"tenants": [{**TENANT_BASE, "pagopa": {**PAGOPA, "base_url": "{u}"}}]},
        "tenants[0].pagopa.base_url",
    ),
    (
        {"tenants": [{**TENANT_BASE, "pagopa": {**PAGOPA, "fdr_base_url": "{u}"}}]},
        "tenants[0].pagopa.fdr_base_url",
    ),
    (
        {"tenants": [{**TENANT_BASE, "pagopa": {**PAGOPA, "checkout_url": "{u}"}}]},
        "tenants[0].pagopa.checkout_url",
    ),
    ({"tenants": [{**TENANT_BASE, "webhooks": [{"url": "{u}"}]}]}, "tenants[0].webhooks[0].url"),
]
BAD_URLS = [
    "sportello.example.it",
    "htps//sportello.example.it",
    "https://",
    "ftp://x.it",
    "https://x.it:port",
    "https://a b.it",
]


def _fill(value: object, url: str) -> object:
    if value == "{u}":
        return url
    if isinstance(value, dict):
        return {k: _fill(v, url) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, url) for v in value]
    return value


@pytest.mark.parametrize(("data", "field"), URL_FIELDS, ids=[f for _, f in URL_FIELDS])
def test_every_url_needs_an_http_scheme_and_a_host(data: dict, field: str) -> None:  # type: ignore[type-arg]
    for bad in BAD_URLS:
        with pytest.raises(ConfigError) as caught:
            parse_config(_fill(data, bad))  # type: ignore[arg-type]
        assert caught.value.problems[0].startswith(
            f"{field}: expected an absolute http:// or https:// URL with a host"
        ), (bad, caught.value.problems)
    parse_config(_fill(data, "https://sportello.example.it:8443/base"))  # type: ignore[arg-type]

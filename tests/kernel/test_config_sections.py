"""Each platform declares its own configuration sections (``hub_tenant_settings``,
``hub_settings``); the kernel builds the model from them: errors still name the path,
unknown sections are refused, a disabled platform's section is unknown, and a plugin
cannot take a kernel field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from sportello.config import ConfigError, ConfigModel, config_model, parse_config
from sportello.hookspecs import hookimpl
from sportello.platforms.pagopa.settings import PagopaTenantSettings, pagopa_settings
from sportello.plugins import PluginConflict, Plugins

TENANT = {
    "id": "demo",
    "name": "Comune",
    "ipa_code": "c_x000",
    "fiscal_code": "00000000000",
    "cadastral_code": "X000",
}
PAGOPA = {
    "ec_fiscal_code": "00000000000",
    "broker_id": "00000000000",
    "station_id": "00000000000_01",
}


class AcmeSettings(ConfigModel):
    endpoint: str
    level: int = Field(default=1, ge=1, le=3)


class AcmeHub(ConfigModel):
    region: str = "it"


class Acme:
    @hookimpl
    def hub_tenant_settings(self) -> dict[str, type[BaseModel]]:
        return {"acme": AcmeSettings}

    @hookimpl
    def hub_settings(self) -> dict[str, type[BaseModel]]:
        return {"acme_hub": AcmeHub}


def _with_acme() -> Plugins:
    plugins = Plugins()
    plugins.register(Acme(), name="acme")
    return plugins


def _problems(data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, **kwargs)
    return caught.value.problems


def test_a_platform_section_is_validated_with_its_path() -> None:
    bad = {**TENANT, "pagopa": {**PAGOPA, "station_id": "nope"}}
    [problem] = _problems({"tenants": [bad]})
    assert problem.startswith("tenants[0].pagopa.station_id: String should match pattern")
    good = parse_config({"tenants": [{**TENANT, "pagopa": PAGOPA}]})
    tenant = good.tenants[0]
    settings = pagopa_settings(tenant)
    assert isinstance(settings, PagopaTenantSettings) and settings.station_id.endswith("_01")
    assert tenant.pagopa is settings  # attribute access still works at run time
    assert tenant.section("io") is None and tenant.sections() == {"pagopa": settings}


def test_an_unknown_section_is_refused() -> None:
    assert _problems({"tenants": [{**TENANT, "pagopaa": PAGOPA}]}) == [
        "tenants[0].pagopaa: unknown field (check its spelling and the configuration reference)"
    ]
    assert _problems({"idpss": {}})[0].startswith("idpss: unknown field")


def test_a_plugin_brings_its_sections() -> None:
    plugins = _with_acme()
    data = {"tenants": [{**TENANT, "acme": {"endpoint": "x", "level": 2}}]}
    config = parse_config(data, plugins=plugins)
    assert config.tenants[0].section("acme") == AcmeSettings(endpoint="x", level=2)
    assert config.section("acme_hub") == AcmeHub()  # all defaults: always present
    bad = {"tenants": [{**TENANT, "acme": {"endpoint": "x", "level": 7}}]}
    assert _problems(bad, plugins=plugins)[0].startswith("tenants[0].acme.level: ")
    # without the plugin the section is unknown
    assert _problems(data)[0].startswith("tenants[0].acme: unknown field")


def test_the_model_is_built_once_per_set_of_sections() -> None:
    assert config_model({"acme": AcmeSettings}) is config_model({"acme": AcmeSettings})
    assert config_model({"acme": AcmeSettings}) is not config_model({})


def test_a_disabled_platform_s_section_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"plugins": {"disabled": ["pagopa"]}, "tenants": [{**TENANT, "pagopa": PAGOPA}]}
    assert _problems(data)[0].startswith("tenants[0].pagopa: unknown field")
    monkeypatch.setenv("SPORTELLO_DISABLE_PLUGINS", "pagopa")
    assert _problems({"tenants": [{**TENANT, "pagopa": PAGOPA}]})[0].startswith(
        "tenants[0].pagopa: unknown field"
    )
    monkeypatch.delenv("SPORTELLO_DISABLE_PLUGINS")
    assert parse_config({"tenants": [{**TENANT, "pagopa": PAGOPA}]}).tenants[0].pagopa


def test_a_plugin_cannot_take_a_kernel_field_or_another_plugin_s_section() -> None:
    with pytest.raises(ValueError, match="kernel keeps"):
        config_model({"webhooks": AcmeSettings})

    class Thief:
        @hookimpl
        def hub_tenant_settings(self) -> dict[str, type[BaseModel]]:
            return {"pagopa": AcmeSettings}

    plugins = Plugins()
    plugins.register(Thief(), name="thief")
    with pytest.raises(PluginConflict, match="pagopa"):
        plugins.tenant_settings()

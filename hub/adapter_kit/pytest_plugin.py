"""pytest plugin of the adapter kit: fixtures and the registry contract as a test class.

Loaded automatically once Sportello is installed (entry point ``pytest11``), or explicitly
with ``-p sportello.adapter_kit.pytest_plugin``. :class:`RegistryContractTests` also works
without the plugin loaded: it carries the fixtures it needs.

Fixtures:

- ``registry_dataset``: the kit's canonical fictitious residents (a fresh list per test);
- ``sportello_plugin``: the plugin under test, from the ``sportello_plugin`` marker, else None;
  override it to return your plugin module;
- ``sportello_plugins``: a :class:`~sportello.plugins.Plugins` with the built-ins and that
  plugin (installed entry points are not loaded, so nothing is registered twice).

Marker: ``@pytest.mark.sportello_plugin(module, name=None)``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ..adapters.registry.base import RegistryRecord
from ..plugins import Plugins
from .contract import AdapterFactory, RegistryContract, canonical_dataset, plugins_with

MARKER = "sportello_plugin"

__all__ = ["MARKER", "RegistryContractTests"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(plugin, name=None): register this Sportello plugin (a module or object with "
        "@hookimpl functions) in the sportello_plugins fixture",
    )


def _marked(request: pytest.FixtureRequest) -> tuple[object | None, str | None]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return None, None
    if len(marker.args) != 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one plugin, got {marker.args!r}")
    name = marker.kwargs.get("name")
    return marker.args[0], None if name is None else str(name)


def _plugins(request: pytest.FixtureRequest, plugin: object | None) -> Plugins:
    marked, name = _marked(request)
    return plugins_with(plugin, name if plugin is marked else None)


@pytest.fixture
def registry_dataset() -> list[RegistryRecord]:
    """The kit's canonical fictitious residents."""
    return canonical_dataset()


@pytest.fixture
def sportello_plugin(request: pytest.FixtureRequest) -> object | None:
    """The plugin under test (from the ``sportello_plugin`` marker); None without the marker."""
    return _marked(request)[0]


@pytest.fixture
def sportello_plugins(request: pytest.FixtureRequest, sportello_plugin: object | None) -> Plugins:
    """The built-in plugins plus ``sportello_plugin``."""
    return _plugins(request, sportello_plugin)


class RegistryContractTests:
    """Every registry contract check as a test. Subclass it in a ``Test...`` class and define
    the ``adapter_factory`` fixture::

        class TestMyAdapter(RegistryContractTests):
            @pytest.fixture
            def adapter_factory(self):
                async def factory(records, tmp_path):
                    ...  # store the records where the adapter reads them
                    return MyAdapter({...}, base_dir=tmp_path)
                return factory

            @pytest.fixture
            def sportello_plugin(self):
                return my_package.plugin  # optional: enables the hook check

    Override ``registry_dataset`` in the subclass to run the checks on other records. The
    tests are synchronous (each runs its check with ``asyncio.run``), so they need no async
    pytest plugin.
    """

    @pytest.fixture
    def adapter_factory(self) -> AdapterFactory:
        pytest.fail(
            f"{type(self).__name__} must define the adapter_factory fixture: "
            "async def factory(records, tmp_path) -> adapter"
        )

    @pytest.fixture
    def registry_dataset(self) -> list[RegistryRecord]:
        return canonical_dataset()

    @pytest.fixture
    def sportello_plugin(self, request: pytest.FixtureRequest) -> object | None:
        return _marked(request)[0]

    @pytest.fixture
    def sportello_plugins(
        self, request: pytest.FixtureRequest, sportello_plugin: object | None
    ) -> Plugins:
        return _plugins(request, sportello_plugin)

    def run_check(
        self,
        check: str,
        factory: AdapterFactory,
        dataset: list[RegistryRecord],
        tmp_path: Path,
        plugins: Plugins | None = None,
    ) -> None:
        """Run one check of :class:`RegistryContract` in a new event loop."""
        __tracebackhide__ = True
        contract = RegistryContract(factory, dataset=dataset, plugins=plugins)
        asyncio.run(contract.run(check, tmp_path))

    def test_lookup_returns_every_field(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("lookup_returns_every_field", adapter_factory, registry_dataset, tmp_path)

    def test_lookup_ignores_case(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("lookup_ignores_case", adapter_factory, registry_dataset, tmp_path)

    def test_lookup_unknown_is_none(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("lookup_unknown_is_none", adapter_factory, registry_dataset, tmp_path)

    def test_household_is_the_family(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("household_is_the_family", adapter_factory, registry_dataset, tmp_path)

    def test_household_unknown_is_empty(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("household_unknown_is_empty", adapter_factory, registry_dataset, tmp_path)

    def test_no_problems_on_clean_data(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("no_problems_on_clean_data", adapter_factory, registry_dataset, tmp_path)

    def test_close_is_idempotent(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        tmp_path: Path,
    ) -> None:
        self.run_check("close_is_idempotent", adapter_factory, registry_dataset, tmp_path)

    def test_registered_through_the_hook(
        self,
        adapter_factory: AdapterFactory,
        registry_dataset: list[RegistryRecord],
        sportello_plugin: object | None,
        sportello_plugins: Plugins,
        tmp_path: Path,
    ) -> None:
        if sportello_plugin is None:
            pytest.skip(
                "no plugin given: override the sportello_plugin fixture (or use the "
                f"{MARKER} marker) to check the hub_registry_adapters registration"
            )
        self.run_check(
            "registered_through_the_hook",
            adapter_factory,
            registry_dataset,
            tmp_path,
            sportello_plugins,
        )

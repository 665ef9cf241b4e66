"""pytest plugin of the adapter kit: fixtures and the adapter contracts as test classes.

Loaded automatically once Sportello is installed (entry point ``pytest11``), or explicitly
with ``-p sportello.adapter_kit.pytest_plugin``. :class:`RegistryContractTests`,
:class:`AccountingContractTests`, :class:`SuapContractTests` and :class:`AgendaContractTests`
also work without the plugin loaded: they carry the fixtures they need.

Fixtures:

- ``registry_dataset``: the kit's canonical fictitious residents (a fresh list per test);
- ``accounting_positions``: the kit's canonical fictitious debt positions, one invalid;
- ``sportello_plugin``: the plugin under test, from the ``sportello_plugin`` marker, else None;
  override it to return your plugin module;
- ``sportello_plugins``: a :class:`~sportello.plugins.Plugins` with the built-ins and that
  plugin (installed entry points are not loaded, so nothing is registered twice).

Marker: ``@pytest.mark.sportello_plugin(module, name=None)``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ..adapters.registry.base import RegistryRecord
from ..plugins import Plugins
from .accounting_contract import (
    AccountingContract,
    AccountingFactory,
    ReceiptReader,
    ReconciliationReader,
    canonical_positions,
)
from .agenda_contract import AgendaContract, AgendaFactory, canonical_agenda
from .contract import (
    AdapterFactory,
    ContractRunner,
    RegistryContract,
    canonical_dataset,
    plugins_with,
)
from .suap_contract import SuapContract, SuapFactory, canonical_practices

MARKER = "sportello_plugin"

__all__ = [
    "MARKER",
    "AccountingContractTests",
    "AgendaContractTests",
    "RegistryContractTests",
    "SuapContractTests",
]


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
def accounting_positions() -> list[dict[str, Any]]:
    """The kit's canonical fictitious debt positions (one of them invalid on purpose)."""
    return canonical_positions()


@pytest.fixture
def sportello_plugin(request: pytest.FixtureRequest) -> object | None:
    """The plugin under test (from the ``sportello_plugin`` marker); None without the marker."""
    return _marked(request)[0]


@pytest.fixture
def sportello_plugins(request: pytest.FixtureRequest, sportello_plugin: object | None) -> Plugins:
    """The built-in plugins plus ``sportello_plugin``."""
    return _plugins(request, sportello_plugin)


class _PluginFixtures:
    """The ``sportello_plugin`` and ``sportello_plugins`` fixtures of a contract-test class
    (a subclass overrides ``sportello_plugin`` to enable the hook check)."""

    @pytest.fixture
    def sportello_plugin(self, request: pytest.FixtureRequest) -> object | None:
        return _marked(request)[0]

    @pytest.fixture
    def sportello_plugins(
        self, request: pytest.FixtureRequest, sportello_plugin: object | None
    ) -> Plugins:
        return _plugins(request, sportello_plugin)


class _RunnerTests(_PluginFixtures):
    """Contract tests whose checks skip (with the reason) what the subclass did not give."""

    def run_check(self, check: str, contract: ContractRunner, tmp_path: Path) -> None:
        """Run one check of the contract in a new event loop."""
        __tracebackhide__ = True
        why = contract.skipped(check)
        if why:
            pytest.skip(
                f"{why}: override the sportello_plugin fixture (or use the {MARKER} marker)"
            )
        asyncio.run(contract.run(check, tmp_path))


class RegistryContractTests(_PluginFixtures):
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


class AccountingContractTests(_RunnerTests):
    """Every accounting contract check as a test (see
    :mod:`sportello.adapter_kit.accounting_contract`). Subclass it in a ``Test...`` class
    and define the ``accounting_factory`` and ``read_receipts`` fixtures (and
    ``read_reconciliations`` when the adapter keeps reconciliation results)::

        class TestMyAccounting(AccountingContractTests):
            @pytest.fixture
            def accounting_factory(self):
                async def factory(positions, workdir):
                    ...  # store the positions where the adapter reads them
                    return MyAccounting({...}, base_dir=workdir)
                return factory

            @pytest.fixture
            def read_receipts(self):
                async def read(workdir):
                    return [...]  # the receipt_id of every record the destination holds
                return read

            @pytest.fixture
            def sportello_plugin(self):
                return my_package.plugin  # optional: enables the hook check

    Override ``accounting_positions`` to run the checks on other positions, and
    ``accounting_bad_field`` when the invalid position's error names its field otherwise.
    """

    @pytest.fixture
    def accounting_factory(self) -> AccountingFactory:
        pytest.fail(
            f"{type(self).__name__} must define the accounting_factory fixture: "
            "async def factory(positions, workdir) -> adapter"
        )

    @pytest.fixture
    def read_receipts(self) -> ReceiptReader:
        pytest.fail(
            f"{type(self).__name__} must define the read_receipts fixture: "
            "async def read(workdir) -> [receipt_id of every record held]"
        )

    @pytest.fixture
    def read_reconciliations(self) -> ReconciliationReader | None:
        return None

    @pytest.fixture
    def accounting_positions(self) -> list[dict[str, Any]]:
        return canonical_positions()

    @pytest.fixture
    def accounting_bad_field(self) -> str:
        return "fiscal_code"

    @pytest.fixture
    def accounting_contract(
        self,
        accounting_factory: AccountingFactory,
        read_receipts: ReceiptReader,
        read_reconciliations: ReconciliationReader | None,
        accounting_positions: list[dict[str, Any]],
        accounting_bad_field: str,
        sportello_plugin: object | None,
        sportello_plugins: Plugins,
    ) -> AccountingContract:
        return AccountingContract(
            accounting_factory,
            read_receipts,
            read_reconciliations,
            positions=accounting_positions,
            bad_field=accounting_bad_field,
            plugins=None if sportello_plugin is None else sportello_plugins,
        )

    def test_positions_are_valid(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("positions_are_valid", accounting_contract, tmp_path)

    def test_bad_position_is_named_and_skipped(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("bad_position_is_named_and_skipped", accounting_contract, tmp_path)

    def test_receipt_is_pushed_once(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("receipt_is_pushed_once", accounting_contract, tmp_path)

    def test_receipt_is_pushed_once_across_instances(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("receipt_is_pushed_once_across_instances", accounting_contract, tmp_path)

    def test_reconciliation_is_accepted_and_idempotent(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("reconciliation_is_accepted_and_idempotent", accounting_contract, tmp_path)

    def test_close_is_idempotent(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("close_is_idempotent", accounting_contract, tmp_path)

    def test_registered_through_the_hook(
        self, accounting_contract: AccountingContract, tmp_path: Path
    ) -> None:
        self.run_check("registered_through_the_hook", accounting_contract, tmp_path)


class SuapContractTests(_RunnerTests):
    """Every SUAP contract check as a test (see :mod:`sportello.adapter_kit.suap_contract`).
    Subclass it and define the ``suap_factory`` fixture (``async def factory(practices,
    workdir) -> adapter``); ``sportello_plugin`` enables the hook check, and overriding
    ``suap_practices`` runs the checks on other practices."""

    @pytest.fixture
    def suap_factory(self) -> SuapFactory:
        pytest.fail(
            f"{type(self).__name__} must define the suap_factory fixture: "
            "async def factory(practices, workdir) -> adapter"
        )

    @pytest.fixture
    def suap_practices(self) -> list[dict[str, Any]]:
        return canonical_practices()

    @pytest.fixture
    def suap_contract(
        self,
        suap_factory: SuapFactory,
        suap_practices: list[dict[str, Any]],
        sportello_plugin: object | None,
        sportello_plugins: Plugins,
    ) -> SuapContract:
        plugins = None if sportello_plugin is None else sportello_plugins
        return SuapContract(suap_factory, practices=suap_practices, plugins=plugins)

    def test_practices_of_an_applicant_newest_first(
        self, suap_contract: SuapContract, tmp_path: Path
    ) -> None:
        self.run_check("practices_of_an_applicant_newest_first", suap_contract, tmp_path)

    def test_practice_by_id(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("practice_by_id", suap_contract, tmp_path)

    def test_timeline_oldest_first(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("timeline_oldest_first", suap_contract, tmp_path)

    def test_documents_of_a_practice(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("documents_of_a_practice", suap_contract, tmp_path)

    def test_changes_since_is_strictly_after(
        self, suap_contract: SuapContract, tmp_path: Path
    ) -> None:
        self.run_check("changes_since_is_strictly_after", suap_contract, tmp_path)

    def test_no_problems_on_clean_data(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("no_problems_on_clean_data", suap_contract, tmp_path)

    def test_close_is_idempotent(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("close_is_idempotent", suap_contract, tmp_path)

    def test_registered_through_the_hook(self, suap_contract: SuapContract, tmp_path: Path) -> None:
        self.run_check("registered_through_the_hook", suap_contract, tmp_path)


class AgendaContractTests(_RunnerTests):
    """Every agenda contract check as a test (see :mod:`sportello.adapter_kit.agenda_contract`:
    the ``booking`` adapter kind). Subclass it and define the ``agenda_factory`` fixture
    (``async def factory(agenda, workdir) -> adapter``); ``sportello_plugin`` enables the hook
    check, and overriding ``agenda_spec`` runs the checks on another agenda."""

    @pytest.fixture
    def agenda_factory(self) -> AgendaFactory:
        pytest.fail(
            f"{type(self).__name__} must define the agenda_factory fixture: "
            "async def factory(agenda, workdir) -> adapter"
        )

    @pytest.fixture
    def agenda_spec(self) -> dict[str, Any]:
        return canonical_agenda()

    @pytest.fixture
    def agenda_contract(
        self,
        agenda_factory: AgendaFactory,
        agenda_spec: dict[str, Any],
        sportello_plugin: object | None,
        sportello_plugins: Plugins,
    ) -> AgendaContract:
        plugins = None if sportello_plugin is None else sportello_plugins
        return AgendaContract(agenda_factory, agenda=agenda_spec, plugins=plugins)

    def test_offices_and_services(self, agenda_contract: AgendaContract, tmp_path: Path) -> None:
        self.run_check("offices_and_services", agenda_contract, tmp_path)

    def test_free_slots_follow_hours_and_closed_days(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("free_slots_follow_hours_and_closed_days", agenda_contract, tmp_path)

    def test_slots_skip_the_hour_that_does_not_exist(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("slots_skip_the_hour_that_does_not_exist", agenda_contract, tmp_path)

    def test_book_takes_a_seat_and_day_lists_it(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("book_takes_a_seat_and_day_lists_it", agenda_contract, tmp_path)

    def test_capacity_is_never_exceeded_by_simultaneous_bookings(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check(
            "capacity_is_never_exceeded_by_simultaneous_bookings", agenda_contract, tmp_path
        )

    def test_refuses_what_it_does_not_offer(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("refuses_what_it_does_not_offer", agenda_contract, tmp_path)

    def test_move_and_cancel_free_the_old_seat(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("move_and_cancel_free_the_old_seat", agenda_contract, tmp_path)

    def test_close_is_idempotent(self, agenda_contract: AgendaContract, tmp_path: Path) -> None:
        self.run_check("close_is_idempotent", agenda_contract, tmp_path)

    def test_registered_through_the_hook(
        self, agenda_contract: AgendaContract, tmp_path: Path
    ) -> None:
        self.run_check("registered_through_the_hook", agenda_contract, tmp_path)

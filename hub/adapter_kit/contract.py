"""The registry adapter contract as executable checks, over a canonical fictitious dataset.

An adapter author provides a *factory*: ``async def factory(records, workdir) -> adapter``. It
stores the records in the adapter's own kind of storage (a file, a table) under ``workdir``
and returns an adapter instance that reads them. Each check builds a fresh adapter, exercises
it and closes it. The checks are plain async functions, usable without pytest; the pytest
plugin (:mod:`sportello.adapter_kit.pytest_plugin`) turns them into one test each.

The accounting and SUAP contracts follow the same pattern: :mod:`.accounting_contract` and
:mod:`.suap_contract`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from ..adapters.registry.base import FIELDS, RegistryRecord
from ..plugins import PluginConflict, Plugins

AdapterFactory = Callable[[list[RegistryRecord], Path], Awaitable[Any]]
"""``async def factory(records, workdir) -> adapter`` (a plain function returning the adapter
is accepted too)."""

UNKNOWN_FISCAL_CODE = "ZZZZZZ99Z99Z999Z"

_DATASET: tuple[RegistryRecord, ...] = (
    # Family F0001: three people, every field filled in for the head of the family.
    RegistryRecord(
        fiscal_code="RSSMRA75C12Z999L",
        family_name="Rossi",
        given_name="Mario",
        sex="M",
        birth_date=date(1975, 3, 12),
        birth_place="Bologna",
        address="Via dell'Indipendenza 12; scala B",
        municipality_istat="037006",
        family_id="F0001",
        relationship="intestatario",
        email="mario.rossi@example.org",
        phone="+39 051 0000001",
    ),
    RegistryRecord(
        fiscal_code="BNCGLI78D55Z999G",
        family_name="Bianchi",
        given_name="Giulia",
        sex="F",
        birth_date=date(1978, 4, 15),
        birth_place="Modena",
        address="Via dell'Indipendenza 12; scala B",
        municipality_istat="037006",
        family_id="F0001",
        relationship="coniuge",
    ),
    RegistryRecord(
        fiscal_code="RSSNCL08H10Z999P",
        family_name="Rossi",
        given_name="Nicolò",
        sex="M",
        birth_date=date(2008, 6, 10),
        birth_place="Bologna",
        address="Via dell'Indipendenza 12; scala B",
        municipality_istat="037006",
        family_id="F0001",
        relationship="figlio",
    ),
    # Family F0002: two people.
    RegistryRecord(
        fiscal_code="DNGLCU60A01Z999H",
        family_name="D'Angelo",
        given_name="Luca",
        sex="M",
        birth_date=date(1960, 1, 1),
        birth_place="Napoli",
        address="Piazza Maggiore 3, int. 4",
        municipality_istat="037006",
        family_id="F0002",
        relationship="intestatario",
        phone="+39 051 0000002",
    ),
    RegistryRecord(
        fiscal_code="DNGSRA92L41Z999M",
        family_name="D'Angelo",
        given_name="Sara",
        sex="F",
        birth_date=date(1992, 7, 1),
        birth_place="Bologna",
        address="Piazza Maggiore 3, int. 4",
        municipality_istat="037006",
        family_id="F0002",
        relationship="figlia",
        email="sara.dangelo@example.org",
    ),
    # Family F0003: one person living alone.
    RegistryRecord(
        fiscal_code="CLMNNA45T70Z999X",
        family_name="Colombo",
        given_name="Anna",
        sex="F",
        birth_date=date(1945, 12, 30),
        address="Via San Vitale 90",
        municipality_istat="037006",
        family_id="F0003",
        relationship="intestataria",
    ),
    # No family id at all: the household is the person alone; most fields unknown.
    RegistryRecord(fiscal_code="FRRPLA99B02Z999M", family_name="Ferrari", given_name="Paolo"),
)


def canonical_dataset() -> list[RegistryRecord]:
    """The kit's fictitious residents: 7 people, families of 3, 2 and 1, one without a family
    id, non-ASCII letters, apostrophes, a ``;`` and a ``,`` in values, unknown (None) fields."""
    return list(_DATASET)


def expected_household(
    dataset: Sequence[RegistryRecord], me: RegistryRecord
) -> list[RegistryRecord]:
    """Who ``household(me.fiscal_code)`` must return for this dataset, sorted by fiscal code."""
    if me.family_id is None:
        return [me]
    return sorted((r for r in dataset if r.family_id == me.family_id), key=_by_cf)


def plugins_with(plugin: object | None = None, name: str | None = None) -> Plugins:
    """A :class:`~sportello.plugins.Plugins` with the built-ins and ``plugin`` (not installed
    entry points, so the plugin under test is not registered twice)."""
    plugins = Plugins(entry_points=False)
    if plugin is not None and not plugins.pm.is_registered(plugin):
        plugins.register(plugin, name=name)
    return plugins


class ContractViolation(AssertionError):
    """An adapter does not do what the contract says; the message says what and where."""


def _by_cf(record: RegistryRecord) -> str:
    return record.fiscal_code


def _fail(message: str) -> NoReturn:
    raise ContractViolation(message)


def _same_record(what: str, got: object, expected: RegistryRecord) -> None:
    if not isinstance(got, RegistryRecord):
        _fail(f"{what} returned {type(got).__name__}, expected a RegistryRecord")
    for field in FIELDS:
        mine, theirs = getattr(got, field), getattr(expected, field)
        if mine != theirs:
            _fail(f"{what}: field {field} is {mine!r}, expected {theirs!r}")


def _mixed_case(text: str) -> str:
    return "".join(c.lower() if i % 2 else c for i, c in enumerate(text))


class ContractRunner:
    """Running one kind's checks: each on a fresh adapter from ``factory`` (closed afterwards,
    also when the check fails), in its own folder; every failure reported together.

    A contract sets ``KIND`` (for messages), ``HOOK`` (the registration hook the
    ``registered_through_the_hook`` check needs ``plugins`` for), ``CHECKS`` (method names),
    and :meth:`factory_input` (a fresh copy of what ``factory`` loads).
    """

    KIND: ClassVar[str]
    HOOK: ClassVar[str]
    CHECKS: ClassVar[tuple[str, ...]]
    factory: Callable[..., Any]
    plugins: Plugins | None

    def factory_input(self) -> Any:
        raise NotImplementedError

    async def build(self, workdir: Path) -> Any:
        """A fresh adapter over the contract's data, stored under ``workdir``."""
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        adapter = self.factory(self.factory_input(), workdir)
        if inspect.isawaitable(adapter):
            adapter = await adapter
        if adapter is None:
            _fail("the adapter factory returned None")
        return adapter

    def skipped(self, check: str) -> str | None:
        """Why ``check`` cannot run with what this contract was given, or None."""
        if check == "registered_through_the_hook" and self.plugins is None:
            return f"no plugin given, so the {self.HOOK} registration is not checked"
        return None

    async def run(self, check: str, workdir: Path) -> None:
        """Run one check on a fresh adapter, then close it (also when the check fails)."""
        if check not in self.CHECKS:
            raise ValueError(f"unknown {self.KIND} contract check {check!r}")
        method: Callable[[Any, Path], Awaitable[None]] = getattr(self, check)
        adapter = await self.build(workdir)
        try:
            await method(adapter, workdir)
        finally:
            await adapter.close()

    async def run_all(self, workdir: Path) -> dict[str, str]:
        """Run every check, each in its own sub-folder of ``workdir``.

        Returns ``{check: "passed" | "skipped: <why>"}``; raises one
        :class:`ContractViolation` that lists every failed check.
        """
        outcome: dict[str, str] = {}
        failures: list[str] = []
        for check in self.CHECKS:
            why = self.skipped(check)
            if why:
                outcome[check] = f"skipped: {why}"
                continue
            try:
                await self.run(check, workdir / check)
            except ContractViolation as exc:
                failures.append(f"{check}: {exc}")
                outcome[check] = "failed"
            else:
                outcome[check] = "passed"
        if failures:
            raise ContractViolation(
                f"{len(failures)} {self.KIND} contract check(s) failed:\n" + "\n".join(failures)
            )
        return outcome


class RegistryContract(ContractRunner):
    """What every registry adapter must do, as one async method per check.

    ``factory`` loads ``dataset`` (default: :func:`canonical_dataset`) into the adapter's
    storage. ``plugins`` is the plugin manager the hook check looks the class up in; without
    it that check is skipped.
    """

    KIND = "registry"
    HOOK = "hub_registry_adapters"
    CHECKS: ClassVar[tuple[str, ...]] = (
        "lookup_returns_every_field",
        "lookup_ignores_case",
        "lookup_unknown_is_none",
        "household_is_the_family",
        "household_unknown_is_empty",
        "no_problems_on_clean_data",
        "close_is_idempotent",
        "registered_through_the_hook",
    )

    def __init__(
        self,
        factory: AdapterFactory,
        *,
        dataset: Sequence[RegistryRecord] | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.factory = factory
        self.dataset = list(canonical_dataset() if dataset is None else dataset)
        self.plugins = plugins
        if not self.dataset:
            raise ValueError("the contract needs at least one record")
        if any(r.fiscal_code == UNKNOWN_FISCAL_CODE for r in self.dataset):
            raise ValueError(f"the dataset must not hold {UNKNOWN_FISCAL_CODE}, the unknown code")

    def factory_input(self) -> list[RegistryRecord]:
        return list(self.dataset)

    # --- the checks ---------------------------------------------------------------------------
    async def lookup_returns_every_field(self, adapter: Any, workdir: Path) -> None:
        """``lookup()`` finds each resident, with every field equal to the stored one."""
        for record in self.dataset:
            got = await adapter.lookup(record.fiscal_code)
            if got is None:
                _fail(f"lookup({record.fiscal_code!r}) returned None for a stored resident")
            _same_record(f"lookup({record.fiscal_code!r})", got, record)

    async def lookup_ignores_case(self, adapter: Any, workdir: Path) -> None:
        """``lookup()`` takes the fiscal code in lower or mixed case too."""
        for record in self.dataset:
            for variant in (record.fiscal_code.lower(), _mixed_case(record.fiscal_code)):
                got = await adapter.lookup(variant)
                if got is None:
                    _fail(f"lookup({variant!r}) returned None: the fiscal code is not upper-cased")
                _same_record(f"lookup({variant!r})", got, record)

    async def lookup_unknown_is_none(self, adapter: Any, workdir: Path) -> None:
        """``lookup()`` of a fiscal code that is not stored returns None."""
        got = await adapter.lookup(UNKNOWN_FISCAL_CODE)
        if got is not None:
            _fail(f"lookup({UNKNOWN_FISCAL_CODE!r}) returned {got!r}, expected None")

    async def household_is_the_family(self, adapter: Any, workdir: Path) -> None:
        """``household()`` returns the resident's whole family, the resident included (in any
        order); the resident alone when there is no family id."""
        for record in self.dataset:
            what = f"household({record.fiscal_code!r})"
            got = await adapter.household(record.fiscal_code)
            if not isinstance(got, list):
                _fail(f"{what} returned {type(got).__name__}, expected a list")
            expected = expected_household(self.dataset, record)
            got_codes = sorted(getattr(r, "fiscal_code", repr(r)) for r in got)
            want_codes = [r.fiscal_code for r in expected]
            if got_codes != want_codes:
                _fail(f"{what} returned {got_codes}, expected {want_codes}")
            for mine, theirs in zip(sorted(got, key=_by_cf), expected, strict=True):
                _same_record(f"{what} member {theirs.fiscal_code}", mine, theirs)

    async def household_unknown_is_empty(self, adapter: Any, workdir: Path) -> None:
        """``household()`` of a fiscal code that is not stored returns an empty list."""
        got = await adapter.household(UNKNOWN_FISCAL_CODE)
        if got != []:
            _fail(f"household({UNKNOWN_FISCAL_CODE!r}) returned {got!r}, expected []")

    async def no_problems_on_clean_data(self, adapter: Any, workdir: Path) -> None:
        """``problems()`` is an empty list after every resident of the clean dataset is read."""
        for record in self.dataset:
            await adapter.lookup(record.fiscal_code)
            await adapter.household(record.fiscal_code)
        got = adapter.problems()
        if inspect.isawaitable(got):
            _fail("problems() must be a plain method, not async")
        if got != []:
            _fail(f"problems() is {[str(p) for p in got]!r} for the clean dataset, expected []")

    async def close_is_idempotent(self, adapter: Any, workdir: Path) -> None:
        """``close()`` may be called twice, after use and on an adapter never used."""
        await adapter.lookup(self.dataset[0].fiscal_code)
        await adapter.close()
        await adapter.close()
        unused = await self.build(workdir / "unused")
        await unused.close()
        await unused.close()

    async def registered_through_the_hook(self, adapter: Any, workdir: Path) -> None:
        """The plugin returns the class from ``hub_registry_adapters()`` under its ``name``."""
        cls = type(adapter)
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            _fail(f"{cls.__name__}.name must be a non-empty class attribute (the adapter's name)")
        if self.plugins is None:
            _fail("no plugins given to check the hub_registry_adapters hook with")
        try:
            adapters = self.plugins.registry_adapters()
        except PluginConflict as exc:
            _fail(f"{exc}: pick another name (the built-in ones are csv, sql and rest)")
        if adapters.get(str(name)) is not cls:
            _fail(
                f"hub_registry_adapters() gives {adapters.get(str(name))!r} for {name!r}, "
                f"expected {cls.__module__}.{cls.__qualname__} (registered: {sorted(adapters)})"
            )


async def run_registry_contract(
    factory: AdapterFactory,
    workdir: Path,
    *,
    dataset: Sequence[RegistryRecord] | None = None,
    plugin: object | None = None,
    plugin_name: str | None = None,
) -> dict[str, str]:
    """Run every registry contract check without pytest (see :meth:`RegistryContract.run_all`).

    With ``plugin`` (a module or object with ``@hookimpl`` functions), the hook check runs on
    a :func:`plugins_with` manager holding it.
    """
    plugins = plugins_with(plugin, plugin_name) if plugin is not None else None
    contract = RegistryContract(factory, dataset=dataset, plugins=plugins)
    return await contract.run_all(workdir)

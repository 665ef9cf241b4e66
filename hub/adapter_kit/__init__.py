"""Adapter kit: contract tests, a pytest plugin and a scaffold for adapter authors.

Registry (anagrafe) adapters have their contract in :mod:`.contract`, accounting
(ragioneria) adapters in :mod:`.accounting_contract`, SUAP adapters in :mod:`.suap_contract`,
agenda adapters (the ``booking`` kind) in :mod:`.agenda_contract`.
The pytest parts (fixtures, ``RegistryContractTests``, ``AccountingContractTests``,
``SuapContractTests``, ``AgendaContractTests``) live in
:mod:`sportello.adapter_kit.pytest_plugin`, so importing this package does not need pytest.
"""

from .accounting_contract import (
    AccountingContract,
    AccountingFactory,
    canonical_positions,
    run_accounting_contract,
)
from .agenda_contract import AgendaContract, AgendaFactory, canonical_agenda, run_agenda_contract
from .contract import (
    UNKNOWN_FISCAL_CODE,
    AdapterFactory,
    ContractViolation,
    RegistryContract,
    canonical_dataset,
    expected_household,
    plugins_with,
    run_registry_contract,
)
from .scaffold import KINDS, ProjectNames, ScaffoldError, scaffold, validate_name
from .suap_contract import SuapContract, SuapFactory, canonical_practices, run_suap_contract

__all__ = [
    "KINDS",
    "UNKNOWN_FISCAL_CODE",
    "AccountingContract",
    "AccountingFactory",
    "AdapterFactory",
    "AgendaContract",
    "AgendaFactory",
    "ContractViolation",
    "ProjectNames",
    "RegistryContract",
    "ScaffoldError",
    "SuapContract",
    "SuapFactory",
    "canonical_agenda",
    "canonical_dataset",
    "canonical_positions",
    "canonical_practices",
    "expected_household",
    "plugins_with",
    "run_accounting_contract",
    "run_agenda_contract",
    "run_registry_contract",
    "run_suap_contract",
    "scaffold",
    "validate_name",
]

"""Adapter kit: contract tests, a pytest plugin and a scaffold for adapter authors.

Only registry (anagrafe) adapters have a contract in this version; the accounting and SUAP
hooks exist, but their contracts do not yet. The pytest parts (fixtures and
``RegistryContractTests``) live in :mod:`sportello.adapter_kit.pytest_plugin`, so importing
this package does not need pytest.
"""

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
from .scaffold import ProjectNames, ScaffoldError, scaffold, validate_name

__all__ = [
    "UNKNOWN_FISCAL_CODE",
    "AdapterFactory",
    "ContractViolation",
    "ProjectNames",
    "RegistryContract",
    "ScaffoldError",
    "canonical_dataset",
    "expected_household",
    "plugins_with",
    "run_registry_contract",
    "scaffold",
    "validate_name",
]

"""Metadata policy of OpenID Federation 1.0 (section "Metadata Policy"), hand-written:
no JOSE library implements it.

A superior's entity statement carries ``metadata_policy``: per entity type, per metadata
parameter, operators. Policies of a chain are merged from the trust anchor down
(``merge_policies``), then applied to the leaf's metadata (``apply_policy``) in the order
``value``, ``add``, ``default``, ``one_of``, ``subset_of``, ``superset_of``, ``essential``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from .errors import MetadataPolicyError

__all__ = ["OPERATORS", "apply_metadata_policy", "apply_policy", "merge_policies"]

OPERATORS = ("value", "add", "default", "one_of", "subset_of", "superset_of", "essential")
_LIST_OPERATORS = ("add", "one_of", "subset_of", "superset_of")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _check_operators(name: str, ops: Mapping[str, Any], critical: Collection[str]) -> None:
    for op, operand in ops.items():
        if op not in OPERATORS:
            if op in critical:
                raise MetadataPolicyError("policy", f"{name}: critical operator {op!r} unknown")
            continue
        if op in _LIST_OPERATORS and not isinstance(operand, list):
            raise MetadataPolicyError("policy", f"{name}: operator {op} needs a list")
        if op == "essential" and not isinstance(operand, bool):
            raise MetadataPolicyError("policy", f"{name}: operator essential needs a boolean")
    if "one_of" in ops and ("subset_of" in ops or "superset_of" in ops):
        raise MetadataPolicyError(
            "policy", f"{name}: one_of cannot combine with subset_of/superset_of"
        )
    if "subset_of" in ops and "superset_of" in ops:
        if not set(map(_key, ops["superset_of"])) <= set(map(_key, ops["subset_of"])):
            raise MetadataPolicyError("policy", f"{name}: superset_of is not within subset_of")
    if "value" in ops and ops["value"] is not None:
        value = ops["value"]
        if "one_of" in ops and value not in ops["one_of"]:
            raise MetadataPolicyError("policy", f"{name}: value outside one_of")
        if "subset_of" in ops and not all(v in ops["subset_of"] for v in _as_list(value)):
            raise MetadataPolicyError("policy", f"{name}: value outside subset_of")
        if "superset_of" in ops and not all(v in _as_list(value) for v in ops["superset_of"]):
            raise MetadataPolicyError("policy", f"{name}: value misses superset_of")
        if "add" in ops and not all(v in _as_list(value) for v in ops["add"]):
            raise MetadataPolicyError("policy", f"{name}: value misses add")


def _key(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def _merge_param(name: str, sup: Mapping[str, Any], sub: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(sup)
    for op, operand in sub.items():
        if op not in out:
            out[op] = copy.deepcopy(operand)
            continue
        current = out[op]
        if op in ("value", "default"):
            if current != operand:
                raise MetadataPolicyError(
                    "policy_merge", f"{name}: {op} conflicts with a superior's"
                )
        elif op in ("add", "superset_of"):
            out[op] = current + [v for v in operand if v not in current]
        elif op in ("one_of", "subset_of"):
            both = [v for v in current if v in operand]
            if op == "one_of" and not both:
                raise MetadataPolicyError("policy_merge", f"{name}: one_of sets do not intersect")
            out[op] = both
        elif op == "essential":
            out[op] = bool(current) or bool(operand)  # a superior's true cannot be undone
        # unknown, non-critical operators: the superior's stays
    return out


def merge_policies(
    superior: Mapping[str, Any], subordinate: Mapping[str, Any], critical: Collection[str] = ()
) -> dict[str, Any]:
    """The policy of ``superior`` (nearer the anchor) combined with ``subordinate``'s; a
    subordinate can only restrict, never loosen, what a superior set."""
    merged: dict[str, Any] = copy.deepcopy(dict(superior))
    for entity_type, params in subordinate.items():
        if not isinstance(params, Mapping):
            raise MetadataPolicyError("policy", f"the policy for {entity_type} is not an object")
        into = merged.setdefault(entity_type, {})
        for name, ops in params.items():
            if not isinstance(ops, Mapping):
                raise MetadataPolicyError("policy", f"{entity_type}.{name}: not an object")
            _check_operators(f"{entity_type}.{name}", ops, critical)
            merged_ops = _merge_param(f"{entity_type}.{name}", into.get(name, {}), ops)
            _check_operators(f"{entity_type}.{name}", merged_ops, critical)
            into[name] = merged_ops
    return merged


def apply_policy(
    metadata: Mapping[str, Any], policy: Mapping[str, Any], critical: Collection[str] = ()
) -> dict[str, Any]:
    """One entity type's metadata after ``policy`` (``{parameter: {operator: operand}}``);
    ``MetadataPolicyError`` when the metadata breaks it."""
    out = copy.deepcopy(dict(metadata))
    for name, ops in policy.items():
        _check_operators(name, ops, critical)
        if "value" in ops:
            if ops["value"] is None:
                out.pop(name, None)
            else:
                out[name] = copy.deepcopy(ops["value"])
        if "add" in ops:
            current = _as_list(out[name]) if name in out else []
            out[name] = current + [v for v in ops["add"] if v not in current]
        if "default" in ops and name not in out:
            out[name] = copy.deepcopy(ops["default"])
        if name in out:
            value = out[name]
            if "one_of" in ops and value not in ops["one_of"]:
                raise MetadataPolicyError(
                    "policy_violation", f"{name}: {value!r} is not one of the allowed values"
                )
            if "subset_of" in ops:
                out[name] = [v for v in _as_list(value) if v in ops["subset_of"]]
                value = out[name]
            if "superset_of" in ops:
                missing = [v for v in ops["superset_of"] if v not in _as_list(value)]
                if missing:
                    raise MetadataPolicyError(
                        "policy_violation", f"{name}: must include {missing!r}"
                    )
        if ops.get("essential") and (name not in out or out[name] in ([], "", None)):
            raise MetadataPolicyError("policy_violation", f"{name}: essential but absent")
    return out


def apply_metadata_policy(
    metadata: Mapping[str, Any], policy: Mapping[str, Any], critical: Collection[str] = ()
) -> dict[str, Any]:
    """Every entity type of ``metadata`` after its part of ``policy`` (``{type: {...}}``)."""
    return {
        entity_type: apply_policy(params, policy.get(entity_type, {}), critical)
        for entity_type, params in metadata.items()
    }

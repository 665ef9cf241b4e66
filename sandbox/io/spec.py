"""Check App IO requests and answers against the official Swagger 2.0 spec.

The spec (``io-functions-services``' ``openapi/index.yaml``) is not shipped with Sportello:
pass its path. ``SpecChecker`` resolves ``#/definitions/...`` references and validates with
``jsonschema`` (Draft 4, the dialect of Swagger 2.0), checking App IO's custom string
formats (``FiscalCode``, ``OrganizationFiscalCode``, ``UTCISODateFromString``, ``Ulid``)
too. ``jsonschema`` is a development dependency: it is imported only when a checker is
built.

Give a checker to ``sandbox.io.app.create_app(spec_checker=...)`` and the sandbox checks
every request body it accepts and every body it sends against the operation's schema,
recording violations (``GET /__sandbox/spec-violations``) without changing its answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..common import SpecViolation, schema_problems
from .validation import is_fiscal_code, is_organization_fiscal_code, is_timestamp, is_ulid

__all__ = ["SpecChecker", "SpecViolation"]  # SpecViolation: from sandbox.common


def _format(check: Callable[[object], bool]) -> Callable[[object], bool]:
    # jsonschema applies formats to strings only; other types are the job of "type"
    return lambda value: not isinstance(value, str) or check(value)


class SpecChecker:
    """Validators for the operations of one Swagger 2.0 document."""

    def __init__(self, document: dict[str, Any]) -> None:
        import jsonschema  # development dependency: imported on use

        self.document = document
        self.base_path: str = document.get("basePath", "")
        self._definitions: dict[str, Any] = document.get("definitions", {})
        checker = jsonschema.FormatChecker()
        for name, check in (
            ("FiscalCode", is_fiscal_code),
            ("OrganizationFiscalCode", is_organization_fiscal_code),
            ("UTCISODateFromString", is_timestamp),
            ("Ulid", is_ulid),
        ):
            checker.checks(name)(_format(check))
        self._format_checker = checker
        self._validator_class = jsonschema.Draft4Validator
        self._cache: dict[tuple[str, ...], Any] = {}

    @classmethod
    def from_path(cls, path: str | Path) -> SpecChecker:
        with open(path, encoding="utf-8") as handle:
            return cls(yaml.safe_load(handle))

    # -- schemas -----------------------------------------------------------------------

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The operation for a path template relative to ``basePath`` (``/messages``)."""
        item = self.document.get("paths", {}).get(path)
        if not isinstance(item, dict):
            return None
        operation = item.get(method.lower())
        return operation if isinstance(operation, dict) else None

    def _validator(self, key: tuple[str, ...], schema: dict[str, Any]) -> Any:
        validator = self._cache.get(key)
        if validator is None:
            # every "#/definitions/..." reference resolves against this root
            root = {"definitions": self._definitions, "allOf": [schema]}
            validator = self._validator_class(root, format_checker=self._format_checker)
            self._cache[key] = validator
        return validator

    def request_schema(self, method: str, path: str) -> dict[str, Any] | None:
        operation = self.operation(method, path)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if isinstance(parameter, dict) and parameter.get("in") == "body":
                schema = parameter.get("schema")
                return schema if isinstance(schema, dict) else None
        return None

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any] | None:
        operation = self.operation(method, path)
        if operation is None:
            return None
        response = operation.get("responses", {}).get(str(status))
        if not isinstance(response, dict):
            return None
        schema = response.get("schema")
        return schema if isinstance(schema, dict) else None

    def declared_statuses(self, method: str, path: str) -> set[int]:
        operation = self.operation(method, path) or {}
        return {int(code) for code in operation.get("responses", {}) if str(code).isdigit()}

    # -- validation --------------------------------------------------------------------

    def _errors(self, key: tuple[str, ...], schema: dict[str, Any], body: Any) -> list[str]:
        return schema_problems(self._validator(key, schema), body)

    def definition_errors(self, name: str, body: Any) -> list[str]:
        """Problems of ``body`` against ``#/definitions/<name>``."""
        schema = {"$ref": f"#/definitions/{name}"}
        return self._errors(("definition", name), schema, body)

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        """Problems of a request body (empty when the operation declares no body schema)."""
        schema = self.request_schema(method, path)
        if schema is None:
            return []
        return self._errors(("request", method.lower(), path), schema, body)

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems of a response body (empty when the spec gives no schema for it)."""
        schema = self.response_schema(method, path, status)
        if schema is None:
            return []
        return self._errors(("response", method.lower(), path, str(status)), schema, body)

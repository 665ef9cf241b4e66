"""Check GPD requests and answers against the official OpenAPI 3 documents.

The specs (``pagopa-api``'s ``openapi/gpd.json`` and ``openapi/gpd_massive_v2.json``) are
not shipped with Sportello: pass their paths. Schemas are validated with ``jsonschema``
(Draft 4, the dialect OpenAPI 3.0 builds on), ``#/components/schemas/...`` references
resolved through a ``referencing`` registry holding the whole document, and the
``date-time`` / ``date`` formats checked. ``jsonschema`` is a development dependency:
imported only when a checker is built.

Give a checker to ``sandbox.pagopa.gpd_app.create_app(spec_checker=...)`` and the sandbox
checks every JSON body it accepts and every JSON body it sends, recording violations
(``GET /__sandbox/spec-violations``) without changing its answers. Tests can also call
:meth:`GpdSpecChecker.schema_errors` directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common import SpecViolation, schema_problems

__all__ = ["GpdSpecChecker", "SpecViolation"]  # SpecViolation: from sandbox.common


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class GpdSpecChecker:
    """Validators for the operations of one or more OpenAPI 3.0 documents.

    Operations are looked up by ``operationId`` (``createPosition``,
    ``get-debt-positions-upload-status``...), so the sandbox's route names are enough.
    """

    def __init__(self, *documents: dict[str, Any]) -> None:
        import jsonschema  # development dependency: imported on use
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        registry: Registry[Any] = Registry()
        self._operations: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
        for index, document in enumerate(documents):
            uri = f"urn:sportello:gpd-spec:{index}"
            registry = registry.with_resource(
                uri, Resource.from_contents(document, default_specification=DRAFT4)
            )
            for path, item in document.get("paths", {}).items():
                for method, operation in item.items():
                    if isinstance(operation, dict) and "operationId" in operation:
                        self._operations[operation["operationId"]] = (uri, method, path, operation)
        self._registry = registry
        self._validator_class = jsonschema.Draft4Validator
        self._format_checker = jsonschema.Draft4Validator.FORMAT_CHECKER
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_paths(cls, *paths: str | Path) -> GpdSpecChecker:
        documents = []
        for path in paths:
            with open(path, encoding="utf-8") as handle:
                documents.append(json.load(handle))
        return cls(*documents)

    # -- lookups -------------------------------------------------------------------------

    def has_operation(self, operation_id: str) -> bool:
        return operation_id in self._operations

    def _errors(self, reference: str, body: Any) -> list[str]:
        validator = self._cache.get(reference)
        if validator is None:
            validator = self._validator_class(
                {"$ref": reference},
                registry=self._registry,
                format_checker=self._format_checker,
            )
            self._cache[reference] = validator
        return schema_problems(validator, body)

    def schema_errors(self, name: str, body: Any, *, document: int = 0) -> list[str]:
        """Problems of ``body`` against ``#/components/schemas/<name>``."""
        return self._errors(f"urn:sportello:gpd-spec:{document}#/components/schemas/{name}", body)

    def request_errors(self, operation_id: str, body: Any) -> list[str]:
        """Problems of a JSON request body (empty when the operation has no JSON body)."""
        uri, method, path, operation = self._operations[operation_id]
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return []
        pointer = _pointer(
            "paths", path, method, "requestBody", "content", "application/json", "schema"
        )
        return self._errors(f"{uri}#{pointer}", body)

    def has_response_schema(self, operation_id: str, status: int) -> bool:
        return self._response_pointer(operation_id, status) is not None

    def _response_pointer(self, operation_id: str, status: int) -> str | None:
        uri, method, path, operation = self._operations[operation_id]
        response = operation.get("responses", {}).get(str(status))
        if not isinstance(response, dict):
            return None
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if not isinstance(schema, dict):
            return None
        pointer = _pointer(
            "paths", path, method, "responses", str(status), "content", "application/json", "schema"
        )
        return f"{uri}#{pointer}"

    def declared_statuses(self, operation_id: str) -> set[int]:
        operation = self._operations[operation_id][3]
        return {int(code) for code in operation.get("responses", {}) if str(code).isdigit()}

    def response_errors(self, operation_id: str, status: int, body: Any) -> list[str]:
        """Problems of a JSON response body (empty when the spec gives it no schema)."""
        reference = self._response_pointer(operation_id, status)
        return [] if reference is None else self._errors(reference, body)

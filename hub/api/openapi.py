"""The OpenAPI 3.1 document of ``/api/v1``, generated; served at ``/api/v1/openapi.json``.

Nothing here is hand-written schema. Each API handler declares its operation next to it
with :func:`operation` (summary, path and query parameters, request body, answers by
status), and the bodies and answers are pydantic models (``sportello.api.models`` for the
kernel, each platform's ``api_models.py``). :func:`document` walks the routes the hub
registered (the kernel's and every plugin's ``hub_api_routes``), reads the metadata the
decorator attached to each handler, and turns the models into ``components.schemas`` with
pydantic's ``models_json_schema``. So the document describes exactly the routes that are
served, with the constraints the code validates.

``tests/kernel/test_openapi.py`` fails when an API route has no metadata; the contract
tests validate real answers against the document, and schemathesis runs against it.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from sportello import __version__
from sportello.api.models import Problem

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
ATTRIBUTE = "__openapi__"

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Query:
    """A query parameter: its name and type (an ``Annotated`` type carries the constraints)."""

    name: str
    type: Any = str
    description: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """One documented answer: ``body`` a pydantic model or a type (``bytes`` for a file),
    ``None`` for no content; ``also`` more media types with their bodies."""

    body: Any = None
    description: str = "OK"
    media_type: str = "application/json"
    also: Mapping[str, Any] = field(default_factory=dict)


def failure(description: str) -> Answer:
    """An ``application/problem+json`` answer."""
    return Answer(Problem, description, "application/problem+json")


#: Every operation may answer these (authentication, scope, tenant isolation, bad input).
ERRORS: dict[int, Answer] = {
    400: failure("Bad request: the detail says which parameter and why"),
    401: failure("Missing, unknown or revoked API key"),
    403: failure("The key lacks the scope this operation needs"),
    404: failure("Not found (also: a tenant the key may not see)"),
}

#: The ``{tenant}`` path parameter, as ``sportello.config`` requires tenant ids.
TENANT = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
IDEMPOTENCY_KEY = Annotated[str, Field(min_length=1, max_length=200)]


@dataclass(frozen=True)
class Operation:
    """The metadata of one API handler (see :func:`operation`)."""

    operation_id: str
    summary: str
    responses: Mapping[int, Answer]
    body: type[BaseModel] | None = None
    path: Mapping[str, Any] = field(default_factory=dict)
    query: Sequence[Query] = ()
    idempotent: bool = False
    scope: str | None = None
    hidden: bool = False


def operation(
    operation_id: str,
    summary: str,
    *,
    responses: Mapping[int, Answer | type[BaseModel] | str],
    body: type[BaseModel] | None = None,
    path: Mapping[str, Any] | None = None,
    query: Sequence[Query] = (),
    idempotent: bool = False,
    scope: str | None = None,
) -> Callable[[H], H]:
    """Declare the handler's operation in the API contract.

    ``responses``: status → an :class:`Answer`, a model (JSON, "OK"), or a string (a
    problem+json answer with that description); 400/401/403/404 are implied (:data:`ERRORS`)
    unless given. ``path``: the types of path parameters other than ``tenant`` (default
    ``str``). ``idempotent``: the ``Idempotency-Key`` header is required. ``scope``: the
    API-key scope the operation needs (an ``admin`` key has them all).
    """
    answers = {
        status: (
            answer
            if isinstance(answer, Answer)
            else failure(answer)
            if isinstance(answer, str)
            else Answer(answer)
        )
        for status, answer in responses.items()
    }
    meta = Operation(
        operation_id,
        summary,
        answers,
        body=body,
        path=dict(path or {}),
        query=tuple(query),
        idempotent=idempotent,
        scope=scope,
    )

    def mark(handler: H) -> H:
        setattr(handler, ATTRIBUTE, meta)
        return handler

    return mark


def undocumented(handler: H) -> H:
    """Leave a route under ``/api/v1`` out of the document on purpose (the document itself)."""
    setattr(handler, ATTRIBUTE, Operation("", "", {}, hidden=True))
    return handler


def metadata(handler: Any) -> Operation | None:
    """The handler's :class:`Operation`, or None when it declares none."""
    meta = getattr(handler, ATTRIBUTE, None)
    return meta if isinstance(meta, Operation) else None


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON Schema without per-field titles and without ``"default": null`` on
    fields that answers may leave out (see ``sportello.api.models.absent``)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        js = super().default_schema(schema)
        if "default" in js and js["default"] is None:
            del js["default"]
        return js


def _route_list(routes: Iterable[Any]) -> tuple[tuple[str, str, Any], ...]:
    """(method, path template, handler) of each route under ``/api/v1``; ``routes`` are
    aiohttp ``RouteDef``s or a router's registered routes."""
    out = []
    for r in routes:
        resource = getattr(r, "resource", None)
        path = resource.canonical if resource is not None else getattr(r, "path", None)
        if not isinstance(path, str) or not path.startswith(PREFIX + "/") or r.method == "HEAD":
            continue
        out.append((r.method.upper(), path, r.handler))
    return tuple(out)


def undescribed(routes: Iterable[Any]) -> list[str]:
    """The API routes whose handler declares no metadata ("METHOD /path")."""
    return [f"{m} {p}" for m, p, h in _route_list(routes) if metadata(h) is None]


def document(routes: Iterable[Any]) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (e.g. ``app.router.routes()`` or
    ``sportello.api.core.all_routes()``)."""
    return copy.deepcopy(_document(_route_list(routes)))


_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _inline(type_: Any, mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    schema = TypeAdapter(type_).json_schema(mode=mode, schema_generator=_Schemas)
    schema.pop("title", None)  # an enum's class name and docstring say nothing here
    schema.pop("description", None)
    return schema


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


@functools.lru_cache(maxsize=8)
def _document(routes: tuple[tuple[str, str, Any], ...]) -> dict[str, Any]:
    described = [(m, p, meta) for m, p, h in routes if (meta := metadata(h)) and not meta.hidden]
    # every model named by a body or an answer, once per mode
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for _, _, meta in described:
        if meta.body is not None:
            wanted[(meta.body, "validation")] = None
        for answer in {**ERRORS, **meta.responses}.values():
            for body in (answer.body, *answer.also.values()):
                if _is_model(body):
                    wanted[(body, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template=REF, schema_generator=_Schemas)

    def content(media_type: str, body: Any) -> dict[str, Any]:
        schema = (
            refs[(body, "serialization")] if _is_model(body) else _inline(body, "serialization")
        )
        return {media_type: {"schema": schema}}

    def answer_of(answer: Answer) -> dict[str, Any]:
        out: dict[str, Any] = {"description": answer.description}
        if answer.body is not None:
            out["content"] = content(answer.media_type, answer.body)
            for media_type, body in answer.also.items():
                out["content"].update(content(media_type, body))
        return out

    paths: dict[str, dict[str, Any]] = {}
    for method, path, meta in sorted(described, key=lambda d: (d[1], d[0])):
        parameters: list[dict[str, Any]] = []
        for name in _PATH_PARAM.findall(path):
            type_ = TENANT if name == "tenant" else meta.path.get(name, str)
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": _inline(type_)}
            )
        for q in meta.query:
            param: dict[str, Any] = {"name": q.name, "in": "query", "schema": _inline(q.type)}
            if q.required:
                param["required"] = True
            if q.description:
                param["description"] = q.description
            parameters.append(param)
        if meta.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": _inline(IDEMPOTENCY_KEY),
                    "description": "repeat a request with the same key to get the same "
                    "answer, never twice",
                }
            )
        op: dict[str, Any] = {"operationId": meta.operation_id, "summary": meta.summary}
        if parameters:
            op["parameters"] = parameters
        if meta.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(meta.body, "validation")]}},
            }
        answers = {**ERRORS, **meta.responses}
        op["responses"] = {str(s): answer_of(answers[s]) for s in sorted(answers)}
        if meta.scope is not None:
            # OpenAPI 3.1: for a non-OAuth scheme the list names the roles the call needs
            op["security"] = [{"apiKey": [meta.scope]}]
        paths.setdefault(path, {})[method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sportello API",
            "version": __version__,
            "description": "One API over SPID/CIE, pagoPA, App IO and ANPR for software houses "
            "that serve many comuni. Every call needs `Authorization: Bearer sk_...`; an "
            "operation's `security` names the key scope it needs (an admin key has them all).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(top.get("$defs", {}).items())),
        },
        "paths": paths,
    }

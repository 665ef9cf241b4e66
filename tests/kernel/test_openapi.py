"""The OpenAPI document is generated (``sportello.api.openapi``) from the ``@operation``
metadata beside each handler and the pydantic models: every API route declares it, the
document is valid OpenAPI 3.1, its schemas are the models' own, and what is served is what
``document(all_routes())`` (the export) gives."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_spec_validator import validate
from pydantic import BaseModel

from sportello.api import models
from sportello.api.core import all_routes
from sportello.api.openapi import document, metadata, operation, undescribed
from sportello.app import create_app
from sportello.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


def _app_routes() -> list[Any]:
    config = parse_config(
        {
            "database": {"url": "sqlite:///:memory:"},
            "outbox": {"workers": False},
            "tenants": [
                {
                    "id": "demo",
                    "name": "Comune di Esempio",
                    "ipa_code": "c_z999",
                    "fiscal_code": "00000000999",
                    "cadastral_code": "Z999",
                }
            ],
        }
    )
    return list(create_app(config).router.routes())


def test_every_api_route_declares_its_operation() -> None:
    """A handler under /api/v1 without ``@operation`` (or ``@undocumented``) fails here."""
    assert undescribed(_app_routes()) == []
    assert undescribed(all_routes()) == []

    async def bare(request: web.Request) -> web.StreamResponse:
        return web.Response()

    @operation("x", "x", responses={200: models.Tenant})
    async def described(request: web.Request) -> web.StreamResponse:
        return web.Response()

    routes = [web.get("/api/v1/bare", bare), web.get("/api/v1/described", described)]
    assert undescribed(routes) == ["GET /api/v1/bare"]
    assert list(document(routes)["paths"]) == ["/api/v1/described"]  # nothing invented


def test_the_served_document_is_the_exported_one_and_valid_openapi_31() -> None:
    served = document(_app_routes())
    assert served == document(all_routes())
    validate(served)  # the OpenAPI 3.1 meta-schema
    assert served["openapi"] == "3.1.0"
    names = served["components"]["schemas"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    # every reference resolves
    text = repr(served)
    for ref in set(re.findall(r"#/components/schemas/([A-Za-z0-9._-]+)", text)):
        assert ref in names, ref
    # every operation says which key scope it needs, and each operationId is unique
    ops = [op for item in served["paths"].values() for op in item.values()]
    assert all(op["security"][0]["apiKey"] for op in ops)
    assert len({op["operationId"] for op in ops}) == len(ops)


def test_schemas_are_the_models_own() -> None:
    """Each body and answer schema is the one pydantic makes of the declared model: change
    a model and the document follows."""
    served = document(all_routes())
    schemas = served["components"]["schemas"]
    seen = 0
    for route in all_routes():
        meta = metadata(route.handler)  # type: ignore[attr-defined]
        if meta is None or meta.hidden:
            continue
        declared: list[type[BaseModel]] = [
            a.body for a in meta.responses.values() if isinstance(a.body, type)
        ]
        if meta.body is not None:
            declared.append(meta.body)
        for model in declared:
            if not issubclass(model, BaseModel):
                continue
            own = model.model_json_schema(ref_template="#/components/schemas/{model}")
            mine = schemas[model.__name__]
            assert sorted(mine.get("properties", {})) == sorted(own.get("properties", {}))
            assert sorted(mine.get("required", [])) == sorted(own.get("required", []))
            for name, prop in own.get("properties", {}).items():
                for key in ("minLength", "maxLength", "pattern", "minimum", "maximum", "enum"):
                    assert mine["properties"][name].get(key) == prop.get(key), (model, name)
            seen += 1
    assert seen >= 30


def test_openapi_module_holds_no_hand_written_schema() -> None:
    """The generator has no JSON Schema literals: they come from the models."""
    source = (ROOT / "hub" / "api" / "openapi.py").read_text(encoding="utf-8")
    for literal in ('"properties":', '"items":', '"minLength":', '"pattern":', '"enum":'):
        assert literal not in source, literal


def test_the_cli_exports_the_served_document(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sportello.cli.main import main

    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(main, ["openapi", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8")) == document(_app_routes())
    printed = CliRunner().invoke(main, ["openapi"])
    assert json.loads(printed.output) == document(_app_routes())

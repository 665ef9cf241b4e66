"""``Contract``: checks an answer against the OpenAPI document the hub itself serves (used by
the API tests of every platform folder)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class Contract:
    """Validates answers against the OpenAPI document the service itself serves."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        root = {**doc, "$id": "urn:sportello-api"}
        self.registry = Registry().with_resource(
            "urn:sportello-api", Resource.from_contents(root, default_specification=DRAFT202012)
        )

    def check(self, template: str, status: int, body: Any, ctype: str) -> None:
        op = self.doc["paths"][template]["get"]
        assert str(status) in op["responses"], f"{template} does not document {status}"
        pointer = "/".join(
            [
                "#",
                "paths",
                template.replace("~", "~0").replace("/", "~1"),
                "get",
                "responses",
                str(status),
                "content",
                ctype.replace("/", "~1"),
                "schema",
            ]
        )
        validator = Draft202012Validator(
            {"$ref": f"urn:sportello-api{pointer}"}, registry=self.registry
        )
        validator.validate(body)

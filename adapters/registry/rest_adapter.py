"""Reference registry adapter: the comune's registry (anagrafe) through a small REST API.

Options: those of :mod:`sportello.adapters.rest` (``base_url``, ``token``, ``auth_header``,
``auth_scheme``, ``timeout``) and ``columns``, a ``{field: key}`` mapping when the service's
JSON keys differ from the ``RegistryRecord`` field names. The service answers:

``GET {base_url}/residents/{fiscal_code}``
    200 and a JSON object, the resident (keys: ``fiscal_code``, ``family_name``,
    ``given_name``, ``sex``, ``birth_date`` as ``YYYY-MM-DD``, ``birth_place``, ``address``,
    ``municipality_istat``, ``family_id``, ``relationship``, ``email``, ``phone``; a missing
    or null key is an unknown field); 404 when there is no such resident.
``GET {base_url}/residents/{fiscal_code}/household``
    200 and a JSON list of the residents of the same family, the resident included; 404 when
    there is no such resident.

The fiscal code is sent upper-cased. An object that does not validate is reported by
``problems()`` (source: the path; row: its position, 1 for a single object; the key) and
skipped. Other answers raise the typed errors of :mod:`sportello.adapters.rest`.

``POST {base_url}/residence-changes``
    a residence declaration (``ResidenceDeclaration`` as JSON); 200 or 201 with
    ``{"practice": "<number>"}``. Certificates are drawn from the registry's data
    (:mod:`.certificates`, marked as a demonstration; option ``comune``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import ValidationError

from sportello.connectors.errors import ProtocolError

from ..rest import RestClient
from .base import RegistryDataError, RegistryRecord, ResidenceDeclaration, mapping_from
from .certificates import ReferenceDesk


class RestRegistryAdapter(ReferenceDesk):
    name: ClassVar[str] = "rest"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self._options, self._base_dir = dict(options), base_dir
        self.client = RestClient(options, base_dir=base_dir, platform="registry")
        self.columns = mapping_from(options)
        self._problems: list[RegistryDataError] = []

    def _record(self, source: str, row: int, entry: Any) -> RegistryRecord | None:
        if not isinstance(entry, dict):
            self._problems.append(RegistryDataError(source, row, "-", "not a JSON object"))
            return None
        values = {
            field: (value.strip() or None) if isinstance(value, str) else value
            for field, key in self.columns.items()
            if (value := entry.get(key)) is not None
        }
        fiscal_code = values.get("fiscal_code")
        if isinstance(fiscal_code, str):
            values["fiscal_code"] = fiscal_code.upper()
        try:
            return RegistryRecord.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "-"
            key = self.columns.get(field, field)
            self._problems.append(RegistryDataError(source, row, key, error["msg"]))
            return None

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        path = f"/residents/{quote(fiscal_code.strip().upper(), safe='')}"
        status, body = await self.client.request("GET", path, ok=(200, 404))
        if status == 404:
            return None
        return self._record(self.client.base_url + path, 1, body)

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        path = f"/residents/{quote(fiscal_code.strip().upper(), safe='')}/household"
        status, body = await self.client.request("GET", path, ok=(200, 404))
        if status == 404:
            return []
        if not isinstance(body, list):
            raise ProtocolError(f"GET {path}: expected a JSON list", platform="registry")
        source = self.client.base_url + path
        records = (self._record(source, row, entry) for row, entry in enumerate(body, start=1))
        return [r for r in records if r is not None]

    async def declare_residence_change(self, declaration: ResidenceDeclaration) -> str:
        """``POST {base_url}/residence-changes`` with the declaration as JSON; the service
        answers 200 or 201 with ``{"practice": "<number>"}`` (the same for the same
        ``reference``)."""
        _, body = await self.client.request(
            "POST",
            "/residence-changes",
            body=declaration.model_dump(mode="json"),
            ok=(200, 201),
        )
        practice = body.get("practice") if isinstance(body, dict) else None
        if not isinstance(practice, str) or not practice:
            raise ProtocolError(
                'POST /residence-changes: expected {"practice": ...}', platform="registry"
            )
        return practice

    def problems(self) -> list[RegistryDataError]:
        return list(self._problems)

    async def close(self) -> None:
        await self.client.close()

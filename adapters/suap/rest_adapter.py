"""Reference SUAP adapter: the comune's SUAP back office through a small REST API.

Options: those of :mod:`sportello.adapters.rest` (``base_url``, ``token``, ``auth_header``,
``auth_scheme``, ``timeout``). The service answers JSON:

``GET {base_url}/practices?applicant={fiscal_code}``
    a list of practices (keys as :class:`~.base.Practice`: ``id``, ``applicant_fiscal_code``,
    ``applicant_name``, ``title``, ``kind``, ``status``, ``submitted_at``, ``updated_at``;
    datetimes ISO 8601 with an offset);
``GET {base_url}/practices/{id}``
    one practice, or 404;
``GET {base_url}/practices/{id}/events`` and ``.../documents``
    lists (keys as :class:`~.base.PracticeEvent` / :class:`~.base.PracticeDocument`), or 404;
``GET {base_url}/events?since={iso datetime}``
    the events of every practice after ``since``.

The adapter sorts what the contract fixes (practices newest first, events oldest first)
whatever order the service uses. An entry that does not validate is reported by
``problems()`` (source: the URL; entry: ``[i]``; the key) and skipped; other answers raise the
typed errors of :mod:`sportello.adapters.rest`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from sportello.connectors.errors import ProtocolError

from ..rest import RestClient
from .base import Practice, PracticeDocument, PracticeEvent, SuapDataError

M = TypeVar("M", bound=BaseModel)


class RestSuapAdapter:
    name: ClassVar[str] = "rest"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self.client = RestClient(options, base_dir=base_dir, platform="suap")
        self._problems: list[SuapDataError] = []

    def _valid(self, model: type[M], source: str, where: str, entry: Any) -> M | None:
        try:
            return model.model_validate(entry)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            self._problems.append(SuapDataError(source, where, field, error["msg"]))
            return None

    async def _list(
        self, model: type[M], path: str, params: dict[str, str] | None = None
    ) -> list[M] | None:
        status, body = await self.client.request("GET", path, params=params, ok=(200, 404))
        if status == 404:
            return None
        if not isinstance(body, list):
            raise ProtocolError(f"GET {path}: expected a JSON list", platform="suap")
        source = self.client.base_url + path
        items = (self._valid(model, source, f"[{i}]", e) for i, e in enumerate(body))
        return [item for item in items if item is not None]

    async def practices(self, applicant_fiscal_code: str) -> list[Practice]:
        found = await self._list(
            Practice, "/practices", {"applicant": applicant_fiscal_code.strip().upper()}
        )
        return sorted(found or [], key=lambda p: p.submitted_at, reverse=True)

    async def practice(self, practice_id: str) -> Practice | None:
        path = f"/practices/{quote(practice_id, safe='')}"
        status, body = await self.client.request("GET", path, ok=(200, 404))
        if status == 404:
            return None
        return self._valid(Practice, self.client.base_url + path, "[0]", body)

    async def timeline(self, practice_id: str) -> list[PracticeEvent]:
        path = f"/practices/{quote(practice_id, safe='')}/events"
        return sorted(await self._list(PracticeEvent, path) or [], key=lambda e: e.at)

    async def documents(self, practice_id: str) -> list[PracticeDocument]:
        path = f"/practices/{quote(practice_id, safe='')}/documents"
        return await self._list(PracticeDocument, path) or []

    async def changes_since(self, since: datetime) -> list[PracticeEvent]:
        found = await self._list(PracticeEvent, "/events", {"since": since.isoformat()})
        return sorted((e for e in found or [] if e.at > since), key=lambda e: e.at)

    def problems(self) -> list[SuapDataError]:
        return list(self._problems)

    async def close(self) -> None:
        await self.client.close()

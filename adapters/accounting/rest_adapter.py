"""Reference accounting adapter: the comune's accounting system through a small REST API.

Options: those of :mod:`sportello.adapters.rest` (``base_url``, ``token``, ``auth_header``,
``auth_scheme``, ``timeout``), ``company_name`` (the creditor's name, used when a position
has none), ``since`` (optional ISO 8601 datetime: only positions changed after it) and
``max_pages`` (default 1000, a guard against a service that never stops paging).
The service answers:

``GET {base_url}/positions?since=...&cursor=...``
    200 and ``{"positions": [...], "next_cursor": "..." | null}``: one page of debt positions;
    the adapter asks again with ``cursor=next_cursor`` until it is null (``since`` is sent
    only when configured, ``cursor`` from the second page on). A position is a JSON object
    with the fields of ``DebtPosition`` (``iupd``, ``type``, ``fiscal_code``, ``full_name``,
    ``email``, ``company_name``, ``payment_options`` with ``amount`` in cents,
    ``description``, ``due_date`` as an ISO 8601 datetime with offset,
    ``is_partial_payment``, ``installment_number`` and ``transfers``), without IUVs: the hub
    allocates them.
``POST {base_url}/receipts`` with ``Idempotency-Key: <receipt_id>``
    the receipt as JSON (the fields of ``AccountingReceipt``; amounts in cents, datetimes
    ISO 8601); 200 or 201 when stored, and the same for a receipt sent again (the service
    keeps one record per key); 409 is taken as "already stored" too.
``POST {base_url}/reconciliations`` with ``Idempotency-Key: <sha256 of the body>``
    a ``ReconciliationResult`` as JSON; 200, 201 or 409 as above.

A position that does not validate yields a ``RowError`` (source: the page's path; row: the
position's number in the whole listing, from 1; field: the dotted path of the bad key, e.g.
``payment_options[0].due_date``) and the next ones go on. Other answers raise the typed errors
of :mod:`sportello.adapters.rest`; the outbox retries the retryable ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from sportello.connectors.errors import ProtocolError
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import DebtPosition

from ..rest import RestClient
from .base import AccountingReceipt, PositionRow, ReconciliationResult, RowError

STORED = (200, 201, 409)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "-"


def as_json(value: Any) -> Any:
    """A receipt or result (dataclasses, datetimes, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value


class RestAccountingAdapter:
    name: ClassVar[str] = "rest"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self.client = RestClient(options, base_dir=base_dir, platform="accounting")
        self.company_name = options.get("company_name")
        since = options.get("since")
        self.since = None if since is None else datetime.fromisoformat(str(since)).isoformat()
        self.max_pages = int(options.get("max_pages", 1000))

    async def pull_positions(self) -> AsyncIterator[PositionRow | RowError]:
        cursor: str | None = None
        number = 0
        for _ in range(self.max_pages):
            params = {k: v for k, v in (("since", self.since), ("cursor", cursor)) if v}
            _, page = await self.client.request("GET", "/positions", params=params)
            if not isinstance(page, dict) or not isinstance(page.get("positions"), list):
                raise ProtocolError(
                    "GET /positions: expected an object with a positions list",
                    platform="accounting",
                )
            source = self.client.base_url + "/positions" + (f"?cursor={cursor}" if cursor else "")
            for entry in page["positions"]:
                number += 1
                yield self._position(source, number, entry)
            cursor = page.get("next_cursor")
            if not cursor:
                return
        raise ProtocolError(
            f"GET /positions: still paging after {self.max_pages} pages", platform="accounting"
        )

    def _position(self, source: str, number: int, entry: Any) -> PositionRow | RowError:
        if not isinstance(entry, dict):
            return RowError(source, number, "-", "not a JSON object")
        iupd = entry.get("iupd")
        position = dict(entry)
        if self.company_name and not position.get("company_name"):
            position["company_name"] = self.company_name
        options = position.get("payment_options")
        trial = dict(position)
        if isinstance(options, list):
            trial["payment_options"] = [
                {**o, "iuv": iuv_for(i + 1, segregation_code="01")} if isinstance(o, dict) else o
                for i, o in enumerate(options)
            ]
        try:
            DebtPosition.model_validate(trial)
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            message = str(err["msg"]).removeprefix("Value error, ")
            return RowError(source, number, _loc(err["loc"]), message)
        return PositionRow(source, number, str(iupd), position)

    async def push_receipt(self, receipt: AccountingReceipt) -> None:
        await self.client.request(
            "POST",
            "/receipts",
            body=as_json(receipt),
            headers={"Idempotency-Key": receipt.receipt_id},
            ok=STORED,
        )

    async def push_reconciliation(self, result: ReconciliationResult) -> None:
        body = as_json(result)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        await self.client.request(
            "POST", "/reconciliations", body=body, headers={"Idempotency-Key": key}, ok=STORED
        )

    async def close(self) -> None:
        await self.client.close()

"""The accounting (ragioneria) adapter contract as executable checks.

An adapter author provides three async functions (plain functions are accepted too):

- ``factory(positions, workdir) -> adapter``: stores the positions in the adapter's own kind
  of source (a CSV file, a table, a fake web service) under ``workdir``, exactly as given (one
  of them is invalid on purpose), and returns an adapter instance that reads them and that
  writes receipts and reconciliation results to a destination under ``workdir``. Called again
  with the same ``workdir`` it must keep what that destination already holds (the hub
  restarting is a new adapter instance over the same destination).
- ``read_receipts(workdir) -> list[str]``: the ``receipt_id`` of every receipt record the
  destination holds, one entry per record (so a duplicate shows up twice).
- ``read_reconciliations(workdir) -> list[tuple[str, str]]`` (optional): ``(flow_id, iuv)``
  of every reconciliation record held, one entry per record. An adapter that does not keep
  reconciliation results passes None: the check then only sees that they are accepted.

The contract reads back through these functions, not through the adapter: the adapter's
protocol stays what the hub calls (``pull_positions``, ``push_receipt``,
``push_reconciliation``, ``close``) and the test, which built the destination, reads it.

Positions are given as python-named ``DebtPosition`` dicts without IUVs, the shape a
:class:`~sportello.adapters.accounting.base.PositionRow` carries. The creditor is one comune
for every position: ``company_name`` and transfer 1's beneficiary (``organization_fiscal_code``)
are the same throughout (adapters usually take them from their options), every transfer's
remittance information is its option's description, and due dates are the end of a day,
Italian time (a CSV holds the date only).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ..adapters.accounting.base import (
    AccountingReceipt,
    PositionRow,
    ReceiptTransferLine,
    ReconciliationResult,
    RowError,
)
from ..connectors.pagopa.identifiers import iuv_for
from ..connectors.pagopa.models import DebtPosition
from ..plugins import PluginConflict, Plugins
from .contract import ContractRunner, ContractViolation, _fail, plugins_with

AccountingFactory = Callable[[list[dict[str, Any]], Path], Awaitable[Any]]
"""``async def factory(positions, workdir) -> adapter``."""
ReceiptReader = Callable[[Path], Awaitable[list[str]]]
"""``async def read_receipts(workdir) -> [receipt_id, ...]``, one entry per record held."""
ReconciliationReader = Callable[[Path], Awaitable[list[tuple[str, str]]]]
"""``async def read_reconciliations(workdir) -> [(flow_id, iuv), ...]``, one per record."""

ROME = ZoneInfo("Europe/Rome")
COMPANY_NAME = "Comune di Prova"
#: The comune's fiscal code: beneficiary of transfer 1 of every option.
CREDITOR_FISCAL_CODE = "77777777777"
IBAN = "IT60X0542811101000000123456"
#: The invalid debtor fiscal code of the contract's bad position.
BAD_FISCAL_CODE = "NOT-A-FISCAL-CODE"
BAD_IUPD = "TARI-2026-0003"
FLOW_ID = "2026-03-02" + "BCITITMM-S000000001"


def _due(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 23, 59, 59, tzinfo=ROME)


def _transfer(n: int, cents: int, description: str, **kw: Any) -> dict[str, Any]:
    return {
        "id_transfer": n,
        "amount": cents,
        "organization_fiscal_code": kw.get("fiscal_code", CREDITOR_FISCAL_CODE),
        "remittance_information": description,
        "category": kw.get("category", "9/0101101IM/"),
        "iban": kw.get("iban", IBAN),
    }


def _option(
    description: str, due: datetime, transfers: list[dict[str, Any]], instalment: int | None
) -> dict[str, Any]:
    return {
        "amount": sum(t["amount"] for t in transfers),
        "description": description,
        "due_date": due,
        "is_partial_payment": instalment is not None,
        "installment_number": instalment,
        "transfers": transfers,
    }


def _position(
    iupd: str, kind: str, cf: str, name: str, email: str | None, options: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "iupd": iupd,
        "type": kind,
        "fiscal_code": cf,
        "full_name": name,
        "email": email,
        "company_name": COMPANY_NAME,
        "payment_options": options,
    }


def canonical_positions() -> list[dict[str, Any]]:
    """The kit's fictitious debt positions, in order: a TARI with a second beneficiary
    (TEFA to the province), one in two instalments, an invalid one (debtor fiscal code
    :data:`BAD_FISCAL_CODE`), and a legal entity's fine with an apostrophe, a non-ASCII
    letter, a ``;`` and a ``,`` in its texts. A fresh deep copy on each call."""
    tari = "TARI 2026"
    positions = [
        _position(
            "TARI-2026-0001",
            "F",
            "RSSMRA80A01H501U",
            "Mario Rossi",
            "mario.rossi@example.org",
            [
                _option(
                    tari,
                    _due(2026, 12, 31),
                    [
                        _transfer(1, 12000, tari),
                        _transfer(2, 600, tari, fiscal_code="80000000001", category="9/0201102IM/"),
                    ],
                    None,
                )
            ],
        ),
        _position(
            "TARI-2026-0002",
            "F",
            "VRDLGU70B02F205V",
            "Luigi Verdi",
            None,
            [
                _option(
                    f"{tari} rata 1", _due(2026, 10, 31), [_transfer(1, 5000, f"{tari} rata 1")], 1
                ),
                _option(
                    f"{tari} rata 2", _due(2026, 12, 31), [_transfer(1, 5050, f"{tari} rata 2")], 2
                ),
            ],
        ),
        _position(
            BAD_IUPD,
            "F",
            BAD_FISCAL_CODE,
            "Anna Colombo",
            None,
            [_option(tari, _due(2026, 12, 31), [_transfer(1, 9900, tari)], None)],
        ),
        _position(
            "CDS-2026-0004",
            "G",
            "01234567897",
            "Nicolò D'Angelo s.r.l.",
            "amministrazione@example.org",
            [
                _option(
                    "Sanzione CdS; verbale 12/2026, art. 7",
                    _due(2026, 6, 30),
                    [
                        _transfer(
                            1,
                            4210,
                            "Sanzione CdS; verbale 12/2026, art. 7",
                            category="9/0301105SP/",
                        )
                    ],
                    None,
                )
            ],
        ),
    ]
    return copy.deepcopy(positions)


def receipt_for(position: dict[str, Any], receipt_id: str, option: int = 0) -> AccountingReceipt:
    """A paid receipt of one option of a canonical position (the IUV is a placeholder)."""
    chosen = position["payment_options"][option]
    iuv = iuv_for(option + 1, segregation_code="01")
    return AccountingReceipt(
        tenant_id="prova",
        receipt_id=receipt_id,
        notice_number="3" + iuv,
        iuv=iuv,
        iupd=position["iupd"],
        amount=chosen["amount"],
        outcome="OK",
        id_psp="BCITITMM",
        psp_company_name="Banca di Prova; filiale 1",
        payment_date_time=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        stand_in=False,
        received_at=datetime(2026, 3, 1, 10, 1, tzinfo=UTC),
        debtor_fiscal_code=position["fiscal_code"],
        transfers=tuple(
            ReceiptTransferLine(
                t["id_transfer"],
                t["amount"],
                t["organization_fiscal_code"],
                t["iban"],
                t["category"],
                t["remittance_information"],
            )
            for t in chosen["transfers"]
        ),
        note='a note, with "quotes"; and a second line\nhere',
    )


def _project(position: dict[str, Any]) -> dict[str, Any]:
    """The fields the contract compares, from a validated position."""
    return {
        "iupd": position["iupd"],
        "type": str(getattr(position["type"], "value", position["type"])),
        "fiscal_code": position["fiscal_code"],
        "full_name": position["full_name"],
        "email": position.get("email"),
        "company_name": position["company_name"],
        "payment_options": sorted(
            (
                {
                    "amount": o["amount"],
                    "description": o["description"],
                    "due_date": o["due_date"].astimezone(UTC),
                    "is_partial_payment": o["is_partial_payment"],
                    "installment_number": o["installment_number"],
                    "transfers": [
                        {k: t.get(k) for k in _TRANSFER_FIELDS}
                        for t in sorted(o["transfers"], key=lambda t: t["id_transfer"])
                    ],
                }
                for o in position["payment_options"]
            ),
            key=lambda o: (o["installment_number"] or 0, o["description"]),
        ),
    }


_TRANSFER_FIELDS = (
    "id_transfer",
    "amount",
    "organization_fiscal_code",
    "remittance_information",
    "category",
    "iban",
)


def _validated(what: str, position: dict[str, Any]) -> dict[str, Any]:
    """The position validated as a ``DebtPosition`` (placeholder IUVs where missing)."""
    if not isinstance(position, dict):
        _fail(f"{what}: position is {type(position).__name__}, expected a dict")
    trial = dict(position)
    options = trial.get("payment_options")
    if isinstance(options, list | tuple):
        trial["payment_options"] = [
            {"iuv": iuv_for(i + 1, segregation_code="01"), **o} if isinstance(o, dict) else o
            for i, o in enumerate(options)
        ]
    try:
        model = DebtPosition.model_validate(trial)
    except ValidationError as exc:
        _fail(
            f"{what}: not a valid DebtPosition: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        )
    return model.model_dump()


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class AccountingContract(ContractRunner):
    """What every accounting adapter must do, as one async method per check (see the module
    docstring for ``factory``, ``read_receipts`` and ``read_reconciliations``).

    ``bad_field`` is what the :class:`RowError` of the invalid position must name: its
    ``field`` must contain it (default ``fiscal_code``: ``debtor_fiscal_code`` passes).
    ``plugins`` is the plugin manager the hook check looks the class up in; without it that
    check is skipped.
    """

    KIND = "accounting"
    HOOK = "hub_accounting_adapters"
    CHECKS: ClassVar[tuple[str, ...]] = (
        "positions_are_valid",
        "bad_position_is_named_and_skipped",
        "receipt_is_pushed_once",
        "receipt_is_pushed_once_across_instances",
        "reconciliation_is_accepted_and_idempotent",
        "close_is_idempotent",
        "registered_through_the_hook",
    )

    def __init__(
        self,
        factory: AccountingFactory,
        read_receipts: ReceiptReader,
        read_reconciliations: ReconciliationReader | None = None,
        *,
        positions: Sequence[dict[str, Any]] | None = None,
        bad_field: str = "fiscal_code",
        plugins: Plugins | None = None,
    ) -> None:
        self.factory = factory
        self.read_receipts = read_receipts
        self.read_reconciliations = read_reconciliations
        self.positions = list(canonical_positions() if positions is None else positions)
        self.bad_field = bad_field
        self.plugins = plugins
        self.good = [p for p in self.positions if p["fiscal_code"] != BAD_FISCAL_CODE]
        if len(self.good) < 2 or len(self.good) == len(self.positions):
            raise ValueError(
                f"the positions must hold at least two valid ones and one whose fiscal_code "
                f"is {BAD_FISCAL_CODE!r}"
            )

    def factory_input(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.positions)

    # --- helpers ------------------------------------------------------------------------------
    async def pulled(self, adapter: Any) -> list[PositionRow | RowError]:
        """Everything ``pull_positions()`` yields, checking each item's type."""
        stream = adapter.pull_positions()
        if not hasattr(stream, "__aiter__"):
            _fail("pull_positions() must be an async generator (async def ... yield)")
        items: list[PositionRow | RowError] = []
        async for item in stream:
            if not isinstance(item, PositionRow | RowError):
                _fail(
                    f"pull_positions() yielded {type(item).__name__}, "
                    "expected a PositionRow or a RowError"
                )
            items.append(item)
        return items

    async def receipts_held(self, workdir: Path) -> list[str]:
        held = await _maybe(self.read_receipts(workdir))
        if not isinstance(held, list):
            _fail(f"read_receipts returned {type(held).__name__}, expected a list of receipt ids")
        return sorted(str(r) for r in held)

    # --- the checks ---------------------------------------------------------------------------
    async def positions_are_valid(self, adapter: Any, workdir: Path) -> None:
        """Every valid position comes out once, as a :class:`PositionRow` whose ``iupd`` is the
        position's, whose ``position`` validates as a ``DebtPosition`` once IUVs are allocated,
        and whose fields equal the stored ones; ``source`` and ``row`` say where it was read."""
        rows = [i for i in await self.pulled(adapter) if isinstance(i, PositionRow)]
        got: dict[str, PositionRow] = {}
        for row in rows:
            if row.iupd in got:
                _fail(f"position {row.iupd!r} was yielded twice")
            got[row.iupd] = row
        want = [p["iupd"] for p in self.good]
        if sorted(got) != sorted(want):
            _fail(f"pull_positions() yielded positions {sorted(got)}, expected {sorted(want)}")
        for stored in self.good:
            row = got[stored["iupd"]]
            what = f"position {row.iupd!r}"
            if not isinstance(row.source, str) or not row.source:
                _fail(f"{what}: PositionRow.source must name where it was read")
            if not isinstance(row.row, int) or row.row < 0:
                _fail(f"{what}: PositionRow.row is {row.row!r}, expected a record number")
            if row.position.get("iupd") != row.iupd:
                _fail(f"{what}: position['iupd'] is {row.position.get('iupd')!r}")
            mine = _project(_validated(what, row.position))
            theirs = _project(_validated(f"stored {what}", stored))
            for key, value in theirs.items():
                if mine[key] != value:
                    _fail(f"{what}: {key} is {mine[key]!r}, expected {value!r}")

    async def bad_position_is_named_and_skipped(self, adapter: Any, workdir: Path) -> None:
        """The invalid position yields one :class:`RowError` naming source, row and field, and
        the positions after it still come out."""
        items = await self.pulled(adapter)
        errors = [i for i in items if isinstance(i, RowError)]
        if len(errors) != 1:
            _fail(f"expected one RowError (for {BAD_IUPD}), got {[str(e) for e in errors]}")
        error = errors[0]
        if not isinstance(error.source, str) or not error.source:
            _fail(f"RowError {error}: source must name where the record was read")
        if not isinstance(error.row, int) or error.row < 0:
            _fail(f"RowError {error}: row is {error.row!r}, expected a record number")
        if self.bad_field.lower() not in str(error.field).lower():
            _fail(
                f"RowError {error}: field is {error.field!r}, expected one naming {self.bad_field}"
            )
        if not error.message:
            _fail(f"RowError {error}: message must say what is wrong")
        if any(isinstance(i, PositionRow) and i.iupd == BAD_IUPD for i in items):
            _fail(f"the invalid position {BAD_IUPD} was yielded as a PositionRow too")
        index = next(i for i, p in enumerate(self.positions) if p["iupd"] == BAD_IUPD)
        later = [p["iupd"] for p in self.positions[index + 1 :]]
        pulled = {i.iupd for i in items if isinstance(i, PositionRow)}
        if not set(later) <= pulled:
            _fail(f"pull_positions() stopped at the invalid position: {later} missing")

    async def receipt_is_pushed_once(self, adapter: Any, workdir: Path) -> None:
        """Pushing the same receipt twice leaves one record (``push_receipt`` is idempotent by
        ``receipt_id``); another receipt is a second record."""
        first, second = self.good[0], self.good[1]
        await adapter.push_receipt(receipt_for(first, "rcpt-0001"))
        await adapter.push_receipt(receipt_for(first, "rcpt-0001"))
        await adapter.push_receipt(receipt_for(second, "rcpt-0002"))
        await adapter.push_receipt(receipt_for(first, "rcpt-0001"))
        held = await self.receipts_held(workdir)
        if held != ["rcpt-0001", "rcpt-0002"]:
            _fail(
                "after pushing rcpt-0001 three times and rcpt-0002 once "
                f"the destination holds {held}"
            )

    async def receipt_is_pushed_once_across_instances(self, adapter: Any, workdir: Path) -> None:
        """A new adapter instance over the same destination (the hub restarted) does not write
        again a receipt the first one pushed."""
        first, second = self.good[0], self.good[1]
        await adapter.push_receipt(receipt_for(first, "rcpt-0001"))
        again = await self.build(workdir)
        try:
            await again.push_receipt(receipt_for(first, "rcpt-0001"))
            await again.push_receipt(receipt_for(second, "rcpt-0002"))
        finally:
            await again.close()
        await adapter.push_receipt(receipt_for(second, "rcpt-0002"))
        held = await self.receipts_held(workdir)
        if held != ["rcpt-0001", "rcpt-0002"]:
            _fail(f"two adapter instances pushing the same two receipts left {held}")

    async def reconciliation_is_accepted_and_idempotent(self, adapter: Any, workdir: Path) -> None:
        """``push_reconciliation`` accepts results (with and without receipt and detail);
        pushing an equal result again leaves one record (checked when the destination can be
        read back)."""
        first, second = self.good[0], self.good[1]
        matched = ReconciliationResult(
            tenant_id="prova",
            flow_id=FLOW_ID,
            iuv=iuv_for(1, segregation_code="01"),
            amount=first["payment_options"][0]["amount"],
            status="matched",
            receipt_id="rcpt-0001",
            detail="revision 1, transfer 1, EXECUTED",
        )
        unmatched = ReconciliationResult(
            tenant_id="prova",
            flow_id=FLOW_ID,
            iuv=iuv_for(2, segregation_code="01"),
            amount=second["payment_options"][0]["amount"],
            status="no_receipt",
        )
        for result in (matched, matched, unmatched, matched):
            got = adapter.push_reconciliation(result)
            if not inspect.isawaitable(got):
                _fail("push_reconciliation() must be async")
            await got
        if self.read_reconciliations is None:
            return
        held = await _maybe(self.read_reconciliations(workdir))
        if not isinstance(held, list):
            _fail(f"read_reconciliations returned {type(held).__name__}, expected a list")
        want = sorted([(FLOW_ID, matched.iuv), (FLOW_ID, unmatched.iuv)])
        if sorted(tuple(h) for h in held) != want:
            _fail(
                "after pushing one result three times and another once "
                f"the destination holds {held}"
            )

    async def close_is_idempotent(self, adapter: Any, workdir: Path) -> None:
        """``close()`` may be called twice, after use and on an adapter never used."""
        await self.pulled(adapter)
        await adapter.close()
        await adapter.close()
        unused = await self.build(workdir / "unused")
        await unused.close()
        await unused.close()

    async def registered_through_the_hook(self, adapter: Any, workdir: Path) -> None:
        """The plugin returns the class from ``hub_accounting_adapters()`` under its ``name``."""
        cls = type(adapter)
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            _fail(f"{cls.__name__}.name must be a non-empty class attribute (the adapter's name)")
        if self.plugins is None:
            _fail("no plugins given to check the hub_accounting_adapters hook with")
        try:
            adapters = self.plugins.accounting_adapters()
        except PluginConflict as exc:
            _fail(f"{exc}: pick another name")
        if adapters.get(name) is not cls:
            _fail(
                f"hub_accounting_adapters() gives {adapters.get(name)!r} for {name!r}, "
                f"expected {cls.__module__}.{cls.__qualname__} (registered: {sorted(adapters)})"
            )


async def run_accounting_contract(
    factory: AccountingFactory,
    read_receipts: ReceiptReader,
    workdir: Path,
    *,
    read_reconciliations: ReconciliationReader | None = None,
    positions: Sequence[dict[str, Any]] | None = None,
    plugin: object | None = None,
    plugin_name: str | None = None,
) -> dict[str, str]:
    """Run every accounting contract check without pytest (see
    :meth:`AccountingContract.run_all`); with ``plugin`` the hook check runs too."""
    plugins = plugins_with(plugin, plugin_name) if plugin is not None else None
    contract = AccountingContract(
        factory, read_receipts, read_reconciliations, positions=positions, plugins=plugins
    )
    return await contract.run_all(workdir)


__all__ = [
    "BAD_FISCAL_CODE",
    "BAD_IUPD",
    "AccountingContract",
    "AccountingFactory",
    "ContractViolation",
    "ReceiptReader",
    "ReconciliationReader",
    "canonical_positions",
    "receipt_for",
    "run_accounting_contract",
]

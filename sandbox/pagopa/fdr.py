"""Flussi di rendicontazione: what each PSP reports to each creditor for each day.

Every payment the Node collects is accounted, transfer by transfer, to the draft flow of
(PSP, receiving organization, day of payment in Rome): the PSP reports what it collected,
whether or not the receipt reached the station (that gap is what reconciliation finds).
A flow is published a simulated day later: :meth:`Ledger.publish` for a date, or
:meth:`Ledger.publish_due` when the sandbox clock moves past ``day + lag_days``.

Flow ids are ``YYYY-MM-DD<idPSP>-<n>`` (``n`` counts per PSP and year, so ids are unique
per year; it starts at ``first_number``, which the bundled sandbox sets from the time it
starts so that a restarted sandbox does not reuse an id a hub has already stored); the
regulation (the SCT the PSP sends on D+1) is ``RIV<yyyymmdd><idPSP><n>``.
A revision (:meth:`Ledger.revise`) re-publishes a flow with ``revision + 1``, some
payments revoked or changed, totals recomputed; the list shows the latest revision, each
revision stays readable. ``payStatus`` is EXECUTED, or STAND_IN for Stand-In receipts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from sportello.clock import Clock

from .node import Psp, ReceiptRecord

__all__ = [
    "FLUSSO_NS",
    "FdrPayment",
    "Flow",
    "Ledger",
    "flusso_xml",
    "iso_instant",
]

ROME = ZoneInfo("Europe/Rome")
FLUSSO_NS = "http://www.digitpa.gov.it/schemas/2011/Pagamenti/"
PAY_STATUSES = ("EXECUTED", "REVOKED", "STAND_IN", "STAND_IN_NO_RPT", "NO_RPT")
_ESITO = {"EXECUTED": "0", "REVOKED": "3", "STAND_IN": "4", "STAND_IN_NO_RPT": "8", "NO_RPT": "9"}


def iso_instant(value: datetime) -> str:
    """``2026-01-02T03:04:05Z`` (UTC, seconds)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _euro(cents: int) -> float:
    return round(cents / 100, 2)


@dataclass(frozen=True)
class FdrPayment:
    """One reported transfer (``Payment`` of ``fdr_organization.json``)."""

    index: int
    iuv: str
    iur: str
    id_transfer: int
    pay_cents: int
    status: str
    pay_date: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "iuv": self.iuv,
            "iur": self.iur,
            "idTransfer": self.id_transfer,
            "pay": _euro(self.pay_cents),
            "payStatus": self.status,
            "payDate": iso_instant(self.pay_date),
        }


@dataclass
class _Draft:
    psp: Psp
    org: str
    org_name: str
    day: date
    payments: list[FdrPayment] = field(default_factory=list)


@dataclass(frozen=True)
class Flow:
    """One published revision of a flow."""

    fdr: str
    revision: int
    org: str
    org_name: str
    psp: Psp
    day: date
    created: datetime
    published: datetime
    regulation: str
    payments: tuple[FdrPayment, ...]

    @property
    def total(self) -> int:
        return len(self.payments)

    @property
    def sum_cents(self) -> int:
        return sum(p.pay_cents for p in self.payments)

    @property
    def regulation_date(self) -> date:
        return self.day + timedelta(days=1)

    @property
    def bic(self) -> str:
        return (self.psp.id_psp + "XXX")[:11]

    def sender(self) -> dict[str, Any]:
        return {
            "type": "BIC_CODE",
            "id": self.psp.id_psp,
            "pspId": self.psp.id_psp,
            "pspName": self.psp.name,
            "pspBrokerId": self.psp.broker_id,
            "channelId": self.psp.channel_id,
        }

    def listing(self) -> dict[str, Any]:
        """``FlowByPSP``."""
        return {
            "fdr": self.fdr,
            "pspId": self.psp.id_psp,
            "revision": self.revision,
            "published": iso_instant(self.published),
            "flowDate": iso_instant(self.published),
        }

    def single(self) -> dict[str, Any]:
        """``SingleFlowResponse``."""
        total, amount = self.total, _euro(self.sum_cents)
        return {
            "status": "PUBLISHED",
            "revision": self.revision,
            "created": iso_instant(self.created),
            "updated": iso_instant(self.published),
            "fdr": self.fdr,
            "fdrDate": iso_instant(self.published),
            "regulation": self.regulation,
            "regulationDate": self.regulation_date.isoformat(),
            "bicCodePouringBank": self.bic,
            "sender": self.sender(),
            "receiver": {
                "id": self.org,
                "organizationId": self.org,
                "organizationName": self.org_name,
            },
            "published": iso_instant(self.published),
            "computedTotPayments": total,
            "computedSumPayments": amount,
            "totPayments": total,
            "sumPayments": amount,
        }


class Ledger:
    """Drafts and published flows, on the app."""

    def __init__(self, clock: Clock, *, lag_days: int = 1, first_number: int = 1) -> None:
        if lag_days < 0:
            raise ValueError("lag_days must not be negative")
        if first_number < 1:
            raise ValueError("first_number must be at least 1")
        self.clock = clock
        self.lag_days = lag_days
        #: The ``n`` of the first flow of each PSP and year (see :meth:`_next_id`).
        self.first_number = first_number
        self.drafts: dict[tuple[str, str, date], _Draft] = {}
        self.flows: dict[tuple[str, str], list[Flow]] = {}  # (org, fdr) → revisions
        self._counters: dict[tuple[str, int], int] = {}

    def reset(self) -> None:
        self.drafts.clear()
        self.flows.clear()
        self._counters.clear()

    def today(self) -> date:
        return self.clock.now().astimezone(ROME).date()

    # -- accounting ------------------------------------------------------------------------

    def account(self, record: ReceiptRecord) -> None:
        """Add a collected payment's transfers to the drafts of their organizations."""
        data = record.data
        day = record.paid_at.astimezone(ROME).date()
        status = "STAND_IN" if data.stand_in else "EXECUTED"
        for transfer in data.transfers:
            org = transfer.fiscal_code_pa
            name = (
                data.company_name
                if org == data.fiscal_code
                else transfer.company_name or f"Ente {org}"
            )
            key = (record.psp.id_psp, org, day)
            draft = self.drafts.setdefault(key, _Draft(record.psp, org, name[:140], day))
            draft.payments.append(
                FdrPayment(
                    index=len(draft.payments) + 1,
                    iuv=data.creditor_reference_id,
                    iur=data.receipt_id,
                    id_transfer=transfer.id_transfer,
                    pay_cents=transfer.amount_cents,
                    status=status,
                    pay_date=record.paid_at,
                )
            )

    # -- publication -----------------------------------------------------------------------

    def _next_id(self, psp: Psp, day: date) -> tuple[str, int]:
        key = (psp.id_psp, day.year)
        number = self._counters.get(key, self.first_number - 1) + 1
        self._counters[key] = number
        return f"{day.isoformat()}{psp.id_psp}-{number:05d}", number

    def publish(self, day: date) -> list[Flow]:
        """Publish every draft of ``day`` (one flow per PSP and organization)."""
        now = self.clock.now()
        out = []
        for key in [k for k in self.drafts if k[2] == day]:
            draft = self.drafts.pop(key)
            fdr, number = self._next_id(draft.psp, day)
            flow = Flow(
                fdr=fdr,
                revision=1,
                org=draft.org,
                org_name=draft.org_name,
                psp=draft.psp,
                day=day,
                created=now,
                published=now,
                regulation=f"RIV{day:%Y%m%d}{draft.psp.id_psp}{number:05d}"[:35],
                payments=tuple(draft.payments),
            )
            self.flows[(flow.org, fdr)] = [flow]
            out.append(flow)
        return out

    def publish_due(self) -> list[Flow]:
        """Publish the drafts of every day at least ``lag_days`` before today."""
        last = self.today() - timedelta(days=self.lag_days)
        out: list[Flow] = []
        for day in sorted({k[2] for k in self.drafts if k[2] <= last}):
            out.extend(self.publish(day))
        return out

    def revise(
        self,
        org: str,
        fdr: str,
        *,
        revoke: Iterable[int] = (),
        amounts: Mapping[int, int] | None = None,
        statuses: Mapping[int, str] | None = None,
    ) -> Flow:
        """Publish ``revision + 1`` of a flow: ``revoke`` indexes become REVOKED, ``amounts``
        and ``statuses`` (by index) replace those values. ``KeyError`` for an unknown flow,
        ``ValueError`` for an index or a value that does not fit."""
        revisions = self.flows[(org, fdr)]
        latest = revisions[-1]
        by_index = {p.index: p for p in latest.payments}
        changes: dict[int, FdrPayment] = {}
        for index in revoke:
            if index not in by_index:
                raise ValueError(f"flow {fdr} has no payment with index {index}")
            changes[index] = replace(by_index[index], status="REVOKED")
        for index, cents in (amounts or {}).items():
            if index not in by_index:
                raise ValueError(f"flow {fdr} has no payment with index {index}")
            if cents < 1:
                raise ValueError("an amount is at least 1 cent")
            changes[index] = replace(changes.get(index, by_index[index]), pay_cents=cents)
        for index, status in (statuses or {}).items():
            if index not in by_index:
                raise ValueError(f"flow {fdr} has no payment with index {index}")
            if status not in PAY_STATUSES:
                raise ValueError(f"payStatus must be one of {', '.join(PAY_STATUSES)}")
            changes[index] = replace(changes.get(index, by_index[index]), status=status)
        payments = tuple(changes.get(p.index, p) for p in latest.payments)
        flow = replace(
            latest, revision=latest.revision + 1, published=self.clock.now(), payments=payments
        )
        revisions.append(flow)
        return flow

    # -- reading ---------------------------------------------------------------------------

    def organizations(self) -> set[str]:
        return {org for org, _ in self.flows} | {k[1] for k in self.drafts}

    def latest(self, org: str) -> list[Flow]:
        """The latest revision of every published flow of ``org``, oldest first."""
        flows = [revs[-1] for (owner, _), revs in self.flows.items() if owner == org]
        return sorted(flows, key=lambda f: (f.published, f.fdr))

    def find(self, org: str, fdr: str, revision: int, psp: str) -> Flow | None:
        for flow in self.flows.get((org, fdr), []):
            if flow.revision == revision and flow.psp.id_psp == psp:
                return flow
        return None

    def drafts_view(self) -> list[dict[str, Any]]:
        return [
            {
                "pspId": d.psp.id_psp,
                "organizationId": d.org,
                "date": d.day.isoformat(),
                "payments": len(d.payments),
                "sumCents": sum(p.pay_cents for p in d.payments),
            }
            for d in self.drafts.values()
        ]


def flusso_xml(flow: Flow) -> bytes:
    """The flow as the legacy ``FlussoRiversamento`` (``FlussoRiversamento_1_0_4.xsd``).

    ``codiceEsitoSingoloPagamento`` follows FdR's mapping (EXECUTED 0, REVOKED 3, STAND_IN
    4, STAND_IN_NO_RPT 8, NO_RPT 9); 4 and 8 are newer than the 1.0.4 XSD.
    """

    def add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        child = etree.SubElement(parent, f"{{{FLUSSO_NS}}}{name}")
        if text is not None:
            child.text = text
        return child

    root = etree.Element(f"{{{FLUSSO_NS}}}FlussoRiversamento", nsmap={"pay_i": FLUSSO_NS})
    add(root, "versioneOggetto", "1.0")
    add(root, "identificativoFlusso", flow.fdr)
    add(root, "dataOraFlusso", flow.published.astimezone(ROME).replace(tzinfo=None).isoformat())
    add(root, "identificativoUnivocoRegolamento", flow.regulation)
    add(root, "dataRegolamento", flow.regulation_date.isoformat())
    sender = add(root, "istitutoMittente")
    sender_id = add(sender, "identificativoUnivocoMittente")
    add(sender_id, "tipoIdentificativoUnivoco", "B")
    add(sender_id, "codiceIdentificativoUnivoco", flow.psp.id_psp)
    add(sender, "denominazioneMittente", flow.psp.name)
    add(root, "codiceBicBancaDiRiversamento", flow.bic)
    receiver = add(root, "istitutoRicevente")
    receiver_id = add(receiver, "identificativoUnivocoRicevente")
    add(receiver_id, "tipoIdentificativoUnivoco", "G")
    add(receiver_id, "codiceIdentificativoUnivoco", flow.org)
    add(receiver, "denominazioneRicevente", flow.org_name)
    add(root, "numeroTotalePagamenti", str(flow.total))
    add(root, "importoTotalePagamenti", f"{flow.sum_cents // 100}.{flow.sum_cents % 100:02d}")
    for p in flow.payments:
        item = add(root, "datiSingoliPagamenti")
        add(item, "identificativoUnivocoVersamento", p.iuv)
        add(item, "identificativoUnivocoRiscossione", p.iur)
        add(item, "indiceDatiSingoloPagamento", str(p.id_transfer))
        add(item, "singoloImportoPagato", f"{p.pay_cents // 100}.{p.pay_cents % 100:02d}")
        add(item, "codiceEsitoSingoloPagamento", _ESITO[p.status])
        add(item, "dataEsitoSingoloPagamento", p.pay_date.astimezone(ROME).date().isoformat())
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

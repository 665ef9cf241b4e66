"""The pagoPA Node playing a PSP: modello 3 against an EC station, receipts and retries.

A payment is ``paVerifyPaymentNotice`` → ``paGetPaymentV2`` → ``paSendRTV2`` sent to the
station configured for the creditor's fiscal code, over SOAP 1.1, as the Node does:

- every message sent is valid against ``paForNode.xsd`` (when the XSD is available); one
  that is not is a sandbox bug and raises :class:`SandboxBug`;
- every answer is read as the Node reads it: not XML, not the expected element, invalid
  against the XSD, an HTTP status other than 200, a KO without fault, a verify without
  exactly one option, a getPayment whose transfers are not 1..5, numbered 1..n, adding up
  to ``paymentAmount``, or whose ``creditorReferenceId`` is not the notice's IUV: all give
  ``PPT_STAZIONE_INT_PA_ERRORE_RESPONSE`` (and a recorded violation);
- a KO with fault gives ``PPT_ERRORE_EMESSO_DA_PAA`` with ``originalFaultCode``,
  ``originalFaultString`` and ``originalDescription``; no answer within the timeout (7 s
  for verify and getPayment, 15 s for paSendRT) ``PPT_STAZIONE_INT_PA_TIMEOUT``; no
  connection ``PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE``;
- the Node's own checks come first: unknown creditor ``PPT_DOMINIO_SCONOSCIUTO``, a notice
  it already collected ``PPT_PAGAMENTO_DUPLICATO``, one being paid ``PPT_PAGAMENTO_IN_CORSO``;
- a receipt that times out, fails or is answered KO (other than ``PAA_RECEIPT_DUPLICATA``)
  is redelivered in the background, the same message every time, every
  ``retry_interval`` seconds up to ``max_attempts`` sends in all, then left ``failed``;
- ``duplicate_receipts`` sends every receipt twice; ``stand_in`` (or ``standIn`` on one
  payment) skips verify and getPayment and sends a ``standIn=true`` receipt built from the
  ACA data (the GPD sandbox's positions) or from the amount given.

The PSP collected the money as soon as getPayment succeeded: a receipt that is not
delivered does not undo the payment (it is exactly the "paid but no receipt" case).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from lxml import etree

from sportello.clock import Clock

from .node_model import (
    DEFAULT_PSPS,
    STAND_IN_IBAN,
    NodeSettings,
    PayRequest,
    PayResult,
    Prepared,
    Psp,
    ReceiptRecord,
    Station,
    Step,
    node_fault,
    parse_pay_request,
    parse_station,
)
from .node_soap import (
    BadAnswer,
    Fault,
    PaymentData,
    ReceiptData,
    Subject,
    Transfer,
    envelope,
    get_payment_v2_request,
    open_envelope,
    parse_get_payment_v2,
    parse_outcome,
    parse_verify,
    send_rt_v2_request,
    verify_request,
    xsd_problems,
)
from .notices import BadNotice, read_notice

__all__ = [
    "DEFAULT_PSPS",
    "STAND_IN_IBAN",
    "Node",
    "NodeSettings",
    "PayRequest",
    "PayResult",
    "Prepared",
    "Psp",
    "ReceiptRecord",
    "SandboxBug",
    "Station",
    "Step",
    "parse_pay_request",
    "parse_station",
]

log = logging.getLogger("sportello.sandbox.pagopa.node")

ROME = ZoneInfo("Europe/Rome")
_EXCHANGES = 500
_VIOLATIONS = 1000
_RETRY_CONCURRENCY = 8
_BODY_LOG = 20_000


class SandboxBug(RuntimeError):
    """The Node built a message its own XSD refuses: a defect of the sandbox."""


# -- the Node ------------------------------------------------------------------------------

AcaLookup = Callable[[str, str], PaymentData | None]
Collected = Callable[[ReceiptRecord], None]


class Node:
    """The Node's state and behaviour; one per app (``web.AppKey``)."""

    def __init__(
        self,
        *,
        stations: Iterable[Station] = (),
        psps: Iterable[Psp] = DEFAULT_PSPS,
        settings: NodeSettings | None = None,
        clock: Clock,
        xsd: etree.XMLSchema | None = None,
        aca: AcaLookup | None = None,
    ) -> None:
        self.stations = {s.fiscal_code: s for s in stations}
        self.psps = {p.id_psp: p for p in psps}
        if not self.psps:
            raise ValueError("the Node needs at least one PSP")
        self.default_psp = next(iter(self.psps.values()))
        self.settings = settings or NodeSettings()
        self.clock = clock
        self.xsd = xsd
        self.aca = aca
        self.on_collected: list[Collected] = []
        self.receipts: dict[str, ReceiptRecord] = {}
        self.pending: dict[str, ReceiptRecord] = {}
        self.paid: dict[tuple[str, str], str] = {}
        self.in_progress: set[tuple[str, str]] = set()
        self.exchanges: deque[dict[str, Any]] = deque(maxlen=_EXCHANGES)
        self.violations: deque[dict[str, Any]] = deque(maxlen=_VIOLATIONS)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and start the redelivery worker."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), auto_decompress=True
        )
        self._worker = asyncio.create_task(self._redeliver_loop(), name="node-redelivery")

    async def close(self) -> None:
        """Stop the worker and any in-flight redelivery, close the HTTP client."""
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        """Forget receipts, queues and logs (stations, PSPs and settings stay)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.receipts.clear()
        self.pending.clear()
        self.paid.clear()
        self.in_progress.clear()
        self.exchanges.clear()
        self.violations.clear()

    # -- payments ----------------------------------------------------------------------

    async def pay(self, request: PayRequest) -> PayResult:
        """The whole modello-3 flow for one notice."""
        prepared = await self.prepare(request)
        if isinstance(prepared, PayResult):
            return prepared
        return await self.settle(prepared)

    async def pay_many(self, requests: list[PayRequest], concurrency: int) -> list[PayResult]:
        """:meth:`pay` for each request, at most ``concurrency`` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(request: PayRequest) -> PayResult:
            async with gate:
                return await self.pay(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def _pre_checks(self, request: PayRequest) -> tuple[Station, Psp, str] | PayResult:
        key = (request.fiscal_code, request.notice_number)
        station = self.stations.get(request.fiscal_code)
        psp = self.psps.get(request.psp_id or "") or (
            self.default_psp if request.psp_id is None else None
        )
        fault: Step | None = None
        iuv = ""
        if psp is None:
            fault = node_fault("pay", "PPT_SEMANTICA", f"unknown PSP {request.psp_id}")
        elif station is None:
            fault = node_fault(
                "verifyPaymentNotice",
                "PPT_DOMINIO_SCONOSCIUTO",
                f"no station configured for {request.fiscal_code}",
            )
        elif key in self.paid:
            fault = node_fault(
                "verifyPaymentNotice",
                "PPT_PAGAMENTO_DUPLICATO",
                f"notice already paid (receipt {self.paid[key]})",
            )
        elif key in self.in_progress:
            fault = node_fault(
                "activatePaymentNotice", "PPT_PAGAMENTO_IN_CORSO", "a payment is in progress"
            )
        else:
            try:
                iuv = read_notice(request.notice_number).iuv
            except BadNotice as exc:
                fault = node_fault("verifyPaymentNotice", "PPT_SINTASSI_EXTRAXSD", str(exc))
        if fault is not None or station is None or psp is None:
            return PayResult(request, "KO", [], fault=fault)
        return station, psp, iuv

    async def prepare(self, request: PayRequest) -> Prepared | PayResult:
        """Verify and activate (or take the Stand-In data): a :class:`Prepared` that
        :meth:`settle` completes, or the KO :class:`PayResult`."""
        checked = self._pre_checks(request)
        if isinstance(checked, PayResult):
            return checked
        station, psp, iuv = checked
        key = (request.fiscal_code, request.notice_number)
        stand_in = request.stand_in if request.stand_in is not None else self.settings.stand_in
        self.in_progress.add(key)
        try:
            if stand_in:
                result = self._stand_in_data(request, station, iuv)
                steps: list[Step] = []
            else:
                result, steps = await self._verify_and_activate(request, station, iuv)
        except BaseException:
            self.in_progress.discard(key)
            raise
        if isinstance(result, Step):
            self.in_progress.discard(key)
            return PayResult(request, "KO", steps, stand_in=stand_in, fault=result)
        return Prepared(request, station, psp, iuv, result, stand_in, steps)

    def abort(self, prepared: Prepared) -> None:
        """Drop a prepared payment (the payer went away): no receipt, no money."""
        self.in_progress.discard((prepared.request.fiscal_code, prepared.request.notice_number))

    async def _verify_and_activate(
        self, request: PayRequest, station: Station, iuv: str
    ) -> tuple[PaymentData | Step, list[Step]]:
        ids = (station.fiscal_code, station.broker_id, station.station_id)
        verify = verify_request(*ids, request.fiscal_code, request.notice_number)
        answer, step = await self._exchange(
            station, "paVerifyPaymentNotice", verify, self.settings.verify_timeout
        )
        steps = [step]
        if answer is None:
            return step, steps
        try:
            verified = parse_verify(answer)
        except BadAnswer as exc:
            return self._bad_answer(steps, station, "paVerifyPaymentNotice", str(exc)), steps
        amount = request.amount_cents or verified.amount_cents
        get = get_payment_v2_request(
            *ids, request.fiscal_code, request.notice_number, amount_cents=amount
        )
        answer, step = await self._exchange(
            station, "paGetPaymentV2", get, self.settings.get_payment_timeout
        )
        steps.append(step)
        if answer is None:
            return step, steps
        try:
            payment = parse_get_payment_v2(answer, iuv=iuv)
        except BadAnswer as exc:
            return self._bad_answer(steps, station, "paGetPaymentV2", str(exc)), steps
        if request.amount_cents is not None and payment.amount_cents != request.amount_cents:
            fault = node_fault(
                "activatePaymentNotice",
                "PPT_SEMANTICA",
                f"the PSP asked to pay {request.amount_cents} cents, the EC wants "
                f"{payment.amount_cents}",
            )
            return fault, steps
        return payment, steps

    def _bad_answer(self, steps: list[Step], station: Station, operation: str, why: str) -> Step:
        """Turn the last OK step into ``PPT_STAZIONE_INT_PA_ERRORE_RESPONSE``."""
        self.violations.append(
            {"operation": operation, "station": station.station_id, "problem": why}
        )
        last = steps[-1]
        steps[-1] = node_fault(
            operation,
            "PPT_STAZIONE_INT_PA_ERRORE_RESPONSE",
            why,
            duration_ms=last.duration_ms,
            http_status=last.http_status,
        )
        return steps[-1]

    def _stand_in_data(self, request: PayRequest, station: Station, iuv: str) -> PaymentData | Step:
        found = self.aca(request.fiscal_code, iuv) if self.aca is not None else None
        if found is not None:
            if request.amount_cents is not None and request.amount_cents != found.amount_cents:
                # Stand-In receipts may carry another amount: one transfer takes the difference
                first, *rest = found.transfers
                delta = request.amount_cents - found.amount_cents
                if first.amount_cents + delta > 0:
                    first = replace(first, amount_cents=first.amount_cents + delta)
                    found = replace(
                        found, amount_cents=request.amount_cents, transfers=(first, *rest)
                    )
            return found
        if request.amount_cents is None:
            return node_fault(
                "verifyPaymentNotice",
                "PPT_PAGAMENTO_SCONOSCIUTO",
                f"Stand-In: no ACA position for {request.fiscal_code}/{iuv} and no amount",
            )
        today = self.clock.now().astimezone(ROME).date().isoformat()
        return PaymentData(
            creditor_reference_id=iuv,
            amount_cents=request.amount_cents,
            due_date=today,
            description="Pagamento in Stand-In",
            company_name=station.company_name,
            office_name=None,
            debtor=Subject("F", "ANONIMO", "ANONIMO"),
            transfers=(
                Transfer(
                    id_transfer=1,
                    amount_cents=request.amount_cents,
                    fiscal_code_pa=request.fiscal_code,
                    remittance="Pagamento in Stand-In",
                    category="9/0101101IM/",
                    iban=station.iban,
                ),
            ),
        )

    async def settle(self, prepared: Prepared) -> PayResult:
        """Collect the money, write the receipt, deliver it (redelivering if needed)."""
        request, station, psp, payment = (
            prepared.request,
            prepared.station,
            prepared.psp,
            prepared.payment,
        )
        now = self.clock.now()
        local = now.astimezone(ROME)
        data = ReceiptData(
            receipt_id=uuid.uuid4().hex,
            notice_number=request.notice_number,
            fiscal_code=request.fiscal_code,
            creditor_reference_id=payment.creditor_reference_id,
            amount_cents=payment.amount_cents,
            description=payment.description,
            company_name=payment.company_name,
            office_name=payment.office_name,
            debtor=payment.debtor,
            transfers=payment.transfers,
            id_psp=psp.id_psp,
            psp_company_name=psp.name,
            psp_fiscal_code=psp.fiscal_code,
            id_channel=psp.channel_id,
            channel_description=psp.channel_description,
            payment_method=psp.payment_method,
            fee_cents=psp.fee_cents,
            payment_date_time=local.replace(tzinfo=None, microsecond=0).isoformat(),
            application_date=local.date().isoformat(),
            transfer_date=local.date().isoformat(),
            stand_in=prepared.stand_in,
            payer=request.payer,
            metadata=payment.metadata,
        )
        ids = (station.fiscal_code, station.broker_id, station.station_id)
        message = send_rt_v2_request(*ids, data)
        self._check_outgoing("paSendRTV2", message)
        record = ReceiptRecord(data, station, envelope(message), now, psp)
        key = (request.fiscal_code, request.notice_number)
        self.receipts[data.receipt_id] = record
        self.paid[key] = data.receipt_id
        self.in_progress.discard(key)
        for listener in self.on_collected:
            listener(record)
        steps = list(prepared.steps)
        steps.append(await self._attempt(record))
        if self.settings.duplicate_receipts:
            steps.append(await self._attempt(record, duplicate=True))
        if not record.delivered:
            self._schedule(record)
        return PayResult(request, "OK", steps, stand_in=prepared.stand_in, receipt=record)

    # -- receipts ----------------------------------------------------------------------

    async def _attempt(self, record: ReceiptRecord, *, duplicate: bool = False) -> Step:
        record.attempts += 1
        _, step = await self._post(
            record.station,
            "paSendRTV2",
            record.body,
            self.settings.send_rt_timeout,
        )
        accepted = step.outcome == "OK" or step.original_fault_code == "PAA_RECEIPT_DUPLICATA"
        entry = step.as_dict() | {
            "attempt": record.attempts,
            "at": self.clock.now().isoformat(),
            "duplicate": duplicate,
        }
        record.history.append(entry)
        if accepted:
            record.delivered = True
            record.status = "delivered"
        elif duplicate and record.delivered:
            record.last_error = f"duplicate receipt refused: {_describe(step)}"
        else:
            record.last_error = _describe(step)
        return step

    def _schedule(self, record: ReceiptRecord) -> None:
        if record.attempts >= self.settings.max_attempts:
            record.status = "failed"
            self.pending.pop(record.receipt_id, None)
            return
        record.status = "pending"
        record.next_attempt = time.monotonic() + self.settings.retry_interval
        self.pending[record.receipt_id] = record

    def redeliver(self, receipt_id: str) -> ReceiptRecord | None:
        """Queue a receipt again now with a fresh attempt budget (an operator's retry)."""
        record = self.receipts.get(receipt_id)
        if record is None:
            return None
        record.attempts = 0
        record.status = "pending"
        record.next_attempt = 0.0
        self.pending[receipt_id] = record
        return record

    async def _redeliver_loop(self) -> None:
        gate = asyncio.Semaphore(_RETRY_CONCURRENCY)

        async def retry(record: ReceiptRecord) -> None:
            async with gate:
                try:
                    await self._attempt(record)
                except SandboxBug:  # pragma: no cover - the body was checked when built
                    log.exception("redelivery of %s", record.receipt_id)
                if record.delivered:
                    self.pending.pop(record.receipt_id, None)
                else:
                    self._schedule(record)

        while True:
            await asyncio.sleep(max(0.01, min(self.settings.retry_interval / 2, 0.5)))
            now = time.monotonic()
            due = [r for r in self.pending.values() if r.next_attempt <= now]
            for record in due:
                record.next_attempt = float("inf")  # not picked twice while in flight
                task = asyncio.create_task(retry(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    # -- SOAP ----------------------------------------------------------------------------

    def _check_outgoing(self, operation: str, message: etree._Element) -> None:
        if self.xsd is None:
            return
        problems = xsd_problems(self.xsd, message)
        if problems:
            raise SandboxBug(f"the Node built an invalid {operation}: {'; '.join(problems)}")

    async def _exchange(
        self, station: Station, operation: str, message: etree._Element, seconds: float
    ) -> tuple[etree._Element | None, Step]:
        self._check_outgoing(operation, message)
        return await self._post(station, operation, envelope(message), seconds)

    async def _post(
        self, station: Station, operation: str, body: bytes, seconds: float
    ) -> tuple[etree._Element | None, Step]:
        """Send one message; the answer's payload (None on failure) and the step."""
        if self._session is None:
            raise RuntimeError("the Node is not started")
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{operation}"'}
        headers.update(station.headers)  # the station's authentication, if configured
        started = time.monotonic()
        raw: bytes | None = None
        status: int | None = None
        try:
            async with self._session.post(
                station.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            step = node_fault(
                operation, "PPT_STAZIONE_INT_PA_TIMEOUT", f"no answer within {seconds:g} s"
            )
        except (aiohttp.ClientError, OSError) as exc:
            step = node_fault(
                operation, "PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE", f"{type(exc).__name__}: {exc}"
            )
        else:
            step = Step(operation, "OK", http_status=status)
        step.duration_ms = int((time.monotonic() - started) * 1000)
        payload: etree._Element | None = None
        if raw is not None and status is not None:
            payload, step = self._read(station, operation, raw, status, step)
        self.exchanges.append(
            {
                "operation": operation,
                "station": station.station_id,
                "url": station.url,
                "at": self.clock.now().isoformat(),
                "step": step.as_dict(),
                "request": body.decode()[:_BODY_LOG],
                "response": raw.decode(errors="replace")[:_BODY_LOG] if raw else None,
            }
        )
        return payload, step

    def _read(
        self, station: Station, operation: str, raw: bytes, status: int, step: Step
    ) -> tuple[etree._Element | None, Step]:
        expected = (
            "paVerifyPaymentNoticeRes"
            if operation == "paVerifyPaymentNotice"
            else (f"{operation}Response")
        )
        try:
            payload = open_envelope(raw, expected)
            if self.xsd is not None:
                problems = xsd_problems(self.xsd, payload)
                if problems:
                    raise BadAnswer(f"invalid against paForNode.xsd: {'; '.join(problems[:3])}")
            if status != 200:
                raise BadAnswer(f"HTTP status {status}")
            fault = parse_outcome(payload)
        except BadAnswer as exc:
            self.violations.append(
                {"operation": operation, "station": station.station_id, "problem": str(exc)}
            )
            bad = node_fault(
                operation,
                "PPT_STAZIONE_INT_PA_ERRORE_RESPONSE",
                str(exc),
                duration_ms=step.duration_ms,
                http_status=status,
            )
            return None, bad
        if fault is not None:
            return None, _paa_fault(operation, fault, step)
        return payload, step


def _paa_fault(operation: str, fault: Fault, step: Step) -> Step:
    return node_fault(
        operation,
        "PPT_ERRORE_EMESSO_DA_PAA",
        fault.description or fault.string,
        duration_ms=step.duration_ms,
        http_status=step.http_status,
        original_fault_code=fault.code,
        original_fault_string=fault.string,
        original_description=fault.description,
    )


def _describe(step: Step) -> str:
    code = step.original_fault_code or step.fault_code or step.outcome
    return f"{code}: {step.description}" if step.description else code

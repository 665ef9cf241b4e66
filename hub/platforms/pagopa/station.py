"""The EC station: ``POST /t/{tenant}/pagopa/station``, where the Node calls ``paForNode``.

Order of checks: unknown tenant (or no pagoPA settings) → HTTP 404; a body over
``[server] max_body_bytes`` → HTTP 413 (refused before reading when its length is declared;
the whole body is read otherwise, however split or chunked); a caller ``station_auth``
refuses (key header, proxy-verified client certificate) → PAA_SYSTEM_ERROR; unreadable or
XSD-invalid request → PAA_SINTASSI_XSD; ``idPA`` ≠ the tenant's ``ec_fiscal_code`` →
PAA_ID_DOMINIO_ERRATO; ``idBrokerPA`` ≠ ``broker_id`` → PAA_ID_INTERMEDIARIO_ERRATO;
``idStation`` ≠ ``station_id`` → PAA_STAZIONE_INT_ERRATA. Then:

- verify / getPayment[V2]: the option by ``noticeNumber``; unknown, DRAFT or PUBLISHED
  (not yet valid) → PAA_PAGAMENTO_SCONOSCIUTO, paid → PAA_PAGAMENTO_DUPLICATO, EXPIRED →
  PAA_PAGAMENTO_SCADUTO, INVALID → PAA_PAGAMENTO_ANNULLATO (GPD's mapping). getPayment
  keeps the position open (the receipt closes it) and records that a payment started
  (``activated_at``; concurrent calls share one commit, each answered after it).
- applyCost (SEND): when a plugin adds to a notice's amount (``hub_notice_surcharge``; the
  ``send`` platform: SEND's current notification cost of a notification with
  ``applyCost``), verify and getPayment[V2] answer the amount plus that cost, added to the
  option's first transfer credited to the creditor itself; when the cost cannot be known
  (SEND's price API down) → PAA_SYSTEM_ERROR, so the PSP retries: never a wrong amount.
- paSendRT[V2]: the receipt is committed (``PagopaStore.store_receipt``) BEFORE the answer.
  A receipt id already stored answers **OK**: the Node redelivers and broadcasts receipts,
  and GPD answers a replay without error too; ``PAA_RECEIPT_DUPLICATA`` would make the
  Node's retry job count a failure for a receipt that is safe with us. Stand-In receipts
  (no verify before, possibly another amount) and receipts matching no option are kept and
  flagged, never refused. A database error answers PAA_SYSTEM_ERROR so the Node retries.

No personal data in logs: notices, receipt ids and fault codes only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from lxml import etree

from sportello.api.bodies import BodyTooLarge, read_body
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.batching import Batcher
from sportello.connectors.pagopa import station as st
from sportello.connectors.pagopa.models import PaymentOption
from sportello.connectors.pagopa.states import DebtPositionStatus
from sportello.connectors.pagopa.station_xml import default_xsd_dir, schema_for
from sportello.hookspecs import NoticeSurchargeUnavailable
from sportello.platforms.pagopa.settings import PagopaTenantSettings, pagopa_settings
from sportello.platforms.pagopa.station_auth import refusal
from sportello.platforms.pagopa.store import (
    OptionMatch,
    OptionReader,
    PagopaStore,
    effective_status,
)
from sportello.platforms.pagopa.tables import PAID

log = logging.getLogger("sportello.pagopa.station")

ROUTE = "/t/{tenant}/pagopa/station"
CONTENT_TYPE = "text/xml"
S = DebtPositionStatus

#: Directory of ``paForNode.xsd``; None: :func:`default_xsd_dir` (env or dev checkout).
XSD_DIR = web.AppKey("pagopa_xsd_dir", Path)


def station_routes() -> list[web.RouteDef]:
    """The station's route, for ``hub_web_routes``."""
    return [web.post(ROUTE, handle)]


@dataclass(frozen=True, slots=True)
class _Station:
    """What every request of one app shares, made once at start-up (:func:`station_ctx`,
    pagoPA's ``hub_platform_setup``): the XSD resolved once (not two ``stat`` calls per
    request), the store, the one-round-trip option reader, and the group commit of
    ``activated_at`` (concurrent paGetPayment calls wait for ONE transaction)."""

    schema: etree.XMLSchema | None
    store: PagopaStore
    reader: OptionReader
    activations: Batcher[tuple[str, str], None]
    #: ``(tenant, notice) -> cents to add or None`` (``hub_notice_surcharge``); None when
    #: no plugin adds to amounts.
    surcharge: Callable[[str, str], Awaitable[int | None]] | None = None


STATION = web.AppKey("pagopa_station", _Station)


@contextlib.asynccontextmanager
async def station_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the station's shared state on ``app`` (read ``XSD_DIR`` if a test set it),
    when a tenant has pagoPA (the station answers no other)."""
    if not any(pagopa_settings(t) is not None for t in app[CONFIG].tenants):
        yield
        return
    for tenant in app[CONFIG].tenants:
        p = pagopa_settings(tenant)
        if p and p.mode == "station" and not p.station_auth:
            log.warning(
                "pagopa station: no station_auth, anyone reaching the hub is answered",
                extra={"tenant": tenant.id},
            )
    plugins = app[PLUGINS]
    store = PagopaStore(app[ENGINE], app[CONFIG], app[CLOCK], plugins)

    async def surcharge(tenant_id: str, notice_number: str) -> int | None:
        return await plugins.notice_surcharge(app, tenant_id, notice_number)

    app[STATION] = _Station(
        schema=schema_for(app.get(XSD_DIR) or default_xsd_dir()),
        store=store,
        reader=OptionReader(app[ENGINE]),
        activations=Batcher(store.mark_activated_many),
        surcharge=surcharge if plugins.surcharges_notices() else None,
    )
    yield


def _station(app: web.Application) -> _Station:
    return app[STATION]


def _xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=CONTENT_TYPE, charset="utf-8")


def fault_for(match: OptionMatch | None, now_status: S | None) -> tuple[st.FaultCode, str] | None:
    """The fault for paying ``match`` now, or None when it is payable."""
    if match is None or now_status is None:
        return st.FaultCode.PAGAMENTO_SCONOSCIUTO, "no payment with this notice number"
    if match.option.status == PAID:
        return st.FaultCode.PAGAMENTO_DUPLICATO, "already paid"
    if now_status in (S.DRAFT, S.PUBLISHED):
        return st.FaultCode.PAGAMENTO_SCONOSCIUTO, "the payment is not yet payable"
    if now_status is S.EXPIRED:
        return st.FaultCode.PAGAMENTO_SCADUTO, "the payment has expired"
    if now_status is S.INVALID:
        return st.FaultCode.PAGAMENTO_ANNULLATO, "the payment was cancelled"
    if now_status in (S.PAID, S.REPORTED):
        return st.FaultCode.PAGAMENTO_DUPLICATO, "already paid"
    if now_status is S.PARTIALLY_PAID and not match.option.is_partial_payment:
        return (
            st.FaultCode.PAGAMENTO_DUPLICATO,
            "an instalment was paid: pay the remaining instalments instead",
        )
    return None


def _caller_fault(caller: st.Caller, settings: PagopaTenantSettings) -> st.FaultCode | None:
    if caller.id_pa != settings.ec_fiscal_code:
        return st.FaultCode.ID_DOMINIO_ERRATO
    if caller.id_broker_pa != settings.broker_id:
        return st.FaultCode.ID_INTERMEDIARIO_ERRATO
    if caller.id_station != settings.station_id:
        return st.FaultCode.STAZIONE_INT_ERRATA
    return None


async def handle(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    tenant_id = request.match_info["tenant"]
    tenant = config.tenant(tenant_id)
    settings = pagopa_settings(tenant) if tenant is not None else None
    if settings is None:
        raise web.HTTPNotFound(text="no pagoPA station for this tenant")
    fault_id = settings.ec_fiscal_code
    soap_action = request.headers.get("SOAPAction")
    try:
        data = await read_body(request)  # the whole body, however it was split or chunked
    except BodyTooLarge as exc:
        log.info("pagopa station: body over the limit", extra={"tenant": tenant_id})
        return _too_large(exc, st.operation_from_action(soap_action), fault_id)
    station = _station(request.app)
    if settings.station_auth is not None:
        reason = refusal(request.headers, settings.station_auth)
        if reason is not None:
            return _unauthenticated(tenant_id, reason, data, soap_action, fault_id)
    try:
        parsed = st.parse_request(
            data, soap_action=soap_action, schema=station.schema, max_bytes=len(data)
        )
    except st.StationError as exc:
        log.info(
            "pagopa station: request refused",
            extra={"tenant": tenant_id, "fault": exc.code.value, "operation": exc.operation},
        )
        if exc.operation is None:
            return _xml(st.soap_fault(exc.description), status=500)
        return _xml(st.ko(exc.operation, st.Fault(exc.code, exc.description, fault_id)))

    operation = parsed.operation
    code = _caller_fault(parsed.caller, settings)
    if code is not None:
        log.info(
            "pagopa station: wrong caller",
            extra={"tenant": tenant_id, "fault": code.value, "operation": operation.value},
        )
        return _xml(st.ko(operation, st.Fault(code, "not this station's creditor", fault_id)))
    try:
        body = await _serve(station, tenant_id, settings, parsed, data)
    except st.StationError as exc:
        body = st.ko(operation, st.Fault(exc.code, exc.description, fault_id))
    except Exception:
        log.exception(
            "pagopa station: system error", extra={"tenant": tenant_id, "operation": operation}
        )
        body = st.ko(
            operation,
            st.Fault(st.FaultCode.SYSTEM_ERROR, "temporary error, please retry", fault_id),
        )
    return _xml(body)


def _too_large(exc: BodyTooLarge, operation: st.Operation | None, fault_id: str) -> web.Response:
    """413, before the body is read when its length is declared: the operation's KO when
    ``SOAPAction`` names it (PAA_SYSTEM_ERROR: the Node retries a receipt), else a SOAP
    Fault; the connection closes."""
    text = f"request larger than the station's limit of {exc.limit} bytes"
    if operation is None:
        response = _xml(st.soap_fault(text), status=413)
    else:
        response = _xml(st.ko(operation, st.Fault(st.FaultCode.SYSTEM_ERROR, text, fault_id)), 413)
    response.force_close()
    return response


def _unauthenticated(
    tenant_id: str, reason: str, data: bytes, soap_action: str | None, fault_id: str
) -> web.Response:
    """A caller that is not the Node: the operation's KO with PAA_SYSTEM_ERROR, nothing else.

    The EC fault codes the Node knows (SANP "nodo-greater-than-ec"; also the PAA_ list of
    ``orgs_payment_options.json``) have no authentication fault; PAA_SYSTEM_ERROR
    ("Errore generico") is the one that makes the Node retry a paSendRT, so a receipt sent
    while keys are out of step (rotation) is redelivered, never lost. The payload is only
    parsed to name the operation (no XSD run for an unauthenticated caller)."""
    operation = st.operation_from_action(soap_action)
    if operation is None:
        try:
            operation = st.parse_request(data, max_bytes=len(data)).operation
        except st.StationError as exc:
            operation = exc.operation
    log.warning(
        "pagopa station: caller refused",
        extra={"tenant": tenant_id, "reason": reason, "operation": operation},
    )
    if operation is None:
        return _xml(st.soap_fault("caller not authenticated"), status=500)
    fault = st.Fault(st.FaultCode.SYSTEM_ERROR, "caller not authenticated", fault_id)
    return _xml(st.ko(operation, fault))


async def _serve(
    station: _Station,
    tenant_id: str,
    settings: PagopaTenantSettings,
    parsed: st.StationRequest,
    data: bytes,
) -> bytes:
    store = station.store
    if isinstance(parsed, st.SendRT):
        return await _send_rt(store, tenant_id, parsed, data)
    if isinstance(parsed, st.DemandPaymentNotice):
        raise st.StationError(
            st.FaultCode.SEMANTICA, "spontaneous payments are not offered", parsed.operation
        )
    match = None
    if parsed.fiscal_code == settings.ec_fiscal_code:
        match = await station.reader.find_option(tenant_id, parsed.notice_number)
    now = store.clock.now()
    status = effective_status(match.status, match.position, now) if match else None
    fault = fault_for(match, status)
    if fault is not None:
        raise st.StationError(fault[0], fault[1], parsed.operation)
    assert match is not None
    option = next(o for o in match.position.payment_options if o.iuv == match.option.iuv)
    extra = await _surcharge(station, tenant_id, parsed)
    if isinstance(parsed, st.VerifyPaymentNotice):
        answer = st.verify_answer(match.position, option, ec_fiscal_code=settings.ec_fiscal_code)
        if extra:
            _primary_transfer(option, settings.ec_fiscal_code, parsed.operation)
            answer = dataclasses.replace(answer, amount=answer.amount + extra)
        return st.verify_ok(answer)
    payment = st.payment_answer(
        match.position, option, transfer_type=parsed.transfer_type, version=parsed.version
    )
    if extra:
        payment = _add_to_primary(payment, option, extra, settings.ec_fiscal_code, parsed)
    body = st.get_payment_ok(payment, version=parsed.version)
    await station.activations((tenant_id, parsed.notice_number))  # committed before we answer
    return body


async def _surcharge(
    station: _Station, tenant_id: str, parsed: st.VerifyPaymentNotice | st.GetPayment
) -> int:
    """Cents to add to the notice's amount (0: none); PAA_SYSTEM_ERROR when unknown now."""
    if station.surcharge is None:
        return 0
    try:
        extra = await station.surcharge(tenant_id, parsed.notice_number)
    except NoticeSurchargeUnavailable as exc:
        log.warning(
            "pagopa station: surcharge unavailable",
            extra={"tenant": tenant_id, "notice_number": parsed.notice_number, "error": str(exc)},
        )
        raise st.StationError(
            st.FaultCode.SYSTEM_ERROR,
            "the notification cost cannot be read now, please retry",
            parsed.operation,
        ) from None
    if extra is not None and extra < 0:
        raise st.StationError(st.FaultCode.SYSTEM_ERROR, "invalid surcharge", parsed.operation)
    return extra or 0


def _primary_transfer(option: PaymentOption, ec_fiscal_code: str, operation: st.Operation) -> int:
    """The ``idTransfer`` that carries a surcharge: as GPD does for SEND's notification fee
    (pagopa/pagopa-debt-position, ``PaymentsService.updateAmountsWithNotificationFee`` and
    ``findPrimaryTransfer``: the fee is added to the option's amount and to its first
    transfer, by ``idTransfer``, credited to the creditor itself), so the transfers still
    sum to the amount. A stamp transfer (a fixed 16 euro) never carries it."""
    ours = sorted(
        (
            t.id_transfer
            for t in option.transfers
            if t.organization_fiscal_code == ec_fiscal_code and t.stamp is None
        ),
    )
    if not ours:
        raise st.StationError(
            st.FaultCode.SEMANTICA,
            "no transfer to the creditor can carry the notification cost",
            operation,
        )
    return ours[0]


def _add_to_primary(
    payment: st.PaymentAnswer,
    option: PaymentOption,
    extra: int,
    ec_fiscal_code: str,
    parsed: st.GetPayment,
) -> st.PaymentAnswer:
    target = _primary_transfer(option, ec_fiscal_code, parsed.operation)
    transfers = [
        dataclasses.replace(t, amount=t.amount + extra) if t.id_transfer == target else t
        for t in payment.transfers
    ]
    return dataclasses.replace(payment, amount=payment.amount + extra, transfers=transfers)


async def _send_rt(store: PagopaStore, tenant_id: str, parsed: st.SendRT, data: bytes) -> bytes:
    receipt = parsed.receipt
    raw = data.decode("utf-8", errors="replace")
    outcome = await store.store_receipt(tenant_id, receipt, raw_xml=raw, version=parsed.version)
    log.info(
        "pagopa station: receipt",
        extra={
            "tenant": tenant_id,
            "receipt_id": receipt.receipt_id,
            "notice_number": receipt.notice_number,
            "duplicate": outcome.duplicate,
            "matched": outcome.matched,
            "stand_in": receipt.stand_in,
        },
    )
    return st.send_rt_ok(version=parsed.version)

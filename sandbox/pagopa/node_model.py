"""The Node simulator's configuration and data: stations, PSPs, settings, requests,
steps, receipts and results (the behaviour is in :mod:`.node`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .node_soap import PaymentData, ReceiptData, Subject

__all__ = [
    "DEFAULT_PSPS",
    "STAND_IN_IBAN",
    "NodeSettings",
    "PayRequest",
    "PayResult",
    "Prepared",
    "Psp",
    "ReceiptRecord",
    "Station",
    "Step",
    "node_fault",
    "parse_pay_request",
    "parse_station",
]

STAND_IN_IBAN = "IT60X0542811101000000123456"

PPT_STRINGS = {
    "PPT_STAZIONE_INT_PA_TIMEOUT": "Timeout risposta dalla Stazione.",
    "PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE": "Stazione irraggiungibile.",
    "PPT_STAZIONE_INT_PA_ERRORE_RESPONSE": "Errore nella risposta della Stazione.",
    "PPT_ERRORE_EMESSO_DA_PAA": "Errore restituito dalla PAA.",
    "PPT_DOMINIO_SCONOSCIUTO": "Identificativo dominio sconosciuto.",
    "PPT_PAGAMENTO_DUPLICATO": "Pagamento duplicato.",
    "PPT_PAGAMENTO_IN_CORSO": "Pagamento in attesa risulta in corso.",
    "PPT_PAGAMENTO_SCONOSCIUTO": "Pagamento sconosciuto.",
    "PPT_SEMANTICA": "Errore semantico.",
}


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Station:
    """An EC station the Node calls for ``fiscal_code``."""

    fiscal_code: str
    url: str
    broker_id: str
    station_id: str
    iban: str = STAND_IN_IBAN  # where Stand-In receipts without ACA data say it goes
    company_name: str = "Ente Creditore Sandbox"
    # HTTP headers the Node sends with every call (as the back office configures a
    # station's authentication, e.g. a key in Ocp-Apim-Subscription-Key)
    headers: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["headers"] = sorted(name for name, _ in self.headers)  # names only, no values
        return data


def _digits(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and value.isascii() and value.isdigit()


def parse_station(fiscal_code: str, doc: Any) -> Station:
    """A :class:`Station` from ``{url, broker_id, station_id[, iban, company_name, headers]}``;
    ``ValueError`` saying what is wrong."""
    if not _digits(fiscal_code, 11):
        raise ValueError(f"station key {fiscal_code!r}: an EC fiscal code is 11 digits")
    if not isinstance(doc, dict):
        raise ValueError(f"station {fiscal_code}: expected an object")
    url = doc.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"station {fiscal_code}: url must be an http(s) URL")
    broker = doc.get("broker_id", fiscal_code)
    station = doc.get("station_id")
    if not isinstance(broker, str) or not 1 <= len(broker) <= 35:
        raise ValueError(f"station {fiscal_code}: broker_id must be 1 to 35 characters")
    if not isinstance(station, str) or not 1 <= len(station) <= 35:
        raise ValueError(f"station {fiscal_code}: station_id must be 1 to 35 characters")
    extra = {k: doc[k] for k in ("iban", "company_name") if isinstance(doc.get(k), str)}
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and not {"\r", "\n"} & set(k + v)
        for k, v in headers.items()
    ):
        raise ValueError(f"station {fiscal_code}: headers must map header names to strings")
    return Station(fiscal_code, url, broker, station, headers=tuple(headers.items()), **extra)


@dataclass(frozen=True)
class Psp:
    """A PSP the Node collects for (``idPSP``, its broker and channel)."""

    id_psp: str
    name: str
    fiscal_code: str
    broker_id: str
    channel_id: str
    channel_description: str = "Canale sandbox"
    payment_method: str = "CP"
    fee_cents: int = 100


DEFAULT_PSPS = (
    Psp("SNDBITMM", "Banca Sandbox S.p.A.", "99999000001", "99999000001", "99999000001_01"),
    Psp(
        "SNDPITMM",
        "Poste Sandbox S.p.A.",
        "99999000002",
        "99999000002",
        "99999000002_01",
        payment_method="PPAL",
        fee_cents=150,
    ),
)


@dataclass
class NodeSettings:
    """The Node's knobs (``GET/POST /__sandbox/node``)."""

    verify_timeout: float = 7.0
    get_payment_timeout: float = 7.0
    send_rt_timeout: float = 15.0
    retry_interval: float = 10.0
    max_attempts: int = 5
    duplicate_receipts: bool = False
    stand_in: bool = False

    def update(self, doc: dict[str, Any]) -> None:
        """Apply a partial update; ``ValueError`` (and nothing changed) on a bad value."""
        changes: dict[str, Any] = {}
        for key, value in doc.items():
            if key in ("duplicate_receipts", "stand_in"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif key == "max_attempts":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50:
                    raise ValueError("max_attempts must be an integer from 1 to 50")
            elif key in ("verify_timeout", "get_payment_timeout", "send_rt_timeout"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"{key} must be a positive number of seconds")
            elif key == "retry_interval":
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError("retry_interval must be a positive number of seconds")
            else:
                raise ValueError(f"unknown setting {key!r}")
            changes[key] = value
        for key, value in changes.items():
            setattr(self, key, value)


# -- one payment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PayRequest:
    """``POST /psp/pay``: what a payer asks a PSP to pay."""

    fiscal_code: str
    notice_number: str
    amount_cents: int | None = None
    stand_in: bool | None = None
    payer: Subject | None = None
    psp_id: str | None = None


def _payer(doc: Any) -> Subject:
    if not isinstance(doc, dict):
        raise ValueError("payer must be an object")
    code = doc.get("fiscalCode", doc.get("code"))
    name = doc.get("fullName")
    kind = doc.get("type", "F")
    if kind not in ("F", "G"):
        raise ValueError("payer.type must be F or G")
    if not isinstance(code, str) or not 2 <= len(code) <= 16:
        raise ValueError("payer.fiscalCode must be 2 to 16 characters")
    if not isinstance(name, str) or not 1 <= len(name) <= 70:
        raise ValueError("payer.fullName must be 1 to 70 characters")
    email = doc.get("email")
    details = (("e-mail", email),) if isinstance(email, str) and email else ()
    return Subject(kind, code, name, details)


def parse_pay_request(doc: Any) -> PayRequest:
    """A :class:`PayRequest` from the driver's JSON; ``ValueError`` saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    fiscal_code = doc.get("fiscalCode")
    notice = doc.get("noticeNumber")
    if not _digits(fiscal_code, 11):
        raise ValueError("fiscalCode must be the 11 digits of the creditor")
    if not _digits(notice, 18):
        raise ValueError("noticeNumber must be 18 digits")
    amount = doc.get("amountCents")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount < 10**11
    ):
        raise ValueError("amountCents must be a positive integer")
    stand_in = doc.get("standIn")
    if stand_in is not None and not isinstance(stand_in, bool):
        raise ValueError("standIn must be true or false")
    psp = doc.get("psp")
    if psp is not None and not isinstance(psp, str):
        raise ValueError("psp must be an idPSP")
    payer = _payer(doc["payer"]) if doc.get("payer") is not None else None
    return PayRequest(str(fiscal_code), str(notice), amount, stand_in, payer, psp)


@dataclass
class Step:
    """What one call to the station gave, PSP-side (``faultCode`` ``PPT_*``)."""

    operation: str
    outcome: str
    duration_ms: int = 0
    fault_code: str | None = None
    fault_string: str | None = None
    description: str | None = None
    original_fault_code: str | None = None
    original_fault_string: str | None = None
    original_description: str | None = None
    http_status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        names = {
            "operation": self.operation,
            "outcome": self.outcome,
            "durationMs": self.duration_ms,
            "faultCode": self.fault_code,
            "faultString": self.fault_string,
            "description": self.description,
            "originalFaultCode": self.original_fault_code,
            "originalFaultString": self.original_fault_string,
            "originalDescription": self.original_description,
            "httpStatus": self.http_status,
        }
        return {k: v for k, v in names.items() if v is not None}


def node_fault(operation: str, code: str, description: str, **extra: Any) -> Step:
    return Step(
        operation,
        "KO",
        fault_code=code,
        fault_string=PPT_STRINGS.get(code, code),
        description=description,
        **extra,
    )


@dataclass
class ReceiptRecord:
    """A receipt the Node owes a station, with its delivery history."""

    data: ReceiptData
    station: Station
    body: bytes  # the SOAP envelope: identical on every (re)delivery
    paid_at: datetime
    psp: Psp
    attempts: int = 0
    delivered: bool = False
    status: str = "pending"  # pending, delivered, failed
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    next_attempt: float = 0.0

    @property
    def receipt_id(self) -> str:
        return self.data.receipt_id

    def as_dict(self, *, xml: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.receipt_id,
            "fiscalCode": self.data.fiscal_code,
            "noticeNumber": self.data.notice_number,
            "creditorReferenceId": self.data.creditor_reference_id,
            "amountCents": self.data.amount_cents,
            "idPSP": self.data.id_psp,
            "standIn": self.data.stand_in,
            "paymentDateTime": self.data.payment_date_time,
            "station": self.station.station_id,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "status": self.status,
            "lastError": self.last_error,
            "history": self.history,
        }
        if xml:
            out["xml"] = self.body.decode()
        return out


@dataclass
class Prepared:
    """A payment verified and activated, waiting for its receipt to be sent."""

    request: PayRequest
    station: Station
    psp: Psp
    iuv: str
    payment: PaymentData
    stand_in: bool
    steps: list[Step]


@dataclass
class PayResult:
    """The answer of ``POST /psp/pay``."""

    request: PayRequest
    outcome: str
    steps: list[Step]
    stand_in: bool = False
    fault: Step | None = None
    receipt: ReceiptRecord | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "fiscalCode": self.request.fiscal_code,
            "noticeNumber": self.request.notice_number,
            "standIn": self.stand_in,
            "steps": [s.as_dict() for s in self.steps],
        }
        if self.fault is not None:
            for key in (
                "faultCode",
                "faultString",
                "description",
                "originalFaultCode",
                "originalFaultString",
                "originalDescription",
            ):
                value = self.fault.as_dict().get(key)
                if value is not None:
                    out[key] = value
        if self.receipt is not None:
            out["receiptId"] = self.receipt.receipt_id
            out["amountCents"] = self.receipt.data.amount_cents
            out["receipt"] = {
                "delivered": self.receipt.delivered,
                "status": self.receipt.status,
                "attempts": self.receipt.attempts,
                "lastError": self.receipt.last_error,
            }
        return out

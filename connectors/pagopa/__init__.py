"""pagoPA: identifiers, debt positions, GPD states. See README.md."""

from .errors import (
    IllegalTransition,
    InvalidCreditorReference,
    InvalidIdentifier,
    InvalidIUV,
    InvalidNoticeNumber,
    PagoPAError,
)
from .identifiers import (
    RESERVED_SEGREGATION_CODES,
    Notice,
    creditor_reference,
    iuv_for,
    notice_number,
    parse_notice_number,
    validate_creditor_reference,
    validate_iuv,
    validate_notice_number,
)
from .models import (
    DebtorType,
    DebtPosition,
    PaymentOption,
    Stamp,
    Transfer,
    describe_validation_error,
    is_valid_iban,
)
from .states import (
    DebtPositionStatus,
    Event,
    allowed_events,
    initial_state,
    next_state,
)

__all__ = [
    "RESERVED_SEGREGATION_CODES",
    "DebtPosition",
    "DebtPositionStatus",
    "DebtorType",
    "Event",
    "IllegalTransition",
    "InvalidCreditorReference",
    "InvalidIUV",
    "InvalidIdentifier",
    "InvalidNoticeNumber",
    "Notice",
    "PagoPAError",
    "PaymentOption",
    "Stamp",
    "Transfer",
    "allowed_events",
    "creditor_reference",
    "describe_validation_error",
    "initial_state",
    "is_valid_iban",
    "iuv_for",
    "next_state",
    "notice_number",
    "parse_notice_number",
    "validate_creditor_reference",
    "validate_iuv",
    "validate_notice_number",
]

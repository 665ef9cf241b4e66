"""pagoPA identifiers: notice number (NAV), IUV and the ISO 11649 creditor reference.

Rules from the SACI (*Specifiche attuative dei codici identificativi di versamento,
riversamento e rendicontazione*), "Generazione dell'Identificativo Univoco di Versamento".
The notice number is always 18 digits, ``<aux digit><...>``:

=====  ===================================================  ==========  ================
aux    notice number (18)                                   IUV         check digits
=====  ===================================================  ==========  ================
0      ``0`` + application code (2) + base (13) + check (2)  15 digits   (0‖app‖base) % 93
1      ``1`` + base (17)                                    17 digits   none
2      ``2`` + base (15) + check (2)                        17 digits   (2‖base) % 93
3      ``3`` + segregation code (2) + base (13) + check (2)  17 digits   (3‖seg‖base) % 93
=====  ===================================================  ==========  ================

For aux digits 0, 2 and 3 the check digits are therefore always the first 16 digits of
the notice number, read as one integer, modulo 93, written with two digits. The SACI
deprecate aux digits 0, 1 and 2 (kept for backward compatibility): the hub *generates*
only aux-digit-3 IUVs (:func:`iuv_for`), but parses and validates all four.

A notice number is not secret and carries no personal data, so error messages may quote
its parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidCreditorReference, InvalidIUV, InvalidNoticeNumber

__all__ = [
    "AUX_DIGITS",
    "IUV_BASE_MAX",
    "RESERVED_SEGREGATION_CODES",
    "Notice",
    "creditor_reference",
    "iuv_for",
    "mod93_check_digits",
    "notice_number",
    "parse_notice_number",
    "validate_creditor_reference",
    "validate_iuv",
    "validate_notice_number",
]

#: The aux digits the SACI define (0, 1 and 2 are deprecated).
AUX_DIGITS: frozenset[int] = frozenset({0, 1, 2, 3})
#: The largest IUV base for aux digit 3 (13 digits).
IUV_BASE_MAX = 10**13 - 1
#: Segregation codes PagoPA gives to nationally centralised services (SACI Tabella 1).
#: A comune's own generation point never uses them; notices carrying them are valid.
RESERVED_SEGREGATION_CODES: dict[str, str] = {
    "99": "Ministero dell'Interno: emissione on-line CIE",
    "98": "Ministero dell'Interno: emissione certificati da ANPR",
    "97": "Unioncamere: SUAP",
    "96": "Automobile Club d'Italia: pago bollo",
    "85": "PagoPA S.p.A.: sussidiarietà TARI/TEFA",
    "81": "PagoPA S.p.A.",
    "47": "PagoPA S.p.A.: Canone Unico",
}

_NOTICE_LENGTH = 18
_DIGITS = re.compile(r"[0-9]*")  # ASCII only: str.isdigit() also accepts "²" and "٣"
_ALNUM = re.compile(r"[A-Za-z0-9]*")
#: IUV length by aux digit.
_IUV_LENGTH = {0: 15, 1: 17, 2: 17, 3: 17}
_RF_MIN, _RF_MAX = 5, 25  # "RF" + 2 check digits + 1..21 characters
_RF_REFERENCE_MAX = 21


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice number split into its parts (see the table in the module docstring).

    ``segregation_code`` is set for aux digit 3, ``application_code`` for aux digit 0,
    ``check_digits`` for aux digits 0, 2 and 3. ``iuv`` is what GPD and the Node call the
    IUV (``creditorReferenceId``): the notice number without the aux digit and, for aux
    digit 0, without the application code.
    """

    aux_digit: int
    segregation_code: str | None
    application_code: str | None
    iuv: str
    check_digits: str | None

    @property
    def nav(self) -> str:
        """The 18-digit notice number."""
        return f"{self.aux_digit}{self.application_code or ''}{self.iuv}"

    @property
    def iuv_base(self) -> str:
        """The IUV without segregation code and check digits."""
        start = 2 if self.segregation_code is not None else 0
        end = len(self.iuv) - (2 if self.check_digits is not None else 0)
        return self.iuv[start:end]


def mod93_check_digits(first16: str) -> str:
    """The two check digits for the first 16 digits of a notice number (aux 0, 2, 3)."""
    if len(first16) != 16 or not _DIGITS.fullmatch(first16):
        raise ValueError("the check digits are computed on exactly 16 digits")
    return f"{int(first16) % 93:02d}"


# -- IUV and notice number --------------------------------------------------------------


def iuv_for(sequence: int, *, segregation_code: str, allow_reserved: bool = False) -> str:
    """The aux-digit-3 IUV for ``sequence``: segregation code + 13-digit base + check digits.

    ``sequence`` is the tenant's counter for that segregation code (0 to 10**13 - 1); the
    caller keeps it unique, the IUV is unique as long as the counter is. Segregation codes
    that belong to centralised services (:data:`RESERVED_SEGREGATION_CODES`) are refused
    unless ``allow_reserved`` is set.
    """
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise TypeError("sequence must be an int")
    if not 0 <= sequence <= IUV_BASE_MAX:
        raise ValueError(f"sequence must be between 0 and {IUV_BASE_MAX} (13 digits)")
    _check_segregation_code(segregation_code, InvalidIUV)
    if segregation_code in RESERVED_SEGREGATION_CODES and not allow_reserved:
        raise InvalidIUV(
            "segregation_code",
            f"segregation code {segregation_code} is reserved to "
            f"{RESERVED_SEGREGATION_CODES[segregation_code]}",
        )
    first15 = f"{segregation_code}{sequence:013d}"
    return first15 + mod93_check_digits("3" + first15)


def validate_iuv(iuv: str, aux_digit: int = 3, *, application_code: str | None = None) -> str:
    """Check ``iuv`` against the structure for ``aux_digit``; return it unchanged.

    Aux digit 0 puts the application code in the notice number, not in the IUV, so its
    check digits can only be verified with ``application_code``. Raises ``InvalidIUV``.
    """
    if aux_digit not in AUX_DIGITS:
        raise InvalidIUV("aux_digit", f"aux digit {aux_digit!r} is not one of 0, 1, 2, 3")
    if not isinstance(iuv, str):
        raise InvalidIUV("characters", "must be a string")
    expected = _IUV_LENGTH[aux_digit]
    if not _DIGITS.fullmatch(iuv):
        raise InvalidIUV("characters", "must contain only the digits 0-9")
    if len(iuv) != expected:
        raise InvalidIUV(
            "length", f"must be {expected} digits for aux digit {aux_digit}, got {len(iuv)}"
        )
    if aux_digit == 1:
        return iuv
    if aux_digit == 0:
        if application_code is None:
            raise InvalidIUV(
                "application_code",
                "aux digit 0: the application code is needed to check the check digits",
            )
        _check_two_digits(application_code, "application_code", InvalidIUV)
        prefix = "0" + application_code
    else:
        prefix = str(aux_digit)
    _check_mod93(prefix + iuv[:-2], iuv[-2:], InvalidIUV)
    return iuv


def notice_number(iuv: str, *, aux_digit: int = 3, application_code: str | None = None) -> str:
    """The 18-digit notice number of ``iuv``: ``"3" + iuv`` for the hub's own IUVs.

    For aux digit 0 the application code goes between the aux digit and the IUV.
    Raises ``InvalidIUV`` when ``iuv`` does not fit ``aux_digit``.
    """
    validate_iuv(iuv, aux_digit, application_code=application_code)
    return f"{aux_digit}{application_code if aux_digit == 0 else ''}{iuv}"


def parse_notice_number(nav: str) -> Notice:
    """Split and check an 18-digit notice number. Raises ``InvalidNoticeNumber``."""
    if not isinstance(nav, str):
        raise InvalidNoticeNumber("characters", "must be a string")
    if not _DIGITS.fullmatch(nav):
        raise InvalidNoticeNumber("characters", "must contain only the digits 0-9")
    if len(nav) != _NOTICE_LENGTH:
        raise InvalidNoticeNumber("length", f"must be 18 digits, got {len(nav)}")
    aux = int(nav[0])
    if aux not in AUX_DIGITS:
        raise InvalidNoticeNumber("aux_digit", f"aux digit {aux} is not one of 0, 1, 2, 3")
    if aux == 1:
        return Notice(1, None, None, nav[1:], None)
    _check_mod93(nav[:16], nav[16:], InvalidNoticeNumber)
    if aux == 0:
        return Notice(0, None, nav[1:3], nav[3:], nav[16:])
    if aux == 2:
        return Notice(2, None, None, nav[1:], nav[16:])
    return Notice(3, nav[1:3], None, nav[1:], nav[16:])


def validate_notice_number(nav: str, *, aux_digits: frozenset[int] = AUX_DIGITS) -> str:
    """Check an 18-digit notice number; return it unchanged. Raises ``InvalidNoticeNumber``.

    ``aux_digits`` restricts the accepted structures: ``frozenset({3})`` for the notices
    the hub issues. Restricting matters because an aux-digit-1 notice has no check digits,
    so any 18 digits starting with ``1`` are a valid notice number.
    """
    notice = parse_notice_number(nav)
    if notice.aux_digit not in aux_digits:
        accepted = ", ".join(str(d) for d in sorted(aux_digits))
        raise InvalidNoticeNumber(
            "aux_digit", f"aux digit {notice.aux_digit} is not accepted here (only {accepted})"
        )
    return nav


def _check_mod93(first16: str, check: str, error: type[InvalidIUV | InvalidNoticeNumber]) -> None:
    expected = mod93_check_digits(first16)
    if check != expected:
        raise error(
            "check_digits",
            f"check digits are {check}, expected {expected} "
            f"({first16} modulo 93, the first 16 digits of the notice number)",
        )


def _check_two_digits(value: object, part: str, error: type[InvalidIUV]) -> None:
    if not isinstance(value, str) or len(value) != 2 or not _DIGITS.fullmatch(value):
        raise error(part, f"{part.replace('_', ' ')} must be exactly 2 digits")


def _check_segregation_code(value: object, error: type[InvalidIUV]) -> None:
    _check_two_digits(value, "segregation_code", error)


# -- ISO 11649 creditor reference --------------------------------------------------------


def _rf_numeric(text: str) -> str:
    """ISO 7064 conversion: digits stay, letters (either case) become 10..35."""
    return "".join(ch if ch.isdigit() else str(ord(ch.upper()) - 55) for ch in text)


def _rf_remainder(reference: str, check: str) -> int:
    return int(_rf_numeric(reference + "RF" + check)) % 97


def creditor_reference(base: str) -> str:
    """The ISO 11649 creditor reference ``RF`` + 2 check digits + ``base``.

    ``base`` is 1 to 21 letters and digits, kept as given (the check digits do not depend
    on letter case: SACI Appendice 1's example ``w9`` gives ``RF45w9``). Raises
    ``InvalidCreditorReference``.
    """
    if not isinstance(base, str):
        raise InvalidCreditorReference("characters", "the reference must be a string")
    _check_rf_reference(base)
    check = 98 - _rf_remainder(base, "00")
    return f"RF{check:02d}{base}"


def validate_creditor_reference(rf: str) -> str:
    """Check an ISO 11649 creditor reference (no spaces); return it unchanged.

    Rearranged as reference + ``RF`` + check digits, converted (letters A=10..Z=35), the
    number must be 1 modulo 97. Check digits are 02..98 (ISO 11649 never issues 00, 01 or
    99), so exactly one pair of check digits is valid for each reference.
    """
    if not isinstance(rf, str):
        raise InvalidCreditorReference("characters", "must be a string")
    if not _RF_MIN <= len(rf) <= _RF_MAX:
        raise InvalidCreditorReference(
            "length", f"must be {_RF_MIN} to {_RF_MAX} characters, got {len(rf)}"
        )
    if not rf.startswith("RF"):
        raise InvalidCreditorReference("prefix", "must start with 'RF'")
    check, reference = rf[2:4], rf[4:]
    if not _DIGITS.fullmatch(check):
        raise InvalidCreditorReference("check_digits", "check digits must be 2 digits")
    if not 2 <= int(check) <= 98:
        raise InvalidCreditorReference(
            "check_digits", f"check digits {check} are out of range (02-98)"
        )
    _check_rf_reference(reference)
    if _rf_remainder(reference, check) != 1:
        expected = 98 - _rf_remainder(reference, "00")
        raise InvalidCreditorReference(
            "check_digits", f"check digits are {check}, expected {expected:02d} (mod 97)"
        )
    return rf


def _check_rf_reference(reference: str) -> None:
    if not 1 <= len(reference) <= _RF_REFERENCE_MAX:
        raise InvalidCreditorReference(
            "length",
            f"the reference after RF and the check digits must be 1 to 21 characters, "
            f"got {len(reference)}",
        )
    if not _ALNUM.fullmatch(reference):
        raise InvalidCreditorReference(
            "characters", "the reference must contain only letters A-Z, a-z and digits 0-9"
        )

"""The twin's own reading of a pagoPA notice number (NAV), written from the SACI.

*Specifiche attuative dei codici identificativi di versamento, riversamento e
rendicontazione*, §2 "Generazione dell'Identificativo Univoco di Versamento": a notice
number is 18 ASCII digits; its first digit (the aux digit) says how the rest is built:

- ``0``: application code (2) + IUV base (13) + check digits (2); the IUV is the last 15;
- ``1``: IUV of 17 digits, no check digits;
- ``2``: IUV base (15) + check digits (2); the IUV is the last 17;
- ``3``: segregation code (2) + IUV base (13) + check digits (2); the IUV is the last 17.

The check digits are the remainder of the number formed by the digits before them (aux
digit included) divided by 93, written with two digits.

The Node and Checkout twins use this instead of the connector's identifiers module: a
twin that runs the code it checks cannot catch its bugs (issue 13).
``tests/sandbox/test_pagopa_twin_notices.py`` compares the two on many generated cases.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BadNotice", "ParsedNotice", "check_digits", "read_notice"]

_ASCII_DIGITS = frozenset("0123456789")


class BadNotice(ValueError):
    """Not a notice number the Node would take (the message says why)."""


@dataclass(frozen=True)
class ParsedNotice:
    aux_digit: str
    iuv: str
    segregation_code: str | None = None


def check_digits(prefix: str) -> str:
    """The two check digits of the 16 digits before them (SACI: modulo 93)."""
    remainder = 0
    for ch in prefix:  # long division, one digit at a time
        remainder = (remainder * 10 + ord(ch) - 48) % 93
    return str(remainder).zfill(2)


def read_notice(nav: object) -> ParsedNotice:
    """Split ``nav`` as the SACI say; raise :class:`BadNotice` when it cannot be one."""
    if not isinstance(nav, str) or not nav or not set(nav) <= _ASCII_DIGITS:
        raise BadNotice("a notice number is made of the digits 0-9 only")
    if len(nav) != 18:
        raise BadNotice(f"a notice number has 18 digits, this one {len(nav)}")
    aux = nav[0]
    if aux == "1":
        return ParsedNotice(aux, nav[1:])
    if aux not in "023":
        raise BadNotice(f"aux digit {aux}: the SACI define only 0, 1, 2 and 3")
    if nav[16:] != check_digits(nav[:16]):
        raise BadNotice(
            f"wrong check digits {nav[16:]}: the first 16 digits modulo 93 are "
            f"{check_digits(nav[:16])}"
        )
    if aux == "0":
        return ParsedNotice(aux, nav[3:])
    if aux == "2":
        return ParsedNotice(aux, nav[1:])
    return ParsedNotice(aux, nav[1:], segregation_code=nav[1:3])

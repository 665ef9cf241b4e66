"""Italian fiscal codes (*codice fiscale*) with their check character: one validator for
the whole hub.

Two kinds exist (DM 23/12/1976, DPR 605/1973):

- **persons**: 16 characters ``SSSNNNYYMDDZZZZC``: surname and name letters, year, month
  letter (``ABCDEHLMPRST``), day (+40 for women), the cadastral code of the birth place
  (a letter and 3 digits) and the check letter ``C``. When two people would get the same
  code the Agenzia delle Entrate replaces digits with letters, from the right
  (*omocodia*: ``0-9`` -> ``LMNPQRSTUV``, positions 15, 14, 13, 11, 10, 8, 7); the check
  letter is computed on the code as written, substitutions included;
- **companies and other bodies** (and provisional codes of persons): 11 digits, the last
  a Luhn-style check digit (the algorithm of the *partita IVA*).

Hand-written rather than taken from ``python-codicefiscale``: that library mostly
encodes/decodes names and birth places (it bundles the municipality tables and pulls in
``python-dateutil`` and ``python-slugify``), while the hub only needs the check, ~40 lines
that the unit tests pin against published codes and attacker-style inputs.

Nothing here echoes the input in its messages: fiscal codes are personal data.

The SPID test environment (and the hub's sandbox IdP) prefix fiscal numbers with
``TINIT-`` (the ``fiscalNumber`` attribute's form): :func:`normalize` removes it.
"""

from __future__ import annotations

import re

__all__ = [
    "company_check_digit",
    "is_company_code",
    "is_fiscal_code",
    "is_person_code",
    "normalize",
    "person_check_char",
    "problem",
]

_OMOCODE = "LMNPQRSTUV"
_DIGIT_OR_OMOCODE = "[0-9LMNPQRSTUV]"
_PERSON = re.compile(
    rf"[A-Z]{{6}}{_DIGIT_OR_OMOCODE}{{2}}[ABCDEHLMPRST]{_DIGIT_OR_OMOCODE}{{2}}"
    rf"[A-Z]{_DIGIT_OR_OMOCODE}{{3}}[A-Z]"
)
_COMPANY = re.compile(r"[0-9]{11}")
# Value of a character in an odd position (1st, 3rd, ... 15th): a digit counts as the
# letter of the same rank (0 as A, 1 as B...).
_ODD_LETTERS = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10,
                22, 25, 24, 23)  # fmt: skip
_ODD = {
    **{str(d): _ODD_LETTERS[d] for d in range(10)},
    **{chr(65 + i): v for i, v in enumerate(_ODD_LETTERS)},
}
# In an even position a digit counts as itself and a letter as its index (A=0 ... Z=25).
_EVEN = {**{str(d): d for d in range(10)}, **{chr(65 + i): i for i in range(26)}}
_UNDO_OMOCODE = str.maketrans(_OMOCODE, "0123456789")


def normalize(value: str) -> str:
    """``value`` without surrounding blanks, in upper case, without the ``TINIT-`` prefix
    of SPID's ``fiscalNumber`` attribute."""
    return value.strip().upper().removeprefix("TINIT-")


def person_check_char(first15: str) -> str:
    """The check letter of a person's fiscal code, from its first 15 characters."""
    if len(first15) != 15 or not first15.isascii() or not first15.isalnum():
        raise ValueError("expected the first 15 characters of a fiscal code")
    text = first15.upper()
    total = sum(_ODD[c] if i % 2 == 0 else _EVEN[c] for i, c in enumerate(text))
    return chr(ord("A") + total % 26)


def company_check_digit(first10: str) -> str:
    """The check digit of an 11-digit fiscal code (*partita IVA* algorithm), from its
    first 10 digits: odd positions count as they are, even ones doubled (minus 9 when
    over 9); the check digit brings the sum to a multiple of 10."""
    if len(first10) != 10 or not first10.isascii() or not first10.isdigit():
        raise ValueError("expected the first 10 digits of a fiscal code")
    total = 0
    for index, ch in enumerate(first10):
        digit = int(ch)
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def _person_problem(value: str) -> str | None:
    if len(value) != 16 or not _PERSON.fullmatch(value):
        return (
            "a person's fiscal code is 16 upper-case characters, pattern AAAAAA00A00A000A "
            "(omocodia letters LMNPQRSTUV allowed in the digit positions)"
        )
    day = int(value[9:11].translate(_UNDO_OMOCODE))
    if not (1 <= day <= 31 or 41 <= day <= 71):
        return "a person's fiscal code has the day of birth 01-31 (41-71 for women)"
    if person_check_char(value[:15]) != value[15]:
        return "the check character of the fiscal code is wrong"
    return None


def _company_problem(value: str) -> str | None:
    if len(value) != 11 or not _COMPANY.fullmatch(value) or not value.isascii():
        return "an 11-digit fiscal code is 11 digits"
    if company_check_digit(value[:10]) != value[10]:
        return "the check digit of the 11-digit fiscal code is wrong"
    return None


def problem(value: str, *, person: bool = True, company: bool = True) -> str | None:
    """Why ``value`` is not a valid fiscal code of the kinds allowed (``None`` when it is).

    ``value`` must already be normalised (upper case, no blanks): a lower-case code is
    refused, as pagoPA and App IO refuse it. The message never contains the value.
    """
    if not isinstance(value, str):
        return "must be a string"
    if person and company:
        if len(value) == 11 and value.isdigit():
            return _company_problem(value)
        if len(value) == 16:
            return _person_problem(value)
        return "a fiscal code is 16 characters (a person) or 11 digits"
    if person:
        return _person_problem(value)
    if company:
        return _company_problem(value)
    raise ValueError("allow at least one kind of fiscal code")


def is_person_code(value: str) -> bool:
    """A 16-character personal fiscal code with a valid check letter."""
    return problem(value, company=False) is None


def is_company_code(value: str) -> bool:
    """An 11-digit fiscal code with a valid check digit."""
    return problem(value, person=False) is None


def is_fiscal_code(value: str) -> bool:
    """Either kind, with a valid check character."""
    return problem(value) is None

"""The sandbox IdP's test population: fictitious people (and one company) to log in as.

Every fiscal code is computed with the real algorithm (name/surname letters, birth date,
cadastral code of the birthplace, check character), so it passes any checksum test while the
surnames (Collaudo, Prova, Esempio...) make it obvious the person does not exist. The company's
VAT number carries a valid check digit too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

__all__ = [
    "DEFAULT_IDENTITIES",
    "TestIdentity",
    "fiscal_code",
    "fiscal_code_check_char",
    "vat_check_digit",
]

_MONTHS = "ABCDEHLMPRST"
_ODD = {
    **dict(zip("0123456789", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21), strict=True)),
    **dict(
        zip(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            (
                1,
                0,
                5,
                7,
                9,
                13,
                15,
                17,
                19,
                21,
                2,
                4,
                18,
                20,
                11,
                3,
                6,
                8,
                12,
                14,
                16,
                10,
                22,
                25,
                24,
                23,
            ),
            strict=True,
        )
    ),
}
_VOWELS = frozenset("AEIOU")


def fiscal_code_check_char(first15: str) -> str:
    """The 16th character of an Italian fiscal code from its first 15."""
    if len(first15) != 15:
        raise ValueError("the check character needs exactly 15 characters")
    total = 0
    for position, char in enumerate(first15.upper(), start=1):
        if position % 2:
            total += _ODD[char]
        else:
            total += int(char) if char.isdigit() else ord(char) - ord("A")
    return chr(ord("A") + total % 26)


def _letters(word: str) -> tuple[list[str], list[str]]:
    letters = [c for c in word.upper() if c.isalpha()]
    return [c for c in letters if c not in _VOWELS], [c for c in letters if c in _VOWELS]


def _surname_code(surname: str) -> str:
    consonants, vowels = _letters(surname)
    return ("".join(consonants + vowels) + "XXX")[:3]


def _name_code(name: str) -> str:
    consonants, vowels = _letters(name)
    if len(consonants) >= 4:
        return consonants[0] + consonants[2] + consonants[3]
    return ("".join(consonants + vowels) + "XXX")[:3]


def fiscal_code(family_name: str, name: str, born: date, gender: str, cadastral: str) -> str:
    """A person's fiscal code (no omocodia handling: the sandbox has no clashes)."""
    day = born.day + (40 if gender.upper() == "F" else 0)
    first15 = (
        f"{_surname_code(family_name)}{_name_code(name)}{born.year % 100:02d}"
        f"{_MONTHS[born.month - 1]}{day:02d}{cadastral.upper()}"
    )
    return first15 + fiscal_code_check_char(first15)


def vat_check_digit(first10: str) -> str:
    """The 11th digit of an Italian VAT number (partita IVA) from its first 10."""
    if len(first10) != 10 or not first10.isdigit():
        raise ValueError("the check digit needs exactly 10 digits")
    total = 0
    for position, char in enumerate(first10, start=1):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return str((10 - total % 10) % 10)


@dataclass(frozen=True)
class TestIdentity:
    """One test user. ``code`` is what the login page posts to pick them: the person's fiscal
    code, or for the company the 11-digit fiscal code of the legal person.

    ``max_level`` is the highest SPID level the user can authenticate at; ``has_cie`` says
    whether they show up on the CIE login page (a company has no identity card).
    """

    __test__ = False  # not a pytest test class, whatever the name says

    code: str
    label: str
    max_level: int
    attributes: tuple[tuple[str, str], ...]
    has_cie: bool = True

    def attribute_map(self) -> dict[str, str]:
        """SPID attribute name -> value, exactly as the Response carries it."""
        return dict(self.attributes)

    def attribute(self, name: str) -> str | None:
        """One attribute's value, or None when this identity does not have it."""
        return self.attribute_map().get(name)


def _person(
    *,
    name: str,
    family_name: str,
    born: date,
    gender: str,
    cadastral: str,
    county: str,
    max_level: int,
    serial: int,
    town: str,
) -> TestIdentity:
    code = fiscal_code(family_name, name, born, gender, cadastral)
    slug = f"{name}.{family_name}".lower()
    attributes = (
        ("spidCode", f"SBOX{serial:010d}"),
        ("name", name),
        ("familyName", family_name),
        ("placeOfBirth", cadastral),
        ("countyOfBirth", county),
        ("dateOfBirth", born.isoformat()),
        ("gender", gender),
        ("fiscalNumber", f"TINIT-{code}"),
        ("mobilePhone", f"+39333000{serial:04d}"),
        ("email", f"{slug}@example.org"),
        ("digitalAddress", f"{slug}@pec.example.org"),
        ("address", f"Via dei Collaudi {serial} 00100 {town} {county}"),
        ("expirationDate", "2035-12-31"),
        ("idCard", f"cartaIdentita CA{serial:05d}SB comune{town} 2025-01-15 2035-12-31"),
    )
    return TestIdentity(code, f"{name} {family_name}", max_level, attributes)


def _company() -> TestIdentity:
    first10 = "0" + "123456789"
    vat = first10 + vat_check_digit(first10)
    attributes = (
        ("spidCode", "SBOX0000000099"),
        ("companyName", "Sandbox Servizi di Collaudo S.r.l."),
        ("companyFiscalNumber", f"TINIT-{vat}"),
        ("fiscalNumber", f"TINIT-{vat}"),
        ("ivaCode", f"VATIT-{vat}"),
        ("registeredOffice", "Piazza delle Prove 1 00100 Roma RM"),
        ("digitalAddress", "collaudo.srl@pec.example.org"),
        ("email", "info@collaudo-srl.example.org"),
        ("mobilePhone", "+393330000099"),
    )
    return TestIdentity(vat, "Sandbox Servizi di Collaudo S.r.l.", 2, attributes, has_cie=False)


#: The built-in population (immutable: a tuple of frozen dataclasses).
DEFAULT_IDENTITIES: tuple[TestIdentity, ...] = (
    _person(
        name="Mario",
        family_name="Collaudo",
        born=date(1980, 1, 1),
        gender="M",
        cadastral="H501",
        county="RM",
        max_level=3,
        serial=1,
        town="Roma",
    ),
    _person(
        name="Giulia",
        family_name="Prova",
        born=date(1985, 6, 15),
        gender="F",
        cadastral="F205",
        county="MI",
        max_level=3,
        serial=2,
        town="Milano",
    ),
    _person(
        name="Luca",
        family_name="Esempio",
        born=date(1992, 11, 30),
        gender="M",
        cadastral="F839",
        county="NA",
        max_level=2,
        serial=3,
        town="Napoli",
    ),
    _person(
        name="Anna",
        family_name="Fittizia",
        born=date(1975, 3, 8),
        gender="F",
        cadastral="L219",
        county="TO",
        max_level=1,
        serial=4,
        town="Torino",
    ),
    _person(
        name="Paolo",
        family_name="Sandbox",
        born=date(2001, 9, 21),
        gender="M",
        cadastral="A944",
        county="BO",
        max_level=3,
        serial=5,
        town="Bologna",
    ),
    _person(
        name="Chiara",
        family_name="Verifica",
        born=date(1968, 12, 24),
        gender="F",
        cadastral="D612",
        county="FI",
        max_level=2,
        serial=6,
        town="Firenze",
    ),
    _company(),
)

"""A deterministic, fictitious population for the ANPR sandbox.

Every person here is invented. ``generate(seed=..., size=...)`` always returns the same
people for the same arguments, so tests can compare what the gateway answers with what
was generated.

* **Fiscal codes** follow the real algorithm (surname and name letters, year, month
  letter, day + 40 for women, cadastral code of the birth place, check character), so they
  pass every format and check-character validation. Two people who would get the same
  code are told apart with the official *omocodia* substitution (digits replaced by
  letters from the right), as the Agenzia delle Entrate does.
* **idANPR** values have the observed shape of real ones (``TK44563XB``: two letters, five
  digits, two letters) but the check letter is **this sandbox's own rule**, not ANPR's
  (which is not public): the last letter is ``A + (sum of (i + 1) * value(c_i) for the
  first eight characters) mod 26`` with ``value`` = 0-25 for letters and 0-9 for digits.
  Do not validate real idANPRs with it.
* **Households** have 1-5 members with ANPR relationship codes (table 5 "relazioni di
  parentela": 1 intestatario, 2 marito/moglie, 3 figlio/figlia, 6 padre/madre, 23
  convivente, 28 unito civilmente). Members share the head's address.
* A small share of people is **deceased** (the record stays in ANPR with the date of
  death) and a small share is **cancelled** from ANPR (e.g. irreperibili): the e-services
  answer EN122 "Soggetto cancellato da ANPR" for them, as ANPR does since July 2025.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

__all__ = [
    "DEFAULT_COMUNE",
    "RELATIONSHIPS",
    "Address",
    "Comune",
    "Household",
    "Person",
    "Place",
    "Population",
    "fiscal_code",
    "fiscal_code_check_char",
    "generate",
    "id_anpr_check_char",
    "is_valid_id_anpr",
    "omocode",
]

# --------------------------------------------------------------------------- fiscal codes

_MONTHS = "ABCDEHLMPRST"
_OMOCODE_LETTERS = "LMNPQRSTUV"
# Positions (0-based) of the digits that omocodia replaces, from the rightmost.
_OMOCODE_POSITIONS = (14, 13, 12, 10, 9, 7, 6)
_ODD_VALUES = {
    **dict(zip("0123456789", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21), strict=True)),
    **dict(
        zip(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22,
             25, 24, 23),
            strict=True,
        )
    ),
}  # fmt: skip
_VOWELS = frozenset("AEIOU")


def _letters(text: str) -> str:
    return "".join(ch for ch in text.upper() if "A" <= ch <= "Z")


def _split(text: str) -> tuple[str, str]:
    letters = _letters(text)
    consonants = "".join(ch for ch in letters if ch not in _VOWELS)
    vowels = "".join(ch for ch in letters if ch in _VOWELS)
    return consonants, vowels


def _surname_part(surname: str) -> str:
    consonants, vowels = _split(surname)
    return (consonants + vowels + "XXX")[:3]


def _name_part(name: str) -> str:
    consonants, vowels = _split(name)
    if len(consonants) >= 4:
        return consonants[0] + consonants[2] + consonants[3]
    return (consonants + vowels + "XXX")[:3]


def _char_value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - ord("A")


def fiscal_code_check_char(first15: str) -> str:
    """The check character of a fiscal code, from its first 15 characters."""
    if len(first15) != 15:
        raise ValueError("expected the first 15 characters of a fiscal code")
    total = 0
    for index, ch in enumerate(first15.upper()):
        # Positions are counted from 1: odd positions are the even indexes.
        total += _ODD_VALUES[ch] if index % 2 == 0 else _char_value(ch)
    return chr(ord("A") + total % 26)


def fiscal_code(surname: str, name: str, sex: str, birth_date: date, cadastral_code: str) -> str:
    """The fiscal code of a person (no omocodia)."""
    if sex not in ("M", "F"):
        raise ValueError("sex must be 'M' or 'F'")
    day = birth_date.day + (40 if sex == "F" else 0)
    first15 = (
        _surname_part(surname)
        + _name_part(name)
        + f"{birth_date.year % 100:02d}"
        + _MONTHS[birth_date.month - 1]
        + f"{day:02d}"
        + cadastral_code.upper()
    )
    return first15 + fiscal_code_check_char(first15)


def omocode(code: str, level: int) -> str:
    """``code`` with its ``level`` rightmost digits replaced by letters (1 <= level <= 7)."""
    if not 1 <= level <= len(_OMOCODE_POSITIONS):
        raise ValueError("omocodia level must be between 1 and 7")
    chars = list(code[:15])
    for position in _OMOCODE_POSITIONS[:level]:
        ch = chars[position]
        if ch.isdigit():
            chars[position] = _OMOCODE_LETTERS[int(ch)]
    first15 = "".join(chars)
    return first15 + fiscal_code_check_char(first15)


# --------------------------------------------------------------------------------- idANPR

_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def id_anpr_check_char(first8: str) -> str:
    """This sandbox's (fictitious) check letter for an idANPR; see the module docstring."""
    if len(first8) != 8:
        raise ValueError("expected the first 8 characters of an idANPR")
    total = sum((index + 1) * _char_value(ch) for index, ch in enumerate(first8.upper()))
    return _ALPHA[total % 26]


def is_valid_id_anpr(value: str) -> bool:
    """True when ``value`` has the sandbox's idANPR shape and check letter."""
    if len(value) != 9:
        return False
    head, digits, tail = value[:2], value[2:7], value[7:]
    if not (head.isascii() and head.isalpha() and head.isupper()):
        return False
    if not (digits.isascii() and digits.isdigit()):
        return False
    if not (tail.isascii() and tail.isalpha() and tail.isupper()):
        return False
    return id_anpr_check_char(value[:8]) == value[8]


def _new_id_anpr(rng: random.Random) -> str:
    first8 = (
        rng.choice(_ALPHA)
        + rng.choice(_ALPHA)
        + f"{rng.randrange(100_000):05d}"
        + rng.choice(_ALPHA)
    )
    return first8 + id_anpr_check_char(first8)


# ------------------------------------------------------------------------------ the model

#: ANPR table 5 ("relazioni di parentela"): the codes this population uses.
RELATIONSHIPS: Mapping[str, str] = MappingProxyType(
    {
        "1": "Intestatario Scheda",
        "2": "Marito/Moglie",
        "3": "Figlio/Figlia",
        "6": "Padre/Madre",
        "23": "Convivente (con vincoli di adozione o affettivi)",
        "28": "Unito civilmente",
    }
)


@dataclass(frozen=True)
class Comune:
    """An Italian municipality: name, 6-digit ISTAT code, province, cadastral code."""

    name: str
    istat_code: str
    province: str
    cadastral_code: str
    postal_code: str = ""


@dataclass(frozen=True)
class Place:
    """A birth place: an Italian comune, or a foreign country (``country_code`` = ISTAT)."""

    name: str
    cadastral_code: str
    istat_code: str | None = None
    province: str | None = None
    country: str | None = None
    country_code: str | None = None

    @property
    def foreign(self) -> bool:
        return self.country_code is not None


@dataclass(frozen=True)
class Address:
    street_type: str  # "VIA", "PIAZZA"...
    street_name: str
    number: str
    letter: str | None
    postal_code: str
    comune: Comune

    @property
    def line(self) -> str:
        """``VIA ROMA 12/A``."""
        number = f"{self.number}/{self.letter}" if self.letter else self.number
        return f"{self.street_type} {self.street_name} {number}"


@dataclass(frozen=True)
class Person:
    id_anpr: str
    fiscal_code: str
    family_name: str
    given_name: str
    sex: str
    birth_date: date
    birth_place: Place
    address: Address
    residence_since: date
    household_id: str
    relationship_code: str
    member_index: int  # 1 for the head of the household
    relationship_since: date
    date_of_death: date | None = None
    cancelled: bool = False

    @property
    def relationship(self) -> str:
        return RELATIONSHIPS[self.relationship_code]

    @property
    def alive(self) -> bool:
        return self.date_of_death is None


@dataclass(frozen=True)
class Household:
    id: str
    members: tuple[Person, ...]

    @property
    def head(self) -> Person:
        return self.members[0]


@dataclass(frozen=True)
class Population:
    """The generated people, indexed by fiscal code, idANPR and household."""

    comune: Comune
    seed: int
    reference_date: date
    people: tuple[Person, ...]
    households: Mapping[str, Household] = field(repr=False)
    by_fiscal_code: Mapping[str, Person] = field(repr=False)
    by_id_anpr: Mapping[str, Person] = field(repr=False)

    def __len__(self) -> int:
        return len(self.people)

    def __iter__(self) -> Iterator[Person]:
        return iter(self.people)

    def active(self) -> tuple[Person, ...]:
        """People with an active record: neither cancelled nor deceased."""
        return tuple(p for p in self.people if not p.cancelled and p.alive)

    def household_of(self, person: Person) -> Household:
        return self.households[person.household_id]


# --------------------------------------------------------------------------- generation

DEFAULT_COMUNE = Comune(
    name="ESEMPIO",
    istat_code="999001",
    province="EE",
    cadastral_code="Z999",
    postal_code="99999",
)

_ITALIAN_PLACES = (
    Place("ROMA", "H501", "058091", "RM"),
    Place("MILANO", "F205", "015146", "MI"),
    Place("NAPOLI", "F839", "063049", "NA"),
    Place("TORINO", "L219", "001272", "TO"),
    Place("PALERMO", "G273", "082053", "PA"),
    Place("GENOVA", "D969", "010025", "GE"),
    Place("BOLOGNA", "A944", "037006", "BO"),
    Place("FIRENZE", "D612", "048017", "FI"),
    Place("BARI", "A662", "072006", "BA"),
    Place("VENEZIA", "L736", "027042", "VE"),
    Place("VERONA", "L781", "023091", "VR"),
    Place("CATANIA", "C351", "087015", "CT"),
    Place("PADOVA", "G224", "028060", "PD"),
    Place("TRIESTE", "L424", "032006", "TS"),
    Place("PERUGIA", "G478", "054039", "PG"),
    Place("CAGLIARI", "B354", "092009", "CA"),
)
_FOREIGN_PLACES = (
    Place("TIRANA", "Z100", country="ALBANIA", country_code="201"),
    Place("BERLINO", "Z112", country="GERMANIA", country_code="216"),
    Place("BUCAREST", "Z129", country="ROMANIA", country_code="235"),
    Place("CASABLANCA", "Z330", country="MAROCCO", country_code="436"),
    Place("PARIGI", "Z110", country="FRANCIA", country_code="215"),
    Place("BUENOS AIRES", "Z600", country="ARGENTINA", country_code="602"),
)
_SURNAMES = (
    "ROSSI", "RUSSO", "FERRARI", "ESPOSITO", "BIANCHI", "ROMANO", "COLOMBO", "RICCI",
    "MARINO", "GRECO", "BRUNO", "GALLO", "CONTI", "DE LUCA", "MANCINI", "COSTA", "GIORDANO",
    "RIZZO", "LOMBARDI", "MORETTI", "BARBIERI", "FONTANA", "SANTORO", "MARIANI", "RINALDI",
    "CARUSO", "FERRARA", "GALLI", "MARTINI", "LEONE", "LONGO", "GENTILE", "MARTINELLI",
    "VITALE", "LOMBARDO", "SERRA", "COPPOLA", "DE SANTIS", "D'ANGELO", "MARCHETTI",
    "PARISI", "VILLA", "CONTE", "FERRO", "FABBRI", "BIANCO", "MARINI", "GRASSO", "VALENTINI",
    "MESSINA", "SALA", "DE ANGELIS", "GATTI", "PELLEGRINI", "PALUMBO", "SANNA", "FARINA",
    "RIZZI", "MONTI", "CATTANEO", "MORELLI", "AMATO", "SILVESTRI", "MAZZA", "TESTA", "GRASSI",
    "PELLEGRINO", "CARBONE", "GIULIANI", "BENEDETTI", "BARONE", "ROSSETTI", "CAPUTO",
    "MONTANARI", "GUERRA", "PALMIERI", "BERNARDI", "MARTINO", "FIORE", "DE ROSA", "FERRI",
    "LUCCHESI", "BASILE", "PAGANO", "ORLANDO", "NEGRI", "SORRENTINO", "TOSI", "RIVA",
)  # fmt: skip
_MALE_NAMES = (
    "MARCO", "GIUSEPPE", "LUCA", "ANDREA", "FRANCESCO", "ALESSANDRO", "GIOVANNI", "ROBERTO",
    "STEFANO", "PAOLO", "MATTEO", "LORENZO", "ANTONIO", "DAVIDE", "SIMONE", "FEDERICO",
    "RICCARDO", "GABRIELE", "TOMMASO", "EDOARDO", "LEONARDO", "SALVATORE", "VINCENZO",
    "MASSIMO", "FABIO", "NICOLA", "DANIELE", "EMANUELE", "CLAUDIO", "MAURIZIO", "ALBERTO",
    "PIETRO", "GIORGIO", "ENRICO", "SERGIO", "CARLO", "FILIPPO", "MICHELE", "DIEGO", "NICCOLO",
)  # fmt: skip
_FEMALE_NAMES = (
    "GIULIA", "FRANCESCA", "CHIARA", "SARA", "MARTINA", "ANNA", "MARIA", "ELENA", "VALENTINA",
    "ALESSIA", "LAURA", "SILVIA", "FEDERICA", "ELISA", "PAOLA", "ROBERTA", "SOFIA", "AURORA",
    "GIORGIA", "ALICE", "BEATRICE", "LUCIA", "CRISTINA", "MONICA", "BARBARA", "SIMONA",
    "ILARIA", "MARTA", "CATERINA", "ROSSELLA", "ANGELA", "TERESA", "GIOVANNA", "DANIELA",
    "EMMA", "GINEVRA", "NOEMI", "VIOLA", "IRENE", "CARLOTTA",
)  # fmt: skip
_STREET_TYPES = ("VIA", "VIA", "VIA", "VIA", "PIAZZA", "VIALE", "CORSO", "VICOLO", "LARGO")
_STREET_NAMES = (
    "ROMA", "GIUSEPPE GARIBALDI", "GIUSEPPE MAZZINI", "CAMILLO BENSO DI CAVOUR", "DANTE",
    "XX SETTEMBRE", "DELLA REPUBBLICA", "DEI MILLE", "VITTORIO VENETO", "IV NOVEMBRE",
    "DELLA LIBERTA", "ALESSANDRO MANZONI", "GIACOMO MATTEOTTI", "DEI TIGLI", "DELLE ROSE",
    "DEL MERCATO", "SAN FRANCESCO", "DELLA STAZIONE", "DEGLI ALPINI", "DEI CADUTI",
    "GIUSEPPE VERDI", "ANTONIO GRAMSCI", "DELLE ORTENSIE", "DEI PLATANI", "DEL LAVORO",
)  # fmt: skip
# Household sizes 1-5 with roughly the Italian distribution.
_HOUSEHOLD_SIZES = (1, 2, 3, 4, 5)
_HOUSEHOLD_WEIGHTS = (33, 27, 19, 15, 6)

_DEFAULT_REFERENCE = date(2026, 1, 1)


def _years_before(day: date, years: float) -> date:
    return day - timedelta(days=round(years * 365.25))


def _random_date(rng: random.Random, start: date, end: date) -> date:
    if end <= start:
        return start
    return start + timedelta(days=rng.randrange((end - start).days + 1))


@dataclass
class _Draft:
    family_name: str
    given_name: str
    sex: str
    birth_date: date
    birth_place: Place
    relationship_code: str
    residence_since: date
    relationship_since: date
    date_of_death: date | None = None
    cancelled: bool = False


class _Builder:
    def __init__(self, seed: int, comune: Comune, reference_date: date) -> None:
        self.rng = random.Random(seed)
        self.comune = comune
        self.today = reference_date
        self.home = Place(comune.name, comune.cadastral_code, comune.istat_code, comune.province)
        self.fiscal_codes: set[str] = set()
        self.ids: set[str] = set()
        self.addresses: set[tuple[str, str, str, str | None]] = set()

    def birth_place(self) -> Place:
        roll = self.rng.random()
        if roll < 0.45:
            return self.home
        if roll < 0.9:
            return self.rng.choice(_ITALIAN_PLACES)
        return self.rng.choice(_FOREIGN_PLACES)

    def given_name(self, sex: str) -> str:
        return self.rng.choice(_MALE_NAMES if sex == "M" else _FEMALE_NAMES)

    def person(
        self, family_name: str, sex: str, age: tuple[float, float], relationship: str
    ) -> _Draft:
        low, high = age
        birth = _random_date(
            self.rng, _years_before(self.today, high), _years_before(self.today, low)
        )
        return _Draft(
            family_name=family_name,
            given_name=self.given_name(sex),
            sex=sex,
            birth_date=birth,
            birth_place=self.birth_place(),
            relationship_code=relationship,
            residence_since=self.today,
            relationship_since=self.today,
        )

    def address(self) -> Address:
        while True:
            street_type = self.rng.choice(_STREET_TYPES)
            street_name = self.rng.choice(_STREET_NAMES)
            number = str(self.rng.randint(1, 180))
            letter = self.rng.choice("AB") if self.rng.random() < 0.1 else None
            key = (street_type, street_name, number, letter)
            # One household per civic number keeps households easy to tell apart.
            if key not in self.addresses:
                self.addresses.add(key)
                return Address(
                    street_type, street_name, number, letter, self.comune.postal_code, self.comune
                )

    def household(self, size: int) -> list[_Draft]:
        rng = self.rng
        surname = rng.choice(_SURNAMES)
        head_sex = rng.choice("MF")
        if size == 1:
            head = self.person(surname, head_sex, (19, 95), "1")
        elif size >= 4:
            head = self.person(surname, head_sex, (32, 58), "1")
        else:
            head = self.person(surname, head_sex, (24, 85), "1")
        members = [head]
        head_age = (self.today - head.birth_date).days / 365.25
        adult_since = max(_years_before(head.birth_date, -18), date(1985, 1, 1))
        formed = _random_date(rng, min(adult_since, self.today), self.today)
        if size >= 2:
            roll = rng.random()
            code = "2" if roll < 0.8 else ("28" if roll < 0.9 else "23")
            partner_sex = ("F" if head_sex == "M" else "M") if code != "28" else rng.choice("MF")
            spread = (max(18.5, head_age - 6), max(19.0, head_age + 6))
            partner = self.person(rng.choice(_SURNAMES), partner_sex, spread, code)
            members.append(partner)
            formed = max(formed, _years_before(partner.birth_date, -18))
        head.residence_since = formed if size > 1 else _random_date(rng, adult_since, self.today)
        head.relationship_since = head.residence_since
        for member in members[1:]:
            member.residence_since = member.relationship_since = head.residence_since
        father = next((m for m in members if m.sex == "M"), head)
        for slot in range(len(members), size):
            if slot == 4 and head_age < 55 and rng.random() < 0.5:
                # A parent of the head living with the family.
                parent_sex = rng.choice("MF")
                parent = self.person(
                    head.family_name if parent_sex == "M" else rng.choice(_SURNAMES),
                    parent_sex,
                    (head_age + 22, min(head_age + 38, 99)),
                    "6",
                )
                parent.residence_since = parent.relationship_since = _random_date(
                    rng, head.residence_since, self.today
                )
                members.append(parent)
                continue
            youngest_parent_age = min(
                (self.today - m.birth_date).days / 365.25 for m in members[:2]
            )
            oldest_child = max(0.1, min(youngest_parent_age - 19, 30))
            child = self.person(father.family_name, rng.choice("MF"), (0.05, oldest_child), "3")
            child.residence_since = child.relationship_since = max(
                head.residence_since, child.birth_date
            )
            members.append(child)
        return members

    def finish(self, draft: _Draft) -> tuple[str, str]:
        code = fiscal_code(
            draft.family_name,
            draft.given_name,
            draft.sex,
            draft.birth_date,
            draft.birth_place.cadastral_code,
        )
        level = 0
        candidate = code
        while candidate in self.fiscal_codes:
            level += 1
            candidate = omocode(code, level)
        self.fiscal_codes.add(candidate)
        while True:
            id_anpr = _new_id_anpr(self.rng)
            if id_anpr not in self.ids:
                self.ids.add(id_anpr)
                return candidate, id_anpr


def generate(
    *,
    seed: int = 20260101,
    size: int = 1200,
    comune: Comune = DEFAULT_COMUNE,
    reference_date: date = _DEFAULT_REFERENCE,
    deceased_share: float = 0.015,
    cancelled_share: float = 0.01,
) -> Population:
    """Generate ``size`` fictitious people living in ``comune`` (same seed, same people).

    Ages and dates are computed from ``reference_date`` (not from today) so the result does
    not change with the calendar. ``deceased_share`` of the single-person households are
    deceased and ``cancelled_share`` of them are cancelled from ANPR.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    builder = _Builder(seed, comune, reference_date)
    rng = builder.rng
    people: list[Person] = []
    households: dict[str, Household] = {}
    number = 0
    while len(people) < size:
        number += 1
        household_size = rng.choices(_HOUSEHOLD_SIZES, _HOUSEHOLD_WEIGHTS)[0]
        household_size = min(household_size, size - len(people))
        drafts = builder.household(household_size)
        if household_size == 1:
            roll = rng.random()
            if roll < deceased_share:
                died = _random_date(rng, _years_before(reference_date, 3), reference_date)
                died = max(died, drafts[0].birth_date)
                drafts[0].date_of_death = died
                drafts[0].residence_since = min(drafts[0].residence_since, died)
                drafts[0].relationship_since = drafts[0].residence_since
            elif roll < deceased_share + cancelled_share:
                drafts[0].cancelled = True
        household_id = f"F{number:06d}"
        address = builder.address()
        members: list[Person] = []
        for index, draft in enumerate(drafts, start=1):
            code, id_anpr = builder.finish(draft)
            members.append(
                Person(
                    id_anpr=id_anpr,
                    fiscal_code=code,
                    family_name=draft.family_name,
                    given_name=draft.given_name,
                    sex=draft.sex,
                    birth_date=draft.birth_date,
                    birth_place=draft.birth_place,
                    address=address,
                    residence_since=draft.residence_since,
                    household_id=household_id,
                    relationship_code=draft.relationship_code,
                    member_index=index,
                    relationship_since=draft.relationship_since,
                    date_of_death=draft.date_of_death,
                    cancelled=draft.cancelled,
                )
            )
        households[household_id] = Household(household_id, tuple(members))
        people.extend(members)
    return _index(comune, seed, reference_date, people, households)


def _index(
    comune: Comune,
    seed: int,
    reference_date: date,
    people: Iterable[Person],
    households: Mapping[str, Household],
) -> Population:
    ordered = tuple(people)
    return Population(
        comune=comune,
        seed=seed,
        reference_date=reference_date,
        people=ordered,
        households=MappingProxyType(dict(households)),
        by_fiscal_code=MappingProxyType({p.fiscal_code: p for p in ordered}),
        by_id_anpr=MappingProxyType({p.id_anpr: p for p in ordered}),
    )

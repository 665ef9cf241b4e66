"""A deterministic population of fictitious App IO citizens for the sandbox.

Every fiscal code here has the right format and check character, but a place code
(``X001``...) that no Italian comune or foreign country has: none can belong to a real
person. ``AAAAAA00A00A000A`` is App IO's historical test fiscal code.

Kinds of citizen (what App IO answers to ``POST /profiles``):

- **allowed**: profile with the inbox enabled, ``sender_allowed: true``;
- **blocked**: has opted out of the service (or of every service):
  ``sender_allowed: false``, and a message sent anyway ends up REJECTED;
- **inbox disabled**: 404 "Profile not found", exactly as for someone not on App IO;
- **not on App IO**: no profile at all (any fiscal code not in the population).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CF_ALLOWED",
    "CF_ALLOWED_EN",
    "CF_BLOCKED",
    "CF_BLOCKS_ALL",
    "CF_INBOX_DISABLED",
    "CF_NOT_ON_IO",
    "SANDBOX_FISCAL_CODE",
    "Citizen",
    "Population",
    "default_population",
    "fiscal_code_check_char",
    "make_fiscal_code",
]

SANDBOX_FISCAL_CODE = "AAAAAA00A00A000A"

# Values of the characters in odd (1st, 3rd...) positions; even positions count
# 0-9 for digits and 0-25 for letters.
_ODD = tuple(
    int(v) for v in "1 0 5 7 9 13 15 17 19 21 2 4 18 20 11 3 6 8 12 14 16 10 22 25 24 23".split()
)
_MONTHS = "ABCDEHLMPRST"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A")


def fiscal_code_check_char(first15: str) -> str:
    """The check character (16th) of an Italian personal fiscal code."""
    if len(first15) != 15:
        raise ValueError("need the first 15 characters")
    total = sum(
        _ODD[_value(ch)] if index % 2 == 0 else _value(ch) for index, ch in enumerate(first15)
    )
    return _LETTERS[total % 26]


def make_fiscal_code(
    surname: str, name: str, year: int, month: int, day: int, place: str, *, female: bool = False
) -> str:
    """A fiscal code from already-coded parts (3 + 3 letters, place code like ``X001``)."""
    if len(surname) != 3 or len(name) != 3 or len(place) != 4:
        raise ValueError("surname and name need 3 letters, place 4 characters")
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError("invalid birth date")
    first15 = (
        f"{surname}{name}{year % 100:02d}{_MONTHS[month - 1]}"
        f"{day + 40 if female else day:02d}{place}"
    ).upper()
    return first15 + fiscal_code_check_char(first15)


# Well-known citizens, for tests and docs.
CF_ALLOWED = make_fiscal_code("PRV", "LWD", 1980, 1, 1, "X001")
CF_ALLOWED_EN = make_fiscal_code("PRV", "NGL", 1990, 5, 15, "X002", female=True)
CF_BLOCKED = make_fiscal_code("PRV", "BLK", 1975, 3, 10, "X003")
CF_BLOCKS_ALL = make_fiscal_code("PRV", "NNN", 1962, 11, 20, "X004", female=True)
CF_INBOX_DISABLED = make_fiscal_code("PRV", "DSB", 1985, 7, 4, "X005")
CF_NOT_ON_IO = make_fiscal_code("PRV", "NIO", 2001, 12, 31, "X006")


@dataclass(frozen=True, slots=True)
class Citizen:
    """One App IO profile. ``blocked_services`` holds service ids; ``blocks_all`` stands
    for a citizen in MANUAL mode who enabled no service."""

    fiscal_code: str
    inbox_enabled: bool = True
    blocked_services: frozenset[str] = frozenset()
    blocks_all: bool = False
    preferred_languages: tuple[str, ...] = ("it_IT",)

    def sender_allowed(self, service_id: str) -> bool:
        return not self.blocks_all and service_id not in self.blocked_services


@dataclass
class Population:
    """Citizens by fiscal code. Fiscal codes not in it have no App IO profile.

    ``not_on_io`` lists generated fiscal codes that are deliberately absent, so tests and
    demos have valid-looking fiscal codes that answer 404.
    """

    citizens: dict[str, Citizen] = field(default_factory=dict)
    not_on_io: list[str] = field(default_factory=list)

    def get(self, fiscal_code: str) -> Citizen | None:
        return self.citizens.get(fiscal_code)

    def put(self, citizen: Citizen) -> None:
        self.citizens[citizen.fiscal_code] = citizen

    def remove(self, fiscal_code: str) -> None:
        self.citizens.pop(fiscal_code, None)

    def copy(self) -> Population:
        return Population(dict(self.citizens), list(self.not_on_io))

    def __iter__(self) -> Iterator[Citizen]:
        return iter(self.citizens.values())

    def __len__(self) -> int:
        return len(self.citizens)

    def by_kind(self, kind: str, service_id: str = "") -> list[str]:
        """Fiscal codes of one kind for ``service_id``: ``allowed``, ``blocked``,
        ``inbox_disabled`` or ``not_on_io``."""
        if kind == "not_on_io":
            return list(self.not_on_io)
        out = []
        for citizen in self.citizens.values():
            if not citizen.inbox_enabled:
                found = "inbox_disabled"
            elif not citizen.sender_allowed(service_id):
                found = "blocked"
            else:
                found = "allowed"
            if found == kind:
                out.append(citizen.fiscal_code)
        return out

    @classmethod
    def generate(
        cls,
        size: int = 200,
        *,
        seed: int = 20_240_901,
        blocked_share: float = 0.1,
        inbox_disabled_share: float = 0.05,
        not_on_io_share: float = 0.15,
        extra: Iterable[Citizen] = (),
    ) -> Population:
        """``size`` fiscal codes, the same ones for the same seed: some allowed, some
        blocking every sender, some with the inbox disabled, some not on App IO."""
        rng = random.Random(seed)
        population = cls()
        seen: set[str] = set()
        while len(seen) < size:
            fiscal_code = make_fiscal_code(
                "".join(rng.choice(_LETTERS) for _ in range(3)),
                "".join(rng.choice(_LETTERS) for _ in range(3)),
                rng.randint(1930, 2007),
                rng.randint(1, 12),
                rng.randint(1, 28),
                f"X{rng.randint(100, 999)}",
                female=rng.random() < 0.5,
            )
            if fiscal_code in seen:
                continue
            seen.add(fiscal_code)
            draw = rng.random()
            if draw < not_on_io_share:
                population.not_on_io.append(fiscal_code)
            elif draw < not_on_io_share + inbox_disabled_share:
                population.put(Citizen(fiscal_code, inbox_enabled=False))
            elif draw < not_on_io_share + inbox_disabled_share + blocked_share:
                population.put(Citizen(fiscal_code, blocks_all=True))
            else:
                languages = ("it_IT",) if rng.random() < 0.85 else ("en_GB", "it_IT")
                population.put(Citizen(fiscal_code, preferred_languages=languages))
        for citizen in extra:
            population.put(citizen)
        return population


def default_population(*, blocked_service_ids: Iterable[str] = ()) -> Population:
    """The generated population plus the well-known citizens.

    ``CF_BLOCKED`` has blocked the services in ``blocked_service_ids`` (the sandbox passes
    its services' ids), ``CF_BLOCKS_ALL`` blocks every service.
    """
    blocked = frozenset(blocked_service_ids)
    population = Population.generate()
    for citizen in (
        Citizen(SANDBOX_FISCAL_CODE),
        Citizen(CF_ALLOWED),
        Citizen(CF_ALLOWED_EN, preferred_languages=("en_GB", "it_IT")),
        Citizen(CF_BLOCKED, blocked_services=blocked),
        Citizen(CF_BLOCKS_ALL, blocks_all=True),
        Citizen(CF_INBOX_DISABLED, inbox_enabled=False),
    ):
        population.put(citizen)
    population.remove(CF_NOT_ON_IO)
    if CF_NOT_ON_IO not in population.not_on_io:
        population.not_on_io.insert(0, CF_NOT_ON_IO)
    return population

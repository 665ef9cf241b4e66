"""The ANPR sandbox's fictitious population: fiscal codes, idANPR, households."""

from __future__ import annotations

import re
from datetime import date
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sportello.connectors.anpr.models import RELATIONSHIPS as CLIENT_RELATIONSHIPS
from sportello.connectors.anpr.models import is_fiscal_code_format, is_id_anpr_format
from sportello.sandbox.anpr.population import (
    DEFAULT_COMUNE,
    RELATIONSHIPS,
    Comune,
    Population,
    fiscal_code,
    fiscal_code_check_char,
    generate,
    id_anpr_check_char,
    is_valid_id_anpr,
    omocode,
)

# The App IO pattern for a personal fiscal code (omocodia-safe).
IO_PATTERN = re.compile(
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)


@cache
def default_population() -> Population:
    return generate()


@pytest.mark.parametrize(
    ("surname", "name", "sex", "born", "place", "expected"),
    [
        # The textbook example: Mario Rossi, 10 Dec 1985, San Giuliano Terme (A562).
        ("ROSSI", "MARIO", "M", date(1985, 12, 10), "A562", "RSSMRA85T10A562S"),
        # A woman: day + 40.
        ("ROSSI", "MARIA", "F", date(1985, 12, 10), "A562", "RSSMRA85T50A562"),
        # A name with four or more consonants takes the 1st, 3rd and 4th.
        ("BIANCHI", "FRANCESCO", "M", date(1970, 1, 1), "H501", "BNCFNC70A01H501"),
        # Short parts are padded with vowels, then X.
        ("FO", "EVA", "F", date(2001, 7, 31), "F205", "FOXVEA01L71F205"),
        ("D'ANGELO", "LUCA", "M", date(1999, 2, 3), "Z999", "DNGLCU99B03Z999"),
    ],
)
def test_fiscal_code_algorithm(
    surname: str, name: str, sex: str, born: date, place: str, expected: str
) -> None:
    code = fiscal_code(surname, name, sex, born, place)
    assert code.startswith(expected)
    assert len(code) == 16
    assert code[15] == fiscal_code_check_char(code[:15])


def test_check_character_of_known_codes() -> None:
    assert fiscal_code_check_char("RSSMRA85T10A562") == "S"
    with pytest.raises(ValueError):
        fiscal_code_check_char("RSSMRA85T10A56")


def test_omocodia_replaces_digits_from_the_right() -> None:
    code = fiscal_code("ROSSI", "MARIO", "M", date(1985, 12, 10), "A562")
    first = omocode(code, 1)
    assert first[:14] == code[:14] and first[14] == "N"  # 2 -> N
    assert first[15] == fiscal_code_check_char(first[:15])
    full = omocode(code, 7)
    assert full[:15] == "RSSMRAURTMLARSN"
    assert IO_PATTERN.match(full)
    with pytest.raises(ValueError):
        omocode(code, 8)


@given(
    surname=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ '", min_size=1, max_size=20),
    name=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", min_size=1, max_size=20),
    sex=st.sampled_from(["M", "F"]),
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
    place=st.sampled_from(["H501", "F205", "Z999", "Z112", "A944"]),
    level=st.integers(min_value=0, max_value=7),
)
def test_every_generated_code_is_well_formed(
    surname: str, name: str, sex: str, born: date, place: str, level: int
) -> None:
    code = fiscal_code(surname, name, sex, born, place)
    if level:
        code = omocode(code, level)
    assert IO_PATTERN.match(code), code
    assert code[15] == fiscal_code_check_char(code[:15])
    assert is_fiscal_code_format(code)


@given(st.from_regex(r"[A-Z]{2}[0-9]{5}[A-Z]", fullmatch=True))
def test_id_anpr_check_letter(first8: str) -> None:
    value = first8 + id_anpr_check_char(first8)
    assert is_valid_id_anpr(value) and is_id_anpr_format(value)
    for wrong in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if wrong != value[8]:
            assert not is_valid_id_anpr(value[:8] + wrong)


@pytest.mark.parametrize(
    "value", ["", "TK44563X", "TK44563XBB", "tk44563xb", "T144563XB", "TK4456AXB"]
)
def test_malformed_id_anpr(value: str) -> None:
    assert not is_valid_id_anpr(value)


def test_generation_is_deterministic() -> None:
    first, second = generate(seed=3, size=200), generate(seed=3, size=200)
    assert first.people == second.people
    assert generate(seed=4, size=200).people != first.people


def test_default_population() -> None:
    pop = default_population()
    assert len(pop) == 1200 and pop.comune == DEFAULT_COMUNE
    assert len(pop.by_fiscal_code) == len(pop) == len(pop.by_id_anpr)  # all unique
    assert sum(len(h.members) for h in pop.households.values()) == len(pop)
    assert len(pop.active()) >= 1150
    assert any(p.date_of_death for p in pop) and any(p.cancelled for p in pop)
    assert any(p.birth_place.foreign for p in pop)


def test_every_person_is_consistent() -> None:
    pop = default_population()
    for person in pop:
        assert IO_PATTERN.match(person.fiscal_code)
        assert person.fiscal_code[15] == fiscal_code_check_char(person.fiscal_code[:15])
        assert person.fiscal_code[11:15] == person.birth_place.cadastral_code or any(
            ch in "LMNPQRSTUV" for ch in person.fiscal_code[12:15]
        )
        assert is_valid_id_anpr(person.id_anpr)
        assert person.sex in ("M", "F")
        assert person.birth_date <= pop.reference_date
        assert person.birth_date <= person.residence_since <= pop.reference_date
        if person.date_of_death is not None:
            assert person.birth_date <= person.date_of_death <= pop.reference_date
            assert person.residence_since <= person.date_of_death
        assert person.relationship_code in RELATIONSHIPS
        assert person.address.comune == pop.comune


def test_households() -> None:
    pop = default_population()
    sizes = {len(h.members) for h in pop.households.values()}
    assert sizes == {1, 2, 3, 4, 5}
    for household in pop.households.values():
        head, *others = household.members
        assert head.relationship_code == "1" and head.member_index == 1
        assert [m.member_index for m in household.members] == list(
            range(1, len(household.members) + 1)
        )
        assert all(m.relationship_code != "1" for m in others)
        assert len({m.address for m in household.members}) == 1
        partners = [m for m in others if m.relationship_code in ("2", "23", "28")]
        assert len(partners) <= 1
        for child in (m for m in others if m.relationship_code == "3"):
            parents = [head, *partners]
            assert all(child.birth_date > p.birth_date for p in parents)
        if any(m.date_of_death or m.cancelled for m in household.members):
            assert len(household.members) == 1
    # Different households live at different civic numbers.
    addresses = [h.head.address for h in pop.households.values()]
    assert len(set(addresses)) == len(addresses)


def test_relationship_codes_agree_with_the_client_table() -> None:
    for code, description in RELATIONSHIPS.items():
        assert CLIENT_RELATIONSHIPS[int(code)] == description


def test_custom_comune_and_size() -> None:
    comune = Comune("BORGO FINTO", "998877", "BF", "Z998", "00100")
    pop = generate(seed=1, size=37, comune=comune)
    assert len(pop) == 37
    assert {p.address.comune for p in pop} == {comune}
    assert any(p.birth_place.cadastral_code == "Z998" for p in pop)
    with pytest.raises(ValueError):
        generate(size=0)

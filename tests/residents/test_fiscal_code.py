"""The fiscal-code check (``sportello.connectors.fiscal_code``), from the published
algorithm and published codes, and from the inputs an attacker or a careless export sends."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sportello.connectors import fiscal_code as cf
from sportello.sandbox.anpr.population import fiscal_code_check_char, omocode

# Published, valid: the example of Wikipedia's "Codice fiscale" page, the SPID test
# IdP's default user (TINIT-GDASDV00A01H501J), Mario Rossi born in Rome on 1/1/1980, the
# App IO spec's example citizen; PagoPA S.p.A., a made-up one, a Regione.
PERSONS = ("RSSMRA85T10A562S", "GDASDV00A01H501J", "RSSMRA80A01H501U", "PRVLWD80A01X001G")
COMPANIES = ("15376371009", "01234567897", "80016350821")


@pytest.mark.parametrize("code", PERSONS)
def test_published_person_codes_are_valid(code: str) -> None:
    assert cf.is_person_code(code)
    assert cf.is_fiscal_code(code)
    assert not cf.is_company_code(code)
    assert cf.problem(code) is None


@pytest.mark.parametrize("code", COMPANIES)
def test_published_company_codes_are_valid(code: str) -> None:
    assert cf.is_company_code(code)
    assert cf.is_fiscal_code(code)
    assert not cf.is_person_code(code)


@pytest.mark.parametrize("code", PERSONS)
def test_every_single_character_change_of_a_person_code_is_caught(code: str) -> None:
    for index in range(16):
        for ch in string.ascii_uppercase + string.digits:
            if ch != code[index]:
                changed = code[:index] + ch + code[index + 1 :]
                assert not cf.is_person_code(changed), (index, ch)


@pytest.mark.parametrize("code", COMPANIES)
def test_every_single_digit_change_of_a_company_code_is_caught(code: str) -> None:
    for index in range(11):
        for ch in string.digits:
            if ch != code[index]:
                assert not cf.is_company_code(code[:index] + ch + code[index + 1 :])


def test_pagopa_mock_creditor_code_has_no_valid_check_digit() -> None:
    # 77777777777 (pagopa-mock-ec) is format-only: creditor codes are not checked this way
    assert cf.problem("77777777777") == "the check digit of the 11-digit fiscal code is wrong"


@pytest.mark.parametrize("level", range(1, 8))
def test_omocodia_codes_are_valid_with_their_own_check_letter(level: int) -> None:
    code = omocode("RSSMRA85T10A562S", level)
    assert code != "RSSMRA85T10A562S"
    assert cf.is_person_code(code)
    # the original check letter does not fit the substituted code
    assert not cf.is_person_code(code[:15] + "S")


def test_omocodia_day_is_decoded_before_the_range_check() -> None:
    # day "3V" = 39: no such day for men (1-31) or women (41-71)
    first15 = "RSSMRA85T3VA562"
    assert cf.problem(first15 + cf.person_check_char(first15)) is not None
    ok = "RSSMRA85TMLA562"  # day "10" written with omocodia letters
    assert cf.is_person_code(ok + cf.person_check_char(ok))


@given(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=15, max_size=15))
def test_check_letter_agrees_with_the_sandbox_generator(first15: str) -> None:
    # two independent implementations of the same table
    assert cf.person_check_char(first15) == fiscal_code_check_char(first15)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "rssmra85t10a562s",  # lower case: callers normalise first
        "RSSMRA85T10A562S\n",
        " RSSMRA85T10A562S",
        "RSSMRA85T10A562",
        "RSSMRA85T10A562SS",
        "RSSMRA85T00A562S",  # day 00
        "RSSMRA85T32A562S",  # day 32
        "RSSMRA85Z10A562S",  # Z is no month
        "RSSMRA85T10A562\x00",
        "ＲＳＳＭＲＡ８５Ｔ１０Ａ５６２Ｓ",  # full-width look-alikes
        "RSSMRA٨٥T10A562S",  # Arabic-Indic digits are digits to str.isdigit
        "１５３７６３７１００９",
        "1537637100９",
        "15376371009 ",
        "-1537637100",
        "ANONIMO",
        "0" * 16,
    ],
)
def test_malformed_values_are_refused_without_echoing_them(value: str) -> None:
    reason = cf.problem(value)
    assert reason is not None
    assert value.strip() not in reason or not value.strip()
    assert not cf.is_fiscal_code(value)


def test_problem_refuses_non_strings() -> None:
    assert cf.problem(None) == "must be a string"  # type: ignore[arg-type]
    assert cf.problem(15376371009) == "must be a string"  # type: ignore[arg-type]


def test_kinds_can_be_restricted() -> None:
    assert cf.problem("15376371009", person=False) is None
    assert cf.problem("15376371009", company=False) is not None
    assert cf.problem("RSSMRA85T10A562S", person=False) is not None
    with pytest.raises(ValueError):
        cf.problem("RSSMRA85T10A562S", person=False, company=False)


def test_normalize_removes_spid_prefix_blanks_and_case() -> None:
    assert cf.normalize(" tinit-gdasdv00a01h501j ") == "GDASDV00A01H501J"
    assert cf.normalize("TINIT-15376371009") == "15376371009"
    assert cf.is_fiscal_code(cf.normalize("TINIT-GDASDV00A01H501J"))


@pytest.mark.parametrize("bad", ["", "ABC", "RSSMRA85T10A56", "RSSMRA85T10A56!S"[:15] + "!"])
def test_check_functions_refuse_bad_lengths_and_characters(bad: str) -> None:
    with pytest.raises(ValueError):
        cf.person_check_char(bad)
    with pytest.raises(ValueError):
        cf.company_check_digit(bad)

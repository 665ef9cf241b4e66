"""pagoPA identifiers: IUV (aux digit 3), notice numbers (aux 0-3), ISO 11649 references."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sportello.connectors.pagopa import (
    RESERVED_SEGREGATION_CODES,
    InvalidCreditorReference,
    InvalidIUV,
    InvalidNoticeNumber,
    Notice,
    creditor_reference,
    iuv_for,
    notice_number,
    parse_notice_number,
    validate_creditor_reference,
    validate_iuv,
    validate_notice_number,
)
from sportello.connectors.pagopa.identifiers import IUV_BASE_MAX, mod93_check_digits

ONLY_AUX_3 = frozenset({3})
sequences = st.integers(min_value=0, max_value=IUV_BASE_MAX)
own_segregation_codes = (
    st.integers(0, 99)
    .map(lambda n: f"{n:02d}")
    .filter(lambda code: code not in RESERVED_SEGREGATION_CODES)
)
rf_bases = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=21)


def substitutions(text: str, alphabet: str = string.digits) -> list[str]:
    """Every string that differs from ``text`` in exactly one position."""
    return [
        text[:i] + other + text[i + 1 :]
        for i, current in enumerate(text)
        for other in alphabet
        if other != current
    ]


# -- known examples ---------------------------------------------------------------------


def test_research_example_aux_3() -> None:
    # 3 + 01 + 0000000000001: 3010000000000001 mod 93 = 44
    iuv = iuv_for(1, segregation_code="01")
    assert iuv == "01000000000000144"
    assert notice_number(iuv) == "301000000000000144"
    assert parse_notice_number("301000000000000144") == Notice(
        aux_digit=3,
        segregation_code="01",
        application_code=None,
        iuv="01000000000000144",
        check_digits="44",
    )


def test_govpay_example_aux_0() -> None:
    notice = parse_notice_number("001110000000000164")
    assert notice.aux_digit == 0
    assert notice.application_code == "01"
    assert notice.segregation_code is None
    assert notice.iuv == "110000000000164"
    assert notice.iuv_base == "1100000000001"
    assert notice.check_digits == "64"
    assert notice.nav == "001110000000000164"
    assert validate_iuv(notice.iuv, 0, application_code="01") == notice.iuv
    assert notice_number(notice.iuv, aux_digit=0, application_code="01") == notice.nav


def test_saci_appendix_creditor_reference_example() -> None:
    # SACI Appendice 1: "w9" -> 329 + 271500 -> check digits 45 -> RF45w9
    assert creditor_reference("w9") == "RF45w9"
    assert validate_creditor_reference("RF45w9") == "RF45w9"


def test_iso_11649_example() -> None:
    assert creditor_reference("539007547034") == "RF18539007547034"
    assert validate_creditor_reference("RF18539007547034") == "RF18539007547034"


def test_mod93_check_digits_are_zero_padded() -> None:
    first16 = next(f"3{n:015d}" for n in range(1000) if int(f"3{n:015d}") % 93 < 10)
    assert len(mod93_check_digits(first16)) == 2
    assert mod93_check_digits(first16).startswith("0")
    with pytest.raises(ValueError):
        mod93_check_digits("123")


# -- aux digit 3: generation, round trips, error detection ------------------------------


@given(sequences, own_segregation_codes)
def test_generated_iuv_and_notice_validate_and_round_trip(sequence: int, seg: str) -> None:
    iuv = iuv_for(sequence, segregation_code=seg)
    assert len(iuv) == 17 and iuv.isascii() and iuv.isdigit()
    assert iuv.startswith(seg)
    assert validate_iuv(iuv) == iuv
    nav = notice_number(iuv)
    assert nav == "3" + iuv
    assert validate_notice_number(nav, aux_digits=ONLY_AUX_3) == nav
    notice = parse_notice_number(nav)
    assert notice.aux_digit == 3
    assert notice.segregation_code == seg
    assert notice.iuv == iuv
    assert notice.iuv_base == f"{sequence:013d}"
    assert notice.check_digits == iuv[-2:]
    assert notice.nav == nav


@settings(max_examples=150)
@given(sequences, own_segregation_codes)
def test_every_single_digit_substitution_in_a_notice_is_detected(sequence: int, seg: str) -> None:
    nav = notice_number(iuv_for(sequence, segregation_code=seg))
    changed = substitutions(nav)
    assert len(changed) == 18 * 9
    for wrong in changed:
        with pytest.raises(InvalidNoticeNumber):
            validate_notice_number(wrong, aux_digits=ONLY_AUX_3)


@settings(max_examples=150)
@given(sequences, own_segregation_codes)
def test_every_single_digit_substitution_in_an_iuv_is_detected(sequence: int, seg: str) -> None:
    iuv = iuv_for(sequence, segregation_code=seg)
    for wrong in substitutions(iuv):
        with pytest.raises(InvalidIUV):
            validate_iuv(wrong)


@given(sequences, own_segregation_codes)
def test_with_all_aux_digits_only_a_change_to_aux_1_goes_unnoticed(sequence: int, seg: str) -> None:
    # Aux digit 1 has no check digits: any 18 digits starting with 1 are a notice number.
    # That is why the hub validates its own notices with aux_digits={3}.
    nav = notice_number(iuv_for(sequence, segregation_code=seg))
    undetected = []
    for wrong in substitutions(nav):
        try:
            validate_notice_number(wrong)
        except InvalidNoticeNumber:
            continue
        undetected.append(wrong)
    assert undetected == ["1" + nav[1:]]


def test_segregation_codes_of_centralised_services_are_refused_for_generation() -> None:
    for code in ("99", "98", "97", "96", "85", "81", "47"):
        with pytest.raises(InvalidIUV) as info:
            iuv_for(5, segregation_code=code)
        assert info.value.part == "segregation_code"
        assert "reserved" in str(info.value)
        iuv = iuv_for(5, segregation_code=code, allow_reserved=True)
        # ...but notices that carry them (issued by those services) are valid
        assert parse_notice_number("3" + iuv).segregation_code == code


@pytest.mark.parametrize("seg", ["1", "001", "ab", "1a", "", 1])
def test_iuv_for_rejects_malformed_segregation_codes(seg: object) -> None:
    with pytest.raises(InvalidIUV) as info:
        iuv_for(1, segregation_code=seg)  # type: ignore[arg-type]
    assert info.value.part == "segregation_code"


@pytest.mark.parametrize("sequence", [-1, IUV_BASE_MAX + 1])
def test_iuv_for_rejects_sequences_outside_13_digits(sequence: int) -> None:
    with pytest.raises(ValueError, match="13 digits"):
        iuv_for(sequence, segregation_code="01")


@pytest.mark.parametrize("sequence", [True, 1.0, "1"])
def test_iuv_for_needs_an_int(sequence: object) -> None:
    with pytest.raises(TypeError):
        iuv_for(sequence, segregation_code="01")  # type: ignore[arg-type]


def test_iuv_for_extremes() -> None:
    assert iuv_for(0, segregation_code="00")[:15] == "000000000000000"
    assert iuv_for(IUV_BASE_MAX, segregation_code="45")[:15] == "45" + "9" * 13


# -- aux digits 0, 1, 2 -----------------------------------------------------------------


@given(st.from_regex(r"[0-9]{15}", fullmatch=True))
def test_aux_2_round_trip_and_detection(base: str) -> None:
    nav = "2" + base + mod93_check_digits("2" + base)
    notice = parse_notice_number(nav)
    assert (notice.aux_digit, notice.segregation_code, notice.application_code) == (2, None, None)
    assert notice.iuv == nav[1:] and notice.iuv_base == base
    assert validate_iuv(notice.iuv, 2) == notice.iuv
    assert notice_number(notice.iuv, aux_digit=2) == nav
    for wrong in substitutions(nav):
        if wrong[0] == "1":
            continue  # becomes a valid aux-1 notice (no check digits)
        with pytest.raises(InvalidNoticeNumber):
            validate_notice_number(wrong)


@given(st.from_regex(r"[0-9]{2}", fullmatch=True), st.from_regex(r"[0-9]{13}", fullmatch=True))
def test_aux_0_round_trip_and_detection(app: str, base: str) -> None:
    nav = "0" + app + base + mod93_check_digits("0" + app + base)
    notice = parse_notice_number(nav)
    assert notice.application_code == app and notice.segregation_code is None
    assert notice.iuv == base + nav[-2:] and notice.iuv_base == base
    assert validate_iuv(notice.iuv, 0, application_code=app) == notice.iuv
    for wrong in substitutions(nav):
        if wrong[0] == "1":
            continue
        with pytest.raises(InvalidNoticeNumber):
            validate_notice_number(wrong)


@given(st.from_regex(r"[0-9]{17}", fullmatch=True))
def test_aux_1_has_no_check_digits(rest: str) -> None:
    notice = parse_notice_number("1" + rest)
    assert notice == Notice(1, None, None, rest, None)
    assert notice.iuv_base == rest
    assert validate_iuv(rest, 1) == rest
    with pytest.raises(InvalidNoticeNumber) as info:
        validate_notice_number("1" + rest, aux_digits=ONLY_AUX_3)
    assert info.value.part == "aux_digit"


def test_aux_0_iuv_needs_the_application_code() -> None:
    with pytest.raises(InvalidIUV) as info:
        validate_iuv("110000000000164", 0)
    assert info.value.part == "application_code"
    with pytest.raises(InvalidIUV) as info:
        validate_iuv("110000000000164", 0, application_code="02")
    assert info.value.part == "check_digits"


# -- error messages say which part is wrong ---------------------------------------------


@pytest.mark.parametrize(
    ("nav", "part", "words"),
    [
        ("30100000000000014", "length", "18 digits, got 17"),
        ("3010000000000001440", "length", "18 digits, got 19"),
        ("", "length", "got 0"),
        ("30100000000000014x", "characters", "digits 0-9"),
        ("30100000000000014 ", "characters", "digits 0-9"),
        ("3010000000000001４", "characters", "digits 0-9"),  # fullwidth 4
        ("30100000000000014²", "characters", "digits 0-9"),
        ("401000000000000144", "aux_digit", "aux digit 4"),
        ("901000000000000144", "aux_digit", "aux digit 9"),
        ("301000000000000145", "check_digits", "check digits are 45, expected 44"),
        ("301000000000000195", "check_digits", "expected 44"),
    ],
)
def test_invalid_notice_numbers_name_the_wrong_part(nav: str, part: str, words: str) -> None:
    with pytest.raises(InvalidNoticeNumber) as info:
        validate_notice_number(nav)
    assert info.value.part == part
    assert words in str(info.value)
    assert str(info.value).startswith("notice number: ")
    assert isinstance(info.value, ValueError)


def test_non_string_notice_number() -> None:
    with pytest.raises(InvalidNoticeNumber) as info:
        parse_notice_number(301000000000000144)  # type: ignore[arg-type]
    assert info.value.part == "characters"


@pytest.mark.parametrize(
    ("iuv", "aux", "part"),
    [
        ("0100000000000014", 3, "length"),
        ("010000000000001444", 3, "length"),
        ("0100000000000014a", 3, "characters"),
        ("01000000000000145", 3, "check_digits"),
        ("01000000000000144", 7, "aux_digit"),
    ],
)
def test_invalid_iuvs_name_the_wrong_part(iuv: str, aux: int, part: str) -> None:
    with pytest.raises(InvalidIUV) as info:
        validate_iuv(iuv, aux)
    assert info.value.part == part
    assert str(info.value).startswith("IUV: ")


def test_notice_number_refuses_a_bad_iuv() -> None:
    with pytest.raises(InvalidIUV):
        notice_number("01000000000000145")


# -- ISO 11649 creditor reference -------------------------------------------------------


@given(rf_bases)
def test_creditor_reference_round_trip(base: str) -> None:
    rf = creditor_reference(base)
    assert rf.startswith("RF") and rf.endswith(base)
    assert len(rf) <= 25
    assert 2 <= int(rf[2:4]) <= 98
    assert validate_creditor_reference(rf) == rf
    # letters count the same in either case
    assert creditor_reference(base.upper())[:4] == rf[:4]


@settings(max_examples=150)
@given(rf_bases)
def test_every_same_kind_substitution_in_a_creditor_reference_is_detected(base: str) -> None:
    rf = creditor_reference(base)
    for i in range(2, len(rf)):
        current = rf[i]
        if current.isdigit():
            others = [d for d in string.digits if d != current]
        else:
            others = [c for c in string.ascii_uppercase if c != current.upper()]
        for other in others:
            with pytest.raises(InvalidCreditorReference):
                validate_creditor_reference(rf[:i] + other + rf[i + 1 :])


def test_letter_digit_substitutions_are_detected_at_the_mod_97_rate() -> None:
    # A letter stands for two digits, so swapping a letter for a digit (or back) changes
    # the length of the converted number: mod 97 then misses about 1 change in 97.
    rng = random.Random(11649)
    alphabet = string.ascii_uppercase + string.digits
    detected = total = 0
    for _ in range(200):
        base = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 21)))
        rf = creditor_reference(base)
        for i in range(4, len(rf)):
            pool = string.ascii_uppercase if rf[i].isdigit() else string.digits
            for other in pool:
                total += 1
                try:
                    validate_creditor_reference(rf[:i] + other + rf[i + 1 :])
                except InvalidCreditorReference:
                    detected += 1
    assert total > 10_000
    assert detected / total > 0.97


@pytest.mark.parametrize(
    ("rf", "part"),
    [
        ("RF45", "length"),
        ("RF18" + "1" * 22, "length"),
        ("XX45w9", "prefix"),
        ("rf45w9", "prefix"),
        ("RF4xw9", "check_digits"),
        ("RF00w9", "check_digits"),
        ("RF01w9", "check_digits"),
        ("RF99w9", "check_digits"),
        ("RF46w9", "check_digits"),
        ("RF45w-9", "characters"),
        ("RF45 w9", "characters"),
        ("RF45wè", "characters"),
    ],
)
def test_invalid_creditor_references_name_the_wrong_part(rf: str, part: str) -> None:
    with pytest.raises(InvalidCreditorReference) as info:
        validate_creditor_reference(rf)
    assert info.value.part == part
    assert str(info.value).startswith("creditor reference: ")


@pytest.mark.parametrize("base", ["", "A" * 22, "AB-1", "à"])
def test_creditor_reference_rejects_bad_bases(base: str) -> None:
    with pytest.raises(InvalidCreditorReference):
        creditor_reference(base)


def test_zero_check_digits_would_pass_mod_97_but_are_refused() -> None:
    # ISO 11649 issues 02-98 only: for a reference whose generated check digits are 97,
    # "00" satisfies the modulus too and must still be refused.
    base = next(b for b in (f"{n}" for n in range(10_000)) if creditor_reference(b)[2:4] == "97")
    assert validate_creditor_reference(f"RF97{base}")
    with pytest.raises(InvalidCreditorReference, match="out of range"):
        validate_creditor_reference(f"RF00{base}")

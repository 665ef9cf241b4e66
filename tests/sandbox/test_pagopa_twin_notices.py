"""The Node/Checkout twins read notice numbers with their own code (issue 13), written from
the SACI §2; checked here against the SACI examples and compared with the connector's
``parse_notice_number`` on many generated numbers, so a bug in either shows as a
disagreement instead of being shared."""

from __future__ import annotations

import random

import pytest

from sportello.connectors.pagopa.errors import InvalidNoticeNumber
from sportello.connectors.pagopa.identifiers import parse_notice_number
from sportello.sandbox.pagopa.notices import BadNotice, check_digits, read_notice


def test_saci_examples() -> None:
    # SACI: 3 + segregation 01 + base 0000000000001 -> 3010000000000001 % 93 = 44
    assert check_digits("3010000000000001") == "44"
    notice = read_notice("301000000000000144")
    assert (notice.aux_digit, notice.segregation_code, notice.iuv) == (
        "3",
        "01",
        "01000000000000144",
    )
    assert read_notice("001110000000000164").iuv == "110000000000164"
    assert read_notice("112345678901234567").iuv == "12345678901234567"  # aux 1: no check


@pytest.mark.parametrize(
    "nav",
    [
        "301000000000000145",  # wrong check digits
        "30100000000000014",  # 17 digits
        "3010000000000001440",  # 19 digits
        "401000000000000144",  # aux digit 4 is not defined
        "30100000000000014٤",  # Arabic-Indic digit: not ASCII
        "3010000000000001 4",
        "",
    ],
)
def test_twin_refuses_what_the_saci_refuse(nav: str) -> None:
    with pytest.raises(BadNotice):
        read_notice(nav)


def _cases(count: int) -> list[str]:
    rng = random.Random(13)
    navs = []
    for _ in range(count):
        aux = rng.choice("0123456789")
        body = "".join(rng.choice("0123456789") for _ in range(15))
        good = aux + body + check_digits(aux + body)
        navs.append(good)
        navs.append(good[:16] + f"{(int(good[16:]) + rng.randint(1, 92)) % 100:02d}")
        navs.append(aux + body + f"{rng.randint(0, 99):02d}")  # right by chance, sometimes
        navs.append(good[: rng.randint(0, 17)])
        navs.append(good + rng.choice("0123456789"))
        navs.append(good.replace(good[rng.randint(0, 17)], rng.choice("a ²-"), 1))
    return navs


def _connector(nav: str) -> tuple[str, str, str | None] | None:
    try:
        theirs = parse_notice_number(nav)
    except InvalidNoticeNumber:
        return None
    return str(theirs.aux_digit), theirs.iuv, theirs.segregation_code


def _twin(nav: str) -> tuple[str, str, str | None] | None:
    try:
        ours = read_notice(nav)
    except BadNotice:
        return None
    return ours.aux_digit, ours.iuv, ours.segregation_code


def test_twin_and_connector_agree() -> None:
    cases = _cases(2000)
    accepted = [nav for nav in cases if _twin(nav) is not None]
    assert 1000 <= len(accepted) <= len(cases) - 1000  # both outcomes are exercised
    disagreements = [
        f"{nav!r}: twin {_twin(nav)}, connector {_connector(nav)}"
        for nav in cases
        if _twin(nav) != _connector(nav)
    ]
    assert disagreements == []

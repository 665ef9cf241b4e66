"""The twins compute fiscal-code check letters with their own code (issue 13: the INAD
twin used the connector's): the three sandbox copies (ANPR, App IO, the SPID IdP) are
checked against the Agenzia delle Entrate's rule (DM 12/03/1974, odd/even tables, sum
modulo 26) on known codes and compared with the connector's ``person_check_char`` on many
generated ones, so a bug in any of them shows as a disagreement."""

from __future__ import annotations

import random
import string

import pytest

from sportello.connectors.fiscal_code import person_check_char
from sportello.sandbox.anpr.population import fiscal_code_check_char as anpr_check
from sportello.sandbox.idp.identities import fiscal_code_check_char as idp_check
from sportello.sandbox.io.population import fiscal_code_check_char as io_check

TWINS = {"anpr/inad": anpr_check, "io": io_check, "idp": idp_check}


@pytest.mark.parametrize("twin", list(TWINS))
@pytest.mark.parametrize(
    "code",
    # well-known published examples (the usual test codes)
    ["RSSMRA80A01H501U", "MRTMTT25D09F205Z"],
)
def test_known_codes(twin: str, code: str) -> None:
    assert TWINS[twin](code[:15]) == code[15]


def test_twins_and_connector_agree() -> None:
    rng = random.Random(13)
    letters, digits = string.ascii_uppercase, "0123456789LMNPQRSTUV"
    shape = "AAAAAA00A00A000"
    disagreements = []
    for _ in range(3000):
        first15 = "".join(rng.choice(letters if c == "A" else digits) for c in shape)
        theirs = person_check_char(first15)
        for name, twin in TWINS.items():
            if twin(first15) != theirs:
                disagreements.append(f"{first15}: {name} {twin(first15)}, connector {theirs}")
    assert disagreements == []

"""The INAD connector against the INAD twin over real sockets, with PDND vouchers."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from send_stack import Stack

from sportello.connectors.fiscal_code import is_person_code
from sportello.connectors.inad import InadUnauthorized, NoDigitalDomicile


async def people(stack: Stack, kind: str) -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.inad_url}/__sandbox/population?kind={kind}") as r:
        found: list[dict[str, Any]] = (await r.json())["people"]
        return found


async def test_extract_with_and_without_domicile(stack: Stack) -> None:
    inad = stack.inad()
    with_domicile = (await people(stack, "with"))[0]
    without = (await people(stack, "without"))[0]
    assert is_person_code(with_domicile["fiscal_code"]) and is_person_code(without["fiscal_code"])
    found = await inad.extract(with_domicile["fiscal_code"], practical_reference="verbale-1")
    assert found.has_domicile
    active = [d["address"] for d in with_domicile["domiciles"] if d["to"] is None]
    assert found.addresses == active
    with pytest.raises(NoDigitalDomicile):
        await inad.extract(without["fiscal_code"], practical_reference="verbale-1")
    assert not await inad.has_domicile(without["fiscal_code"], practical_reference="verbale-1")


async def test_verify_uses_the_date(stack: Stack) -> None:
    inad = stack.inad()
    person = next(p for p in await people(stack, "ceased") if len(p["domiciles"]) == 2)
    old = person["domiciles"][0]
    code = person["fiscal_code"]
    assert await inad.verify(code, old["address"], since=date(2023, 12, 1), practical_reference="x")
    assert not await inad.verify(
        code, old["address"], since=date(2024, 6, 1), practical_reference="x"
    )


async def test_bulk_job_states_and_list(stack: Stack) -> None:
    inad = stack.inad()
    with_domicile = [p["fiscal_code"] for p in await people(stack, "with")][:3]
    without = [p["fiscal_code"] for p in await people(stack, "without")][:2]
    job = await inad.request_list(with_domicile + without, practical_reference="ruolo-2026")
    assert job.state == "PRESA_IN_CARICO"
    first = await inad.list_state(job.id)
    assert first.state in ("PRESA_IN_CARICO", "IN_ELABORAZIONE")
    result = await inad.extract_many(
        with_domicile + without, practical_reference="ruolo-2026", interval=0.05, max_wait=5
    )
    by_code = {r.codiceFiscale: r.has_domicile for r in result}
    assert by_code == {**dict.fromkeys(with_domicile, True), **dict.fromkeys(without, False)}


async def test_voucher_for_another_e_service_is_refused(stack: Stack) -> None:
    inad = stack.inad(purpose=stack.send_purpose)  # a SEND voucher at INAD
    person = (await people(stack, "with"))[0]
    with pytest.raises(InadUnauthorized):
        await inad.extract(person["fiscal_code"], practical_reference="x")


async def test_5xx_is_retried(stack: Stack) -> None:
    inad = stack.inad()
    person = (await people(stack, "with"))[0]
    async with stack.session.post(
        stack.inad_url + "/__sandbox/faults",
        json={"status": 503, "count": 2, "operations": ["recuperoDomicilioDigitale"]},
    ) as response:
        assert response.status == 201
    found = await inad.extract(person["fiscal_code"], practical_reference="x")
    assert found.has_domicile

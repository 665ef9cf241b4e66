"""The sandbox's ANPR e-services: answers shaped (and validated) as the official specs."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from sportello.connectors.anpr.services import SERVICES
from sportello.connectors.pdnd.modi import modi_audience
from sportello.sandbox.anpr.app import SERVICE_SEGMENTS, modi_audience_for
from sportello.sandbox.anpr.eservices import SERVICE_CODES, answer
from sportello.sandbox.anpr.population import Person, Population, generate

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "anpr"
SPEC_FILES = {
    "C030": "anprApiC030.openapi.yaml",
    "C003": "anprApiC003.openapi.yaml",
    "C021": "C021-servizioAccertamentoStatoFamiglia.yaml",
    "C001": "C001-servizioNotifica.yaml",
}
# Services without a public OpenAPI file answer in the shape of a published one.
BORROWED = {"C020": "C001", "C015": "C021", "C029": "C021", "C007": "C003"}
needs_specs = pytest.mark.skipif(
    not SPECS.is_dir(), reason=f"official ANPR specs not found at {SPECS}"
)


@cache
def population() -> Population:
    return generate(seed=11, size=400)


def sample() -> list[Person]:
    """Heads of households of every size, the deceased, people born abroad."""
    pop = population()
    chosen: dict[str, Person] = {}
    for size in range(1, 6):
        for household in [h for h in pop.households.values() if len(h.members) == size][:3]:
            for member in household.members:
                chosen[member.id_anpr] = member
    for person in pop.people:
        if person.date_of_death or person.birth_place.foreign:
            chosen.setdefault(person.id_anpr, person)
    return [p for p in chosen.values() if not p.cancelled]


def request(code: str, person: Person, **data: Any) -> dict[str, Any]:
    criteria = (
        {"codiceFiscale": person.fiscal_code} if code == "C030" else {"idANPR": person.id_anpr}
    )
    body: dict[str, Any] = {
        "idOperazioneClient": "1718000000000",
        "criteriRicerca": criteria,
        "datiRichiesta": {
            "dataRiferimentoRichiesta": "2026-01-10",
            "motivoRichiesta": "PROT.1",
            "casoUso": code,
            **data,
        },
    }
    if code == "C003":
        body["verifica"] = {
            "generalita": {
                "cognome": person.family_name,
                "nome": person.given_name,
                "sesso": person.sex,
                "dataNascita": person.birth_date.isoformat(),
                "codiceFiscale": {"codFiscale": person.fiscal_code},
            }
        }
    return body


@cache
def spec(code: str) -> Any:
    from openapi_core import Config, OpenAPI

    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    doc = yaml.safe_load((SPECS / SPEC_FILES[code]).read_text("utf-8"))
    return OpenAPI.from_dict(doc, config=config)


def validate(code: str, body: dict[str, Any], status: int, answered: dict[str, Any]) -> None:
    from openapi_core.testing import MockRequest, MockResponse

    spec_code = BORROWED.get(code, code)
    path = f"/govway/rest/in/MinInternoPortaANPR-PDND/{SERVICES[spec_code].e002_path}"
    mock_request = MockRequest(
        "https://modipa-val.anpr.interno.it",
        "post",
        path,
        data=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer x", "Agid-JWT-Signature": "x"},
    )
    content_type = "application/json" if status == 200 else "application/problem+json"
    mock_response = MockResponse(
        json.dumps(answered).encode(), status_code=status, content_type=content_type
    )
    spec(spec_code).validate_response(mock_request, mock_response)


@needs_specs
@pytest.mark.parametrize("code", SERVICE_CODES)
def test_answers_validate_against_the_official_specs(code: str) -> None:
    for person in sample():
        body = request(code, person)
        status, answered = answer(code, body, population())
        assert status == 200, answered
        validate(code, body, status, answered)


@needs_specs
@pytest.mark.parametrize("code", SERVICE_CODES)
def test_refusals_validate_against_the_official_specs(code: str) -> None:
    person = sample()[0]
    cases = [
        request(code, person, casoUso="C999"),
        request(code, person, motivoRichiesta=""),
        {**request(code, person), "criteriRicerca": {"idANPR": "ZZ00000ZZ"}}
        if code != "C030"
        else {**request(code, person), "criteriRicerca": {"codiceFiscale": "ZZZZZZ00A01H501K"}},
    ]
    for body in cases:
        status, answered = answer(code, body, population())
        assert status in (400, 404)
        validate(code, body, status, answered)


def _shape(value: Any) -> Any:
    """The keys of a JSON document, recursively (values dropped)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return None


def test_answers_carry_only_what_each_spec_declares() -> None:
    pop = population()
    head = next(h.head for h in pop.households.values() if len(h.members) >= 2)
    subjects = {
        code: answer(code, request(code, head), pop)[1]["listaSoggetti"]["datiSoggetto"]
        for code in SERVICE_CODES
    }
    assert _shape(subjects["C030"]) == [{"identificativi": {"idANPR": None}}]
    assert set(subjects["C021"][0]) == {"generalita", "identificativi", "legameSoggetto"}
    assert set(subjects["C001"][0]) == {"generalita", "residenza", "identificativi"}
    assert set(subjects["C020"][0]) == set(subjects["C001"][0])
    assert set(subjects["C015"][0]) == {"generalita", "identificativi"}
    assert set(subjects["C003"][0]) == {"infoSoggettoEnte"} == set(subjects["C007"][0])
    assert len(subjects["C021"]) == len(pop.household_of(head).members)


def test_c030_by_personal_data() -> None:
    pop = population()
    person = pop.active()[5]
    body = request("C030", person)
    body["criteriRicerca"] = {
        "cognome": person.family_name.lower(),
        "nome": person.given_name,
        "sesso": person.sex,
        "datiNascita": {"dataEvento": person.birth_date.isoformat()},
    }
    status, answered = answer("C030", body, pop)
    assert status == 200
    ids = [s["identificativi"]["idANPR"] for s in answered["listaSoggetti"]["datiSoggetto"]]
    assert person.id_anpr in ids
    body["criteriRicerca"] = {"cognome": person.family_name}
    status, answered = answer("C030", body, pop)
    assert status == 400 and answered["listaErrori"][0]["campoErroreAnomalia"] == "criteriRicerca"


def test_c003_reports_each_declared_field() -> None:
    pop = population()
    person = next(p for p in pop.active() if not p.birth_place.foreign)
    body = request("C003", person)
    body["verifica"]["generalita"] = {
        "cognome": person.family_name,
        "nome": "NOMESBAGLIATO",
        "luogoNascita": {"comune": {"codiceIstat": person.birth_place.istat_code}},
        "dataNascita": (person.birth_date + timedelta(days=1)).isoformat(),
    }
    status, answered = answer("C003", body, pop)
    assert status == 200
    (subject,) = answered["listaSoggetti"]["datiSoggetto"]
    verdicts = {i["chiave"]: i["valore"] for i in subject["infoSoggettoEnte"]}
    assert verdicts == {"cognome": "S", "nome": "N", "dataNascita": "N", "luogoNascita": "S"}
    del body["verifica"]
    status, answered = answer("C003", body, pop)
    assert status == 400 and answered["listaErrori"][0]["campoErroreAnomalia"] == "verifica"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dataRiferimentoRichiesta": "2026-02-30"}, "dataRiferimentoRichiesta"),
        ({"dataRiferimentoRichiesta": "10/01/2026"}, "dataRiferimentoRichiesta"),
        ({"motivoRichiesta": None}, "motivoRichiesta"),
    ],
)
def test_request_validation(change: dict[str, Any], field: str) -> None:
    status, answered = answer("C020", request("C020", sample()[0], **change), population())
    assert status == 400
    assert answered["listaErrori"][0]["campoErroreAnomalia"] == field
    assert answered["idOperazioneANPR"]


@pytest.mark.parametrize("payload", [[], "x", {"idOperazioneClient": "a-b"}])
def test_malformed_requests(payload: Any) -> None:
    status, answered = answer("C030", payload, population())
    assert status == 400 and answered["listaErrori"][0]["codiceErroreAnomalia"] == "SBX01"


def test_unknown_service() -> None:
    with pytest.raises(KeyError):
        answer("C099", {}, population())


def test_sandbox_and_client_agree_on_names_and_audiences() -> None:
    """The twin's routes and the client's paths, and both ModI audience rules, agree."""
    assert set(SERVICE_SEGMENTS) == set(SERVICES) == set(SERVICE_CODES)
    door = "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND"
    for code in SERVICE_CODES:
        assert SERVICE_SEGMENTS[code] == SERVICES[code].segment
        call = f"{door}/{SERVICES[code].e002_path}"
        assert modi_audience(call) == modi_audience_for(door.removesuffix("-PDND"), code)

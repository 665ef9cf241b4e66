"""ANPR client pieces without a network: wire models, conversions, error mapping."""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from pydantic import ValidationError

from sportello.clock import FakeClock
from sportello.connectors.anpr.client import AnprClient, person_from_subject, residence_from_wire
from sportello.connectors.anpr.errors import (
    AnprRejected,
    GatewayRejected,
    SubjectNotFound,
    TokenExpired,
)
from sportello.connectors.anpr.models import (
    RichiestaE002,
    RispostaE002OK,
    TipoCriteriRicercaE002,
    TipoDatiRichiestaE002,
    TipoDatiSoggettiEnte,
    TipoGeneralitaRichiesta,
    TipoResidenza,
    TipoVerificaE002,
)
from sportello.connectors.anpr.services import COLLAUDO_BASE_URL, SERVICES
from sportello.connectors.errors import (
    AuthError,
    BadRequest,
    NotFound,
    RateLimited,
    ServerError,
)
from sportello.connectors.pdnd.client import ModiCaller, PdndClient

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "anpr"
SPEC_FILES = {
    "C030": "anprApiC030.openapi.yaml",
    "C003": "anprApiC003.openapi.yaml",
    "C021": "C021-servizioAccertamentoStatoFamiglia.yaml",
    "C001": "C001-servizioNotifica.yaml",
}
needs_specs = pytest.mark.skipif(
    not SPECS.is_dir(), reason=f"official ANPR specs not found at {SPECS}"
)
FISCAL_CODE = "RSSMRA85T10A562S"


@pytest.fixture
async def client() -> AsyncIterator[AnprClient]:
    async with aiohttp.ClientSession() as session:
        pdnd = PdndClient(
            session,
            "http://127.0.0.1:9/token.oauth2",
            client_id="00000000-0000-4000-8000-000000000000",
            kid="k" * 43,
            private_key=lambda: b"",
            assertion_audience="auth.example/client-assertion",
        )
        yield AnprClient(
            session,
            COLLAUDO_BASE_URL,
            modi=ModiCaller(pdnd, audit_required=True),
            purposes={"C030": "p-30", "C020": "p-20"},
            clock=FakeClock(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),
        )


# --------------------------------------------------------------------------- wire models


def _request(**data: Any) -> RichiestaE002:
    return RichiestaE002(
        idOperazioneClient="1718000000000",
        criteriRicerca=TipoCriteriRicercaE002(codiceFiscale=FISCAL_CODE),
        datiRichiesta=TipoDatiRichiestaE002(
            **{
                "dataRiferimentoRichiesta": "2026-04-11",
                "motivoRichiesta": "PROT.12345",
                "casoUso": "C030",
                **data,
            }
        ),
    )


def test_request_wire_omits_unset_fields() -> None:
    assert _request().wire() == {
        "idOperazioneClient": "1718000000000",
        "criteriRicerca": {"codiceFiscale": FISCAL_CODE},
        "datiRichiesta": {
            "dataRiferimentoRichiesta": "2026-04-11",
            "motivoRichiesta": "PROT.12345",
            "casoUso": "C030",
        },
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"motivoRichiesta": ""},
        {"motivoRichiesta": "   "},
        {"casoUso": "CO30"},
        {"dataRiferimentoRichiesta": "11/04/2026"},
    ],
)
def test_request_refuses_bad_data(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        _request(**bad)


def test_request_refuses_unknown_fields_and_bad_operation_ids() -> None:
    with pytest.raises(ValidationError):
        TipoCriteriRicercaE002(codiceFiscale=FISCAL_CODE, nickname="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RichiestaE002(
            idOperazioneClient="op-1",
            criteriRicerca=TipoCriteriRicercaE002(idANPR="AB12345CD"),
            datiRichiesta=_request().datiRichiesta,
        )


def test_response_keeps_unknown_fields() -> None:
    answer = RispostaE002OK.model_validate(
        {
            "idOperazioneANPR": "1",
            "listaSoggetti": {
                "datiSoggetto": [{"identificativi": {"idANPR": "AB12345CD"}, "nuovo": {"x": 1}}]
            },
            "extra": True,
        }
    )
    assert answer.subjects[0].identificativi is not None
    assert answer.subjects[0].model_extra == {"nuovo": {"x": 1}}
    assert RispostaE002OK.model_validate({}).subjects == []


def test_person_from_a_full_subject() -> None:
    subject = TipoDatiSoggettiEnte.model_validate(
        {
            "identificativi": {"idANPR": "AB12345CD"},
            "generalita": {
                "codiceFiscale": {"codFiscale": FISCAL_CODE, "validitaCF": "1"},
                "cognome": "ROSSI",
                "nome": "MARIO",
                "sesso": "M",
                "dataNascita": "1985-12-10",
                "luogoNascita": {
                    "comune": {
                        "nomeComune": "SAN GIULIANO TERME",
                        "codiceIstat": "050031",
                        "siglaProvinciaIstat": "PI",
                    }
                },
            },
            "datiDecesso": {"dataEvento": "2025-03-01"},
        }
    )
    person = person_from_subject(subject)
    assert person.id_anpr == "AB12345CD" and person.fiscal_code == FISCAL_CODE
    assert person.birth_date == date(1985, 12, 10) and person.sex == "M"
    assert person.birth_place is not None and person.birth_place.istat_code == "050031"
    assert person.date_of_death == date(2025, 3, 1)
    assert FISCAL_CODE not in repr(person) and "ROSSI" not in repr(person)


def test_person_born_abroad_with_partial_date() -> None:
    subject = TipoDatiSoggettiEnte.model_validate(
        {
            "generalita": {
                "dataNascita": "1950-00-00",
                "senzaGiornoMese": "1",
                "sesso": "X",
                "luogoNascita": {
                    "localita": {
                        "descrizioneLocalita": "TIRANA",
                        "descrizioneStato": "ALBANIA",
                        "codiceStato": "201",
                    }
                },
            }
        }
    )
    person = person_from_subject(subject, fallback_id="ZZ99999ZZ")
    assert person.id_anpr == "ZZ99999ZZ" and person.birth_date is None and person.sex is None
    assert person.birth_place is not None and person.birth_place.foreign
    assert person.birth_place.country_code == "201"


def test_residences() -> None:
    italian = residence_from_wire(
        TipoResidenza.model_validate(
            {
                "tipoIndirizzo": "1",
                "indirizzo": {
                    "cap": "00100",
                    "comune": {"nomeComune": "ROMA", "codiceIstat": "058091"},
                    "toponimo": {"specie": "VIA", "denominazioneToponimo": "ROMA"},
                    "numeroCivico": {"numero": "12", "lettera": "A"},
                },
                "dataDecorrenzaResidenza": "2010-05-03",
            }
        )
    )
    assert italian is not None and italian.address == "VIA ROMA 12/A"
    assert italian.since == date(2010, 5, 3) and italian.istat_code == "058091"
    abroad = residence_from_wire(
        TipoResidenza.model_validate(
            {
                "localitaEstera": {
                    "indirizzoEstero": {
                        "cap": "75001",
                        "localita": {"descrizioneLocalita": "PARIGI", "codiceStato": "215"},
                        "toponimo": {"denominazione": "RUE DE RIVOLI", "numeroCivico": "5"},
                    }
                }
            }
        )
    )
    assert abroad is not None and abroad.address == "RUE DE RIVOLI 5"
    assert abroad.municipality == "PARIGI"
    assert residence_from_wire(TipoResidenza()) is None


# ------------------------------------------------------------------------ error mapping

_GOVWAY_400 = {
    "type": "https://govway.org/handling-errors/400/InteroperabilityInvalidRequest.html",
    "title": "InteroperabilityInvalidRequest",
    "status": 400,
    "detail": "Received request is not conform to the required interoperability profile",
    "govway_id": "6b1c5a40-0000-4000-8000-000000000001",
}


def _headers(**extra: str) -> dict[str, str]:
    return {"GovWay-Transaction-ID": "tx-1", **extra}


def _ko(*errors: tuple[str, str], valore: str | None = None) -> bytes:
    entries = []
    for code, kind in errors:
        entry = {
            "codiceErroreAnomalia": code,
            "tipoErroreAnomalia": kind,
            "testoErroreAnomalia": "t",
        }
        if valore:
            entry["valoreErroreAnomalia"] = valore
        entries.append(entry)
    return json.dumps({"idOperazioneANPR": "op-9", "listaErrori": entries}).encode()


async def test_en122_is_subject_not_found(client: AnprClient) -> None:
    error = client.error_for(404, _headers(), _ko(("EN122", "E"), ("EN148", "W")))
    assert isinstance(error, SubjectNotFound) and isinstance(error, NotFound)
    assert error.codes == ["EN122", "EN148"] and error.operation_id == "op-9"
    assert error.request_id == "tx-1" and not error.retryable


async def test_other_ko_is_anpr_rejected(client: AnprClient) -> None:
    error = client.error_for(400, _headers(), _ko(("EN148", "E"), valore=FISCAL_CODE))
    assert type(error) is AnprRejected and error.status == 400 and not error.retryable
    assert FISCAL_CODE not in str(error) and FISCAL_CODE not in repr(error)
    assert error.errors[0].valoreErroreAnomalia == FISCAL_CODE  # kept for diagnosis
    # A warning-only EN122 is not "not found".
    assert type(client.error_for(400, _headers(), _ko(("EN122", "W")))) is AnprRejected
    server = client.error_for(500, _headers(), _ko(("EN999", "E")))
    assert isinstance(server, AnprRejected) and server.retryable


async def test_govway_refusal_is_gateway_rejected(client: AnprClient) -> None:
    error = client.error_for(
        400,
        _headers(**{"GovWay-Transaction-ErrorType": "InteroperabilityInvalidRequest"}),
        json.dumps(_GOVWAY_400).encode(),
    )
    assert isinstance(error, GatewayRejected) and isinstance(error, BadRequest)
    assert error.govway_id == _GOVWAY_400["govway_id"] and error.request_id == "tx-1"
    assert error.title == "InteroperabilityInvalidRequest" and not error.retryable
    assert str(error.govway_id) in str(error)
    for status, title in ((404, "NotFound"), (409, "Conflict")):
        body = {**_GOVWAY_400, "status": status, "title": title}
        other = client.error_for(status, _headers(), json.dumps(body).encode())
        assert isinstance(other, GatewayRejected) and other.status == status
        assert other.title == title


async def test_token_expired(client: AnprClient) -> None:
    body = {**_GOVWAY_400, "status": 401, "title": "TokenExpired", "detail": "Token expired"}
    error = client.error_for(401, _headers(), json.dumps(body).encode())
    assert isinstance(error, TokenExpired) and isinstance(error, AuthError)
    assert error.retryable and error.govway_id == _GOVWAY_400["govway_id"]


async def test_govway_throttling_and_outages_stay_retryable(client: AnprClient) -> None:
    body = {**_GOVWAY_400, "status": 429, "title": "LimitExceeded"}
    limited = client.error_for(429, _headers(**{"Retry-After": "7"}), json.dumps(body).encode())
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    body = {**_GOVWAY_400, "status": 503, "title": "APIUnavailable"}
    down = client.error_for(503, _headers(), json.dumps(body).encode())
    assert isinstance(down, ServerError) and down.retryable
    assert isinstance(client.error_for(502, {}, b"<html>bad gateway</html>"), ServerError)


async def test_errors_survive_pickling(client: AnprClient) -> None:
    error = client.error_for(404, _headers(), _ko(("EN122", "E")))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is SubjectNotFound and copy.codes == ["EN122"] and copy.status == 404


# ------------------------------------------------------------------------- the client


async def test_today_is_the_italian_date(client: AnprClient) -> None:
    assert client.today() == date(2026, 7, 1)  # 23:30 UTC is already tomorrow in Rome


async def test_operation_ids_are_numeric_and_increasing(client: AnprClient) -> None:
    ids = [client._next_operation_id() for _ in range(5)]
    assert all(i.isdigit() for i in ids)
    assert [int(i) for i in ids] == sorted({int(i) for i in ids})


async def test_unknown_services_are_refused(client: AnprClient) -> None:
    with pytest.raises(ValueError, match="unknown ANPR services"):
        AnprClient(client.session, COLLAUDO_BASE_URL, modi=client.modi, purposes={"C999": "x"})
    other = AnprClient(
        client.session, COLLAUDO_BASE_URL, modi=client.modi, purposes={"c020": "p", "inad": "q"}
    )
    assert other.purposes == {"C020": "p"}  # other e-services' purposes are left alone
    with pytest.raises(ValueError, match="unknown ANPR e-service"):
        await client.e002(
            "C999",
            TipoCriteriRicercaE002(idANPR="AB12345CD"),
            purpose="P",
            audit=None,  # type: ignore[arg-type]
        )


def test_service_paths() -> None:
    assert SERVICES["C030"].e002_path == (
        "C030-servizioAccertamentoIdUnicoNazionale/v1/anpr-service-e002"
    )
    assert SERVICES["C021"].status_path == "C021-servizioAccertamentoStatoFamiglia/v1/status"
    assert {s.code for s in SERVICES.values() if s.spec} == set(SPEC_FILES)


@needs_specs
@pytest.mark.parametrize("code", sorted(SPEC_FILES))
def test_service_segments_match_the_official_server_urls(code: str) -> None:
    doc = yaml.safe_load((SPECS / SPEC_FILES[code]).read_text("utf-8"))
    urls = [server["url"] for server in doc["servers"]]
    assert doc["info"]["x-api-id"] == code
    for url in urls:
        assert url.endswith(f"/MinInternoPortaANPR-PDND/{SERVICES[code].segment}/v1")
    assert urls[0].startswith(COLLAUDO_BASE_URL)


@needs_specs
@pytest.mark.parametrize("code", sorted(SPEC_FILES))
def test_client_requests_validate_against_the_official_specs(code: str) -> None:
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest
    from openapi_core.validation.request.exceptions import InvalidRequestBody

    spec = OpenAPI.from_dict(yaml.safe_load((SPECS / SPEC_FILES[code]).read_text("utf-8")))
    criteria = (
        TipoCriteriRicercaE002(codiceFiscale=FISCAL_CODE)
        if code == "C030"
        else TipoCriteriRicercaE002(idANPR="AB12345CD")
    )
    verifica = (
        TipoVerificaE002(generalita=TipoGeneralitaRichiesta(cognome="ROSSI", sesso="M"))
        if code == "C003"
        else None
    )
    body = RichiestaE002(
        idOperazioneClient="1718000000000123",
        criteriRicerca=criteria,
        datiRichiesta=TipoDatiRichiestaE002(
            dataRiferimentoRichiesta="2026-04-11", motivoRichiesta="PROT.1", casoUso=code
        ),
        verifica=verifica,
    ).wire()
    request = MockRequest(
        "https://modipa-val.anpr.interno.it",
        "post",
        f"/govway/rest/in/MinInternoPortaANPR-PDND/{SERVICES[code].e002_path}",
        data=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer x", "Agid-JWT-Signature": "x"},
    )
    spec.validate_request(request)
    # And a body without motivoRichiesta is what the spec refuses.
    del body["datiRichiesta"]["motivoRichiesta"]  # type: ignore[attr-defined]
    broken = MockRequest(
        "https://modipa-val.anpr.interno.it",
        "post",
        f"/govway/rest/in/MinInternoPortaANPR-PDND/{SERVICES[code].e002_path}",
        data=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer x", "Agid-JWT-Signature": "x"},
    )
    with pytest.raises(InvalidRequestBody):
        spec.validate_request(broken)

"""The ANPR e-services behind the sandbox gateway: E002 requests in, ANPR answers out.

``answer(service, payload, population, ...)`` returns ``(status, body)``: 200 with a
``RispostaE002OK`` or 400/404 with a ``RispostaKO``, shaped as the official OpenAPI files
(C030, C003, C021, C001). For C020, C015, C029 and C007, whose files are not public,
the shapes are borrowed: C020 answers like C001 (``generalita`` + ``residenza``), C015
and C029 like C021 without ``legameSoggetto``, C007 like C003 (``infoSoggettoEnte``).

Behaviour reproduced from ANPR:

* ``casoUso`` must be the service code, else 400 ``EN148`` "Ente non abilitato o caso uso
  inesistente : <value>" (pagopa/pdnd-interop-frontend#96).
* No subject → **404** ``EN122`` "Soggetto non registrato in ANPR", or "Soggetto
  cancellato da ANPR" for a cancelled record (italia/anpr#4571, #4951, #4977).
* A search by anything other than idANPR on a service other than C030 gets the warning
  ``EN148`` (type ``W``) in ``listaAnomalie``, or in the KO next to EN122 (#4568, #4590).

Sandbox conventions (not documented by ANPR, marked ``SBX`` in error codes): request
validation errors (missing ``motivoRichiesta``, malformed dates...) are 400 RispostaKO with
code ``SBX01`` and ``campoErroreAnomalia`` naming the field. C003 answers one
``infoSoggettoEnte`` per declared field (``chiave`` = the field, ``valore`` S/N, A when
it cannot be compared); C007 answers ``chiave`` "esistenzaInVita" S/N (with the date of
death in ``valoreData``); C020 gives a death as ``chiave`` "dataDecesso".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from .population import Person, Population

__all__ = ["SERVICE_CODES", "KoError", "answer", "ko_body"]

SERVICE_CODES = ("C001", "C003", "C007", "C015", "C020", "C021", "C029", "C030")

_ID_OPERATION = re.compile(r"^[A-Za-z0-9]{1,50}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOT_FOUND_TEXT = "Soggetto non registrato in ANPR"
CANCELLED_TEXT = "Soggetto cancellato da ANPR"
EN148_USE_CASE = "Ente non abilitato o caso uso inesistente : {}"
EN148_WARNING = (
    "Il D.M. Ministero dell'Interno 3 marzo 2023 (art.3 comma 3) prevede l'accesso ad ANPR "
    "esclusivamente con identificativo unico nazionale (ID ANPR), si rappresenta pertanto "
    "l'urgenza di provvedere all'integrazione dei propri sistemi."
)


def _error(code: str, text: str, kind: str = "E", field: str | None = None) -> dict[str, str]:
    entry = {"codiceErroreAnomalia": code, "testoErroreAnomalia": text, "tipoErroreAnomalia": kind}
    if field:
        entry["campoErroreAnomalia"] = field
    return entry


def ko_body(operation_id: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {"listaErrori": errors, "idOperazioneANPR": operation_id}


class KoError(Exception):
    """An E002 request answered with a RispostaKO."""

    def __init__(self, status: int, errors: list[dict[str, str]]) -> None:
        super().__init__(errors[0]["codiceErroreAnomalia"])
        self.status = status
        self.errors = errors


def _invalid(field: str, text: str) -> KoError:
    return KoError(400, [_error("SBX01", text, field=field)])


# ---------------------------------------------------------------------------- wire parts


def _comune(name: str, istat: str | None, province: str | None) -> dict[str, str]:
    out = {"nomeComune": name}
    if istat:
        out["codiceIstat"] = istat
    if province:
        out["siglaProvinciaIstat"] = province
    return out


def _birth_place(person: Person) -> dict[str, Any]:
    place = person.birth_place
    if place.foreign:
        return {
            "localita": {
                "descrizioneLocalita": place.name,
                "descrizioneStato": place.country or "",
                "codiceStato": place.country_code or "",
            }
        }
    return {"comune": _comune(place.name, place.istat_code, place.province)}


def generalita(person: Person) -> dict[str, Any]:
    return {
        "codiceFiscale": {"codFiscale": person.fiscal_code, "validitaCF": "1"},
        "cognome": person.family_name,
        "nome": person.given_name,
        "sesso": person.sex,
        "dataNascita": person.birth_date.isoformat(),
        "luogoNascita": _birth_place(person),
        "idSchedaSoggettoANPR": person.household_id[1:] + f"{person.member_index:02d}",
    }


def residenza(person: Person) -> dict[str, Any]:
    address = person.address
    civic: dict[str, str] = {"numero": address.number}
    if address.letter:
        civic["lettera"] = address.letter
    comune = address.comune
    return {
        "tipoIndirizzo": "1",
        "indirizzo": {
            "cap": address.postal_code,
            "comune": _comune(comune.name, comune.istat_code, comune.province),
            "toponimo": {
                "specie": address.street_type,
                "denominazioneToponimo": address.street_name,
            },
            "numeroCivico": civic,
        },
        "dataDecorrenzaResidenza": person.residence_since.isoformat(),
    }


def legame(person: Person) -> dict[str, str]:
    return {
        "tipoLegame": "3",  # famiglia (not a convivenza)
        "codiceLegame": person.relationship_code,
        "progressivoComponente": str(person.member_index),
        "dataDecorrenza": person.residence_since.isoformat(),
        "dataDecorrenzaLegame": person.relationship_since.isoformat(),
    }


def _identificativi(person: Person) -> dict[str, str]:
    return {"idANPR": person.id_anpr}


def _dead_on(person: Person, day: date) -> bool:
    return person.date_of_death is not None and person.date_of_death <= day


# ------------------------------------------------------------------------ request parsing


def _parse(service: str, payload: Any) -> tuple[str, dict[str, Any], date, dict[str, Any]]:
    if not isinstance(payload, dict):
        raise _invalid("RichiestaE002", "Il corpo della richiesta non e' un oggetto JSON")
    operation = payload.get("idOperazioneClient")
    if not isinstance(operation, str) or not _ID_OPERATION.match(operation):
        raise _invalid("idOperazioneClient", "idOperazioneClient obbligatorio e alfanumerico")
    criteria = payload.get("criteriRicerca")
    if not isinstance(criteria, dict):
        raise _invalid("criteriRicerca", "criteriRicerca obbligatorio")
    data = payload.get("datiRichiesta")
    if not isinstance(data, dict):
        raise _invalid("datiRichiesta", "datiRichiesta obbligatorio")
    reason = data.get("motivoRichiesta")
    if not isinstance(reason, str) or not reason.strip():
        raise _invalid("motivoRichiesta", "motivoRichiesta obbligatorio")
    use_case = data.get("casoUso")
    if use_case != service:
        shown = use_case if isinstance(use_case, str) else ""
        raise KoError(400, [_error("EN148", EN148_USE_CASE.format(shown))])
    raw_date = data.get("dataRiferimentoRichiesta")
    if not isinstance(raw_date, str) or not _DATE.match(raw_date):
        raise _invalid(
            "dataRiferimentoRichiesta", "dataRiferimentoRichiesta nel formato AAAA-MM-GG"
        )
    try:
        reference = date.fromisoformat(raw_date)
    except ValueError:
        raise _invalid("dataRiferimentoRichiesta", "dataRiferimentoRichiesta non valida") from None
    return operation, criteria, reference, payload


def _text(value: Any) -> str | None:
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _find(
    service: str, criteria: dict[str, Any], population: Population
) -> tuple[list[Person], list[dict[str, str]]]:
    """The subjects matching the criteria, and the warnings the search earns."""
    warnings: list[dict[str, str]] = []
    id_anpr = _text(criteria.get("idANPR"))
    if id_anpr and service != "C030":
        found = population.by_id_anpr.get(id_anpr)
        return ([found] if found else []), warnings
    if service != "C030":
        warnings.append(_error("EN148", EN148_WARNING, "W"))
    fiscal_code = _text(criteria.get("codiceFiscale"))
    if fiscal_code:
        found = population.by_fiscal_code.get(fiscal_code)
        return ([found] if found else []), warnings
    surname, name, sex = (_text(criteria.get(k)) for k in ("cognome", "nome", "sesso"))
    birth = criteria.get("datiNascita")
    born = _text(birth.get("dataEvento")) if isinstance(birth, dict) else None
    if not (surname and name and born):
        raise _invalid(
            "criteriRicerca",
            "indicare codiceFiscale, idANPR oppure cognome, nome e datiNascita.dataEvento",
        )
    matches = [
        p
        for p in population.people
        if p.family_name == surname
        and p.given_name == name
        and p.birth_date.isoformat() == born
        and (sex is None or p.sex == sex)
    ]
    return matches, warnings


# ----------------------------------------------------------------------------- services


def _declared_checks(declared: dict[str, Any], person: Person) -> list[dict[str, str]]:
    checks: list[tuple[str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "A" if ok is None else ("S" if ok else "N")

    cf = declared.get("codiceFiscale")
    if isinstance(cf, dict) and "codFiscale" in cf:
        checks.append(("codiceFiscale", verdict(_text(cf["codFiscale"]) == person.fiscal_code)))
    for key, actual in (
        ("cognome", person.family_name),
        ("nome", person.given_name),
        ("sesso", person.sex),
        ("dataNascita", person.birth_date.isoformat()),
    ):
        if key in declared:
            checks.append((key, verdict(_text(declared[key]) == actual)))
    place = declared.get("luogoNascita")
    if isinstance(place, dict):
        comune = place.get("comune") if isinstance(place.get("comune"), dict) else None
        localita = place.get("localita") if isinstance(place.get("localita"), dict) else None
        ok: bool | None = None
        birth = person.birth_place
        if comune and _text(comune.get("codiceIstat")):
            ok = not birth.foreign and _text(comune.get("codiceIstat")) == birth.istat_code
        elif comune and _text(comune.get("nomeComune")):
            ok = not birth.foreign and _text(comune.get("nomeComune")) == birth.name
        elif localita and _text(localita.get("codiceStato")):
            ok = birth.foreign and _text(localita.get("codiceStato")) == birth.country_code
        checks.append(("luogoNascita", verdict(ok)))
    return [
        {"id": str(index), "chiave": key, "valore": value}
        for index, (key, value) in enumerate(checks, start=1)
    ]


def _subject(
    service: str,
    person: Person,
    payload: dict[str, Any],
    reference: date,
) -> list[dict[str, Any]]:
    dead = _dead_on(person, reference)
    if service == "C030":
        return [{"identificativi": _identificativi(person)}]
    if service in ("C001", "C020"):
        entry: dict[str, Any] = {
            "generalita": generalita(person),
            "residenza": [residenza(person)],
            "identificativi": _identificativi(person),
        }
        if dead and person.date_of_death is not None:
            entry["infoSoggettoEnte"] = [
                {"id": "1", "chiave": "dataDecesso", "valoreData": person.date_of_death.isoformat()}
            ]
        return [entry]
    if service in ("C015", "C029"):
        entry = {"generalita": generalita(person), "identificativi": _identificativi(person)}
        if dead and person.date_of_death is not None:
            entry["datiDecesso"] = {"dataEvento": person.date_of_death.isoformat()}
        return [entry]
    if service == "C021":
        raise AssertionError("C021 is answered by _family")
    if service == "C003":
        verification = payload.get("verifica")
        declared = verification.get("generalita") if isinstance(verification, dict) else None
        if not isinstance(declared, dict) or not declared:
            raise _invalid("verifica", "verifica.generalita obbligatorio per il caso d'uso C003")
        checks = _declared_checks(declared, person)
        if not checks:
            raise _invalid("verifica", "nessun dato dichiarato verificabile")
        return [{"infoSoggettoEnte": checks}]
    if service == "C007":
        item: dict[str, str] = {
            "id": "1",
            "chiave": "esistenzaInVita",
            "valore": "N" if dead else "S",
        }
        if dead and person.date_of_death is not None:
            item["valoreData"] = person.date_of_death.isoformat()
        return [{"infoSoggettoEnte": [item]}]
    raise KeyError(service)


def _family(person: Person, population: Population, reference: date) -> list[dict[str, Any]]:
    members = population.household_of(person).members
    out: list[dict[str, Any]] = []
    for member in members:
        if member.cancelled:
            continue
        entry: dict[str, Any] = {
            "generalita": generalita(member),
            "identificativi": _identificativi(member),
            "legameSoggetto": legame(member),
        }
        if _dead_on(member, reference) and member.date_of_death is not None:
            entry["datiDecesso"] = {"dataEvento": member.date_of_death.isoformat()}
        out.append(entry)
    return out


def answer(
    service: str,
    payload: Any,
    population: Population,
    *,
    new_operation_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for one E002 request to ``service``."""
    if service not in SERVICE_CODES:
        raise KeyError(service)
    operation_id = new_operation_id()
    warnings: list[dict[str, str]] = []
    try:
        _, criteria, reference, request = _parse(service, payload)
        found, warnings = _find(service, criteria, population)
        active = [p for p in found if not p.cancelled]
        if not active:
            text = CANCELLED_TEXT if found else NOT_FOUND_TEXT
            raise KoError(404, [_error("EN122", text), *warnings])
        subjects: list[dict[str, Any]] = []
        for person in active:
            if service == "C021":
                subjects.extend(_family(person, population, reference))
            else:
                subjects.extend(_subject(service, person, request, reference))
    except KoError as ko:
        return ko.status, ko_body(operation_id, ko.errors)
    body: dict[str, Any] = {
        "idOperazioneANPR": operation_id,
        "listaSoggetti": {"datiSoggetto": subjects},
    }
    if warnings:
        body["listaAnomalie"] = warnings
    return 200, body

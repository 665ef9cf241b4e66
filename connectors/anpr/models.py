"""ANPR E002 messages (wire models) and the hub-friendly results built from them.

Wire models keep the field names of the official OpenAPI files exactly (``RichiestaE002``,
``RispostaE002OK``, ``RispostaKO`` and their ``Tipo*`` parts in C030, C003, C021 and
C001). Response models accept fields they do not know, because ANPR adds fields between
versions and per service; request models refuse unknown fields, because we build them.

The typed results (``Person``, ``Residence``, ``FamilyMember``, ``DeclarationCheck``)
are what the hub works with. Their ``__repr__`` hides personal data so that a stray log
line or traceback does not leak it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "RELATIONSHIPS",
    "BirthPlace",
    "DeclarationCheck",
    "DeclaredData",
    "FamilyMember",
    "Person",
    "Residence",
    "RichiestaE002",
    "RispostaE002OK",
    "RispostaKO",
    "TipoCodiceFiscale",
    "TipoComune",
    "TipoCriteriRicercaE002",
    "TipoDatiEvento",
    "TipoDatiNascitaE000",
    "TipoDatiRichiestaE002",
    "TipoDatiSoggettiEnte",
    "TipoErroriAnomalia",
    "TipoGeneralita",
    "TipoIdentificativi",
    "TipoIndirizzo",
    "TipoInfoSoggettoEnte",
    "TipoLegameSoggettoCompleto",
    "TipoListaSoggetti",
    "TipoLocalita",
    "TipoLuogoEvento",
    "TipoNumeroCivico",
    "TipoResidenza",
    "TipoToponimo",
    "TipoVerificaE002",
    "is_fiscal_code_format",
    "is_id_anpr_format",
]

_FISCAL_CODE = re.compile(
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)
_PROVISIONAL_FISCAL_CODE = re.compile(r"^\d{11}$")
_ID_ANPR = re.compile(r"^[A-Z0-9]{9}$")


def is_fiscal_code_format(value: str) -> bool:
    """True for a 16-character personal fiscal code (omocodia allowed) or an 11-digit one.

    Only the format is checked, not the check character: ANPR is the authority on which
    codes exist, and provisional 11-digit codes are legitimate.
    """
    return bool(_FISCAL_CODE.match(value) or _PROVISIONAL_FISCAL_CODE.match(value))


def is_id_anpr_format(value: str) -> bool:
    """True for 9 upper-case alphanumeric characters (the idANPR shape, e.g. ``TK44563XB``)."""
    return bool(_ID_ANPR.match(value))


# ----------------------------------------------------------------------------- wire models


class _Response(BaseModel):
    """Base of the response parts: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TipoComune(_Response):
    nomeComune: str | None = None
    codiceIstat: str | None = None
    siglaProvinciaIstat: str | None = None
    descrizioneLocalita: str | None = None


class TipoLocalita(_Response):
    descrizioneLocalita: str | None = None
    descrizioneStato: str | None = None
    codiceStato: str | None = None
    provinciaContea: str | None = None


class TipoLuogoEvento(_Response):
    luogoEccezionale: str | None = None
    comune: TipoComune | None = None
    localita: TipoLocalita | None = None


class TipoCodiceFiscale(_Response):
    codFiscale: str | None = None
    validitaCF: str | None = None
    dataAttribuzioneValidita: str | None = None


class TipoIdSchedaSoggettoComune(_Response):
    idSchedaSoggettoComuneIstat: str | None = None
    idSchedaSoggetto: str | None = None


class TipoGeneralita(_Response):
    codiceFiscale: TipoCodiceFiscale | None = None
    cognome: str | None = None
    senzaCognome: str | None = None
    nome: str | None = None
    senzaNome: str | None = None
    sesso: str | None = None
    dataNascita: str | None = None
    senzaGiorno: str | None = None
    senzaGiornoMese: str | None = None
    luogoNascita: TipoLuogoEvento | None = None
    soggettoAIRE: str | None = None
    annoEspatrio: str | None = None
    idSchedaSoggettoComune: TipoIdSchedaSoggettoComune | None = None
    idSchedaSoggettoANPR: str | None = None
    note: str | None = None


class TipoIdentificativi(_Response):
    idANPR: str | None = None


class TipoInfoSoggettoEnte(_Response):
    id: str | None = None
    chiave: str | None = None
    valore: str | None = None  # A, N or S
    valoreTesto: str | None = None
    valoreData: str | None = None
    dettaglio: str | None = None


class TipoLegameSoggettoCompleto(_Response):
    tipoLegame: str | None = None
    dataDecorrenza: str | None = None
    codiceLegame: str | None = None
    progressivoComponente: str | None = None
    dataDecorrenzaLegame: str | None = None


class TipoToponimo(_Response):
    codSpecie: str | None = None
    specie: str | None = None
    specieFonte: str | None = None
    codToponimo: str | None = None
    denominazioneToponimo: str | None = None
    toponimoFonte: str | None = None


class TipoNumeroCivico(_Response):
    codiceCivico: str | None = None
    civicoFonte: str | None = None
    numero: str | None = None
    metrico: str | None = None
    progSNC: str | None = None
    lettera: str | None = None
    esponente1: str | None = None
    colore: str | None = None


class TipoIndirizzo(_Response):
    cap: str | None = None
    comune: TipoComune | None = None
    frazione: str | None = None
    toponimo: TipoToponimo | None = None
    numeroCivico: TipoNumeroCivico | None = None


class TipoResidenza(_Response):
    tipoIndirizzo: str | None = None
    noteIndirizzo: str | None = None
    indirizzo: TipoIndirizzo | None = None
    localitaEstera: dict[str, object] | None = None
    presso: str | None = None
    dataDecorrenzaResidenza: str | None = None


class TipoDatiEvento(_Response):
    dataEvento: str | None = None
    senzaGiorno: str | None = None
    senzaGiornoMese: str | None = None
    luogoEvento: TipoLuogoEvento | None = None


class TipoDatiSoggettiEnte(_Response):
    generalita: TipoGeneralita | None = None
    identificativi: TipoIdentificativi | None = None
    residenza: list[TipoResidenza] = Field(default_factory=list)
    legameSoggetto: TipoLegameSoggettoCompleto | None = None
    datiDecesso: TipoDatiEvento | None = None
    infoSoggettoEnte: list[TipoInfoSoggettoEnte] = Field(default_factory=list)


class TipoListaSoggetti(_Response):
    datiSoggetto: list[TipoDatiSoggettiEnte] = Field(default_factory=list)


class TipoErroriAnomalia(_Response):
    codiceErroreAnomalia: str | None = None
    tipoErroreAnomalia: str | None = None  # "E" error, "W" warning
    testoErroreAnomalia: str | None = None
    oggettoErroreAnomalia: str | None = None
    campoErroreAnomalia: str | None = None
    valoreErroreAnomalia: str | None = None


class RispostaE002OK(_Response):
    idOperazioneANPR: str | None = None
    listaSoggetti: TipoListaSoggetti | None = None
    listaAnomalie: list[TipoErroriAnomalia] = Field(default_factory=list)

    @property
    def subjects(self) -> list[TipoDatiSoggettiEnte]:
        return self.listaSoggetti.datiSoggetto if self.listaSoggetti else []


class RispostaKO(_Response):
    idOperazioneANPR: str | None = None
    listaErrori: list[TipoErroriAnomalia] = Field(default_factory=list)


# -- request side


class TipoComuneRichiesta(_Request):
    nomeComune: str | None = None
    codiceIstat: str | None = None
    siglaProvinciaIstat: str | None = None


class TipoLuogoRichiesta(_Request):
    comune: TipoComuneRichiesta | None = None


class TipoDatiNascitaE000(_Request):
    dataEvento: str | None = None
    senzaGiorno: str | None = None
    senzaGiornoMese: str | None = None
    luogoNascita: TipoLuogoRichiesta | None = None


class TipoCriteriRicercaE002(_Request):
    """Search criteria: ``codiceFiscale`` (C030), ``idANPR`` (the others) or personal data."""

    codiceFiscale: str | None = None
    idANPR: str | None = None
    cognome: str | None = None
    senzaCognome: str | None = None
    nome: str | None = None
    senzaNome: str | None = None
    sesso: str | None = None
    datiNascita: TipoDatiNascitaE000 | None = None


class TipoDatiRichiestaE002(_Request):
    dataRiferimentoRichiesta: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    motivoRichiesta: str = Field(min_length=1)
    casoUso: str = Field(pattern=r"^C\d{3}$")

    @field_validator("motivoRichiesta")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("motivoRichiesta must not be blank")
        return value


class TipoCodiceFiscaleRichiesta(_Request):
    codFiscale: str


class TipoGeneralitaRichiesta(_Request):
    """The declared data of a C003 check (a subset of ``TipoGeneralita``)."""

    codiceFiscale: TipoCodiceFiscaleRichiesta | None = None
    cognome: str | None = None
    nome: str | None = None
    sesso: str | None = None
    dataNascita: str | None = None
    luogoNascita: TipoLuogoRichiesta | None = None


class TipoVerificaE002(_Request):
    generalita: TipoGeneralitaRichiesta | None = None


class RichiestaE002(_Request):
    idOperazioneClient: str = Field(pattern=r"^[A-Za-z0-9]{1,50}$")
    criteriRicerca: TipoCriteriRicercaE002
    datiRichiesta: TipoDatiRichiestaE002
    verifica: TipoVerificaE002 | None = None

    def wire(self) -> dict[str, object]:
        """The JSON body: fields left unset are omitted, never sent as ``null``."""
        return self.model_dump(exclude_none=True)


# --------------------------------------------------------------------------- typed results

#: ANPR table 5, "relazioni di parentela" (the ``codiceLegame`` of a family member).
RELATIONSHIPS: Mapping[int, str] = MappingProxyType(
    {
        1: "Intestatario Scheda",
        2: "Marito/Moglie",
        3: "Figlio/Figlia",
        4: "Nipote (discendente)",
        5: "Pronipote (discendente)",
        6: "Padre/Madre",
        7: "Nonno/Nonna",
        8: "Bisnonno/Bisnonna",
        9: "Fratello/Sorella",
        10: "Nipote (collaterale)",
        11: "Zio/Zia (collaterale)",
        12: "Cugino/Cugina",
        13: "Altro Parente",
        14: "Figliastro/Figliastra",
        15: "Patrigno/Matrigna",
        16: "Genero/Nuora",
        17: "Suocero/Suocera",
        18: "Cognato/Cognata",
        19: "Fratellastro/Sorellastra",
        20: "Nipote (affine)",
        21: "Zio/Zia (affine)",
        22: "Altro (affine)",
        23: "Convivente (con vincoli di adozione o affettivi)",
        24: "Responsabile della convivenza non affettiva",
        25: "Convivente in convivenza non affettiva",
        26: "Tutore",
        28: "Unito civilmente",
        99: "Non definito/comunicato",
    }
)


@dataclass(frozen=True)
class BirthPlace:
    """Where a person was born: an Italian comune, or a place abroad (``country`` set)."""

    name: str | None
    istat_code: str | None = None
    province: str | None = None
    country: str | None = None
    country_code: str | None = None

    @property
    def foreign(self) -> bool:
        return self.country is not None or self.country_code is not None


@dataclass(frozen=True)
class Person:
    """A person as ANPR describes them. ``repr`` shows the idANPR only."""

    id_anpr: str
    fiscal_code: str | None = field(default=None, repr=False)
    family_name: str | None = field(default=None, repr=False)
    given_name: str | None = field(default=None, repr=False)
    sex: Literal["M", "F"] | None = field(default=None, repr=False)
    birth_date: date | None = field(default=None, repr=False)
    birth_place: BirthPlace | None = field(default=None, repr=False)
    date_of_death: date | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Residence:
    """One residence. ``address`` is the printable line (``VIA ROMA 12/A``)."""

    address: str = field(repr=False)
    municipality: str | None = None
    istat_code: str | None = None
    province: str | None = None
    since: date | None = None
    postal_code: str | None = None
    street_type: str | None = field(default=None, repr=False)
    street_name: str | None = field(default=None, repr=False)
    house_number: str | None = field(default=None, repr=False)
    kind: str | None = None  # tipoIndirizzo


@dataclass(frozen=True)
class FamilyMember:
    """A member of the household, with the ANPR relationship code (table 5)."""

    person: Person
    relationship_code: str | None
    relationship: str | None
    member_index: int | None = None
    since: date | None = None

    @property
    def is_head(self) -> bool:
        return self.relationship_code is not None and self.relationship_code.lstrip("0") == "1"


@dataclass(frozen=True)
class DeclaredData:
    """What a citizen declared (C003). Only the fields set are checked."""

    fiscal_code: str | None = field(default=None, repr=False)
    family_name: str | None = field(default=None, repr=False)
    given_name: str | None = field(default=None, repr=False)
    sex: Literal["M", "F"] | None = field(default=None, repr=False)
    birth_date: date | None = field(default=None, repr=False)
    birth_place_istat_code: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DeclarationCheck:
    """The outcome of a C003/C007 check.

    ``matches`` is True only when ANPR answered and every item checked came back "S".
    ``details`` maps each ``chiave`` to True ("S"), False ("N") or None ("A" or missing:
    not assessable). ``anomalies`` are the warning codes ANPR sent alongside.
    """

    matches: bool
    details: Mapping[str, bool | None] = field(default_factory=dict)
    operation_id: str | None = None
    anomalies: tuple[str, ...] = ()
    date_of_death: date | None = field(default=None, repr=False)

"""``AnprClient``: the ANPR e-services (E002) through PDND, with ModI audit on every call.

Every call is a ``POST <base_url>/<Cxxx-name>/v1/anpr-service-e002`` carrying a fresh PDND
voucher bound to its own ``Agid-JWT-TrackingEvidence`` (AUDIT_REST_02), a ``Digest`` and
an ``Agid-JWT-Signature`` (INTEGRITY_REST_02). The ``ModiCaller`` of the PDND connector
builds those headers; it is this connector's ``Signer``, so a retry is signed again (new
``jti``, ``iat`` and voucher) instead of replaying the old headers, which GovWay would
refuse with 409.

The body fills ``idOperazioneClient`` (numeric, increasing, unique per client),
``casoUso`` (the service code), ``dataRiferimentoRichiesta`` (today in Italy) and
``motivoRichiesta`` (the caller's file or protocol reference, mandatory).

Nothing here logs fiscal codes, idANPR values or any personal data: log lines carry the
service code, the ANPR operation id and anomaly codes only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import ValidationError

from ..base import BaseConnector, Response
from ..errors import ProtocolError, UpstreamError, error_from_response, request_id_from_headers
from ..pdnd.client import ModiCaller
from ..pdnd.modi import AuditContext
from ..retry import RetryPolicy, Sleep
from ..signing import OutgoingRequest
from .errors import (
    SUBJECT_NOT_FOUND_CODE,
    AnprError,
    AnprRejected,
    GatewayRejected,
    SubjectNotFound,
    TokenExpired,
)
from .models import (
    RELATIONSHIPS,
    BirthPlace,
    DeclarationCheck,
    DeclaredData,
    FamilyMember,
    Person,
    Residence,
    RichiestaE002,
    RispostaE002OK,
    RispostaKO,
    TipoCodiceFiscaleRichiesta,
    TipoComuneRichiesta,
    TipoCriteriRicercaE002,
    TipoDatiRichiestaE002,
    TipoDatiSoggettiEnte,
    TipoGeneralitaRichiesta,
    TipoInfoSoggettoEnte,
    TipoLuogoEvento,
    TipoLuogoRichiesta,
    TipoResidenza,
    TipoVerificaE002,
    is_fiscal_code_format,
    is_id_anpr_format,
)
from .services import SERVICES, AnprService

__all__ = ["ITALY", "AnprClient"]

log = logging.getLogger("sportello.connectors.anpr")


class Clock(Protocol):
    """What the client needs of a clock (the hub's ``sportello.clock.Clock`` is one; a
    connector imports nothing from the hub)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time, timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


#: ``dataRiferimentoRichiesta`` is a date in Italy, whatever the hub's clock zone.
ITALY = ZoneInfo("Europe/Rome")
_EVERY_STATUS = frozenset(range(100, 600))
_GOVWAY_TYPE = "https://govway.org/handling-errors/"
_MAX_PARSED_BYTES = 256 * 1024


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _birth_place(place: TipoLuogoEvento | None) -> BirthPlace | None:
    if place is None:
        return None
    if place.comune is not None and (place.comune.nomeComune or place.comune.codiceIstat):
        return BirthPlace(
            name=place.comune.nomeComune,
            istat_code=place.comune.codiceIstat,
            province=place.comune.siglaProvinciaIstat,
        )
    if place.localita is not None:
        return BirthPlace(
            name=place.localita.descrizioneLocalita,
            country=place.localita.descrizioneStato,
            country_code=place.localita.codiceStato,
        )
    if place.luogoEccezionale:
        return BirthPlace(name=place.luogoEccezionale)
    return None


def _death_from_info(info: list[TipoInfoSoggettoEnte]) -> date | None:
    for item in info:
        if item.valoreData and "decesso" in (item.chiave or "").lower():
            return _parse_date(item.valoreData)
    return None


def person_from_subject(subject: TipoDatiSoggettiEnte, fallback_id: str = "") -> Person:
    """A ``Person`` from one ``datiSoggetto`` entry (fields ANPR left out are ``None``)."""
    identifiers = subject.identificativi
    id_anpr = (identifiers.idANPR if identifiers else None) or fallback_id
    g = subject.generalita
    date_of_death = None
    if subject.datiDecesso is not None:
        date_of_death = _parse_date(subject.datiDecesso.dataEvento)
    date_of_death = date_of_death or _death_from_info(subject.infoSoggettoEnte)
    if g is None:
        return Person(id_anpr=id_anpr, date_of_death=date_of_death)
    sex: Literal["M", "F"] | None = None
    if g.sesso in ("M", "F"):
        sex = "M" if g.sesso == "M" else "F"
    return Person(
        id_anpr=id_anpr,
        fiscal_code=g.codiceFiscale.codFiscale if g.codiceFiscale else None,
        family_name=g.cognome,
        given_name=g.nome,
        sex=sex,
        birth_date=_parse_date(g.dataNascita),
        birth_place=_birth_place(g.luogoNascita),
        date_of_death=date_of_death,
    )


def residence_from_wire(item: TipoResidenza) -> Residence | None:
    """A ``Residence`` from one ``residenza`` entry (Italian address or address abroad)."""
    since = _parse_date(item.dataDecorrenzaResidenza)
    address = item.indirizzo
    if address is not None:
        toponym = address.toponimo
        civic = address.numeroCivico
        street_type = toponym.specie if toponym else None
        street_name = toponym.denominazioneToponimo if toponym else None
        number = civic.numero if civic else None
        if number and civic is not None and civic.lettera:
            number = f"{number}/{civic.lettera}"
        line = " ".join(part for part in (street_type, street_name, number) if part)
        comune = address.comune
        return Residence(
            address=line,
            municipality=comune.nomeComune if comune else None,
            istat_code=comune.codiceIstat if comune else None,
            province=comune.siglaProvinciaIstat if comune else None,
            since=since,
            postal_code=address.cap,
            street_type=street_type,
            street_name=street_name,
            house_number=number,
            kind=item.tipoIndirizzo,
        )
    abroad: Any = item.localitaEstera
    if isinstance(abroad, dict):
        foreign = abroad.get("indirizzoEstero") or {}
        place = foreign.get("localita") or {}
        street = foreign.get("toponimo") or {}
        line = " ".join(
            str(part) for part in (street.get("denominazione"), street.get("numeroCivico")) if part
        )
        return Residence(
            address=line,
            municipality=place.get("descrizioneLocalita"),
            province=place.get("provinciaContea"),
            since=since,
            postal_code=foreign.get("cap"),
            kind=item.tipoIndirizzo,
        )
    return None


def _relationship(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return RELATIONSHIPS.get(int(code))
    except ValueError:
        return None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _verdict(value: str | None) -> bool | None:
    return {"S": True, "N": False}.get(value or "")


class AnprClient(BaseConnector):
    """The ANPR e-services C030, C020, C021, C015/C029, C003, C007 (and C001 via ``e002``).

    ``base_url`` is the GovWay door, e.g. ``services.COLLAUDO_BASE_URL`` or the sandbox's
    ``http://127.0.0.1:8105/govway/rest/in/MinInternoPortaANPR-PDND``. ``purposes`` maps
    each service code to its PDND ``purposeId`` (one purpose per e-service). ``modi`` is the
    PDND connector's ``ModiCaller`` for the comune's client; its ModI audience must follow
    the ANPR rule (``modi_audience``, its default).
    """

    platform = "anpr"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        modi: ModiCaller,
        purposes: Mapping[str, str],
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        sleep: Sleep | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"signer": modi, "retry": retry, "timeout": timeout}
        if sleep is not None:
            kwargs["sleep"] = sleep
        super().__init__(session, base_url, **kwargs)
        # A tenant's purposes may include other e-services ("inad"...): only keys shaped
        # like an ANPR code are ANPR's, and those must be known (a typo fails loudly).
        anpr_keys = {k for k in purposes if re.fullmatch(r"[Cc]\d{3}", k)}
        unknown = sorted(k for k in anpr_keys if k.upper() not in SERVICES)
        if unknown:
            raise ValueError(f"purposes for unknown ANPR services: {', '.join(unknown)}")
        self.modi = modi
        self.purposes = {k.upper(): purposes[k] for k in anpr_keys}
        self.clock: Clock = clock or SystemClock()
        self._last_operation = 0

    def __repr__(self) -> str:
        return f"AnprClient(base_url={self.base_url!r}, services={sorted(self.purposes)})"

    # ------------------------------------------------------------------ the e-services

    async def id_anpr(
        self,
        fiscal_code: str,
        *,
        purpose: str,
        audit: AuditContext,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> str:
        """C030: the idANPR of the person with this fiscal code.

        ``SubjectNotFound`` when ANPR has no active record for it.
        """
        code = fiscal_code.strip().upper()
        if not is_fiscal_code_format(code):
            raise ValueError("not a fiscal code (expected 16 characters or 11 digits)")
        answer = await self.e002(
            "C030",
            TipoCriteriRicercaE002(codiceFiscale=code),
            purpose=purpose,
            audit=audit,
            reference_date=reference_date,
            operation_id=operation_id,
        )
        for subject in answer.subjects:
            if subject.identificativi and subject.identificativi.idANPR:
                return subject.identificativi.idANPR
        raise ProtocolError(
            "C030 answered 200 without an idANPR", platform=self.platform, status=200
        )

    async def residence(
        self,
        id_anpr: str,
        *,
        purpose: str,
        audit: AuditContext,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> list[Residence]:
        """C020: the residence(s) of the person on ``reference_date`` (default: today)."""
        answer = await self.e002(
            "C020",
            self._by_id(id_anpr),
            purpose=purpose,
            audit=audit,
            reference_date=reference_date,
            operation_id=operation_id,
        )
        residences: list[Residence] = []
        for subject in answer.subjects:
            for item in subject.residenza:
                parsed = residence_from_wire(item)
                if parsed is not None:
                    residences.append(parsed)
        return residences

    async def family(
        self,
        id_anpr: str,
        *,
        purpose: str,
        audit: AuditContext,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> list[FamilyMember]:
        """C021: every member of the person's household, the person included."""
        answer = await self.e002(
            "C021",
            self._by_id(id_anpr),
            purpose=purpose,
            audit=audit,
            reference_date=reference_date,
            operation_id=operation_id,
        )
        members: list[FamilyMember] = []
        for subject in answer.subjects:
            bond = subject.legameSoggetto
            code = bond.codiceLegame if bond else None
            members.append(
                FamilyMember(
                    person=person_from_subject(subject),
                    relationship_code=code,
                    relationship=_relationship(code),
                    member_index=_int_or_none(bond.progressivoComponente) if bond else None,
                    since=(
                        _parse_date(bond.dataDecorrenzaLegame or bond.dataDecorrenza)
                        if bond
                        else None
                    ),
                )
            )
        return members

    async def personal_data(
        self,
        id_anpr: str,
        *,
        purpose: str,
        audit: AuditContext,
        service: Literal["C015", "C029"] = "C015",
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> Person:
        """C015 (or C029): name, sex, birth date and place, fiscal code, date of death."""
        if service not in ("C015", "C029"):
            raise ValueError("personal data comes from C015 or C029")
        answer = await self.e002(
            service,
            self._by_id(id_anpr),
            purpose=purpose,
            audit=audit,
            reference_date=reference_date,
            operation_id=operation_id,
        )
        if not answer.subjects:
            raise ProtocolError(
                f"{service} answered 200 without a subject", platform=self.platform, status=200
            )
        return person_from_subject(answer.subjects[0], fallback_id=id_anpr)

    async def verify_declaration(
        self,
        id_anpr: str,
        declared: DeclaredData,
        *,
        purpose: str,
        audit: AuditContext,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> DeclarationCheck:
        """C003: does what the citizen declared match ANPR? Only the fields set are checked."""
        generalita = TipoGeneralitaRichiesta(
            codiceFiscale=(
                TipoCodiceFiscaleRichiesta(codFiscale=declared.fiscal_code.strip().upper())
                if declared.fiscal_code
                else None
            ),
            cognome=declared.family_name,
            nome=declared.given_name,
            sesso=declared.sex,
            dataNascita=declared.birth_date.isoformat() if declared.birth_date else None,
            luogoNascita=(
                TipoLuogoRichiesta(
                    comune=TipoComuneRichiesta(codiceIstat=declared.birth_place_istat_code)
                )
                if declared.birth_place_istat_code
                else None
            ),
        )
        if not generalita.model_dump(exclude_none=True):
            raise ValueError("declare at least one field to check")
        answer = await self.e002(
            "C003",
            self._by_id(id_anpr),
            purpose=purpose,
            audit=audit,
            verifica=TipoVerificaE002(generalita=generalita),
            reference_date=reference_date,
            operation_id=operation_id,
        )
        return self._check(answer)

    async def verify_alive(
        self,
        id_anpr: str,
        *,
        purpose: str,
        audit: AuditContext,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> DeclarationCheck:
        """C007: is the person alive (on ``reference_date``)? ``matches`` is the answer."""
        answer = await self.e002(
            "C007",
            self._by_id(id_anpr),
            purpose=purpose,
            audit=audit,
            reference_date=reference_date,
            operation_id=operation_id,
        )
        return self._check(answer)

    async def e002(
        self,
        service: str,
        criteria: TipoCriteriRicercaE002,
        *,
        purpose: str,
        audit: AuditContext,
        verifica: TipoVerificaE002 | None = None,
        reference_date: date | None = None,
        operation_id: str | None = None,
    ) -> RispostaE002OK:
        """One E002 call to any known e-service; the typed methods are built on it.

        Raises ``SubjectNotFound`` (EN122), ``AnprRejected`` (other RispostaKO),
        ``GatewayRejected`` (GovWay refused the ModI headers), ``TokenExpired`` and the
        shared connector errors (``TransportError``, ``RateLimited``, ``ServerError``...).
        """
        definition = self._service(service)
        if not isinstance(audit, AuditContext):
            raise TypeError("every ANPR call needs an AuditContext (AUDIT_REST_02)")
        purpose_id = self._purpose_for(definition)
        body = RichiestaE002(
            idOperazioneClient=operation_id or self._next_operation_id(),
            criteriRicerca=criteria,
            datiRichiesta=TipoDatiRichiestaE002(
                dataRiferimentoRichiesta=(reference_date or self.today()).isoformat(),
                motivoRichiesta=purpose,
                casoUso=definition.code,
            ),
            verifica=verifica,
        )
        with self.modi.scope(audit=audit, purpose_id=purpose_id):
            response = await self.request(
                "POST", definition.e002_path, json=body.wire(), expected=(200,)
            )
        answer = self._parse_ok(response)
        warnings = [a.codiceErroreAnomalia for a in answer.listaAnomalie if a.codiceErroreAnomalia]
        log.log(
            logging.INFO if warnings else logging.DEBUG,
            "anpr %s ok: idOperazioneANPR=%s subjects=%d anomalies=%s attempts=%d",
            definition.code,
            answer.idOperazioneANPR,
            len(answer.subjects),
            ",".join(warnings) or "-",
            response.attempts,
        )
        return answer

    async def status(self, service: str, *, audit: AuditContext | None = None) -> bool:
        """``GET /status`` of one e-service: True when it answers 200."""
        definition = self._service(service)
        purpose_id = self._purpose_for(definition)
        with self.modi.scope(audit=audit, purpose_id=purpose_id):
            response = await self.request("GET", definition.status_path, expected=(200,))
        return response.status == 200

    # ---------------------------------------------------------------------- helpers

    def today(self) -> date:
        """Today in Italy (``dataRiferimentoRichiesta``), from the injected clock."""
        now: datetime = self.clock.now()
        return now.astimezone(ITALY).date()

    def _next_operation_id(self) -> str:
        """A numeric, strictly increasing ``idOperazioneClient`` (ms timestamp x 1000)."""
        candidate = int(self.clock.now().timestamp() * 1000) * 1000
        self._last_operation = max(self._last_operation + 1, candidate)
        return str(self._last_operation)

    def _service(self, code: str) -> AnprService:
        try:
            return SERVICES[code]
        except KeyError:
            raise ValueError(f"unknown ANPR e-service {code!r}") from None

    def _purpose_for(self, definition: AnprService) -> str:
        purpose_id = self.purposes.get(definition.code)
        if not purpose_id:
            raise AnprError(
                f"no PDND purposeId configured for {definition.code} "
                f"({definition.segment}): add it to the tenant's pdnd.purposes",
                platform=self.platform,
                retryable=False,
            )
        return purpose_id

    @staticmethod
    def _by_id(id_anpr: str) -> TipoCriteriRicercaE002:
        value = id_anpr.strip().upper()
        if not is_id_anpr_format(value):
            raise ValueError("not an idANPR (expected 9 letters and digits)")
        return TipoCriteriRicercaE002(idANPR=value)

    @staticmethod
    def _check(answer: RispostaE002OK) -> DeclarationCheck:
        details: dict[str, bool | None] = {}
        died: date | None = None
        for subject in answer.subjects:
            for index, item in enumerate(subject.infoSoggettoEnte):
                key = item.chiave or item.id or str(index)
                details[key] = _verdict(item.valore)
                if item.valoreData and died is None:
                    died = _parse_date(item.valoreData)
        return DeclarationCheck(
            matches=bool(details) and all(v is True for v in details.values()),
            details=details,
            operation_id=answer.idOperazioneANPR,
            anomalies=tuple(
                a.codiceErroreAnomalia for a in answer.listaAnomalie if a.codiceErroreAnomalia
            ),
            date_of_death=died,
        )

    def _parse_ok(self, response: Response) -> RispostaE002OK:
        data = response.json()
        try:
            return RispostaE002OK.model_validate(data)
        except ValidationError as exc:
            # The pydantic message can quote values (personal data): only its count goes out.
            raise ProtocolError(
                f"ANPR answer does not match RispostaE002OK ({exc.error_count()} problems)",
                platform=self.platform,
                status=response.status,
                request_id=response.request_id,
            ) from None

    # ------------------------------------------------------------- error mapping

    async def _send(
        self, outgoing: OutgoingRequest, expected: frozenset[int], time_limit: float
    ) -> Response:
        """One attempt; ANPR and GovWay answers are mapped inside the attempt, so the retry
        policy sees the typed errors (``TokenExpired`` and 5xx ``AnprRejected`` retry)."""
        response = await super()._send(outgoing, _EVERY_STATUS, time_limit)
        if response.status in expected:
            return response
        raise self.error_for(response.status, response.headers, response.body)

    def error_for(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """The typed error for an ANPR or GovWay answer with an unexpected status."""
        request_id = request_id_from_headers(headers)
        text = body[:_MAX_PARSED_BYTES].decode("utf-8", errors="replace")
        try:
            document = json.loads(text) if text else None
        except ValueError:
            document = None
        common: dict[str, Any] = {
            "platform": self.platform,
            "status": status,
            "request_id": request_id,
            "body": text or None,
        }
        if isinstance(document, dict) and "listaErrori" in document:
            return self._ko_error(document, common)
        is_govway = isinstance(document, dict) and (
            "govway_id" in document or str(document.get("type", "")).startswith(_GOVWAY_TYPE)
        )
        if is_govway and isinstance(document, dict) and status < 500 and status != 429:
            title = str(document.get("title") or "") or None
            govway_id = document.get("govway_id")
            govway_id = str(govway_id) if govway_id is not None else None
            if status == 401 and title == "TokenExpired":
                return TokenExpired(
                    "GovWay: the PDND voucher has expired", govway_id=govway_id, **common
                )
            detail = str(document.get("detail") or title or "refused")[:200]
            return GatewayRejected(
                f"GovWay refused the call: {title or 'error'}: {detail}"
                + (f" (govway_id {govway_id})" if govway_id else ""),
                govway_id=govway_id,
                title=title,
                **common,
            )
        return error_from_response(self.platform, status, headers, body)

    @staticmethod
    def _ko_error(document: dict[str, Any], common: dict[str, Any]) -> UpstreamError:
        try:
            ko = RispostaKO.model_validate(document)
        except ValidationError:
            ko = RispostaKO()
        blocking = [e for e in ko.listaErrori if (e.tipoErroreAnomalia or "E") != "W"]
        codes = ", ".join(
            f"{e.codiceErroreAnomalia}({e.tipoErroreAnomalia or '?'})" for e in ko.listaErrori
        )
        if any(e.codiceErroreAnomalia == SUBJECT_NOT_FOUND_CODE for e in blocking):
            return SubjectNotFound(
                f"ANPR has no active record for the subject ({codes})",
                errors=ko.listaErrori,
                operation_id=ko.idOperazioneANPR,
                **common,
            )
        return AnprRejected(
            f"ANPR refused the request: {codes or 'no error list'}",
            errors=ko.listaErrori,
            operation_id=ko.idOperazioneANPR,
            **common,
        )

"""The ANPR e-services on PDND that the client knows, with their URL path segments.

Each e-service lives at ``<base>/<Cxxx-name>/v1`` under the GovWay "PDND" door
(``https://modipa[-val].anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND``) and
answers ``POST /anpr-service-e002`` and ``GET /status``. ``source`` says where the path
segment was confirmed; README.md has the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "COLLAUDO_BASE_URL",
    "E002_PATH",
    "PRODUZIONE_BASE_URL",
    "SERVICES",
    "AnprService",
    "service",
]

#: The GovWay "PDND" door of ANPR (Collaudo uses a private Sogei CA).
COLLAUDO_BASE_URL = "https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND"
PRODUZIONE_BASE_URL = "https://modipa.anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND"
E002_PATH = "anpr-service-e002"


@dataclass(frozen=True)
class AnprService:
    code: str
    segment: str  # the path segment, e.g. "C030-servizioAccertamentoIdUnicoNazionale"
    title: str
    source: str  # where the segment was confirmed
    spec: bool  # an official OpenAPI file exists in shared/specs/anpr

    @property
    def e002_path(self) -> str:
        return f"{self.segment}/v1/{E002_PATH}"

    @property
    def status_path(self) -> str:
        return f"{self.segment}/v1/status"


_SPEC = "server URL of the official OpenAPI file"
_THIRD_PARTY = "call URLs in third-party integrations and the PDND catalogue name"

SERVICES: Mapping[str, AnprService] = MappingProxyType(
    {
        s.code: s
        for s in (
            AnprService(
                "C001",
                # The official file writes an EN DASH (U+2013) here, as does the PDND
                # catalogue name "C001–servizioNotifica-approvazione_automatica".
                "C001\u2013servizioNotifica",
                "notifica (dati anagrafici e residenza per notificare un atto)",
                _SPEC,
                True,
            ),
            AnprService(
                "C003",
                "C003-servizioVerificaDichGeneralita",
                "verifica dichiarazione di generalità",
                _SPEC,
                True,
            ),
            AnprService(
                "C007",
                "C007-servizioVerificaDichEsistenzaVita",
                "verifica dichiarazione di esistenza in vita",
                _THIRD_PARTY,
                False,
            ),
            AnprService(
                "C015",
                "C015-servizioAccertamentoGeneralita",
                "accertamento generalità",
                _THIRD_PARTY,
                False,
            ),
            AnprService(
                "C020",
                "C020-servizioAccertamentoResidenza",
                "accertamento residenza",
                _THIRD_PARTY,
                False,
            ),
            AnprService(
                "C021",
                "C021-servizioAccertamentoStatoFamiglia",
                "accertamento stato di famiglia",
                _SPEC,
                True,
            ),
            AnprService(
                "C029",
                "C029-servizioAccertamentoDatiAnagrafici",
                "accertamento dati anagrafici",
                "PDND catalogue name only (no call URL seen)",
                False,
            ),
            AnprService(
                "C030",
                "C030-servizioAccertamentoIdUnicoNazionale",
                "accertamento id unico nazionale (codice fiscale -> idANPR)",
                _SPEC,
                True,
            ),
        )
    }
)


def service(code: str) -> AnprService:
    """The e-service for ``code`` (``"C030"``...); ``KeyError`` when unknown."""
    try:
        return SERVICES[code]
    except KeyError:
        raise KeyError(f"unknown ANPR e-service {code!r}; known: {', '.join(SERVICES)}") from None

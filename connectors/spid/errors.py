"""Why a SAML message was refused.

The ACS maps :class:`ResponseRejected` to a 4xx page; :class:`SpidAnomaly` carries the SPID
anomaly code (19-25) whose prescribed message the user must see (still with a 4xx status).
``reason`` is for logs and for the refusal page: it never contains assertion contents,
names or fiscal codes.
"""

from __future__ import annotations

from typing import ClassVar


class SamlError(Exception):
    """Base of every SPID/CIE protocol error."""


class SamlConfigError(SamlError):
    """The tenant's SP settings or an IdP's metadata cannot be used (bad key, no SSO URL...)."""


class ResponseRejected(SamlError):
    """A Response (or LogoutRequest/LogoutResponse) failed a check.

    ``check`` is a short stable identifier of the rule (e.g. ``"destination"``,
    ``"in_response_to"``, ``"signature"``, ``"audience"``) that tests assert on.
    """

    def __init__(self, check: str, reason: str, status: int = 403) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason
        self.status = status


class SpidAnomaly(ResponseRejected):
    """The IdP answered with a SPID anomaly (``ErrorCode nr19`` ... ``nr25``)."""

    MESSAGES: ClassVar[dict[int, str]] = {
        19: "Autenticazione fallita per ripetuta sottomissione di credenziali errate "
        "(superato il numero di tentativi secondo le policy adottate).",
        20: "L'utente non dispone di credenziali compatibili con il livello richiesto "
        "dal fornitore del servizio.",
        21: "Tempo scaduto: la sessione di autenticazione è scaduta. Riprovare.",
        22: "L'utente ha negato il consenso all'invio dei dati al fornitore del servizio.",
        23: "L'identità SPID dell'utente è sospesa o revocata, oppure le credenziali sono "
        "bloccate.",
        25: "Processo di autenticazione annullato dall'utente.",
    }

    def __init__(self, code: int) -> None:
        super().__init__("anomaly", f"IdP anomaly ErrorCode nr{code}", status=403)
        self.code = code

    @property
    def message(self) -> str:
        return self.MESSAGES.get(self.code, "Autenticazione non riuscita.")

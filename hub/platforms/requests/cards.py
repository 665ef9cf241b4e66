"""Service cards (what a card is: its steps and fields) and the two built-in ones: the
certificate request and the change of residence declaration, with the exemptions from the
stamp duty a certificate request may claim.

Exemptions (imposta di bollo, DPR 642/1972, Tabella Allegato B, and special laws): the
citizen states the use under their own responsibility and the certificate carries it; the
list holds the common cases of the registry office, each with its norm."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sportello.adapters.registry.base import CERTIFICATE_KINDS
from sportello.config import ConfigModel as _Model

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
FieldKind = Literal["text", "textarea", "date", "email", "tel", "choice", "people"]
Handler = Literal["generic", "certificate", "residence"]


class CardField(_Model):
    """One field of a step. ``prefill``: ``identity.<attribute>`` (the SPID/CIE login's:
    ``name``, ``family_name``, ``email``, ``phone``, ``fiscal_code``...) or
    ``registry.<field>`` (the comune's registry record). A field prefilled from the fiscal
    code of the login is fixed: the citizen cannot change it."""

    name: Slug
    label: Annotated[str, Field(min_length=1, max_length=200)]
    kind: FieldKind = "text"
    required: bool = True
    choices: list[tuple[str, str]] = Field(default_factory=list, description="(value, label)")
    prefill: Annotated[str, Field(pattern=r"^(identity|registry)\.[a-z_]{1,40}$")] | None = None
    max_length: Annotated[int, Field(ge=1, le=2000)] = 200
    hint: str | None = None

    @model_validator(mode="after")
    def _choices(self) -> CardField:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"field {self.name}: a choice needs choices")
        return self

    @property
    def fixed(self) -> bool:
        return self.prefill == "identity.fiscal_code"


class CardStep(_Model):
    title: Annotated[str, Field(min_length=1, max_length=80)]
    fields: list[CardField] = Field(min_length=1)


class ServiceCard(_Model):
    """A service a citizen can request online."""

    id: Slug
    title: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    office: Annotated[str, Field(min_length=1, max_length=120)] = "Ufficio anagrafe"
    deadline_days: Annotated[int, Field(ge=1, le=365)] = 30
    #: what the service costs, for the card only (a fee the back office asks for later)
    fee: str | None = None
    handler: Handler = "generic"
    steps: list[CardStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ServiceCard:
        names = [f.name for s in self.steps for f in s.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"card {self.id}: field(s) {', '.join(dupes)} appear twice")
        return self

    def field(self, name: str) -> CardField | None:
        return next((f for s in self.steps for f in s.fields if f.name == name), None)


#: "bollo": the certificate is issued with the stamp duty, paid through pagoPA
STAMPED = "bollo"
#: use -> (label, norm): what the certificate shows and the page lists
EXEMPTIONS: dict[str, tuple[str, str]] = {
    "elettorale": ("Uso elettorale", "DPR 642/1972, Tabella B, art. 1"),
    "penale": ("Procedimento penale", "DPR 642/1972, Tabella B, art. 3"),
    "pensione": (
        "Pensione, assegni familiari, assicurazioni sociali obbligatorie",
        "DPR 642/1972, Tabella B, art. 9",
    ),
    "scuola": ("Iscrizione scolastica, borse di studio", "DPR 642/1972, Tabella B, art. 11"),
    "lavoro": (
        "Controversie di lavoro, pubblico impiego, pensioni (processo civile)",
        "DPR 642/1972, Tabella B, art. 12",
    ),
    "minori": (
        "Adozione, affidamento e tutela dei minori",
        "DPR 642/1972, Tabella B, art. 13; legge 184/1983, art. 82",
    ),
    "divorzio": ("Separazione e divorzio", "legge 74/1987, art. 19"),
    "onlus": (
        "Richiesto da una ONLUS o da una federazione sportiva riconosciuta dal CONI",
        "DPR 642/1972, Tabella B, art. 27-bis",
    ),
}


def use_label(use: str) -> str:
    if use == STAMPED:
        return "In bollo (imposta di bollo da 16,00 euro, pagata con pagoPA)"
    label, norm = EXEMPTIONS.get(use, (use, ""))
    return f"Esente da bollo: {label} ({norm})" if norm else label


CERTIFICATE = ServiceCard(
    id="certificato",
    title="Richiesta di certificato anagrafico",
    description=(
        "Chiedi online un certificato di residenza, di stato di famiglia o contestuale. "
        "Il certificato è in bollo (16,00 euro, da pagare con pagoPA) salvo i casi di "
        "esenzione previsti dalla legge; lo scarichi da qui appena è pagato o esente. "
        "Verso le pubbliche amministrazioni vale l'autocertificazione (DPR 445/2000, art. 40)."
    ),
    office="Ufficio anagrafe",
    deadline_days=3,
    handler="certificate",
    steps=[
        CardStep(
            title="Certificato",
            fields=[
                CardField(
                    name="kind",
                    label="Quale certificato ti serve?",
                    kind="choice",
                    choices=list(CERTIFICATE_KINDS.items()),
                ),
                CardField(
                    name="use",
                    label="Uso del certificato",
                    kind="choice",
                    choices=[(STAMPED, use_label(STAMPED))]
                    + [(k, use_label(k)) for k in EXEMPTIONS],
                    hint="Dichiari l'uso sotto la tua responsabilità: il certificato lo riporta.",
                ),
            ],
        ),
        CardStep(
            title="I tuoi dati",
            fields=[
                CardField(name="given_name", label="Nome", prefill="identity.name"),
                CardField(name="family_name", label="Cognome", prefill="identity.family_name"),
                CardField(
                    name="fiscal_code", label="Codice fiscale", prefill="identity.fiscal_code"
                ),
                CardField(
                    name="email",
                    label="E-mail",
                    kind="email",
                    required=False,
                    prefill="registry.email",
                ),
            ],
        ),
    ],
)

OCCUPANCY = [
    ("proprietario", "Proprietario"),
    ("locazione", "Intestatario di un contratto di locazione"),
    ("comodato", "Comodato d'uso"),
    ("usufrutto", "Usufruttuario"),
    ("altro", "Altro titolo (specifica nei dettagli)"),
]

RESIDENCE = ServiceCard(
    id="residenza",
    title="Dichiarazione di cambio di residenza",
    description=(
        "Dichiara il trasferimento della tua residenza in questo comune o il cambio di "
        "indirizzo al suo interno, con le persone che si trasferiscono con te. L'ufficio "
        "anagrafe registra la dichiarazione entro 2 giorni lavorativi e conclude gli "
        "accertamenti entro 45 giorni (DPR 223/1989, art. 18-bis; DL 5/2012, art. 5)."
    ),
    office="Ufficio anagrafe",
    deadline_days=45,
    handler="residence",
    steps=[
        CardStep(
            title="Chi dichiara",
            fields=[
                CardField(name="given_name", label="Nome", prefill="identity.name"),
                CardField(name="family_name", label="Cognome", prefill="identity.family_name"),
                CardField(
                    name="fiscal_code", label="Codice fiscale", prefill="identity.fiscal_code"
                ),
                CardField(
                    name="birth_date",
                    label="Data di nascita",
                    kind="date",
                    prefill="registry.birth_date",
                ),
                CardField(
                    name="birth_place", label="Luogo di nascita", prefill="registry.birth_place"
                ),
                CardField(name="email", label="E-mail", kind="email", prefill="identity.email"),
                CardField(
                    name="phone",
                    label="Telefono",
                    kind="tel",
                    required=False,
                    prefill="identity.phone",
                ),
            ],
        ),
        CardStep(
            title="Nuova abitazione",
            fields=[
                CardField(
                    name="origin",
                    label="Da dove ti trasferisci?",
                    kind="choice",
                    choices=[
                        ("same_comune", "Da un altro indirizzo di questo comune"),
                        ("other_comune", "Da un altro comune italiano"),
                        ("abroad", "Dall'estero"),
                    ],
                ),
                CardField(
                    name="previous_comune",
                    label="Comune o Stato di provenienza",
                    required=False,
                    hint="Obbligatorio se arrivi da un altro comune o dall'estero.",
                ),
                CardField(name="street", label="Via o piazza", max_length=120),
                CardField(name="number", label="Numero civico", max_length=10),
                CardField(name="staircase", label="Scala", required=False, max_length=10),
                CardField(name="floor", label="Piano", required=False, max_length=10),
                CardField(name="apartment", label="Interno", required=False, max_length=10),
                CardField(name="moved_on", label="Data del trasferimento", kind="date"),
                CardField(
                    name="occupancy",
                    label="A che titolo occupi l'abitazione? (DL 47/2014, art. 5)",
                    kind="choice",
                    choices=OCCUPANCY,
                ),
                CardField(
                    name="occupancy_detail",
                    label="Dettagli del titolo",
                    required=False,
                    hint="Ad esempio gli estremi di registrazione del contratto di locazione.",
                ),
            ],
        ),
        CardStep(
            title="Chi si trasferisce con te",
            fields=[
                CardField(
                    name="movers",
                    label="Altre persone che si trasferiscono con te",
                    kind="people",
                    required=False,
                    max_length=2000,
                    hint=(
                        "Una persona per riga: nome e cognome; codice fiscale; rapporto con "
                        "te (ad esempio: Luca Rossi; RSSLCU10A01H501X; figlio). "
                        "Lascia vuoto se ti trasferisci da solo."
                    ),
                ),
            ],
        ),
    ],
)

BUILTIN: dict[str, ServiceCard] = {CERTIFICATE.id: CERTIFICATE, RESIDENCE.id: RESIDENCE}

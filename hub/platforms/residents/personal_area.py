"""The personal area's "I miei dati" (``hub_personal_area``): the citizen's own record from
ANPR and the comune's registry (the resident look-up, audited as the citizen's read of their
own data), each field with the source it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from sportello.config import TenantConfig
from sportello.web.area import AreaItem, AreaSection

#: the look-up's fields as the citizen reads them, in this order
LABELS = {
    "given_name": "Nome",
    "family_name": "Cognome",
    "sex": "Sesso",
    "birth_date": "Data di nascita",
    "birth_place": "Luogo di nascita",
    "address": "Indirizzo di residenza",
    "municipality": "Comune di residenza",
    "email": "E-mail",
    "phone": "Telefono",
    "family_id": "Codice famiglia",
}
SOURCES = {"anpr": "ANPR", "registry": "anagrafe del comune"}
RELATIONS = "Componenti della famiglia anagrafica"


class MyData:
    key = "dati"
    title = "I miei dati"
    order = 10

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        from .lookup import RESIDENTS, LookupFailed, LookupRefused, Requester

        lookup = app.get(RESIDENTS)
        if lookup is None:
            return AreaSection(self.key, self.title, unavailable="Dati anagrafici non disponibili.")
        who = Requester(
            actor=f"citizen:{fiscal_code}",
            operator=fiscal_code,
            purpose="personal area: the citizen's own data",
        )
        try:
            found = await lookup.lookup(tenant.id, fiscal_code, who, household=True)
        except LookupRefused:
            return AreaSection(
                self.key,
                self.title,
                unavailable="Il comune non ha collegato l'anagrafe ai servizi online.",
            )
        except LookupFailed as exc:
            return AreaSection(
                self.key,
                self.title,
                unavailable="L'anagrafe non risponde ora: riprova più tardi "
                f"(codice di assistenza {exc.support_id}).",
            )
        if not found["found"]:
            return AreaSection(
                self.key,
                self.title,
                empty="Non risulti nell'anagrafe di questo comune né in ANPR.",
            )
        fields = _fields(found["fields"])
        items = [AreaItem(title="Dati anagrafici", fields=tuple(fields))]
        members = found.get("household") or []
        if members:
            items.append(
                AreaItem(
                    title=RELATIONS,
                    fields=tuple(
                        (
                            f"{m.get('given_name') or ''} {m.get('family_name') or ''}".strip()
                            or "-",
                            f"{m.get('relationship') or '-'} (fonte: "
                            f"{SOURCES.get(m.get('source', ''), m.get('source', ''))})",
                        )
                        for m in members
                    ),
                )
            )
        return AreaSection(self.key, self.title, items=items)


def _fields(values: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, label in LABELS.items():
        field = values.get(name)
        if not field or field.get("value") in (None, ""):
            continue
        value = field["value"]
        if name == "birth_date" and isinstance(value, str) and len(value) == 10:
            value = f"{value[8:10]}/{value[5:7]}/{value[0:4]}"
        source = SOURCES.get(field.get("source", ""), field.get("source", ""))
        out.append((label, f"{value} (fonte: {source})"))
    return out


def sources() -> list[Any]:
    return [MyData()]

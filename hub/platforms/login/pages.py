"""The few HTML pages a citizen sees during a login (Italian, plain, no JavaScript needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

_STYLE = (
    "body{font-family:'Titillium Web',Geneva,Tahoma,sans-serif;max-width:44rem;margin:2rem auto;"
    "padding:0 1rem;color:#1a1a1a}h1{color:#06c;font-size:1.6rem}a.btn,button{display:inline-block;"
    "background:#06c;color:#fff;border:0;border-radius:4px;padding:.6rem 1rem;margin:.25rem 0;"
    "text-decoration:none;font-size:1rem;cursor:pointer}.err{border-left:4px solid #d9364f;"
    "padding:.5rem 1rem;background:#fdf2f4}dl{display:grid;grid-template-columns:max-content auto;"
    "gap:.3rem 1rem}dt{font-weight:600}"
)

SCHEME = {"spid": "SPID", "cie": "CIE"}


def page(title: str, body: str, *, status: int = 200) -> web.Response:
    html = (
        '<!doctype html><html lang="it"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def chooser(
    tenant_name: str,
    kind: str,
    login_url: str,
    idps: Iterable[tuple[str, str]],
    params: Mapping[str, str],
) -> web.Response:
    """The "Entra con SPID" list: one button per trusted IdP (name, entityID)."""
    items = []
    for name, entity_id in idps:
        query = urlencode({**params, "idp": entity_id})
        items.append(
            f'<li><a class="btn" href="{escape(login_url)}?{escape(query)}">{escape(name)}</a></li>'
        )
    listing = "".join(items) or "<li>Nessun gestore di identità configurato.</li>"
    return page(
        f"Entra con {SCHEME.get(kind, kind)}",
        f"<p>{escape(tenant_name)}: scegli il tuo gestore di identità.</p>"
        f'<ul style="list-style:none;padding:0">{listing}</ul>',
    )


def refused(kind: str, reason: str, *, status: int = 403, back: str | None = None) -> web.Response:
    """A refused login: what went wrong in words a citizen can act on (no personal data);
    ``back``: the comune's site, linked."""
    again = (
        f'<p><a class="btn" id="back" href="{escape(back)}">Torna al sito del comune</a> '
        "e riprova.</p>"
        if back
        else "<p>Torna al sito del comune e riprova.</p>"
    )
    return page(
        "Accesso non riuscito",
        f'<div class="err"><p>Non è stato possibile completare l\'accesso con '
        f"{escape(SCHEME.get(kind, kind))}.</p><p>Motivo: {escape(reason)}</p></div>{again}",
        status=status,
    )


def anomaly(kind: str, code: int, message: str, *, back: str | None = None) -> web.Response:
    """The SPID anomaly page (ErrorCode nr19-25): the prescribed message, with a 4xx status;
    ``back``: the comune's site, linked."""
    link = (
        f'<p><a class="btn" id="back" href="{escape(back)}">Torna al sito del comune</a></p>'
        if back
        else ""
    )
    return page(
        "Accesso non riuscito",
        f'<div class="err" id="anomaly" data-code="{code}"><p>{escape(message)}</p></div>'
        f"<p>Codice di errore {SCHEME.get(kind, kind)}: {code}.</p>{link}",
        status=403,
    )


def done(kind: str, level: int) -> web.Response:
    return page(
        "Accesso effettuato",
        f"<p>Hai effettuato l'accesso con {escape(SCHEME.get(kind, kind))} "
        f"(livello {level}).</p><p>Puoi chiudere questa pagina.</p>",
    )


def logged_out(kind: str) -> web.Response:
    return page(
        "Disconnessione effettuata",
        f"<p>La sessione {escape(SCHEME.get(kind, kind))} è chiusa.</p>",
    )


def identity_page(
    tenant_name: str, identity: Mapping[str, Any], logout_url: str | None
) -> web.Response:
    """The demo application's page after the handoff: who logged in, and how."""
    rows = "".join(
        f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>"
        for k, v in sorted(identity.get("attributes", {}).items())
    )
    attrs = identity.get("attributes", {})
    # a person has name and familyName (SAML) or given_name and family_name (OpenID
    # Connect); a company (legal person) has companyName
    first = attrs.get("name") or attrs.get("given_name") or ""
    last = attrs.get("familyName") or attrs.get("family_name") or ""
    who = f"{first} {last}".strip()
    who = who or str(attrs.get("companyName") or "").strip()
    greeting = f"Benvenuto, <strong>{escape(who)}</strong>" if who else "Benvenuto"
    scheme = SCHEME.get(str(identity.get("scheme")), str(identity.get("scheme")))
    protocol = "OpenID Connect" if identity.get("protocol") == "oidc" else "SAML"
    logout = f'<p><a class="btn" href="{escape(logout_url)}">Esci</a></p>' if logout_url else ""
    return page(
        f"{tenant_name}: area riservata",
        f'<p id="who">{greeting} (codice fiscale '
        f'<span id="fiscal-code">{escape(str(identity.get("fiscal_code")))}</span>, '
        f"livello {escape(str(identity.get('level')))}).</p>"
        f'<p id="how">Accesso con {escape(scheme)} '
        f'(<span id="protocol">{escape(protocol)}</span>).</p><dl>{rows}</dl>{logout}',
    )


def demo_home(tenant_name: str, links: Iterable[tuple[str, str]]) -> web.Response:
    buttons = "".join(f'<p><a class="btn" href="{escape(u)}">{escape(t)}</a></p>' for t, u in links)
    return page(f"{tenant_name}: servizi online", f"<p>Accedi ai servizi del comune.</p>{buttons}")

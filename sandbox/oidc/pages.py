"""HTML of the sandbox OPs: login (the SAML sandbox IdP's fictitious people), consent,
errors. Plain forms, no JavaScript."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from ..idp.identities import TestIdentity

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem auto;padding:0 1rem;max-width:50rem;"
    "color:#17324d}td{padding:.3rem .6rem;border-bottom:1px solid #ccd}"
    "button{background:#0066cc;color:#fff;border:0;padding:.4rem .9rem;border-radius:4px}"
    "button.secondary{background:#5c6f82}.error{border-left:4px solid #d9364f;padding:.5rem 1rem}"
)


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="it"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def login_page(
    label: str, action: str, txn: str, client: str, identities: Iterable[TestIdentity], level: int
) -> str:
    rows = "".join(
        f"<tr><td>{escape(i.label)}</td><td><code>{escape(i.code)}</code></td>"
        f"<td>SpidL{i.max_level}</td><td><form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='txn' value='{escape(txn)}'>"
        f"<input type='hidden' name='identity' value='{escape(i.code)}'>"
        "<button type='submit'>Entra</button></form></td></tr>"
        for i in identities
    )
    cancel = (
        f"<form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='txn' value='{escape(txn)}'>"
        "<input type='hidden' name='identity' value=''>"
        "<button class='secondary' type='submit' name='cancel' value='1'>Annulla</button></form>"
    )
    return page(
        f"{label} (sandbox): accesso",
        f"<p>Il servizio <code>{escape(client)}</code> chiede un accesso di livello "
        f"SpidL{level}. Scegli un'identità di prova.</p><table>{rows}</table>{cancel}",
    )


def consent_page(label: str, action: str, txn: str, client: str, claims: Iterable[str]) -> str:
    items = "".join(f"<li><code>{escape(c)}</code></li>" for c in claims) or "<li>nessuno</li>"
    hidden = f"<input type='hidden' name='txn' value='{escape(txn)}'>"
    return page(
        f"{label} (sandbox): consenso",
        f"<p><code>{escape(client)}</code> riceverà questi dati:</p><ul>{items}</ul>"
        f"<form method='post' action='{escape(action)}'>{hidden}"
        "<button type='submit' name='decision' value='accept'>Acconsento</button> "
        "<button class='secondary' type='submit' name='decision' value='deny'>Nego</button>"
        "</form>",
    )


def error_page(title: str, code: str, description: str) -> str:
    return page(
        title,
        f"<div class='error'><p><code>{escape(code)}</code></p><p>{escape(description)}</p></div>",
    )

"""HTML of the sandbox IdP: login page, error page, auto-submitting form, sessions.

Plain HTML forms that work without JavaScript (headless browsers included); the only script
is the one-liner that auto-submits the SAML form, with visible buttons as a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from .identities import TestIdentity
from .outbound import ANOMALY_MESSAGES
from .state import IdpSession, Problem

__all__ = [
    "autopost_page",
    "error_page",
    "login_page",
    "message_page",
    "sessions_page",
]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;padding:0 1rem;max-width:60rem;color:#17324d}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ccd;padding:.4rem;text-align:left}
button{background:#0066cc;color:#fff;border:0;padding:.4rem .9rem;border-radius:4px;cursor:pointer}
button.secondary{background:#5c6f82}.note{color:#5c6f82;font-size:.9rem}
.error{border-left:4px solid #d9364f;padding:.5rem 1rem;background:#fdf1f3}
code{background:#eef;padding:0 .2rem}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="it"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def login_page(
    *,
    label: str,
    action: str,
    txn: str,
    sp_entity_id: str,
    level: int,
    comparison: str,
    identities: Iterable[tuple[TestIdentity, int, bool]],
) -> str:
    """The test identities ``(identity, max level here, can satisfy the request)``, each
    with an "Entra" button, then the anomalies and "Annulla"."""
    rows = []
    for identity, max_level, satisfies in identities:
        warning = (
            ""
            if satisfies
            else ' <span class="note">(livello insufficiente: risponde ErrorCode nr20)</span>'
        )
        rows.append(
            f"<tr><td>{escape(identity.label)}</td><td><code>{escape(identity.code)}</code></td>"
            f"<td>SpidL{max_level}{warning}</td><td>"
            f'<form method="post" action="{escape(action)}">'
            f"{_hidden({'txn': txn, 'identity': identity.code})}"
            '<button type="submit">Entra</button>'
            "</form></td></tr>"
        )
    options = "".join(
        f'<option value="{code}">ErrorCode nr{code}: {escape(text)}</option>'
        for code, text in ANOMALY_MESSAGES.items()
    )
    body = (
        f"<p>Richiesta di <code>{escape(sp_entity_id)}</code>: livello "
        f"<strong>SpidL{level}</strong> (confronto <code>{escape(comparison)}</code>).</p>"
        f'<p class="note">{escape(label)} di prova: nessuna password, scegli chi sei.</p>'
        "<table><thead><tr><th>Nome</th><th>Codice fiscale</th><th>Livello massimo</th>"
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<h2>Anomalie</h2><form method="post" action="{escape(action)}">'
        f"{_hidden({'txn': txn})}"
        f'<select name="anomaly" aria-label="Anomalia">{options}</select> '
        '<button type="submit">Rispondi con anomalia</button></form>'
        f'<form method="post" action="{escape(action)}" style="margin-top:1rem">'
        f"{_hidden({'txn': txn, 'anomaly': '25'})}"
        '<button type="submit" class="secondary">Annulla</button></form>'
    )
    return _page(f"Entra con {label} (sandbox)", body)


def error_page(title: str, problems: Iterable[Problem]) -> str:
    """A refusal that names every problem, with the SPID error code when there is one."""
    items = "".join(
        f"<li><code>{escape(p.code)}</code>"
        + (f" (ErrorCode nr{p.spid_code:02d})" if p.spid_code is not None else "")
        + f": {escape(p.message)}</li>"
        for p in problems
    )
    return _page(title, f'<div class="error"><ul>{items}</ul></div>')


def autopost_page(
    action: str, fields: Mapping[str, str], *, title: str = "Reindirizzamento"
) -> str:
    """A form that posts ``fields`` to ``action``: submitted by a one-line script, or by
    hand (the button inside ``<noscript>`` and the visible fallback one)."""
    body = (
        f'<form id="saml-form" method="post" action="{escape(action)}">{_hidden(fields)}'
        "<noscript><p>JavaScript è disattivato: premi il pulsante per continuare.</p>"
        '<button type="submit">Continua</button></noscript></form>'
        '<p class="note">Se il reindirizzamento non parte, '
        '<button type="submit" form="saml-form" class="secondary">prosegui</button>.</p>'
        "<script>document.getElementById('saml-form').submit();</script>"
    )
    return _page(title, body)


def sessions_page(label: str, sessions: Iterable[IdpSession], action_prefix: str) -> str:
    """Active sessions, each with an IdP-initiated logout button."""
    rows = "".join(
        f"<tr><td><code>{escape(s.session_index)}</code></td><td>{escape(s.identity)}</td>"
        f"<td><code>{escape(s.sp_entity_id)}</code></td><td>SpidL{s.level}</td>"
        f"<td>{escape(s.started)}</td><td>"
        f'<form method="post" action="{escape(action_prefix)}/{escape(s.session_index)}/logout">'
        '<button type="submit">Logout</button></form></td></tr>'
        for s in sessions
        if s.active
    )
    body = (
        "<table><thead><tr><th>SessionIndex</th><th>Utente</th><th>Service provider</th>"
        f"<th>Livello</th><th>Inizio</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else "<p>Nessuna sessione attiva.</p>"
    )
    return _page(f"Sessioni {label} (sandbox)", body)


def message_page(title: str, text: str) -> str:
    """A one-paragraph page (CIE logout, IdP-initiated logout outcome)."""
    return _page(title, f"<p>{escape(text)}</p>")

"""The kernel's web layer: what the hub's own pages share (the front office at
``/t/{tenant}/sportello/`` and the operator console at ``/console/``).

- :mod:`.assets`: Bootstrap Italia (npm ``bootstrap-italia``, copied by :mod:`.vendor` at
  ``make install``) and the hub's stylesheet under ``/static/<version>/``, no CDN;
- :mod:`.pages`: Jinja2 environments over a platform's templates and the kernel's
  ``web/base.html`` and ``web/macros.html``, and :func:`~.pages.render` with the security
  headers of every page;
- :mod:`.sessions`: browser sessions in the database and CSRF tokens;
- :mod:`.citizen`: the citizen's session (audience ``sportello``) for any platform's pages;
- :mod:`.site`: the header of the citizen's pages (``hub_web_site``);
- :mod:`.area`: the personal area's sections (``hub_personal_area``).
"""

from __future__ import annotations

from .pages import environment, read_form, render
from .sessions import CSRF_FIELD, WebSession, WebSessions, anonymous_csrf, csrf_valid

__all__ = [
    "CSRF_FIELD",
    "WebSession",
    "WebSessions",
    "anonymous_csrf",
    "csrf_valid",
    "environment",
    "read_form",
    "render",
]

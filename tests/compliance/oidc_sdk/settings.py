"""Django settings for running italia's spid-cie-oidc (PyPI) as a trust anchor and an OpenID
provider on localhost, for ``tests/compliance/oidc_interop.py``. Written here (not taken from
the SDK's example projects); everything variable comes from the environment:

- ``OIDC_SDK_DATA``: a temporary folder (SQLite database);
- ``OIDC_SDK_BASE``: the server's base URL, e.g. ``http://127.0.0.1:18110`` (the SDK's
  schemas refuse ``localhost``: no top-level domain);
- ``OIDC_SDK_PROFILE``: ``spid`` or ``cie`` (the OP's profile: schemas, claims, acr);
- ``OIDC_SDK_RP_MARK``: the trust mark id the OP requires of relying parties (optional).

The trust anchor's entity ID is ``<base>/ta``, the OP's ``<base>/oidc/op``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ["OIDC_SDK_DATA"])
BASE = os.environ["OIDC_SDK_BASE"].rstrip("/")
PROFILE = os.environ.get("OIDC_SDK_PROFILE", "spid")
TRUST_ANCHOR = f"{BASE}/ta"
PROVIDER = f"{BASE}/oidc/op"

SECRET_KEY = os.environ.get("OIDC_SDK_SECRET") or secrets.token_urlsafe(32)
DEBUG = True  # runserver serves the SDK's static files; localhost only
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "urls"
USE_TZ = True
TIME_ZONE = "Europe/Rome"
LANGUAGE_CODE = "it"
USE_I18N = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "spid_cie_oidc.accounts",
    "spid_cie_oidc.entity",
    "spid_cie_oidc.authority",
    "spid_cie_oidc.provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA / "sdk.sqlite3"}}
AUTH_USER_MODEL = "spid_cie_oidc_accounts.User"
SESSION_COOKIE_NAME = "sdk_op_session"  # the hub runs on another port of the same machine
CSRF_COOKIE_NAME = "sdk_op_csrf"

# the federation: one trust anchor (this server), relying parties must show its trust mark
OIDCFED_TRUST_ANCHORS = [TRUST_ANCHOR]
OIDCFED_TRUST_ANCHOR = TRUST_ANCHOR
OIDCFED_REQUIRED_TRUST_MARKS = [m for m in [os.environ.get("OIDC_SDK_RP_MARK", "")] if m]
OIDCFED_PROVIDER_PROFILE = PROFILE
OIDCFED_DEFAULT_PROVIDER_PROFILE = PROFILE
OIDCFED_PROVIDER_SALT = secrets.token_urlsafe(16)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "spid_cie_oidc": {"handlers": ["console"], "level": "INFO"},
        "django.request": {"handlers": ["console"], "level": "WARNING"},
    },
}

"""The URLs of the SDK server: the trust anchor's federation endpoints under ``/ta/`` and the
OpenID provider (its entity configuration and the SDK's provider views) under ``/oidc/op/``.

One deviation of the SDK's OP from the rules is bridged here, and only one: its userinfo JWS
carries ``sub`` and the claims but not ``iss``, ``aud``, ``iat`` and ``exp``, which the rules'
userinfo table lists as required (and "the RP MUST check that [aud] is equal to its own
client_id"). The hub refuses such a userinfo; ``UserInfoPerRules`` runs the SDK's own view and
only adds those four claims to the payload it signs."""

from __future__ import annotations

import contextvars
import time
from typing import Any

from django.urls import include, path
from spid_cie_oidc.authority.views import entity_list, fetch, trust_mark_status
from spid_cie_oidc.entity.views import entity_configuration, resolve_entity_statement
from spid_cie_oidc.provider.models import IssuedToken
from spid_cie_oidc.provider.views import userinfo_endpoint

_AUDIENCE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "userinfo_audience", default=None
)
_sdk_create_jws = userinfo_endpoint.create_jws


def _create_jws(payload: dict[str, Any], jwk: dict[str, Any], **kwargs: Any) -> str:
    found = _AUDIENCE.get()
    if found is not None and isinstance(payload, dict) and "sub" in payload:
        now = int(time.time())
        payload = {**payload, "iss": found[0], "aud": found[1], "iat": now, "exp": now + 300}
    return _sdk_create_jws(payload, jwk, **kwargs)


userinfo_endpoint.create_jws = _create_jws


class UserInfoPerRules(userinfo_endpoint.UserInfoEndpoint):
    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = IssuedToken.objects.filter(access_token=bearer).first() if bearer else None
        issuer = self.get_issuer()
        mark = _AUDIENCE.set(
            (issuer.sub, token.session.client_id) if token is not None and issuer else None
        )
        try:
            return super().get(request, *args, **kwargs)
        finally:
            _AUDIENCE.reset(mark)


WELL_KNOWN = ".well-known/openid-federation"

urlpatterns = [
    path(f"ta/{WELL_KNOWN}", entity_configuration, name="entity_configuration"),
    path("ta/fetch", fetch, name="oidcfed_fetch"),
    path("ta/list", entity_list, name="oidcfed_list"),
    path("ta/resolve", resolve_entity_statement, name="oidcfed_resolve"),
    path("ta/trust_mark_status", trust_mark_status, name="oidcfed_trust_mark_status"),
    path(f"oidc/op/{WELL_KNOWN}", entity_configuration, name="op_entity_configuration"),
    path("oidc/op/userinfo", UserInfoPerRules.as_view(), name="userinfo_per_rules"),
    path("", include("spid_cie_oidc.provider.urls")),
]

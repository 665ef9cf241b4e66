"""Commands run with the SDK's own interpreter (``.venv-oidc/bin/python sdk.py ...``) to set up
and serve italia's spid-cie-oidc as a trust anchor and an OpenID provider. Every entity is made
through the SDK's Django models, the way an operator does in its admin:

- ``init OUT.json``: migrations; the trust anchor's and the OP's ``FederationEntityConfiguration``
  (keys made by the SDK), the onboarding profiles whose trust marks the anchor issues, a test
  person; writes the anchor's federation JWKS and entity IDs to ``OUT.json``;
- ``serve PORT``: Django's server (threaded, no reloader) on 127.0.0.1;
- ``register SUB TYPE [--intermediate]``: the anchor onboards ``SUB`` as the SDK's admin form
  does (``full_clean`` runs the SDK's validator: it fetches the entity configuration, checks
  its self-signature and that the anchor is among its ``authority_hints``), assigns the
  profile of ``TYPE`` and prints the trust marks issued (JSON) for the subject to publish;
- ``op-marks``: publishes the OP's trust mark in its entity configuration;
- ``tm-issuer MARK ISSUER``: the anchor lists ``ISSUER`` among the issuers of ``MARK``;
- ``revoked``: how many OP sessions exist and how many were revoked.

Environment: see ``settings.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

ACR = [f"https://www.spid.gov.it/SpidL{n}" for n in (1, 2, 3)]
SIGN = ["RS256", "RS512", "ES256"]
ENC_ALG = ["RSA-OAEP", "RSA-OAEP-256"]
ENC_ENC = ["A128CBC-HS256", "A256CBC-HS512"]
PERSON = {
    "given_name": "Mario",
    "family_name": "Rossi",
    "https://attributes.eid.gov.it/fiscal_number": "TINIT-RSSMRA80A01H501U",
    "email": "mario.rossi@example.org",
}
USERNAME, PASSWORD = "mario", "interop-password-1"  # a throwaway test account


def mark_id(entity_type: str) -> str:
    """``<TA>/<entity_type>/public/`` as the rules shape trust mark ids."""
    return f"{settings.TRUST_ANCHOR}/{entity_type}/public/"


def _private_jwk(use: str) -> dict:
    from spid_cie_oidc.entity.jwks import create_jwk

    jwk = create_jwk()
    jwk["use"] = use
    return jwk


def _op_metadata(core_public: list[dict]) -> dict:
    op = settings.PROVIDER
    meta = {
        "issuer": op,
        "organization_name": "OP di riferimento (spid-cie-oidc)",
        "authorization_endpoint": f"{op}/authorization",
        "token_endpoint": f"{op}/token",
        "userinfo_endpoint": f"{op}/userinfo",
        "introspection_endpoint": f"{op}/introspection",
        "revocation_endpoint": f"{op}/revocation",
        "jwks": {"keys": core_public},
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": SIGN,
        "id_token_signing_alg_values_supported": SIGN,
        "id_token_encryption_alg_values_supported": ENC_ALG,
        "id_token_encryption_enc_values_supported": ENC_ENC,
        "userinfo_signing_alg_values_supported": SIGN,
        "userinfo_encryption_alg_values_supported": ENC_ALG,
        "userinfo_encryption_enc_values_supported": ENC_ENC,
        "request_object_signing_alg_values_supported": SIGN,
        "request_object_encryption_alg_values_supported": ENC_ALG,
        "request_object_encryption_enc_values_supported": ENC_ENC,
        "subject_types_supported": ["pairwise"],
        "request_parameter_supported": True,
        "acr_values_supported": ACR,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "offline_access"],
        "claims_parameter_supported": True,
        "claims_supported": [
            "given_name",
            "family_name",
            "email",
            "https://attributes.eid.gov.it/fiscal_number",
        ],
    }
    if settings.PROFILE == "cie":
        meta["scopes_supported"] += ["profile", "email"]
        meta["authorization_response_iss_parameter_supported"] = True
        meta["tls_client_certificate_bound_access_tokens"] = True
    else:
        meta["op_name"] = "OP di riferimento"
        meta["op_uri"] = op
    return {
        "openid_provider": meta,
        "federation_entity": {
            "organization_name": "OP di riferimento (spid-cie-oidc)",
            "homepage_uri": op,
            "contacts": ["ops@localhost.example"],
        },
    }


def init(out: Path) -> None:
    from django.contrib.auth import get_user_model
    from spid_cie_oidc.authority.models import FederationEntityProfile
    from spid_cie_oidc.entity.models import FederationEntityConfiguration

    call_command("migrate", verbosity=0, interactive=False)
    ta_id = settings.TRUST_ANCHOR
    ta = FederationEntityConfiguration(
        sub=ta_id,
        entity_type="federation_entity",
        metadata={
            "federation_entity": {
                "organization_name": "Trust anchor di prova (spid-cie-oidc)",
                "homepage_uri": ta_id,
                "contacts": ["ta@localhost.example"],
                "federation_fetch_endpoint": f"{ta_id}/fetch",
                "federation_list_endpoint": f"{ta_id}/list",
                "federation_resolve_endpoint": f"{ta_id}/resolve",
                "federation_trust_mark_status_endpoint": f"{ta_id}/trust_mark_status",
            }
        },
        constraints={"max_path_length": 1},
        trust_mark_issuers={
            mark_id("openid_relying_party"): [ta_id],
            mark_id("openid_provider"): [ta_id],
        },
        is_active=True,
    )
    ta.full_clean()
    ta.save()
    op_core = [_private_jwk("sig")]
    from spid_cie_oidc.entity.jwks import public_jwk_from_private_jwk

    core_public = [public_jwk_from_private_jwk(k) for k in op_core]
    for k, private in zip(core_public, op_core, strict=True):
        k["use"] = private["use"]
    op = FederationEntityConfiguration(
        sub=settings.PROVIDER,
        entity_type="openid_provider",
        authority_hints=[ta_id],
        jwks_core=op_core,
        metadata=_op_metadata(core_public),
        is_active=True,
    )
    op.full_clean()  # the SDK's metadata schema of this profile (OPMetadataSpid/Cie)
    op.save()
    for entity_type in ("openid_relying_party", "openid_provider", "federation_entity"):
        FederationEntityProfile.objects.create(
            name=f"public {entity_type}"[:33],
            profile_category=entity_type,
            profile_id=mark_id(entity_type),
            trust_mark_template={
                "organization_type": "public",
                "id_code": {"ipa_code": "c_x000"},
                "email": "protocollo@pec.example.it",
            },
        )
    user = get_user_model().objects.create_user(USERNAME, PERSON["email"], PASSWORD)
    user.attributes = dict(PERSON)
    user.save()
    out.write_text(
        json.dumps(
            {
                "trust_anchor": ta_id,
                "trust_anchor_jwks": {"keys": ta.public_jwks},
                "provider": settings.PROVIDER,
                "rp_mark": mark_id("openid_relying_party"),
                "op_mark": mark_id("openid_provider"),
                "username": USERNAME,
                "password": PASSWORD,
                "person": PERSON,
            }
        )
    )


def register(sub: str, entity_type: str) -> None:
    """The anchor onboards ``sub``; prints the trust marks issued to it."""
    from spid_cie_oidc.authority.models import (
        FederationDescendant,
        FederationDescendantContact,
        FederationEntityAssignedProfile,
        FederationEntityProfile,
    )
    from spid_cie_oidc.entity.models import get_first_self_trust_anchor
    from spid_cie_oidc.entity.settings import HTTPC_PARAMS
    from spid_cie_oidc.entity.statements import EntityConfiguration, get_entity_configurations

    jwt = get_entity_configurations([sub], httpc_params=HTTPC_PARAMS)[0]
    jwks = EntityConfiguration(jwt, httpc_params=HTTPC_PARAMS).payload["jwks"]["keys"]
    descendant = FederationDescendant(
        sub=sub,
        name=entity_type[:33],
        type=entity_type,
        jwks=jwks,
        status="valid",  # the model's default (False) is not one of its own choices
        is_active=True,
    )
    descendant.full_clean()  # the SDK's onboarding validator fetches and checks the EC
    descendant.save()
    FederationDescendantContact.objects.create(
        entity=descendant, contact="onboarding@pec.example.it", type="email"
    )
    FederationEntityAssignedProfile.objects.create(
        descendant=descendant,
        profile=FederationEntityProfile.objects.get(profile_id=mark_id(entity_type)),
        issuer=get_first_self_trust_anchor(),
    )
    print(json.dumps(descendant.trust_marks))


def op_marks() -> None:
    from spid_cie_oidc.authority.models import FederationDescendant
    from spid_cie_oidc.entity.models import FederationEntityConfiguration

    op = FederationEntityConfiguration.objects.get(sub=settings.PROVIDER)
    op.trust_marks = FederationDescendant.objects.get(sub=settings.PROVIDER).trust_marks
    op.save()


def tm_issuer(mark: str, issuer: str) -> None:
    """The anchor lets ``issuer`` (an intermediate it onboarded) issue trust mark ``mark``."""
    from spid_cie_oidc.entity.models import get_first_self_trust_anchor

    ta = get_first_self_trust_anchor()
    issuers = dict(ta.trust_mark_issuers)
    issuers[mark] = [*issuers.get(mark, []), issuer]
    ta.trust_mark_issuers = issuers
    ta.save()


def revoked() -> None:
    """How many OP sessions there are and how many were revoked (JSON)."""
    from spid_cie_oidc.provider.models import OidcSession

    sessions = OidcSession.objects.all()
    print(
        json.dumps({"sessions": sessions.count(), "revoked": sessions.filter(revoked=True).count()})
    )


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "init":
        init(Path(args[0]))
    elif command == "serve":
        call_command("runserver", f"127.0.0.1:{args[0]}", use_reloader=False, use_threading=True)
    elif command == "register":
        register(args[0], args[1])
    elif command == "tm-issuer":
        tm_issuer(args[0], args[1])
    elif command == "revoked":
        revoked()
    elif command == "op-marks":
        op_marks()
    else:
        raise SystemExit(f"unknown command {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

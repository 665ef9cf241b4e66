"""Onboarding of the tenant's PDND client (``[tenants.pdnd]``, used for ANPR and the other
e-services reached through PDND) and ANPR (``hub_onboard``, ``hub_tenant_checks``).

Made here: the client's RSA key at the ``key = { file = ... }`` reference (0600, encrypted
with the master key when one is set; never over an existing file) and its public half next
to it (``<name>.pub.pem``). Left to do: upload the public key in the PDND back office
(base64 of the PEM) under the client, whose kid PDND computes as the key's RFC 7638
thumbprint; ask for the purposes of the e-services. Checked: a voucher is obtained from the
configured token endpoint for each configured purpose.
"""

from __future__ import annotations

from sportello.config import HubConfig, TenantConfig
from sportello.hookspecs import CheckContext, OnboardStep, TenantCheck

from .settings import anpr_settings


def _public_path(key_file: object) -> object:
    from pathlib import Path

    path = Path(str(key_file))
    return path.with_name(path.stem + ".pub.pem")


def onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    from sportello.connectors.pdnd.keys import (
        generate_key,
        jwk_thumbprint,
        load_private_key,
        public_key_for_upload,
    )
    from sportello.secrets import master_keys, write_secret_file

    pdnd = tenant.pdnd
    if pdnd is None:
        if anpr_settings(tenant) is not None:
            return [
                OnboardStep(
                    "pdnd",
                    "blocked",
                    "ANPR is reached through PDND: add [tenants.pdnd] with client_id, "
                    'key = { file = "..." } and token_url, then onboard again',
                )
            ]
        return []
    out: list[OnboardStep] = []
    ref = pdnd.key
    values = {"key": ref.describe()}
    if ref.file is not None and not ref.file.exists():
        if not make:
            return [OnboardStep("pdnd", "todo", "client key pair to make", values)]
        private_pem, public_pem = generate_key()
        ref.file.parent.mkdir(parents=True, exist_ok=True)
        write_secret_file(ref.file, private_pem, encrypted=bool(master_keys()))
        public_file = _public_path(ref.file)
        public_file.write_bytes(public_pem)  # type: ignore[attr-defined]
        out.append(OnboardStep("pdnd", "made", "client key pair (RSA 2048)", values))
    try:
        key = load_private_key(ref.reveal())
    except LookupError as exc:
        return [*out, OnboardStep("pdnd", "blocked", f"key: {exc}", values)]
    except ValueError as exc:
        return [*out, OnboardStep("pdnd", "blocked", f"key ({ref.describe()}): {exc}", values)]
    if not out:
        out.append(OnboardStep("pdnd", "present", "client key pair", values))
    from cryptography.hazmat.primitives import serialization

    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    thumbprint = jwk_thumbprint(public_pem)
    if pdnd.kid is not None and pdnd.kid != thumbprint:
        out.append(
            OnboardStep(
                "pdnd",
                "blocked",
                f"kid {pdnd.kid!r} is not the key's thumbprint: PDND will refuse the "
                f'assertions; set kid = "{thumbprint}" or remove it',
                {"kid": pdnd.kid, "thumbprint": thumbprint},
            )
        )
    out.append(
        OnboardStep(
            "pdnd",
            "todo",
            "upload the public key in the PDND back office (Interoperabilità > client "
            "e-service > the client > Chiavi pubbliche)",
            {
                "client_id": pdnd.client_id,
                "kid": thumbprint,
                "public_key_base64": public_key_for_upload(public_pem),
                "token_url": pdnd.token_url,
            },
        )
    )
    if pdnd.purposes:
        for code, purpose in sorted(pdnd.purposes.items()):
            out.append(
                OnboardStep(
                    "pdnd",
                    "todo",
                    f"the purpose of e-service {code} must be active and the client "
                    "associated with it",
                    {"e_service": code, "purpose_id": purpose, "client_id": pdnd.client_id},
                )
            )
    else:
        out.append(
            OnboardStep(
                "pdnd",
                "todo",
                "request the purposes (finalità) of the e-services the tenant uses (ANPR "
                "C020, C021, C030...) and add them as [tenants.pdnd.purposes]",
                {"client_id": pdnd.client_id},
            )
        )
    return out


def _voucher_check(tenant: TenantConfig, code: str, purpose_id: str) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from sportello.connectors.pdnd.client import PdndClient
        from sportello.connectors.pdnd.environments import assertion_audience_for
        from sportello.connectors.pdnd.keys import kid_for_private_key
        from sportello.connectors.retry import RetryPolicy

        pdnd = tenant.pdnd
        assert pdnd is not None
        key_ref = pdnd.key

        def private_key() -> bytes:
            return key_ref.reveal().encode()

        client = PdndClient(
            ctx.session,
            pdnd.token_url,
            client_id=pdnd.client_id,
            kid=pdnd.kid or kid_for_private_key(private_key()),
            private_key=private_key,
            assertion_audience=pdnd.assertion_audience or assertion_audience_for(pdnd.token_url),
            retry=RetryPolicy(max_attempts=1),
        )
        voucher = await client.voucher(purpose_id)
        return f"voucher for {code} (purpose {purpose_id}) valid {voucher.expires_in} s"

    return TenantCheck("pdnd", f"voucher {code}", run)


def tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck]:
    if tenant.pdnd is None:
        return []
    return [_voucher_check(tenant, c, p) for c, p in sorted(tenant.pdnd.purposes.items())]

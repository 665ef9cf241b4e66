"""Onboarding of SEND and INAD (``hub_onboard``, ``hub_tenant_checks``).

Nothing is made here: SEND issues the sender's API key in its back office (Piattaforma
Notifiche, "API Key"), PDND the purposes. Left to do: generate the API key there and put it
at ``api_key``; have the SEND and INAD purposes active for the tenant's PDND client.
Checked: SEND answers the list of the sender's streams with the key and a PDND voucher of
the SEND purpose (key, voucher and reachability in one call).
"""

from __future__ import annotations

from sportello.config import HubConfig, TenantConfig
from sportello.hookspecs import CheckContext, CheckFailed, OnboardStep, TenantCheck

from .settings import inad_settings, send_settings


def onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    out: list[OnboardStep] = []
    send, inad = send_settings(tenant), inad_settings(tenant)
    if (send or inad) and tenant.pdnd is None:
        out.append(
            OnboardStep("send", "blocked", "SEND and INAD go through PDND: add [tenants.pdnd]")
        )
    if send is not None:
        out.append(
            OnboardStep(
                "send",
                "todo",
                "generate the sender's API key in the SEND back office (Piattaforma Notifiche "
                "> API Key) and put it at api_key; the SEND purpose must be active for the "
                "PDND client",
                {
                    "api_key": send.api_key.describe(),
                    "base_url": send.base_url,
                    "purpose_id": send.purpose_id,
                    "sender_tax_id": send.sender_tax_id or tenant.fiscal_code,
                },
            )
        )
    if inad is not None:
        out.append(
            OnboardStep(
                "inad",
                "todo",
                "the INAD purpose must be active for the tenant's PDND client",
                {"purpose_id": inad.purpose_id, "base_url": inad.base_url},
            )
        )
    return out


def _send_check(tenant: TenantConfig) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from sportello.connectors.pdnd.client import PdndClient
        from sportello.connectors.pdnd.environments import assertion_audience_for
        from sportello.connectors.pdnd.keys import kid_for_private_key
        from sportello.connectors.retry import RetryPolicy
        from sportello.connectors.send.client import SendClient

        send, pdnd = send_settings(tenant), tenant.pdnd
        assert send is not None
        if pdnd is None:
            raise CheckFailed("no [tenants.pdnd]: SEND calls need a PDND voucher")
        for what, ref in (("api_key", send.api_key), ("pdnd.key", pdnd.key)):
            try:
                ref.reveal()
            except LookupError as exc:
                raise CheckFailed(f"{what}: {exc}") from None
        key_ref, api_key = pdnd.key, send.api_key

        def private_key() -> bytes:
            return key_ref.reveal().encode()

        once = RetryPolicy(max_attempts=1)
        vouchers = PdndClient(
            ctx.session,
            str(pdnd.token_url),
            client_id=pdnd.client_id,
            kid=pdnd.kid or kid_for_private_key(private_key()),
            private_key=private_key,
            assertion_audience=pdnd.assertion_audience
            or assertion_audience_for(str(pdnd.token_url)),
            retry=once,
        )
        client = SendClient(
            ctx.session,
            str(send.base_url).rstrip("/"),
            api_key=lambda: api_key.reveal(),
            pdnd=vouchers,
            purpose_id=send.purpose_id,
            retry=once,
        )
        streams = await client.streams()
        return f"SEND answers with the key and a PDND voucher ({len(streams)} stream(s))"

    return TenantCheck("send", "api", run)


def tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck]:
    return [_send_check(tenant)] if send_settings(tenant) is not None else []

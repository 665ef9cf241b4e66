"""A complete SPID/CIE OIDC code flow against the federation twin over real sockets, and the
attacks the connector must refuse (the twin plays a faulty or hostile OP on demand)."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from joserfc.jwk import KeySet

from sportello.connectors.oidc.errors import ProviderError, TokenRejected
from sportello.connectors.oidc.keys import generate_key
from sportello.connectors.oidc.rp import (
    build_authorization_request,
    parse_authorization_response,
)
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES

from .conftest import Rp, browser_login, provider, set_faults

MARIO = DEFAULT_IDENTITIES[0]  # SpidL3, has a CIE
ANNA = next(i for i in DEFAULT_IDENTITIES if i.max_level == 1)
FISCAL = "https://attributes.eid.gov.it/fiscal_number"


@pytest.mark.parametrize("scheme", ["cie", "spid"])
async def test_complete_code_flow(rp: Rp, twin: str, scheme: str) -> None:
    op = await provider(rp, twin, scheme)
    params, pending = await browser_login(rp, op, MARIO.code)
    assert params["iss"] == op.issuer and "code" in params
    result = await rp.client.complete(op, params, pending)
    assert result.id_token.level >= 2
    assert result.id_token.claims["aud"] == rp.entity_id
    assert result.userinfo[FISCAL] == f"TINIT-{MARIO.code}"
    assert result.userinfo["given_name"] == "Mario"
    assert result.userinfo["sub"] == result.id_token.sub
    # logout: the access token is revoked at the OP, userinfo refuses it afterwards
    await rp.client.revoke(op, result.tokens.access_token)
    with pytest.raises(ProviderError) as info:
        await rp.client.userinfo(op, result.tokens.access_token, subject=result.id_token.sub)
    assert info.value.check == "invalid_token"


async def test_state_and_nonce_of_another_login_are_refused(rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "cie")
    params, pending = await browser_login(rp, op, MARIO.code)
    other = build_authorization_request(rp.settings, op).pending
    with pytest.raises(TokenRejected) as info:
        parse_authorization_response(params, other, op)
    assert info.value.check == "state"
    code = parse_authorization_response(params, pending, op)
    tokens = await rp.client.exchange_code(op, code, pending)
    replayed = dataclasses.replace(pending, nonce=other.nonce)
    with pytest.raises(TokenRejected) as info:
        rp.client.validate_id_token(op, tokens.id_token, replayed)
    assert info.value.check == "nonce"


async def test_code_reuse_is_refused_by_the_twin(rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "spid")
    params, pending = await browser_login(rp, op, MARIO.code)
    code = parse_authorization_response(params, pending, op)
    first = await rp.client.exchange_code(op, code, pending)
    with pytest.raises(ProviderError) as info:
        await rp.client.exchange_code(op, code, pending)
    assert info.value.check == "invalid_grant"
    # the replay revoked what the first exchange obtained
    id_token = rp.client.validate_id_token(op, first.id_token, pending)
    with pytest.raises(ProviderError):
        await rp.client.userinfo(op, first.access_token, subject=id_token.sub)


async def test_issuer_mix_up_is_refused(http: aiohttp.ClientSession, rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "cie")
    await set_faults(http, twin, "mixup_iss")
    params, pending = await browser_login(rp, op, MARIO.code)
    assert params["iss"] == f"{twin}/spid"
    with pytest.raises(TokenRejected) as info:
        await rp.client.complete(op, params, pending)
    assert info.value.check == "iss"
    # a callback for a login started at another provider is refused as well
    spid = await provider(rp, twin, "spid")
    with pytest.raises(TokenRejected):
        parse_authorization_response({**params, "iss": spid.issuer}, pending, spid)


async def test_downgraded_acr_is_refused(http: aiohttp.ClientSession, rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "spid")
    await set_faults(http, twin, "downgrade_acr")
    params, pending = await browser_login(rp, op, MARIO.code)
    with pytest.raises(TokenRejected) as info:
        await rp.client.complete(op, params, pending)
    assert info.value.check == "acr"


async def test_tampered_userinfo_jwe_is_refused(
    http: aiohttp.ClientSession, rp: Rp, twin: str
) -> None:
    op = await provider(rp, twin, "cie")
    await set_faults(http, twin, "tamper_userinfo")
    params, pending = await browser_login(rp, op, MARIO.code)
    with pytest.raises(TokenRejected) as info:
        await rp.client.complete(op, params, pending)
    assert info.value.check == "decrypt"


async def test_userinfo_for_another_rp_key_is_refused(rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "cie")
    params, pending = await browser_login(rp, op, MARIO.code)
    rp.settings.decryption_keys = KeySet([generate_key(use="enc")])
    with pytest.raises(TokenRejected) as info:
        await rp.client.complete(op, params, pending)
    assert info.value.check in ("kid", "decrypt")


async def test_id_token_signed_outside_the_chain_is_refused(
    http: aiohttp.ClientSession, rp: Rp, twin: str
) -> None:
    op = await provider(rp, twin, "cie")
    await set_faults(http, twin, "op_key_outside_chain")
    params, pending = await browser_login(rp, op, MARIO.code)
    with pytest.raises(TokenRejected) as info:
        await rp.client.complete(op, params, pending)
    assert info.value.check == "kid"


async def test_user_below_the_level_gets_access_denied(rp: Rp, twin: str) -> None:
    op = await provider(rp, twin, "spid")
    params, pending = await browser_login(rp, op, ANNA.code, acr="https://www.spid.gov.it/SpidL2")
    with pytest.raises(ProviderError) as info:
        parse_authorization_response(params, pending, op)
    assert info.value.check == "access_denied"


async def test_twin_refuses_a_request_object_signed_outside_the_rp_metadata(
    rp: Rp, twin: str
) -> None:
    op = await provider(rp, twin, "cie")
    settings = dataclasses.replace(rp.settings, signing_key=generate_key())
    request = build_authorization_request(settings, op)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(request.url, allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
    assert location.startswith(rp.settings.redirect_uri)
    assert "error=invalid_request_object" in location


async def test_twin_refuses_an_rp_outside_the_federation(
    http: aiohttp.ClientSession, rp: Rp, twin: str
) -> None:
    op = await provider(rp, twin, "cie")
    rp.config.trust_marks = []  # the RP publishes no trust mark
    request = build_authorization_request(rp.settings, op)
    async with http.get(request.url, allow_redirects=False) as resp:
        assert resp.status == 400
        assert resp.headers["X-Sandbox-Error"] == "unauthorized_client"

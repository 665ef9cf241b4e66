"""The relying party's side of the SPID/CIE OpenID Connect authorization code flow.

``build_authorization_request`` makes the redirect (signed request object, PKCE S256, state
and nonce of 43 characters, ``acr_values``, ``claims``, ``prompt``, ``ui_locales``) and the
``PendingAuthorization`` the caller binds to the browser. ``parse_authorization_response``
checks the callback (state, ``iss`` against mix-up, OAuth errors). ``OidcRelyingParty`` then
exchanges the code with a ``private_key_jwt`` client assertion and the ``code_verifier``,
validates the ID token against the OP keys of its resolved trust chain, fetches the userinfo
(a JWE decrypted with the RP's key, whose payload is a JWS verified with the OP keys) and
revokes tokens at logout. The provider is always built from a verified ``TrustChain``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from joserfc.jwk import ECKey, KeySet, RSAKey
from yarl import URL

from ..errors import ConnectError, ConnectorTimeout
from .errors import ProviderError, TokenRejected
from .federation import TrustChain
from .tokens import (
    MAX_JWT_BYTES,
    SIGNING_ALGS,
    b64url,
    check_times,
    decrypt_jwe,
    sign_jws,
    verify_jws,
)

__all__ = [
    "ACR_LEVELS",
    "CLIENT_ASSERTION_TYPE",
    "AuthorizationRequest",
    "IdToken",
    "LoginResult",
    "OidcRelyingParty",
    "PendingAuthorization",
    "Provider",
    "RelyingPartySettings",
    "TokenResponse",
    "build_authorization_request",
    "parse_authorization_response",
    "pkce_pair",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Authentication levels in order (SPID and CIE use the same URIs in OIDC).
ACR_LEVELS: dict[str, int] = {
    "https://www.spid.gov.it/SpidL1": 1,
    "https://www.spid.gov.it/SpidL2": 2,
    "https://www.spid.gov.it/SpidL3": 3,
}
PENDING_LIFETIME = 600.0  # seconds a login may take between redirect and callback


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class Provider:
    """An OpenID provider as its verified trust chain describes it (final metadata)."""

    entity_id: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    revocation_endpoint: str | None
    jwks: dict[str, Any]
    id_token_algs: tuple[str, ...] = SIGNING_ALGS

    @classmethod
    def from_chain(cls, chain: TrustChain) -> Provider:
        meta = chain.entity_metadata("openid_provider")
        issuer = meta.get("issuer")
        if not isinstance(issuer, str) or not _same(issuer, chain.subject):
            raise TokenRejected("iss", "the provider's issuer differs from its entity ID")
        for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
            if not isinstance(meta.get(name), str):
                raise TokenRejected("metadata", f"the provider metadata has no {name}")
        jwks = meta.get("jwks")
        if not isinstance(jwks, dict):
            raise TokenRejected("metadata", "the provider metadata has no jwks")
        supported = meta.get("id_token_signing_alg_values_supported")
        algs = tuple(a for a in SIGNING_ALGS if not isinstance(supported, list) or a in supported)
        return cls(
            chain.subject,
            issuer,
            meta["authorization_endpoint"],
            meta["token_endpoint"],
            meta["userinfo_endpoint"],
            meta.get("revocation_endpoint"),
            jwks,
            algs,
        )


@dataclass
class RelyingPartySettings:
    """``client_id`` is the RP's entity ID. ``signing_key`` signs request objects and client
    assertions; ``decryption_keys`` open the userinfo JWE."""

    client_id: str
    redirect_uri: str
    signing_key: RSAKey | ECKey
    decryption_keys: KeySet
    leeway: float = 60.0


@dataclass(frozen=True)
class PendingAuthorization:
    """What the RP must remember (bound to the browser) between redirect and callback."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    acr_values: tuple[str, ...]
    created_at: float

    @property
    def min_level(self) -> int:
        return min(ACR_LEVELS.get(a, 99) for a in self.acr_values) if self.acr_values else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["acr_values"] = list(self.acr_values)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingAuthorization:
        return cls(**{**data, "acr_values": tuple(data["acr_values"])})


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    request_object: str
    pending: PendingAuthorization


def pkce_pair() -> tuple[str, str]:
    """``(code_verifier, code_challenge)`` for PKCE S256 (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def build_authorization_request(
    settings: RelyingPartySettings,
    provider: Provider,
    *,
    acr_values: Sequence[str] = ("https://www.spid.gov.it/SpidL2",),
    claims: Mapping[str, Any] | None = None,
    scope: Sequence[str] = ("openid",),
    prompt: str = "consent login",
    ui_locales: Sequence[str] = (),
    now: float | None = None,
    lifetime: int = 300,
) -> AuthorizationRequest:
    """The authorization redirect URL (query serialisation) and its pending state."""
    unknown = [a for a in acr_values if a not in ACR_LEVELS]
    if unknown or not acr_values:
        raise ValueError(f"acr_values must be SPID levels, got {list(acr_values)}")
    if "openid" not in scope:
        raise ValueError("scope must contain openid")
    if prompt not in ("consent", "consent login"):
        raise ValueError("prompt must be 'consent' or 'consent login'")
    issued = int(now if now is not None else time.time())
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)  # 43 characters each
    scope_text = " ".join(scope)
    request: dict[str, Any] = {
        "iss": settings.client_id,
        "sub": settings.client_id,
        "aud": provider.issuer,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "client_id": settings.client_id,
        "response_type": "code",
        "scope": scope_text,
        "redirect_uri": settings.redirect_uri,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": " ".join(acr_values),
        "prompt": prompt,
    }
    if claims:
        request["claims"] = dict(claims)
    if ui_locales:
        request["ui_locales"] = " ".join(ui_locales)
    request_object = sign_jws(request, settings.signing_key)
    url = URL(provider.authorization_endpoint).update_query(
        {
            "client_id": settings.client_id,
            "response_type": "code",
            "scope": scope_text,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "request": request_object,
        }
    )
    pending = PendingAuthorization(
        provider.entity_id,
        state,
        nonce,
        verifier,
        settings.redirect_uri,
        tuple(acr_values),
        float(issued),
    )
    return AuthorizationRequest(str(url), request_object, pending)


def parse_authorization_response(
    params: Mapping[str, str],
    pending: PendingAuthorization,
    provider: Provider,
    *,
    now: float | None = None,
) -> str:
    """The authorization ``code`` of a callback, after the checks: the ``state`` is the one
    bound to this browser, ``iss`` (when sent; CIE always sends it, RFC 9207) is the provider
    we sent the user to, the login is not stale; an OAuth error becomes ``ProviderError``."""
    state = params.get("state", "")
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise TokenRejected("state", "the callback state is not the one of this browser")
    if not _same(pending.provider, provider.entity_id):
        raise TokenRejected("iss", "the provider is not the one the login started with")
    iss = params.get("iss")
    if iss is not None and not _same(iss, provider.issuer):
        raise TokenRejected("iss", "the callback comes from another issuer (mix-up)")
    current = now if now is not None else time.time()
    if current - pending.created_at > PENDING_LIFETIME:
        raise TokenRejected("expired", "the login took too long; start again")
    if "error" in params:
        raise ProviderError(
            params["error"][:64], params.get("error_description", "")[:300] or "login refused"
        )
    code = params.get("code")
    if not code:
        raise TokenRejected("code", "the callback has no code")
    return code


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    id_token: str
    token_type: str
    expires_in: int | None
    refresh_token: str | None = None


@dataclass(frozen=True)
class IdToken:
    claims: dict[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def acr(self) -> str:
        return str(self.claims["acr"])

    @property
    def level(self) -> int:
        return ACR_LEVELS[self.acr]


@dataclass(frozen=True)
class LoginResult:
    id_token: IdToken
    userinfo: dict[str, Any]
    tokens: TokenResponse = field(repr=False)


def _hash_half(alg: str, value: str) -> str:
    digest = hashlib.sha512 if alg.endswith("512") else hashlib.sha256
    full = digest(value.encode("ascii")).digest()
    return b64url(full[: len(full) // 2])


class OidcRelyingParty:
    """Token endpoint, ID token, userinfo and revocation for one relying party."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: RelyingPartySettings,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.session = session
        self.settings = settings
        self.clock = clock
        self.timeout = timeout

    # -- HTTP --------------------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, *, data: Mapping[str, str] | None = None, bearer: str = ""
    ) -> tuple[int, str, bytes]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            async with self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                body = await resp.content.read(MAX_JWT_BYTES + 1)
                return resp.status, resp.headers.get("Content-Type", ""), body
        except TimeoutError as exc:
            raise ConnectorTimeout(f"the provider did not answer within {self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise ConnectError(f"the provider is unreachable: {type(exc).__name__}") from exc

    @staticmethod
    def _error(status: int, body: bytes) -> ProviderError:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            return ProviderError(
                answer["error"][:64], str(answer.get("error_description", ""))[:300], status=status
            )
        return ProviderError("http", f"the provider answered HTTP {status}", status=status)

    def client_assertion(self, audience: str) -> str:
        """A ``private_key_jwt`` client assertion (iss = sub = client_id, aud, jti)."""
        now = int(self.clock())
        return sign_jws(
            {
                "iss": self.settings.client_id,
                "sub": self.settings.client_id,
                "aud": audience,
                "iat": now,
                "exp": now + 120,
                "jti": str(uuid.uuid4()),
            },
            self.settings.signing_key,
        )

    def _client_auth(self, audience: str) -> dict[str, str]:
        return {
            "client_id": self.settings.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(audience),
        }

    # -- the flow ----------------------------------------------------------------------------

    async def exchange_code(
        self, provider: Provider, code: str, pending: PendingAuthorization
    ) -> TokenResponse:
        data = {
            **self._client_auth(provider.token_endpoint),
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": pending.code_verifier,
            "redirect_uri": pending.redirect_uri,
        }
        status, _ctype, body = await self._call("POST", provider.token_endpoint, data=data)
        if status != 200:
            raise self._error(status, body)
        if len(body) > MAX_JWT_BYTES:
            raise TokenRejected("oversize", "the token response is too large")
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise ProviderError("malformed", "the token response is not JSON") from exc
        if not isinstance(answer, dict):
            raise ProviderError("malformed", "the token response is not an object")
        access, id_token = answer.get("access_token"), answer.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise ProviderError("malformed", "the token response lacks access_token or id_token")
        if str(answer.get("token_type", "")).lower() != "bearer":
            raise ProviderError("malformed", "token_type must be Bearer")
        expires = answer.get("expires_in")
        refresh = answer.get("refresh_token")
        return TokenResponse(
            access,
            id_token,
            "Bearer",
            int(expires) if isinstance(expires, int | float) else None,
            refresh if isinstance(refresh, str) else None,
        )

    def validate_id_token(
        self,
        provider: Provider,
        token: str,
        pending: PendingAuthorization,
        *,
        access_token: str | None = None,
    ) -> IdToken:
        """Signature (OP keys from the chain, asymmetric algorithms only), ``iss``, ``aud``,
        ``nonce``, ``exp``/``iat`` with leeway, ``at_hash`` and ``acr`` at least the level
        asked for."""
        header, claims = verify_jws(token, provider.jwks, algs=provider.id_token_algs)
        if not isinstance(claims.get("iss"), str) or not _same(claims["iss"], provider.issuer):
            raise TokenRejected("iss", "the ID token comes from another issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.settings.client_id not in audiences:
            raise TokenRejected("aud", "the ID token is not for this relying party")
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise TokenRejected("aud", "the ID token has several audiences and no matching azp")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), pending.nonce.encode()
        ):
            raise TokenRejected("nonce", "the ID token nonce is not the one of this login")
        check_times(claims, self.clock(), leeway=self.settings.leeway)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("sub", "the ID token has no sub")
        acr = claims.get("acr")
        if acr not in ACR_LEVELS:
            raise TokenRejected("acr", "the ID token has no known acr")
        if ACR_LEVELS[str(acr)] < pending.min_level:
            raise TokenRejected("acr", "the provider authenticated at a lower level than asked")
        at_hash = claims.get("at_hash")
        if access_token is not None and at_hash is not None:
            if at_hash != _hash_half(str(header["alg"]), access_token):
                raise TokenRejected("at_hash", "the ID token at_hash does not match")
        return IdToken(claims)

    def decode_userinfo(
        self, provider: Provider, body: bytes | str, *, subject: str
    ) -> dict[str, Any]:
        """The userinfo claims from a JWE (RP key) wrapping a JWS (OP key)."""
        _header, inner = decrypt_jwe(body, self.settings.decryption_keys)
        _signed_header, claims = verify_jws(inner, provider.jwks, algs=provider.id_token_algs)
        if not isinstance(claims.get("iss"), str) or not _same(claims["iss"], provider.issuer):
            raise TokenRejected("iss", "the userinfo comes from another issuer")
        aud = claims.get("aud")
        if self.settings.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise TokenRejected("aud", "the userinfo is not for this relying party")
        if claims.get("sub") != subject:
            raise TokenRejected("sub", "the userinfo sub differs from the ID token's")
        check_times(claims, self.clock(), leeway=self.settings.leeway)
        return claims

    async def userinfo(
        self, provider: Provider, access_token: str, *, subject: str
    ) -> dict[str, Any]:
        status, _ctype, body = await self._call(
            "GET", provider.userinfo_endpoint, bearer=access_token
        )
        if status != 200:
            raise self._error(status, body)
        return self.decode_userinfo(provider, body, subject=subject)

    async def complete(
        self, provider: Provider, params: Mapping[str, str], pending: PendingAuthorization
    ) -> LoginResult:
        """Callback to identity: response checks, code exchange, ID token, userinfo."""
        code = parse_authorization_response(params, pending, provider, now=self.clock())
        tokens = await self.exchange_code(provider, code, pending)
        id_token = self.validate_id_token(
            provider, tokens.id_token, pending, access_token=tokens.access_token
        )
        claims = await self.userinfo(provider, tokens.access_token, subject=id_token.sub)
        return LoginResult(id_token, claims, tokens)

    async def revoke(self, provider: Provider, token: str, *, hint: str = "access_token") -> None:
        """Revoke a token (logout); the provider answers 200 even for unknown tokens."""
        if not provider.revocation_endpoint:
            raise ProviderError("revocation", "the provider has no revocation_endpoint")
        data = {
            **self._client_auth(provider.revocation_endpoint),
            "token": token,
            "token_type_hint": hint,
        }
        status, _ctype, body = await self._call("POST", provider.revocation_endpoint, data=data)
        if status != 200:
            raise self._error(status, body)


def acr_for_level(level: int) -> str:
    """The acr URI of a SPID level (1-3)."""
    for uri, value in ACR_LEVELS.items():
        if value == level:
            return uri
    raise ValueError("level must be 1, 2 or 3")


def allowed(values: Collection[str]) -> list[str]:
    return [v for v in values if v in ACR_LEVELS]

"""The login handoff API's models, for the generated OpenAPI document (the handler reads
the body itself: ``tests/login`` checks that it and the model agree)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LoginExchange(BaseModel):
    code: str = Field(min_length=20, max_length=100, description="the code received on return_to")


class LoginIdentity(BaseModel):
    scheme: Literal["spid", "cie"]
    protocol: Literal["saml", "oidc"] = Field(description="how the login reached the hub")
    session_id: str
    idp: str
    level: int = Field(ge=1, le=3)
    fiscal_code: str | None = None
    attributes: dict[str, str]
    authn_instant: str | None = None

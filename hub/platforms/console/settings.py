"""The operator console's part of the configuration: the hub-wide ``[console]`` section
(sessions and the limit on wrong login attempts) and ``[tenants.console]`` (the comune's
staff who may log in with SPID or CIE, by fiscal code, with their role)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from sportello.config import ConfigModel as _Model
from sportello.config import HubConfig, TenantConfig

ROLES = ("staff", "tenant-admin")
FISCAL_CODE = re.compile(r"^[A-Z0-9]{16}$")


def normal_fiscal_code(value: str) -> str:
    """The fiscal code upper-cased, or ValueError (16 letters and digits)."""
    code = value.strip().upper()
    if not FISCAL_CODE.match(code):
        raise ValueError("a fiscal code is 16 letters and digits")
    return code


class StaffMember(_Model):
    fiscal_code: str = Field(description="the person's fiscal code (as SPID/CIE give it)")
    role: Literal["staff", "tenant-admin"] = "staff"

    @field_validator("fiscal_code")
    @classmethod
    def _code(cls, value: str) -> str:
        return normal_fiscal_code(value)


class ConsoleTenantSettings(_Model):
    """Who of the comune may log in to the console (SPID/CIE through the hub)."""

    staff: list[StaffMember] = Field(default_factory=list)


class ConsoleSettings(_Model):
    """``[console]``: the operator console's sessions and login attempt limit."""

    idle_minutes: Annotated[int, Field(gt=0, le=24 * 60)] = 30
    lifetime_hours: Annotated[int, Field(gt=0, le=72)] = 8
    max_attempts: Annotated[int, Field(gt=0, le=100)] = 5
    lock_minutes: Annotated[int, Field(gt=0, le=24 * 60)] = 15
    totp_issuer: str = "Sportello"


#: The sections this platform declares (``hub_tenant_settings``, ``hub_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"console": ConsoleTenantSettings}
HUB_SECTIONS: dict[str, type[_Model]] = {"console": ConsoleSettings}


def console_tenant_settings(tenant: TenantConfig) -> ConsoleTenantSettings | None:
    value = getattr(tenant, "console", None)
    return value if isinstance(value, ConsoleTenantSettings) else None


def console_settings(config: HubConfig) -> ConsoleSettings:
    value = config.section("console")
    return value if isinstance(value, ConsoleSettings) else ConsoleSettings()

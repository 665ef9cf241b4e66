"""The App IO platform's part of the configuration: ``[tenants.io]``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sportello.config import ConfigModel as _Model
from sportello.config import HttpUrl, SecretRef, TenantConfig


class IoServiceSettings(_Model):
    id: str
    name: str = ""
    key: SecretRef
    secondary_key: SecretRef | None = None


class IoTenantSettings(_Model):
    base_url: HttpUrl = Field(description="App IO API base URL (the sandbox's in the demo)")
    services: list[IoServiceSettings] = Field(default_factory=list)
    rate_limit: Annotated[int, Field(ge=0)] = Field(
        default=150, description="calls per key per rate_window, shared by replicas; 0 = off"
    )
    rate_window: Annotated[float, Field(gt=0)] = 5.0
    rate_margin: Annotated[float, Field(ge=0, le=60)] = Field(
        default=0.25,
        description="seconds added to rate_window when pacing: any rate_limit + 1 consecutive "
        "calls span at least rate_window + rate_margin, so network jitter up to this much "
        "between the hub and App IO costs no 429 (0.25: 100 ms of jitter with room to spare)",
    )
    status_poll_delay: Annotated[float, Field(gt=0)] = 30.0
    status_poll_attempts: Annotated[int, Field(ge=0)] = 5
    http_client: Literal["lean", "aiohttp"] = Field(
        default="lean",
        description="lean: the hub's own HTTP/1.1 client for App IO calls (a third of the "
        "CPU per call); aiohttp: the shared session (e.g. behind an HTTP proxy)",
    )

    def service(self, service_id: str) -> IoServiceSettings | None:
        return next((s for s in self.services if s.id == service_id), None)


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"io": IoTenantSettings}


def io_settings(tenant: TenantConfig) -> IoTenantSettings | None:
    """The tenant's ``[tenants.io]``, if configured."""
    value = getattr(tenant, "io", None)
    return value if isinstance(value, IoTenantSettings) else None

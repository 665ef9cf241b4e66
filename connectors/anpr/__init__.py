"""ANPR e-services through PDND (C030, C020, C021, C015, C029, C003, C007). See README.md."""

from .client import AnprClient
from .errors import AnprError, AnprRejected, GatewayRejected, SubjectNotFound, TokenExpired
from .models import (
    BirthPlace,
    DeclarationCheck,
    DeclaredData,
    FamilyMember,
    Person,
    Residence,
)
from .services import COLLAUDO_BASE_URL, PRODUZIONE_BASE_URL, SERVICES

__all__ = [
    "COLLAUDO_BASE_URL",
    "PRODUZIONE_BASE_URL",
    "SERVICES",
    "AnprClient",
    "AnprError",
    "AnprRejected",
    "BirthPlace",
    "DeclarationCheck",
    "DeclaredData",
    "FamilyMember",
    "GatewayRejected",
    "Person",
    "Residence",
    "SubjectNotFound",
    "TokenExpired",
]

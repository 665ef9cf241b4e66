"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the handlers in ``sportello.api``; ``tests/integration/test_api.py``
checks that every route is described, and that real answers validate against it.
"""

from __future__ import annotations

from typing import Any

from . import __version__

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


ERRORS = {
    "400": _problem("Bad request: the detail says which parameter and why"),
    "401": _problem("Missing, unknown or revoked API key"),
    "403": _problem("The key lacks the scope this operation needs"),
    "404": _problem("Not found (also: a tenant the key may not see)"),
}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next": {
                "type": ["string", "null"],
                "description": "pass as ?after= to get the next page; null on the last page",
            },
        },
    }


TENANT_PARAM = {
    "name": "tenant",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,39}$"},
}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {
        "name": "after",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    },
]
NULLABLE_STR = {"type": ["string", "null"]}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
    "Tenant": {
        "type": "object",
        "required": ["id", "name", "ipa_code", "fiscal_code", "cadastral_code", "platforms"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "ipa_code": {"type": "string"},
            "fiscal_code": {"type": "string"},
            "cadastral_code": {"type": "string"},
            "platforms": {"type": "array", "items": {"type": "string"}},
        },
    },
    "OutboxJob": {
        "type": "object",
        "required": ["id", "tenant_id", "kind", "status", "attempts", "idempotency_key"],
        "properties": {
            "id": {"type": "integer"},
            "tenant_id": {"type": "string"},
            "kind": {"type": "string"},
            "idempotency_key": {"type": "string"},
            "status": {"enum": ["pending", "running", "done", "failed", "cancelled"]},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "next_attempt_at": {"type": "string", "format": "date-time"},
            "lease_owner": NULLABLE_STR,
            "lease_expires_at": NULLABLE_TIME,
            "last_error": NULLABLE_STR,
            "remote_id": NULLABLE_STR,
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": NULLABLE_TIME,
            "ledger": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEntry"}},
        },
    },
    "LedgerEntry": {
        "type": "object",
        "required": ["attempt", "outcome", "worker", "recorded_at"],
        "properties": {
            "id": {"type": "integer"},
            "outbox_id": {"type": "integer"},
            "tenant_id": {"type": "string"},
            "kind": {"type": "string"},
            "idempotency_key": {"type": "string"},
            "attempt": {"type": "integer"},
            "outcome": {"type": "string"},
            "worker": {"type": "string"},
            "remote_id": NULLABLE_STR,
            "error": NULLABLE_STR,
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "tenant_id", "actor", "action", "subject", "purpose", "outcome"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "tenant_id": {"type": "string"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "subject": {"type": "string"},
            "purpose": {"type": "string"},
            "sources": {"type": "string"},
            "outcome": {"type": "string"},
            "detail": NULLABLE_STR,
            "request_id": NULLABLE_STR,
        },
    },
}

SCHEMAS["CampaignRequest"] = {
    "type": "object",
    "required": ["service_id", "name", "subject", "markdown", "csv"],
    "additionalProperties": False,
    "properties": {
        "service_id": {
            "type": "string",
            "minLength": 1,
            "description": "an App IO service of the tenant",
        },
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "subject": {
            "type": "string",
            "minLength": 1,
            "description": "Jinja2 template, 10-120 characters once rendered",
        },
        "markdown": {
            "type": "string",
            "minLength": 1,
            "description": "Jinja2 template, 80-10000 characters once rendered",
        },
        "csv": {
            "type": "string",
            "minLength": 1,
            "description": "header + rows: fiscal_code;expedition_date;due_date;notice_number;"
            "amount;<template fields>. Every row is validated before anything is queued.",
        },
        "feature_level_type": {"enum": ["STANDARD", "ADVANCED"]},
    },
}
SCHEMAS["CampaignCreated"] = {
    "type": "object",
    "required": ["id", "messages"],
    "properties": {"id": {"type": "integer"}, "messages": {"type": "integer"}},
}
SCHEMAS["CampaignReport"] = {
    "type": "object",
    "required": ["id", "name", "service_id", "rows_total", "counts"],
    "properties": {
        "id": {"type": "integer"},
        "tenant_id": {"type": "string"},
        "service_id": {"type": "string"},
        "name": {"type": "string"},
        "rows_total": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "messages": {
            "type": "array",
            "description": "only for keys with the personal_data scope (the read is audited)",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "row_number": {"type": ["integer", "null"]},
                    "fiscal_code": {"type": "string"},
                    "status": {"type": "string"},
                    "io_message_id": NULLABLE_STR,
                    "error": NULLABLE_STR,
                },
            },
        },
    },
}
SOURCED = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["value", "source"],
            "properties": {"value": {}, "source": {"enum": ["anpr", "registry"]}},
        },
    ]
}
SCHEMAS["Resident"] = {
    "type": "object",
    "required": ["fiscal_code", "found", "fields", "sources", "warnings", "request_id"],
    "properties": {
        "fiscal_code": {"type": "string"},
        "found": {"type": "boolean"},
        "fields": {
            "type": "object",
            "description": "each field with the source it came from (ANPR wins over the "
            "comune's registry; the registry fills what ANPR does not give)",
            "additionalProperties": SOURCED,
        },
        "household": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "fiscal_code": NULLABLE_STR,
                    "family_name": NULLABLE_STR,
                    "given_name": NULLABLE_STR,
                    "relationship": NULLABLE_STR,
                    "relationship_code": NULLABLE_STR,
                    "source": {"enum": ["anpr", "registry"]},
                },
            },
        },
        "sources": {"type": "array", "items": {"type": "string"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "request_id": {"type": "string"},
    },
}
SCHEMAS["Practice"] = {
    "type": "object",
    "required": ["id", "applicant_fiscal_code", "title", "kind", "status", "submitted_at"],
    "properties": {
        "id": {"type": "string"},
        "applicant_fiscal_code": {"type": "string"},
        "applicant_name": NULLABLE_STR,
        "title": {"type": "string"},
        "kind": {"type": "string"},
        "status": {"type": "string"},
        "submitted_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
SCHEMAS["PracticeDetail"] = {
    "allOf": [{"$ref": "#/components/schemas/Practice"}],
    "type": "object",
    "required": ["timeline", "documents"],
    "properties": {
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["practice_id", "status", "at"],
                "properties": {
                    "practice_id": {"type": "string"},
                    "status": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "note": NULLABLE_STR,
                },
            },
        },
        "documents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "media_type", "size"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "media_type": {"type": "string"},
                    "size": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "repeat a request with the same key to get the same answer, never twice",
}

PATHS: dict[str, Any] = {
    "/api/v1/tenants": {
        "get": {
            "operationId": "listTenants",
            "summary": "Tenants this key may see (all of them for an admin key)",
            "responses": {"200": _json(_page("Tenant")), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}": {
        "get": {
            "operationId": "getTenant",
            "summary": "One tenant",
            "parameters": [TENANT_PARAM],
            "responses": {"200": _json({"$ref": "#/components/schemas/Tenant"}), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}/outbox": {
        "get": {
            "operationId": "listOutboxJobs",
            "summary": "Outbound work of the tenant, oldest first (scope read)",
            "parameters": [
                TENANT_PARAM,
                *PAGING,
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"enum": ["pending", "running", "done", "failed", "cancelled"]},
                },
                {"name": "kind", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": _json(_page("OutboxJob")), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}/outbox/{job_id}": {
        "get": {
            "operationId": "getOutboxJob",
            "summary": "One outbox job with its ledger of attempts (scope read)",
            "parameters": [
                TENANT_PARAM,
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}},
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/OutboxJob"}), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}/audit": {
        "get": {
            "operationId": "listAuditEntries",
            "summary": "Personal-data reads of the tenant (scope personal_data)",
            "parameters": [
                TENANT_PARAM,
                *PAGING,
                {"name": "subject", "in": "query", "schema": {"type": "string"}},
                {"name": "actor", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {
                    "name": "until",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
            ],
            "responses": {"200": _json(_page("AuditEntry")), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}/io/campaigns": {
        "post": {
            "operationId": "createIoCampaign",
            "summary": "Queue an App IO campaign from CSV rows and a template (scope write)",
            "parameters": [TENANT_PARAM, IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/CampaignRequest"}}
                },
            },
            "responses": {
                "201": _json({"$ref": "#/components/schemas/CampaignCreated"}, "Queued"),
                "422": _problem(
                    "Rows that cannot be sent (listed in errors), or an Idempotency-Key reused "
                    "for another request; nothing queued"
                ),
                **ERRORS,
            },
        }
    },
    "/api/v1/tenants/{tenant}/io/campaigns/{campaign_id}": {
        "get": {
            "operationId": "getIoCampaign",
            "summary": "Delivery report of a campaign (scope read; recipients with personal_data)",
            "parameters": [
                TENANT_PARAM,
                {
                    "name": "campaign_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/CampaignReport"}), **ERRORS},
        }
    },
    "/api/v1/tenants/{tenant}/suap/practices": {
        "get": {
            "operationId": "listSuapPractices",
            "summary": "An applicant's SUAP practices, newest first (scope personal_data; audited)",
            "parameters": [
                TENANT_PARAM,
                {
                    "name": "applicant",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^([A-Za-z0-9]{16}|[0-9]{11})$"},
                },
            ],
            "responses": {
                "200": _json(_page("Practice")),
                **ERRORS,
                "409": _problem("The tenant has no SUAP adapter configured"),
            },
        }
    },
    "/api/v1/tenants/{tenant}/suap/practices/{practice_id}": {
        "get": {
            "operationId": "getSuapPractice",
            "summary": "One practice with its status timeline and documents (personal_data)",
            "parameters": [
                TENANT_PARAM,
                {
                    "name": "practice_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/PracticeDetail"}),
                **ERRORS,
                "409": _problem("The tenant has no SUAP adapter configured"),
            },
        }
    },
    "/api/v1/tenants/{tenant}/logins/exchange": {
        "post": {
            "operationId": "exchangeLoginCode",
            "summary": "The identity behind a SPID/CIE login code, once (scope personal_data; "
            "audited). A repeat answers 404: the identity is never stored for replay.",
            "parameters": [TENANT_PARAM, IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["code"],
                            "properties": {
                                "code": {"type": "string", "minLength": 20, "maxLength": 100}
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["scheme", "session_id", "idp", "level", "attributes"],
                        "properties": {
                            "scheme": {"type": "string", "enum": ["spid", "cie"]},
                            "session_id": {"type": "string"},
                            "idp": {"type": "string"},
                            "level": {"type": "integer", "minimum": 1, "maximum": 3},
                            "fiscal_code": {"type": ["string", "null"]},
                            "attributes": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authn_instant": {"type": ["string", "null"]},
                        },
                    }
                ),
                **ERRORS,
                "404": _problem("Unknown, expired or already exchanged code, or no such tenant"),
            },
        }
    },
    "/api/v1/tenants/{tenant}/residents/{fiscal_code}": {
        "get": {
            "operationId": "lookupResident",
            "summary": "A resident from ANPR and the comune's registry (scope personal_data; "
            "audited)",
            "parameters": [
                TENANT_PARAM,
                {
                    "name": "fiscal_code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {
                    "name": "purpose",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                    "description": "file or protocol reference (ANPR motivoRichiesta)",
                },
                {
                    "name": "operator",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "the person at the counter (ModI userID); default: key name",
                },
                {"name": "household", "in": "query", "schema": {"type": "boolean"}},
            ],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Resident"}),
                **ERRORS,
                "404": {
                    "description": "Found in no source (a Resident), or no such tenant (a Problem)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Resident"}},
                        "application/problem+json": {"schema": PROBLEM},
                    },
                },
                "409": _problem("The tenant has neither ANPR nor a registry adapter configured"),
            },
        }
    },
}


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sportello API",
            "version": __version__,
            "description": "One API over SPID/CIE, pagoPA, App IO and ANPR for software houses "
            "that serve many comuni. Every call needs `Authorization: Bearer sk_...`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": {**PATHS, **(extra_paths or {})},
    }

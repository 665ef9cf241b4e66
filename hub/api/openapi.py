"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand next to the handlers in ``sportello.api.core``; ``tests/integration/test_api.py``
checks that every route is described, and that real answers validate against it.
"""

from __future__ import annotations

from typing import Any

from sportello import __version__

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
    "CampaignSummary": {
        "type": "object",
        "required": ["id", "service_id", "name", "rows_total", "created_by", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "service_id": {"type": "string"},
            "name": {"type": "string"},
            "rows_total": {"type": "integer"},
            "created_by": {"type": "string"},
            "created_at": DATE_TIME,
        },
    },
    "MessageRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["service_id", "fiscal_code", "subject", "markdown"],
        "properties": {
            "service_id": {"type": "string"},
            "fiscal_code": {"type": "string", "pattern": "^[A-Za-z0-9]{16}$"},
            "subject": {"type": "string", "minLength": 1},
            "markdown": {"type": "string", "minLength": 1},
            "due_date": {"type": "string"},
            "notice_number": {"type": "string"},
            "amount": {"type": "string"},
            "expedition_date": {"type": "string"},
            "feature_level_type": {"enum": ["STANDARD", "ADVANCED"]},
        },
    },
    "MessageStatus": {
        "type": "object",
        "required": ["id", "service_id", "status", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "service_id": {"type": "string"},
            "campaign_id": {"type": ["integer", "null"]},
            "status": {"type": "string"},
            "io_message_id": NULLABLE_STR,
            "error": NULLABLE_STR,
            "attempts": {"type": "integer"},
            "expedition_at": DATE_TIME,
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
            "sent_at": NULLABLE_TIME,
            "fiscal_code": {"type": "string"},
        },
    },
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
        "failures": {
            "type": "array",
            "description": "platforms that failed while another source found the person",
            "items": {"$ref": "#/components/schemas/SourceFailure"},
        },
        "request_id": {"type": "string", "description": "the support id, also in the logs"},
    },
}
SCHEMAS["SourceFailure"] = {
    "type": "object",
    "properties": {
        "platform": {"type": "string", "description": "PDND, ANPR or the comune's registry"},
        "error": {"type": "string"},
        "status": {"type": ["integer", "null"], "description": "the platform's HTTP status"},
        "platform_id": {
            "type": ["string", "null"],
            "description": "the platform's own id (PDND correlationId, GovWay transaction id)",
        },
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
        },
        "get": {
            "operationId": "listIoCampaigns",
            "summary": "The tenant's App IO campaigns, oldest first (scope read)",
            "parameters": [TENANT_PARAM, *PAGING],
            "responses": {"200": _json(_page("CampaignSummary")), **ERRORS},
        },
    },
    "/api/v1/tenants/{tenant}/io/messages": {
        "post": {
            "operationId": "createIoMessage",
            "summary": "Queue one App IO message (scope write); a notice of a position the hub "
            "keeps carries its payment data by itself",
            "parameters": [TENANT_PARAM, IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/MessageRequest"}}
                },
            },
            "responses": {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["id", "status", "payment_data"],
                        "properties": {
                            "id": {"type": "integer"},
                            "status": {"type": "string"},
                            "payment_data": {"type": "boolean"},
                        },
                    },
                    "Queued",
                ),
                "422": _problem(
                    "The message cannot be sent (errors say why), or an Idempotency-Key reused "
                    "for another request; nothing queued"
                ),
                **ERRORS,
            },
        }
    },
    "/api/v1/tenants/{tenant}/io/messages/{message_id}": {
        "get": {
            "operationId": "getIoMessage",
            "summary": "A message's delivery status (scope read; the recipient with personal_data, "
            "audited)",
            "parameters": [
                TENANT_PARAM,
                {
                    "name": "message_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/MessageStatus"}), **ERRORS},
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
                "502": _problem(
                    "A platform (PDND, ANPR or the registry) failed and no source found the "
                    "person: `platform` names it, `support_id` is in the hub's logs, "
                    "`answered` lists the sources that did answer"
                ),
                "503": _problem(
                    "As 502, but the failed platform is rate limiting or unavailable: try "
                    "later (Retry-After when the platform said when)"
                ),
            },
        }
    },
}


# -- pagoPA (sportello.platforms.pagopa.api) ---------------------------------------------

_TEXT140 = {"type": "string", "minLength": 1, "maxLength": 140}
_CENTS = {"type": "integer", "minimum": 1, "maximum": 99_999_999_999}
_METADATA = {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "string"}}
_NOT_CONFIGURED = _problem("The tenant has no pagoPA settings ([tenants.pagopa])")
SCHEMAS["PagopaTransfer"] = {
    "type": "object",
    "required": ["id_transfer", "amount", "remittance_information", "category"],
    "additionalProperties": False,
    "description": "one beneficiary's share: an iban (optionally with a postal_iban) or a stamp",
    "properties": {
        "id_transfer": {"type": "integer", "minimum": 1, "maximum": 5},
        "amount": _CENTS,
        "organization_fiscal_code": {
            "type": "string",
            "pattern": "^[0-9]{11}$",
            "description": "the beneficiary (default: the tenant's ec_fiscal_code)",
        },
        "remittance_information": _TEXT140,
        "category": {"type": "string", "description": "taxonomy code, e.g. 9/0101002IM/"},
        "iban": {"type": ["string", "null"]},
        "postal_iban": {"type": ["string", "null"]},
        "stamp": {
            "type": ["object", "null"],
            "required": ["hash_document", "provincial_residence"],
            "properties": {
                "hash_document": {"type": "string"},
                "stamp_type": {"const": "01"},
                "provincial_residence": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
        },
        "company_name": {"type": ["string", "null"], "maxLength": 140},
        "metadata": _METADATA,
    },
}
SCHEMAS["PagopaPositionRequest"] = {
    "type": "object",
    "required": ["iupd", "type", "fiscal_code", "full_name", "payment_options"],
    "additionalProperties": False,
    "description": "a debt position; the hub allocates the IUVs (options carry none)",
    "properties": {
        "iupd": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"},
        "type": {"enum": ["F", "G"], "description": "debtor: person (F) or legal entity (G)"},
        "fiscal_code": {"type": "string", "description": "the debtor's, or ANONIMO"},
        "full_name": {"type": "string", "minLength": 1, "maxLength": 70},
        "street_name": {"type": ["string", "null"], "maxLength": 70},
        "civic_number": {"type": ["string", "null"], "maxLength": 16},
        "postal_code": {"type": ["string", "null"], "maxLength": 16},
        "city": {"type": ["string", "null"], "maxLength": 35},
        "province": {"type": ["string", "null"], "maxLength": 35},
        "region": {"type": ["string", "null"], "maxLength": 35},
        "country": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
        "email": {"type": ["string", "null"]},
        "company_name": {**_TEXT140, "description": "the creditor (default: the tenant's name)"},
        "office_name": {"type": ["string", "null"], "maxLength": 140},
        "switch_to_expired": {"type": "boolean"},
        "validity_date": NULLABLE_TIME,
        "pay_stand_in": {"type": "boolean"},
        "payment_options": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["amount", "description", "due_date", "transfers"],
                "additionalProperties": False,
                "properties": {
                    "amount": _CENTS,
                    "description": _TEXT140,
                    "due_date": DATE_TIME,
                    "retention_date": NULLABLE_TIME,
                    "is_partial_payment": {"type": "boolean"},
                    "installment_number": {"type": ["integer", "null"], "minimum": 1},
                    "transfers": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 5,
                        "items": {"$ref": "#/components/schemas/PagopaTransfer"},
                    },
                    "metadata": _METADATA,
                },
            },
        },
    },
}
SCHEMAS["PagopaOption"] = {
    "type": "object",
    "required": ["iuv", "notice_number", "amount", "description", "due_date", "status"],
    "properties": {
        "iuv": {"type": "string"},
        "notice_number": {"type": "string", "pattern": "^[0-9]{18}$"},
        "amount": {"type": "integer"},
        "description": {"type": "string"},
        "due_date": DATE_TIME,
        "retention_date": NULLABLE_TIME,
        "is_partial_payment": {"type": "boolean"},
        "installment_number": {"type": ["integer", "null"]},
        "status": {"enum": ["open", "paid"]},
        "receipt_id": NULLABLE_STR,
        "paid_at": NULLABLE_TIME,
        "transfers": {"type": "array", "items": {"type": "object"}},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
SCHEMAS["PagopaPosition"] = {
    "type": "object",
    "required": ["id", "iupd", "status", "mode", "company_name", "payment_options"],
    "properties": {
        "id": {"type": "integer"},
        "iupd": {"type": "string"},
        "status": {
            "enum": [
                "DRAFT",
                "PUBLISHED",
                "VALID",
                "INVALID",
                "EXPIRED",
                "PARTIALLY_PAID",
                "PAID",
                "REPORTED",
            ],
            "description": "GPD's state, with time applied (validity date, expiry)",
        },
        "mode": {"enum": ["gpd", "station"]},
        "company_name": {"type": "string"},
        "office_name": NULLABLE_STR,
        "validity_date": NULLABLE_TIME,
        "switch_to_expired": {"type": "boolean"},
        "pay_stand_in": {"type": "boolean"},
        "payment_options": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/PagopaOption"},
        },
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "debtor": {
            "type": "object",
            "description": "only in GET .../positions/{iupd} (personal_data, audited)",
            "properties": {
                "type": {"enum": ["F", "G"]},
                "fiscal_code": {"type": "string"},
                "full_name": {"type": "string"},
                "street_name": NULLABLE_STR,
                "civic_number": NULLABLE_STR,
                "postal_code": NULLABLE_STR,
                "city": NULLABLE_STR,
                "province": NULLABLE_STR,
                "region": NULLABLE_STR,
                "country": NULLABLE_STR,
                "email": NULLABLE_STR,
            },
        },
    },
}
SCHEMAS["PagopaReceipt"] = {
    "type": "object",
    "required": ["id", "receipt_id", "notice_number", "iuv", "amount", "outcome", "received_at"],
    "properties": {
        "id": {"type": "integer"},
        "receipt_id": {"type": "string"},
        "notice_number": {"type": "string"},
        "iuv": {"type": "string"},
        "iupd": NULLABLE_STR,
        "amount": {"type": "integer"},
        "outcome": {"enum": ["OK", "KO"]},
        "id_psp": {"type": "string"},
        "psp_company_name": {"type": "string"},
        "payment_date_time": NULLABLE_TIME,
        "stand_in": {"type": "boolean"},
        "version": {"type": "integer"},
        "note": NULLABLE_STR,
        "received_at": DATE_TIME,
        "forward_status": {"enum": ["pending", "forwarded", "no_adapter", "not_ours"]},
        "forwarded_at": NULLABLE_TIME,
        "role": {
            "enum": ["creditor", "beneficiary", "unrelated"],
            "description": "creditor: pays one of the tenant's notices; beneficiary: another "
            "creditor's notice with transfers to the tenant (never touches a position); "
            "unrelated: neither (kept and flagged, not applied, not forwarded)",
        },
        "creditor_fiscal_code": {"type": "string", "description": "receipt/fiscalCode"},
        "data": {
            "type": "object",
            "description": "the whole receipt with debtor and payer: only for keys with "
            "personal_data (the read is audited)",
        },
    },
}
_PAGOPA_422 = _problem("What is wrong, field by field (errors: 'path: reason'); nothing stored")
_PURPOSE = {
    "name": "purpose",
    "in": "query",
    "schema": {"type": "string", "maxLength": 200},
    "description": "why the personal data is read (goes to the audit log)",
}
PATHS["/api/v1/tenants/{tenant}/pagopa/positions"] = {
    "post": {
        "operationId": "createPagopaPosition",
        "summary": "Store a debt position, IUVs and notice numbers allocated by the hub (scope "
        "write). The same IUPD with the same content answers 200 with the stored one.",
        "parameters": [TENANT_PARAM, IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/PagopaPositionRequest"}
                }
            },
        },
        "responses": {
            "201": _json({"$ref": "#/components/schemas/PagopaPosition"}, "Stored"),
            "200": _json({"$ref": "#/components/schemas/PagopaPosition"}, "Already stored"),
            **ERRORS,
            "409": _problem("The IUPD is stored with other content, or no pagoPA settings"),
            "422": _PAGOPA_422,
        },
    },
    "get": {
        "operationId": "listPagopaPositions",
        "summary": "Debt positions, oldest first, without the debtor (scope read; filtering "
        "by debtor needs personal_data and is audited)",
        "parameters": [
            TENANT_PARAM,
            *PAGING,
            {
                "name": "status",
                "in": "query",
                "description": "the stored status",
                "schema": {
                    "enum": [
                        "DRAFT",
                        "PUBLISHED",
                        "VALID",
                        "INVALID",
                        "EXPIRED",
                        "PARTIALLY_PAID",
                        "PAID",
                        "REPORTED",
                    ]
                },
            },
            {
                "name": "debtor",
                "in": "query",
                "schema": {"type": "string", "pattern": "^([A-Za-z0-9]{16}|[0-9]{11})$"},
            },
            _PURPOSE,
        ],
        "responses": {
            "200": _json(_page("PagopaPosition")),
            **ERRORS,
            "409": _NOT_CONFIGURED,
        },
    },
}
_IUPD_PARAM = {"name": "iupd", "in": "path", "required": True, "schema": {"type": "string"}}
_NO_POSITION = _problem("No debt position with this IUPD, or no such tenant")
_ILLEGAL = _problem(
    "GPD's state machine does not allow it in the position's state (the detail names the "
    "state; nothing stored or queued), or no pagoPA settings"
)
_KEY_REUSED = _problem("An Idempotency-Key already used for another request")
SCHEMAS["PagopaPositionUpdate"] = {
    **SCHEMAS["PagopaPositionRequest"],
    "required": ["type", "fiscal_code", "full_name", "payment_options"],
    "description": "the whole new content of the position (iupd optional: the path's); "
    "options carry no iuv: they keep the stored options' IUVs in order, extra ones get new "
    "IUVs",
}
PATHS["/api/v1/tenants/{tenant}/pagopa/positions/{iupd}"] = {
    "get": {
        "operationId": "getPagopaPosition",
        "summary": "One debt position with its debtor (scope personal_data; audited)",
        "parameters": [TENANT_PARAM, _IUPD_PARAM, _PURPOSE],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/PagopaPosition"}),
            **ERRORS,
            "409": _NOT_CONFIGURED,
        },
    },
    "put": {
        "operationId": "updatePagopaPosition",
        "summary": "Replace a position's content, in DRAFT, PUBLISHED, VALID or EXPIRED and "
        "before any payment (scope write). It keeps its publication; in GPD mode the update "
        "goes to GPD through the outbox. The same content again changes nothing.",
        "parameters": [TENANT_PARAM, _IUPD_PARAM, IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/PagopaPositionUpdate"}
                }
            },
        },
        "responses": {
            "200": _json({"$ref": "#/components/schemas/PagopaPosition"}, "Updated"),
            **ERRORS,
            "404": _NO_POSITION,
            "409": _ILLEGAL,
            "422": _PAGOPA_422,
        },
    },
}
PATHS["/api/v1/tenants/{tenant}/pagopa/positions/{iupd}/publish"] = {
    "post": {
        "operationId": "publishPagopaPosition",
        "summary": "Publish a DRAFT position: PUBLISHED, or VALID at once without a validity "
        "date (scope write; already published: 200, nothing queued). In GPD mode it goes to "
        "GPD through the outbox.",
        "parameters": [TENANT_PARAM, _IUPD_PARAM, IDEMPOTENCY],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/PagopaPosition"}, "Published"),
            **ERRORS,
            "404": _NO_POSITION,
            "409": _ILLEGAL,
            "422": _KEY_REUSED,
        },
    }
}
PATHS["/api/v1/tenants/{tenant}/pagopa/positions/{iupd}/invalidate"] = {
    "post": {
        "operationId": "invalidatePagopaPosition",
        "summary": "Cancel a PUBLISHED or VALID position: INVALID, final; its notices are "
        "refused (PAA_PAGAMENTO_ANNULLATO). Scope write; already INVALID: 200, nothing "
        "queued. In GPD mode it goes to GPD through the outbox.",
        "parameters": [TENANT_PARAM, _IUPD_PARAM, IDEMPOTENCY],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/PagopaPosition"}, "Invalidated"),
            **ERRORS,
            "404": _NO_POSITION,
            "409": _ILLEGAL,
            "422": _KEY_REUSED,
        },
    }
}
PATHS["/api/v1/tenants/{tenant}/pagopa/notices/{nav}.pdf"] = {
    "get": {
        "operationId": "getPagopaNoticePdf",
        "summary": "The payment notice (avviso) of the position holding this notice number, "
        "as a PDF: single payment and instalments (scope personal_data; audited)",
        "parameters": [
            TENANT_PARAM,
            {"name": "nav", "in": "path", "required": True, "schema": {"type": "string"}},
            _PURPOSE,
        ],
        "responses": {
            "200": {
                "description": "The notice",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            },
            **ERRORS,
            "409": _NOT_CONFIGURED,
        },
    }
}
PATHS["/api/v1/tenants/{tenant}/pagopa/carts"] = {
    "post": {
        "operationId": "createPagopaCart",
        "summary": "A pagoPA Checkout cart for 1 to 5 notices of the tenant: send the payer to "
        "redirect_url (scope write). Nothing is paid here: only receipts change a payment.",
        "parameters": [TENANT_PARAM, IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["notice_numbers", "return_urls"],
                        "additionalProperties": False,
                        "properties": {
                            "notice_numbers": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 5,
                                "uniqueItems": True,
                                "items": {"type": "string", "pattern": "^[0-9]{18}$"},
                            },
                            "return_urls": {
                                "type": "object",
                                "required": ["ok", "cancel", "error"],
                                "additionalProperties": False,
                                "properties": {
                                    k: {
                                        "type": "string",
                                        "pattern": "^https?://[^\\s/]+\\S*$",
                                        "maxLength": 2000,
                                    }
                                    for k in ("ok", "cancel", "error")
                                },
                            },
                            "email_notice": {
                                "type": ["string", "null"],
                                "maxLength": 256,
                                "description": "where Checkout sends the payment's outcome",
                            },
                        },
                    }
                }
            },
        },
        "responses": {
            "201": _json(
                {
                    "type": "object",
                    "required": ["redirect_url", "notice_numbers", "amount"],
                    "properties": {
                        "redirect_url": {"type": "string"},
                        "notice_numbers": {"type": "array", "items": {"type": "string"}},
                        "amount": {"type": "integer", "description": "total, in cents"},
                    },
                },
                "Cart created",
            ),
            **ERRORS,
            "409": _problem("No pagoPA settings or no checkout_api_key for the tenant"),
            "422": _problem(
                "Notices unknown, not payable or refused by Checkout (errors), or an "
                "Idempotency-Key reused for another request"
            ),
            "502": _problem("Checkout failed or refused the tenant's subscription key"),
        },
    }
}
PATHS["/api/v1/tenants/{tenant}/pagopa/receipts"] = {
    "get": {
        "operationId": "listPagopaReceipts",
        "summary": "Receipts in arrival order, without debtor and payer (scope read)",
        "parameters": [
            TENANT_PARAM,
            *PAGING,
            {
                "name": "since",
                "in": "query",
                "description": "received at or after",
                "schema": {"type": "string", "format": "date-time"},
            },
            {
                "name": "until",
                "in": "query",
                "description": "received before",
                "schema": {"type": "string", "format": "date-time"},
            },
        ],
        "responses": {
            "200": _json(_page("PagopaReceipt")),
            **ERRORS,
            "409": _NOT_CONFIGURED,
        },
    }
}
PATHS["/api/v1/tenants/{tenant}/pagopa/receipts/{receipt_id}"] = {
    "get": {
        "operationId": "getPagopaReceipt",
        "summary": "One receipt (scope read); with personal_data also the whole receipt "
        "(data), and that read is audited",
        "parameters": [
            TENANT_PARAM,
            {"name": "receipt_id", "in": "path", "required": True, "schema": {"type": "string"}},
            _PURPOSE,
        ],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/PagopaReceipt"}),
            **ERRORS,
            "409": _NOT_CONFIGURED,
        },
    }
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

"""Checks of SEND request bodies, written from ``api-external-b2b-pa-bundle.yaml``.

A small subset of JSON Schema (types, required, patterns, lengths, enums, bounds, no
extra fields where the spec says ``additionalProperties: false``), hand-written so the
sandbox needs no development dependency. Each problem is ``(code, element, detail)`` with
SEND's codes (``PN_GENERIC_INVALIDPARAMETER_REQUIRED``, ``..._PATTERN``, ``..._SIZE``,
``..._MIN``, ``..._MAX``, ``PN_GENERIC_INVALIDPARAMETER``) and the element as SEND names
it (``recipients[0].taxId``). Values are never echoed: they are personal data.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "F24_KINDS_SCHEMAS",
    "NEW_NOTIFICATION",
    "PAYMENT_EVENTS_F24",
    "PAYMENT_EVENTS_PAGOPA",
    "PRELOAD",
    "STREAM_REQUEST",
    "Problem",
    "check",
]

Problem = tuple[str, str, str]
Schema = dict[str, Any]

_ONE_LINE = r"^.*$"
_PRINTABLE = r"^[ -~]*$"
_SHA256 = r"^[A-Za-z0-9+\/]{43}=$|^[A-Za-z0-9+\/]{44}$"
_TAX_ID = (
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
    r"|^[0-9]{11}$"
)
_IUN = r"^[A-Z]{4}-[A-Z]{4}-[A-Z]{4}-[0-9]{6}-[A-Z]{1}-[0-9]{1}$"
_KEY = r"^(safestorage:\/\/)?[A-Za-z0-9._-]+$"
_PEC = r"^[^@\s\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _str(
    pattern: str | None = None, lo: int | None = None, hi: int | None = None, enum: Any = None
) -> Schema:
    return {"type": "string", "pattern": pattern, "min": lo, "max": hi, "enum": enum}


def _obj(props: dict[str, Schema], required: tuple[str, ...] = (), closed: bool = False) -> Schema:
    return {"type": "object", "props": props, "required": required, "closed": closed}


def _arr(items: Schema, lo: int | None = None, hi: int | None = None) -> Schema:
    return {"type": "array", "items": items, "min": lo, "max": hi}


def _int(lo: int | None = None, hi: int | None = None) -> Schema:
    return {"type": "integer", "min": lo, "max": hi}


_BOOL: Schema = {"type": "boolean"}
_DIGESTS = _obj({"sha256": _str(_SHA256, 44, 44)}, ("sha256",))
_REF = _obj(
    {"key": _str(_KEY, None, 512), "versionToken": _str(_ONE_LINE, None, 256)},
    ("key", "versionToken"),
)
_PDF_ATTACHMENT = _obj(
    {"digests": _DIGESTS, "contentType": _str(r"^application\/pdf$", 15, 15), "ref": _REF},
    ("digests", "contentType", "ref"),
)
_DOCUMENT = _obj(
    {
        **_PDF_ATTACHMENT["props"],
        "title": _str(_ONE_LINE, 1, 512),
        "docIdx": _str(r"^\d+$", None, 3),
    },
    ("digests", "contentType", "ref"),
)
_PAGOPA = _obj(
    {
        "noticeCode": _str(r"^\d+$", 18, 18),
        "creditorTaxId": _str(r"^\d+$", 11, 11),
        "applyCost": _BOOL,
        "attachment": _PDF_ATTACHMENT,
    },
    ("noticeCode", "creditorTaxId", "applyCost"),
)
_F24 = _obj(
    {
        "title": _str(),
        "applyCost": _BOOL,
        "metadataAttachment": _obj(
            {"digests": _DIGESTS, "contentType": _str(r"^application\/json$", 16, 16), "ref": _REF},
            ("digests", "contentType", "ref"),
        ),
    },
    ("title", "applyCost", "metadataAttachment"),
)
_PHYSICAL = _obj(
    {
        "at": _str(_ONE_LINE, None, 44),
        "address": _str(_ONE_LINE, 2, 1024),
        "addressDetails": _str(_ONE_LINE, None, 1024),
        "zip": _str(r"^(\w|\ |\-)*$", 0, 15),
        "municipality": _str(_ONE_LINE, 2, 256),
        "municipalityDetails": _str(_ONE_LINE, None, 256),
        "province": _str(_ONE_LINE, None, 256),
        "foreignState": _str(_ONE_LINE, None, 256),
    },
    ("address", "municipality"),
)
_RECIPIENT = _obj(
    {
        "recipientType": _str(enum=("PF", "PG")),
        "taxId": _str(_TAX_ID, 11, 16),
        "denomination": _str(_ONE_LINE, 1, 88),
        "digitalDomicile": _obj(
            {"type": _str(enum=("PEC",)), "address": _str(_PEC, None, 320)}, ("address", "type")
        ),
        "physicalAddress": _PHYSICAL,
        "payments": _arr(_obj({"pagoPa": _PAGOPA, "f24": _F24}, closed=True)),
    },
    ("denomination", "recipientType", "taxId"),
    closed=True,
)

#: ``NewNotificationRequestV26``.
NEW_NOTIFICATION: Schema = _obj(
    {
        "idempotenceToken": _str(_PRINTABLE, None, 256),
        "paProtocolNumber": _str(_ONE_LINE, None, 256),
        "subject": _str(_ONE_LINE, None, 134),
        "abstract": _str(_ONE_LINE, None, 1024),
        "recipients": _arr(_RECIPIENT, 1),
        "documents": _arr(_DOCUMENT, 1),
        "notificationFeePolicy": _str(enum=("FLAT_RATE", "DELIVERY_MODE")),
        "cancelledIun": _str(_IUN, 25, 25),
        "physicalCommunicationType": _str(enum=("AR_REGISTERED_LETTER", "REGISTERED_LETTER_890")),
        "senderDenomination": _str(_ONE_LINE, 1, 88),
        "senderTaxId": _str(r"^\d+$", 11, 11),
        "group": _str(_PRINTABLE, None, 1024),
        "amount": _int(),
        "paymentExpirationDate": _str(
            r"^([0-9]{4})-(1[0-2]|0[1-9])-(3[01]|[12][0-9]|0[1-9])$", 10, 10
        ),
        "taxonomyCode": _str(r"^([0-9]{6}[A-Z]{1})$", 7, 7),
        "paFee": _int(0, 100),
        "vat": _int(0, 100),
        "pagoPaIntMode": _str(enum=("NONE", "SYNC", "ASYNC")),
        "physicalCommunicationPriority": _int(0, 100),
        "additionalLanguages": _arr(_str()),
    },
    (
        "paProtocolNumber",
        "subject",
        "recipients",
        "documents",
        "physicalCommunicationType",
        "notificationFeePolicy",
        "senderDenomination",
        "senderTaxId",
        "taxonomyCode",
    ),
)

#: ``PreLoadRequest`` items (the body is an array of 1 to 15 of them).
PRELOAD: Schema = _arr(
    _obj(
        {
            "preloadIdx": _str(r"^[a-zA-Z0-9._-]{1,512}$", 1, 512),
            "contentType": _str(r"^application\/(pdf|json)$", 15, 16),
            "sha256": _str(_SHA256, 44, 44),
        },
        ("sha256",),
    ),
    1,
    15,
)

#: ``StreamCreationRequestV29``.
STREAM_REQUEST: Schema = _obj(
    {
        "title": _str(_ONE_LINE, None, 256),
        "eventType": _str(enum=("STATUS", "TIMELINE")),
        "groups": _arr(_str()),
        "filterValues": _arr(_str(r"^[A-Z_]+$", 4, 256)),
        "replacedStreamId": _str(
            r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ),
        "waitForAccepted": _BOOL,
    },
    ("title", "eventType", "groups"),
)


#: ``PaymentEventsRequestPagoPa``: the creditor tells SEND which pagoPA notices were paid.
PAYMENT_EVENTS_PAGOPA: Schema = _obj(
    {
        "events": _arr(
            _obj(
                {
                    "noticeCode": _str(r"^\d+$", 18, 18),
                    "creditorTaxId": _str(r"^\d+$", 11, 11),
                    "paymentDate": _str(
                        r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                        r"(\.[0-9]+)?(Z|([+\-][0-9]{2}):([0-9]{2}))$"
                    ),
                    "amount": _int(-(2**31), 2**31 - 1),
                },
                ("noticeCode", "creditorTaxId", "paymentDate", "amount"),
            )
        )
    },
    ("events",),
)


#: ``PaymentEventsRequestF24`` (deprecated in the bundle, still served): F24 payments of
#: notifications, told by their sender.
PAYMENT_EVENTS_F24: Schema = _obj(
    {
        "events": _arr(
            _obj(
                {
                    "iun": _str(_IUN, 25, 25),
                    "paymentDate": {"type": "string", "format": "date-time"},
                    "recipientTaxId": _str(_TAX_ID, 11, 16),
                    "recipientType": _str(r"PF|PG", 2, 2),
                    "amount": _int(-(2**31), 2**31 - 1),
                },
                ("iun", "paymentDate", "recipientTaxId", "recipientType", "amount"),
            )
        )
    },
    ("events",),
)


# -- F24Metadata (the JSON file of an F24 payment) ---------------------------------------------
# The bundle's F24 schemas. Their patterns are searched as JSON Schema does; PersonalData's
# ``[A-Z\\s]`` is read as ``[A-Z\s]`` (letters and spaces) like the bundle's other names.

_CF_OR_VAT = (
    r"^([A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST]{1}[0-9LMNPQRSTUV]{2}[A-Z]{1}"
    r"[0-9LMNPQRSTUV]{3}[A-Z]{1})|([0-9]{11})$"
)
_MONEY = _str(r"^[0-9]{3,15}$")
_YEAR = _str(r"^[1-2][0-9]{3}$")
_RATA = _str(r"^[A-Z0-9]{0,4}$")
_OFFICE3 = _str(r"^[A-Z0-9]{3}$")
_DOC11 = _str(r"^\d{11}$")


def _record(props: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A record with ``IncludeNotificationCost`` (``applyCost`` required)."""
    return _obj({**props, "applyCost": _BOOL}, ("applyCost", *required))


_PERSONAL = _obj(
    {
        "surname": _str(r"^[A-Z\s]{1,24}$"),
        "name": _str(r"^[A-Z\s]{1,20}$"),
        "birthDate": _str(r"^\d{2}-\d{2}-\d{4}$"),
        "sex": _str(r"^[FM]$"),
        "birthPlace": _str(r"^[A-Z\s]{1,40}$"),
        "birthProvince": _str(r"^[A-Z]{2}$"),
    }
)
_TAX_ADDRESS = _obj(
    {
        "municipality": _str(r"^[A-Z]{1,40}$"),
        "province": _str(r"^[A-Z]{2}$"),
        "address": _str(r"^[A-Z0-9\s.]{1,35}$"),
    }
)
_PERSON = _obj({"personalData": _PERSONAL, "taxAddress": _TAX_ADDRESS})
_COMPANY = _obj({"name": _str(r"^[A-Z\s]{1,60}$"), "taxAddress": _TAX_ADDRESS})
_PAYER_ELIDE = _obj(
    {
        "taxCode": _str(_CF_OR_VAT),
        "person": _PERSON,
        "company": _COMPANY,
        "relativePersonTaxCode": _str(_CF_OR_VAT),
        "id": _str(r"^[A-Z0-9]{2}$"),
    }
)
_PAYER_STANDARD = _obj({**_PAYER_ELIDE["props"], "isNotTaxYear": _BOOL})
_PAYER_SIMPLIFIED = _obj(
    {
        "taxCode": _str(_CF_OR_VAT),
        "personalData": _PERSONAL,
        "relativePersonTaxCode": _str(_CF_OR_VAT),
        "id": _str(r"^[A-Z0-9]{2}$"),
        "document": _DOC11,
        "office": _OFFICE3,
    }
)
_TREASURY = _obj(
    {
        "records": _arr(
            _record(
                {
                    "taxType": _str(r"^[A-Z0-9]{4}$"),
                    "installment": _RATA,
                    "year": _YEAR,
                    "debit": _MONEY,
                    "credit": _MONEY,
                }
            )
        ),
        "office": _OFFICE3,
        "document": _DOC11,
    }
)
_PERIOD = _obj({"startDate": _str(r"^[0-9]{6}$"), "endDate": _str(r"^[0-9]{6}$")})
_INPS = _obj(
    {
        "records": _arr(
            _record(
                {
                    "office": _str(r"^[0-9]{3,4}$"),
                    "reason": _str(r"^[A-Z-]{3,4}$"),
                    "inps": _str(r"^[A-Za-z0-9\s]{0,17}$"),
                    "period": _PERIOD,
                    "debit": _MONEY,
                    "credit": _MONEY,
                }
            )
        )
    }
)
_REGION = _obj(
    {
        "records": _arr(
            _record(
                {
                    "region": _str(r"^[0-9]{2}$"),
                    "taxType": _str(r"^[0-9A-Z]{4}$"),
                    "installment": _RATA,
                    "year": _YEAR,
                    "debit": _MONEY,
                    "credit": _MONEY,
                }
            )
        )
    }
)
_LOCAL_RECORD_PROPS: dict[str, Schema] = {
    "municipality": _str(r"^[0-9A-Z]{4}$"),
    "reconsideration": _BOOL,
    "propertiesChanges": _BOOL,
    "advancePayment": _BOOL,
    "fullPayment": _BOOL,
    "numberOfProperties": _str(r"^[0-9]{3}$"),
    "taxType": _str(r"^[0-9]{4}$"),
    "installment": _RATA,
    "year": _YEAR,
    "debit": _MONEY,
    "credit": _MONEY,
}
_LOCAL_TAX = _obj(
    {
        "operationId": _str(r"^[A-Z0-9]{18}$"),
        "records": _arr(_record(_LOCAL_RECORD_PROPS, ("municipality", "taxType"))),
        "deduction": _MONEY,
    }
)
_SOCIAL = _obj(
    {
        "records": _arr(
            _record(
                {
                    "office": _str(r"^[0-9]{5}$"),
                    "company": _str(r"^[0-9]{8}$"),
                    "control": _str(r"^[0-9]{2}$"),
                    "refNumber": _str(r"^[0-9]{6}$"),
                    "reason": _str(r"^[A-Z0-9]$"),
                    "debit": _MONEY,
                    "credit": _MONEY,
                }
            )
        ),
        "socSecRecords": _arr(
            _record(
                {
                    "institution": _str(r"^[0-9]{4}$"),
                    "office": _str(r"^[0-9A-Z]{5}$"),
                    "reason": _str(r"^[0-9A-Z]{3,4}$"),
                    "position": _str(r"^[0-9]{9}$"),
                    "period": _PERIOD,
                    "debit": _MONEY,
                    "credit": _MONEY,
                }
            )
        ),
    }
)
_EXCISE = _obj(
    {
        "records": _arr(
            _record(
                {
                    "institution": _str(r"^[A-Z]{2}$"),
                    "province": _str(r"^[A-Z]{2}$"),
                    "id": _str(r"^[A-Z0-9]{17}$"),
                    "taxType": _str(r"^[0-9A-Z]{4}$"),
                    "installment": _RATA,
                    "month": _str(r"^[0-1][0-9]$"),
                    "year": _YEAR,
                    "debit": _MONEY,
                }
            )
        ),
        "office": _OFFICE3,
        "document": _DOC11,
    }
)
_TREASURY_AND_OTHER = _obj(
    {
        "office": _OFFICE3,
        "document": _DOC11,
        "records": _arr(
            _record(
                {
                    "type": _str(r"^[A-Z]$"),
                    "id": _str(r"^[A-Z0-9]{17}$"),
                    "taxType": _str(r"^[A-Z0-9]{4}$"),
                    "year": _YEAR,
                    "debit": _MONEY,
                }
            )
        ),
    }
)

#: Each ``F24Metadata`` kind's schema (``F24Standard``, ``F24Simplified``, ``F24Excise``,
#: ``F24Elid``).
F24_KINDS_SCHEMAS: dict[str, Schema] = {
    "f24Standard": _obj(
        {
            "taxPayer": _PAYER_STANDARD,
            "treasury": _TREASURY,
            "inps": _INPS,
            "region": _REGION,
            "localTax": _LOCAL_TAX,
            "socialSecurity": _SOCIAL,
        }
    ),
    "f24Simplified": _obj(
        {
            "taxPayer": _PAYER_SIMPLIFIED,
            "payments": _obj(
                {
                    "operationId": _str(r"^[A-Z0-9]{18}$"),
                    "records": _arr(
                        _record(
                            {**_LOCAL_RECORD_PROPS, "section": _str(r"^(ER|RG|EL)$")},
                            ("municipality", "taxType", "section"),
                        )
                    ),
                }
            ),
        }
    ),
    "f24Excise": _obj(
        {
            "taxPayer": _PAYER_STANDARD,
            "treasury": _TREASURY,
            "inps": _INPS,
            "region": _REGION,
            "localTax": _LOCAL_TAX,
            "excise": _EXCISE,
        }
    ),
    "f24Elid": _obj({"taxPayer": _PAYER_ELIDE, "treasury": _TREASURY_AND_OTHER}),
}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def check(schema: Schema, value: Any, path: str = "") -> list[Problem]:
    """Every problem of ``value`` against ``schema`` (empty when it conforms)."""
    where = path or "body"
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            return [("PN_GENERIC_INVALIDPARAMETER", where, "must be an object")]
        problems: list[Problem] = []
        for name in schema["required"]:
            if value.get(name) is None:
                problems.append(
                    ("PN_GENERIC_INVALIDPARAMETER_REQUIRED", _join(path, name), "must not be null")
                )
        props: dict[str, Schema] = schema["props"]
        for name, item in value.items():
            sub = props.get(name)
            if sub is None:
                if schema.get("closed"):
                    problems.append(
                        ("PN_GENERIC_INVALIDPARAMETER", _join(path, name), "unknown field")
                    )
                continue
            if item is not None:
                problems.extend(check(sub, item, _join(path, name)))
        if schema.get("closed") and not value and not schema["required"]:
            problems.append(("PN_GENERIC_INVALIDPARAMETER", where, "must not be empty"))
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [("PN_GENERIC_INVALIDPARAMETER", where, "must be an array")]
        problems = []
        lo, hi = schema.get("min"), schema.get("max")
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            problems.append(
                ("PN_GENERIC_INVALIDPARAMETER_SIZE", where, f"size must be between {lo} and {hi}")
            )
        for index, item in enumerate(value):
            problems.extend(check(schema["items"], item, f"{path}[{index}]"))
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [("PN_GENERIC_INVALIDPARAMETER", where, "must be a string")]
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            return [("PN_GENERIC_INVALIDPARAMETER", where, f"must be one of {', '.join(enum)}")]
        lo, hi = schema.get("min"), schema.get("max")
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            return [
                ("PN_GENERIC_INVALIDPARAMETER_SIZE", where, f"size must be between {lo} and {hi}")
            ]
        if schema.get("format") == "date-time" and not _DATE_TIME.fullmatch(value):
            return [("PN_GENERIC_INVALIDPARAMETER", where, "must be a date-time (RFC 3339)")]
        pattern = schema.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            return [("PN_GENERIC_INVALIDPARAMETER_PATTERN", where, f'must match "{pattern}"')]
        return []
    if kind == "integer":
        if type(value) is not int:
            return [("PN_GENERIC_INVALIDPARAMETER", where, "must be an integer")]
        lo, hi = schema.get("min"), schema.get("max")
        if lo is not None and value < lo:
            return [("PN_GENERIC_INVALIDPARAMETER_MIN", where, f"must be at least {lo}")]
        if hi is not None and value > hi:
            return [("PN_GENERIC_INVALIDPARAMETER_MAX", where, f"must be at most {hi}")]
        return []
    if kind == "boolean" and not isinstance(value, bool):
        return [("PN_GENERIC_INVALIDPARAMETER", where, "must be a boolean")]
    return []

"""F24 payments of a SEND notification ("F24 where configured").

SEND's ``F24Payment`` (``recipients[i].payments[j].f24``) has a ``title``, ``applyCost`` and a
``metadataAttachment``: the F24 form's data as a JSON file (``F24Metadata``: one and only one
of ``f24Standard``, ``f24Simplified``, ``f24Excise``, ``f24Elid``), preloaded with content type
``application/json`` and referred to by its SHA-256 like a document. The hub stores each
metadata file with the notification (``send_documents``, ``idx`` from
:data:`F24_DOCUMENT_BASE`) and puts a placeholder reference in the stored request
(:func:`f24_payment`); the upload job preloads and uploads it as JSON and the request gets its
real reference (:func:`resolve_f24`). SEND builds the F24 PDF from the metadata itself.

The hub checks every field of the file against the bundle's F24 schemas before anything is
queued (:func:`sportello.connectors.send.f24.f24_metadata_problems`: exactly one of the four
kinds, each section and record, patterns, required fields such as a local tax record's
``municipality`` and ``taxType``, strict types), at most :data:`MAX_F24_BYTES`: SEND refuses
a metadata file its schema refuses with ``F24_METADATA_NOT_VALID`` at acceptance, after the
notification was sent; the hub names the field at once instead (the API's 400, the import's
row and column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sportello.connectors.send import sha256_b64
from sportello.connectors.send.f24 import F24_KINDS, f24_metadata_bytes_problems
from sportello.platforms.send.tables import F24_DOCUMENT_BASE

__all__ = ["F24_KINDS", "MAX_F24_BYTES", "f24_payment", "f24_problem", "resolve_f24"]

#: The largest F24 metadata file the hub takes (an F24 has a few dozen lines).
MAX_F24_BYTES = 256 * 1024
#: The placeholder key of the stored request's ``metadataAttachment.ref`` (then the upload's).
_PLACEHOLDER = "sportello-f24-"


def f24_problem(content: bytes) -> str | None:
    """Why ``content`` is not an F24 metadata file SEND would take (every field checked,
    the first few problems named by their path, e.g. ``f24Standard.localTax.records[0].
    municipality: must match ^[0-9A-Z]{4}$``), or None."""
    if len(content) > MAX_F24_BYTES:
        return f"{len(content)} bytes, more than the {MAX_F24_BYTES} allowed"
    problems = f24_metadata_bytes_problems(content)
    if not problems:
        return None
    shown = [f"{field}: {message}" if field else message for field, message in problems[:5]]
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "; ".join(shown) + more


def f24_payment(k: int, title: str, apply_cost: bool, content: bytes) -> dict[str, Any]:
    """The payment item of the ``k``-th F24 metadata file of a notification (stored at
    ``F24_DOCUMENT_BASE + k``), its reference a placeholder until the upload."""
    return {
        "f24": {
            "title": title,
            "applyCost": apply_cost,
            "metadataAttachment": {
                "digests": {"sha256": sha256_b64(content)},
                "contentType": "application/json",
                "ref": {"key": f"{_PLACEHOLDER}{k}", "versionToken": "pending"},
            },
        }
    }


def resolve_f24(body: dict[str, Any], docs: Sequence[Any]) -> None:
    """Put the uploaded metadata files' references (``docs``: the notification's
    ``send_documents`` rows, uploaded) in place of ``body``'s placeholders."""
    by_idx = {int(d.idx): d for d in docs}
    for recipient in body.get("recipients") or []:
        for payment in recipient.get("payments") or []:
            ref = ((payment.get("f24") or {}).get("metadataAttachment") or {}).get("ref")
            key = str((ref or {}).get("key", ""))
            if ref is None or not key.startswith(_PLACEHOLDER):
                continue
            doc = by_idx[F24_DOCUMENT_BASE + int(key.removeprefix(_PLACEHOLDER))]
            ref["key"], ref["versionToken"] = doc.file_key, doc.version_token

"""A session as a row of the PostgreSQL store: its fields as JSONB, and back.

Each member of ``fields`` is the field's JSON text as a JSON string (see ``postgres_sql``), so values
come back byte for byte.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .base import CorruptRecordError, SessionMeta, SessionRecord

__all__ = ["decode_row", "encode_fields"]


def encode_fields(fields: Mapping[str, bytes]) -> str:
    """The JSONB object of ``fields``: each value's JSON text as a string (see ``postgres_sql``)."""
    return json.dumps({name: value.decode() for name, value in fields.items()}, ensure_ascii=False)


def decode_row(row: Any) -> SessionRecord:
    """A record from a row of ``COLUMNS``; ``CorruptRecordError`` when the row is no session."""
    stored, created_at, expires_at, persistent, version = row
    try:
        fields = {name: value.encode() for name, value in json.loads(stored).items()}
    except (AttributeError, TypeError, ValueError) as exc:  # not an object of strings
        raise CorruptRecordError(f"the row's fields are not an object of JSON texts ({exc})") from exc
    if not (math.isfinite(created_at) and math.isfinite(expires_at)):
        raise CorruptRecordError(f"the row has a time that is not finite ({created_at}, {expires_at})")
    return SessionRecord(fields, SessionMeta(created_at, expires_at, persistent, version))

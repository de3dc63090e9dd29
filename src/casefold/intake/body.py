"""Splitting a request body into alert documents: one object, a JSON array, or NDJSON.

Errors name a position a person can find: line and column for malformed JSON, the item index
(and line, for NDJSON) for a bad item in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from casefold.errors import InvalidInputError

NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json-seq",
)


class InvalidJSONError(InvalidInputError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "line": self.line, "column": self.column}


@dataclass(slots=True)
class Item:
    index: int
    doc: Any
    line: int | None = None
    error: InvalidInputError | None = None
    # The item's JSON text as it came (one file line), stored as the raw alert verbatim instead
    # of encoding `doc` again.
    text: bytes | None = None


@dataclass(slots=True)
class Parsed:
    items: list[Item]
    single: bool  # the body was one object, not a batch


def _json_error(exc: orjson.JSONDecodeError, line_offset: int = 0) -> InvalidJSONError:
    reason = exc.msg.split(":")[0] if exc.msg else "invalid JSON"
    line = exc.lineno + line_offset
    return InvalidJSONError(
        f"invalid JSON at line {line}, column {exc.colno}: {reason}", line, exc.colno
    )


def is_ndjson(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in NDJSON_TYPES


def parse_body(body: bytes, content_type: str | None) -> Parsed:
    """Split a body into items; InvalidJSONError if it is not JSON at all, InvalidInputError
    (field "body") for an empty array.

    Errors of single items of a batch are kept in the items.
    """
    if is_ndjson(content_type):
        return _parse_ndjson(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _json_error(exc) from None
    if isinstance(doc, list):
        if not doc:
            # A batch answer needs at least one item to report on; an empty array is the sender's
            # mistake, refused like any body that holds no alert.
            raise InvalidInputError("the JSON array is empty: no alert in the body", field="body")
        return Parsed([Item(i, d) for i, d in enumerate(doc)], single=False)
    return Parsed([Item(0, doc)], single=True)


def _parse_ndjson(body: bytes) -> Parsed:
    items: list[Item] = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        index = len(items)
        try:
            items.append(Item(index, orjson.loads(line), line=lineno))
        except orjson.JSONDecodeError as exc:
            err = _json_error(exc, line_offset=lineno - 1)
            items.append(Item(index, None, line=lineno, error=err))
    if not items:
        raise InvalidJSONError("empty NDJSON body: no alert on any line", 1, 1)
    return Parsed(items, single=False)

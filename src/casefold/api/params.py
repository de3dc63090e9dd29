"""Request parameters shared by several routers."""

from __future__ import annotations

from casefold.cases.model import parse_case_ref
from casefold.errors import NotFoundError


def case_id_from_ref(ref: str) -> int:
    case_id = parse_case_ref(ref)
    if case_id is None:
        raise NotFoundError(f"{ref!r} is not a case reference like CASE-12")
    return case_id

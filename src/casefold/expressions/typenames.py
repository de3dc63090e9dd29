"""The language's (JSON-flavoured) names for Python value types, used in error messages."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping

__all__ = ["type_name"]


def type_name(value: object) -> str:
    """``null``, ``boolean``, ``integer``, ``number``, ``string``, ``list``, ``object``…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, _dt.datetime):
        return "datetime"
    if isinstance(value, _dt.date):
        return "date"
    if isinstance(value, _dt.time):
        return "time"
    if isinstance(value, _dt.timedelta):
        return "duration"
    return type(value).__name__

"""JSON responses encoded with orjson (datetimes as ISO 8601), and the error body shape.

Every error body is {"error": <code>, "message": <text>, …} plus `field`, or `line`/`column`,
when the error has a position.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def error_response(status_code: int, code: str, message: str, **extra: Any) -> Response:
    body = error_body(code, message, **extra)
    headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
    return json_response(body, status_code, headers)

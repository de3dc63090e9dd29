"""The one place where Casefold errors become HTTP statuses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from casefold.api.responses import error_body, error_response, json_response
from casefold.errors import (
    AuthError,
    CasefoldError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UpstreamError,
)
from casefold.intake.body import InvalidJSONError

log = logging.getLogger("casefold.api")


def _field_from_loc(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def error_status(exc: CasefoldError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for one of Casefold's own errors."""
    if isinstance(exc, InvalidJSONError):
        return 400, error_body("invalid_json", exc.message, line=exc.line, column=exc.column)
    if isinstance(exc, PayloadTooLargeError):
        return 413, error_body("payload_too_large", exc.message)
    if isinstance(exc, InvalidInputError):
        return 422, error_body("invalid_input", exc.message, field=exc.field)
    if isinstance(exc, NotFoundError):
        return 404, error_body("not_found", str(exc))
    if isinstance(exc, ConflictError):
        return 409, error_body("conflict", str(exc))
    if isinstance(exc, UpstreamError):
        return 502, error_body("upstream_error", str(exc))
    if isinstance(exc, AuthError):
        if exc.forbidden:
            return 403, error_body("forbidden", str(exc))
        return 401, error_body("unauthorized", str(exc))
    return 500, error_body("internal_error", "internal error")


def install(app: FastAPI) -> None:
    @app.exception_handler(CasefoldError)
    async def _casefold(_r: Request, exc: CasefoldError) -> Response:
        status, body = error_status(exc)
        if status >= 500:
            log.error("unexpected %s: %s", type(exc).__name__, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return json_response(body, status, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field_from_loc(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "request body is not valid JSON")
        msg = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return error_response(422, "invalid_input", msg, field=field or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

"""The one place where Casefold errors become HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from casefold.api.responses import error_response
from casefold.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from casefold.intake.body import InvalidJSONError

log = logging.getLogger("casefold.api")


def _field_from_loc(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(InvalidJSONError)
    async def _bad_json(_r: Request, exc: InvalidJSONError) -> Response:
        return error_response(400, "invalid_json", exc.message, line=exc.line, column=exc.column)

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(_r: Request, exc: PayloadTooLargeError) -> Response:
        return error_response(413, "payload_too_large", exc.message)

    @app.exception_handler(InvalidInputError)
    async def _invalid(_r: Request, exc: InvalidInputError) -> Response:
        return error_response(422, "invalid_input", exc.message, field=exc.field)

    @app.exception_handler(NotFoundError)
    async def _not_found(_r: Request, exc: NotFoundError) -> Response:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_r: Request, exc: ConflictError) -> Response:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_r: Request, exc: AuthError) -> Response:
        if exc.forbidden:
            return error_response(403, "forbidden", str(exc))
        return error_response(401, "unauthorized", str(exc))

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

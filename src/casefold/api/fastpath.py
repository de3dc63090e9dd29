"""A lean ASGI path for the hottest request: posting alerts with an already-verified token.

The FastAPI route does the same work through Starlette's middleware, routing and dependency
machinery, which cost about as much CPU as validating and storing a single alert. This layer
answers `POST /api/v1/alerts/<source>` itself when the bearer token is in the verifier's cache
and may ingest; everything else (unknown or uncached tokens, other routes) goes to the FastAPI
app unchanged, so authentication failures and documentation come from one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from casefold.access import Permission
from casefold.api.alerts import handle_intake
from casefold.api.errors import error_status
from casefold.api.responses import error_body
from casefold.errors import CasefoldError, PayloadTooLargeError
from casefold.intake.receiver import SourceParser

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class IntakeFastPath:
    def __init__(self, app: ASGIApp, runtime: Any, parsers: dict[str, SourceParser]) -> None:
        self.app = app
        self.runtime = runtime
        self.parsers = parsers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parse = self.parsers.get(scope.get("path", "")) if scope["type"] == "http" else None
        if parse is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        principal = (
            self.runtime.tokens.cached(token.strip()) if scheme.lower() == "bearer" else None
        )
        if principal is None or not principal.can(Permission.INGEST):
            await self.app(scope, receive, send)  # verify against the store, or refuse, there
            return
        ctype = headers.get(b"content-type", b"").decode("latin-1") or None
        limit = self.runtime.settings.max_body_bytes
        try:
            body = await _read_body(receive, headers.get(b"content-length"), limit)
            status, payload = await handle_intake(self.runtime, body, ctype, parse)
        except CasefoldError as exc:
            status, payload = error_status(exc)
        except Exception:  # the store failed: a server error, never the client's fault
            status, payload = 500, error_body("internal_error", "could not store the alerts")
        data = orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is larger than the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise PayloadTooLargeError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)

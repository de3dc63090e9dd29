"""Bearer-token authentication and role checks, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission, Principal
from casefold.errors import AuthError


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        verifier = request.app.state.runtime.tokens
        token = _bearer(request)
        # A verified token is cached, so most requests never touch the store (or a thread) here.
        principal = verifier.cached(token) or await run_in_threadpool(verifier.verify, token)
        if not principal.can(permission):
            raise AuthError(
                f"role {principal.role.value} may not {permission.value.replace('_', ' ')}",
                forbidden=True,
            )
        request.state.principal = principal
        return principal

    return dependency

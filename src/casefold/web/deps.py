"""What pages depend on: the signed-in session, role checks, and CSRF-checked forms.

Pages use `current_user` (any session) or `require_page(permission)` (a session whose role has the
permission, as the API's `require` does for tokens). POST forms use `csrf_form`, which also
checks the form's `csrf_token` against the session's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission
from casefold.web import session as sessions
from casefold.web.render import PageError, SignInRequired
from casefold.web.session import COOKIE, Session

MAX_FORM_BYTES = 64 * 1024


def runtime_of(request: Request) -> Any:
    return request.app.state.runtime


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _session(request: Request) -> Session | None:
    if hasattr(request.state, "web_session"):
        return request.state.web_session
    cookie = request.cookies.get(COOKIE)

    def load() -> Session | None:
        with runtime_of(request).engine.connect() as conn:
            return sessions.load_session(conn, cookie)

    found = await run_in_threadpool(load) if cookie else None
    request.state.web_session = found
    return found


async def current_user(request: Request) -> Session:
    """The signed-in session; pages that depend on it redirect to /login without one."""
    found = await _session(request)
    if found is None:
        raise SignInRequired()
    return found


def require_page(permission: Permission) -> Callable[[Request], Awaitable[Session]]:
    async def dependency(request: Request) -> Session:
        found = await current_user(request)
        if not found.principal.can(permission):
            raise PageError(
                403,
                "Forbidden",
                f"Role {found.principal.role.value} may not {permission.value.replace('_', ' ')}.",
            )
        return found

    return dependency


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body, first value per field (no multipart: the UI never uploads)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return {}  # nothing posted: the CSRF check then refuses it (403), as for any bad form
    if ctype != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        raise PageError(400, "Bad request", "The form could not be read.")
    try:
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=500
        )
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "Bad request", "The form could not be read.") from None
    return {k: v[0] for k, v in fields.items()}


def csrf_failed() -> PageError:
    return PageError(403, "Forbidden", "The form has expired or did not come from this site.")


async def csrf_form(request: Request) -> tuple[Session, dict[str, str]]:
    """A signed-in POST: the session and its form, whose csrf_token must match the session's."""
    found = await current_user(request)
    form = await read_form(request)
    if not sessions.csrf_matches(found.csrf_token, form.get("csrf_token")):
        raise csrf_failed()
    return found, form

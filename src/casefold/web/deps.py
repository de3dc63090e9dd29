"""What pages depend on: the signed-in session, role checks, and CSRF-checked forms.

Pages use `current_user` (any session) or `require_page(permission)` (a session whose role has the
permission, as the API's `require` does for tokens). POST forms use `csrf_form`, which also
checks the form's `csrf_token` against the session's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict

from casefold.access import Permission
from casefold.errors import CasefoldError, ConflictError, InvalidInputError, NotFoundError
from casefold.web import session as sessions
from casefold.web.render import PageError, SignInRequired
from casefold.web.session import COOKIE, Session

MAX_FORM_BYTES = 64 * 1024

# A posted form: `get` gives a field's first value, `getlist` all of them (bulk selections).
Form = ImmutableMultiDict[str, str]


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


async def read_form(request: Request) -> Form:
    """An urlencoded form body (no multipart: the UI never uploads)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return Form()  # nothing posted: the CSRF check then refuses it (403), as for any bad form
    if ctype != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        raise PageError(400, "Bad request", "The form could not be read.")
    try:
        fields = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=600
        )
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "Bad request", "The form could not be read.") from None
    return Form(fields)


def csrf_failed() -> PageError:
    return PageError(403, "Forbidden", "The form has expired or did not come from this site.")


async def csrf_form(request: Request) -> tuple[Session, Form]:
    """A signed-in POST: the session and its form, whose csrf_token must match the session's."""
    found = await current_user(request)
    form = await read_form(request)
    if not sessions.csrf_matches(found.csrf_token, form.get("csrf_token")):
        raise csrf_failed()
    return found, form


def change_form(permission: Permission) -> Callable[[Request], Awaitable[tuple[Session, Form]]]:
    """A CSRF-checked POST by a session whose role has `permission` (403 page otherwise)."""
    check = require_page(permission)

    async def dependency(request: Request) -> tuple[Session, Form]:
        await check(request)
        return await csrf_form(request)

    return dependency


def page_error(exc: CasefoldError) -> PageError:
    """The page a domain error becomes: the same status codes as the API."""
    if isinstance(exc, NotFoundError):
        return PageError(404, "Not found", str(exc))
    if isinstance(exc, ConflictError):
        return PageError(409, "Conflict", str(exc))
    if isinstance(exc, InvalidInputError):
        return PageError(422, "Not accepted", str(exc))
    return PageError(400, "Bad request", str(exc))


async def read_store(request: Request, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(conn)` on a read connection, off the event loop; domain errors become pages."""

    def job() -> Any:
        with runtime_of(request).engine.connect() as conn:
            return fn(conn)

    try:
        return await run_in_threadpool(job)
    except CasefoldError as exc:
        raise page_error(exc) from None


async def write_store(request: Request, fn: Callable[[Any], Any]) -> Any:
    """Run `fn(conn)` in one transaction of the store's writer; domain errors become pages."""
    try:
        return await run_in_threadpool(runtime_of(request).writer.run, fn)
    except CasefoldError as exc:
        raise page_error(exc) from None


def local_path(value: str | None, default: str = "/") -> str:
    """`value` if it is a path on this site (a form's "back to" field), else `default`.

    Anything with a scheme, a host or a leading `//` would make the redirect an open redirect.
    """
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


# What page routes declare: a reader (any role that may read) or a CSRF-checked case change.
Reader = Annotated[Session, Depends(require_page(Permission.READ))]
CaseChange = Annotated[tuple[Session, Form], Depends(change_form(Permission.WRITE_CASES))]

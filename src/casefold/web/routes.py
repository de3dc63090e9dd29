"""The web UI's pages: sign-in, sign-out, and the signed-in home page.

Pages use `current_user` (any session) or `require_page(permission)` (a session whose role has the
permission, as the API's `require` does for tokens). POST forms use `csrf_form`, which also
checks the form's `csrf_token` against the session's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission, Principal
from casefold.cases.queries import list_cases
from casefold.web import session as sessions
from casefold.web.session import COOKIE, LOGIN_CSRF_COOKIE, Session
from casefold.web.throttle import FailureThrottle
from casefold.web.users import record_login, verify_password

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages show case data; a shared proxy or the back button should not keep them.
    "Cache-Control": "no-store",
}
SIGN_IN_FAILED = "Sign-in failed: check the name and password, or the token."
MAX_FORM_BYTES = 64 * 1024

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)

router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """No live session: pages answer with a redirect to /login."""


class PageError(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("session", getattr(request.state, "web_session", None))
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(location: str) -> RedirectResponse:
    # 303: the browser follows with a GET, whatever the method was.
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _session(request: Request) -> Session | None:
    if hasattr(request.state, "web_session"):
        return request.state.web_session
    cookie = request.cookies.get(COOKIE)

    def load() -> Session | None:
        with _runtime(request).engine.connect() as conn:
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
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "Bad request", "The form could not be read.") from None
    return {k: v[0] for k, v in fields.items()}


def _csrf_failed() -> PageError:
    return PageError(403, "Forbidden", "The form has expired or did not come from this site.")


async def csrf_form(request: Request) -> tuple[Session, dict[str, str]]:
    """A signed-in POST: the session and its form, whose csrf_token must match the session's."""
    found = await current_user(request)
    form = await read_form(request)
    if not sessions.csrf_matches(found.csrf_token, form.get("csrf_token")):
        raise _csrf_failed()
    return found, form


def _login_page(request: Request, status: int = 200, error: str = "", name: str = "") -> Response:
    # Login has no session yet, so its CSRF token is double-submitted: a cookie and the form.
    token = sessions.new_csrf_token()
    response = page(
        request, "login.html", status, session=None, csrf_token=token, error=error, name=name
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    # Shown even when signed in: signing in again (as someone else) replaces the session.
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    if not sessions.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        raise _csrf_failed()
    runtime = _runtime(request)
    throttle: FailureThrottle = request.app.state.web_throttle
    name = form.get("name", "").strip()
    password = form.get("password", "")
    token = form.get("token", "").strip()
    key = (_client_ip(request), "" if token else name)
    if throttle.blocked(key):
        raise PageError(429, "Too many attempts", "Too many failed sign-ins; try again later.")

    def check() -> tuple[Principal, dict[str, int]] | None:
        with runtime.engine.connect() as conn:
            if token:
                owner = sessions.token_owner(conn, token)
                return None if owner is None else (owner[1], {"token_id": owner[0]})
            if name and password:
                user = verify_password(conn, name, password)
                return None if user is None else (user.principal, {"user_id": user.id})
        return None

    checked = await run_in_threadpool(check)
    # A role that cannot read (ingest) has nothing to see here; same answer as a wrong password.
    if checked is None or not checked[0].can(Permission.READ):
        throttle.failed(key)
        return _login_page(request, 401, error=SIGN_IN_FAILED, name=name)
    throttle.clear(key)
    owner = checked[1]
    old = request.cookies.get(COOKIE)
    ttl = timedelta(hours=runtime.settings.web_session_hours)

    def start(conn: Any) -> str:
        if old:  # a fresh id at every sign-in, so a planted cookie is never promoted
            sessions.end_session(conn, old)
        if "user_id" in owner:
            record_login(conn, owner["user_id"])
        return sessions.create_session(conn, ttl=ttl, **owner)

    session_id = await run_in_threadpool(runtime.writer.run, start)
    response = redirect("/")
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Depends(csrf_form)])
async def logout(request: Request) -> Response:
    cookie = request.cookies.get(COOKIE, "")
    await run_in_threadpool(
        _runtime(request).writer.run, lambda conn: sessions.end_session(conn, cookie)
    )
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response


@router.get("/", dependencies=[Depends(require_page(Permission.READ))])
async def home(request: Request) -> Response:
    def recent() -> list[dict[str, Any]]:
        with _runtime(request).engine.connect() as conn:
            return list_cases(conn, sort="-updated_at", limit=50).items

    return page(request, "cases.html", cases=await run_in_threadpool(recent))


def install(app: FastAPI) -> None:
    """Add the pages, their error pages and the sign-in throttle to `app`."""
    app.state.web_throttle = FailureThrottle(limit=10, window=300.0)
    app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(_r: Request, _exc: SignInRequired) -> Response:
        return redirect("/login")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return page(request, "error.html", exc.status, title=exc.title, message=exc.message)

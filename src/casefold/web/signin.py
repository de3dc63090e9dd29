"""Signing in (password or API token) and out of the web UI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission, Principal
from casefold.web import session as sessions
from casefold.web.deps import client_ip, csrf_failed, csrf_form, is_secure, read_form, runtime_of
from casefold.web.render import PageError, page, redirect
from casefold.web.session import COOKIE, LOGIN_CSRF_COOKIE
from casefold.web.throttle import FailureThrottle
from casefold.web.users import prepare_sign_in, record_login, verify_password

SIGN_IN_FAILED = "Sign-in failed: check the name and password, or the token."

router = APIRouter(include_in_schema=False)


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
        secure=is_secure(request),
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    # Shown even when signed in: signing in again (as someone else) replaces the session.
    # A sign-in needs this form's CSRF cookie, so the dummy hash is ready before the first one
    # (but for a form shown before a restart: that one check of an unknown name is slower).
    await run_in_threadpool(prepare_sign_in)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    if not sessions.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        raise csrf_failed()
    runtime = runtime_of(request)
    throttle: FailureThrottle = request.app.state.web_throttle
    name = form.get("name", "").strip()
    password = form.get("password", "")
    token = form.get("token", "").strip()
    key = (client_ip(request), "" if token else name)
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
        secure=is_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Depends(csrf_form)])
async def logout(request: Request) -> Response:
    cookie = request.cookies.get(COOKIE, "")
    await run_in_threadpool(
        runtime_of(request).writer.run, lambda conn: sessions.end_session(conn, cookie)
    )
    response = redirect("/login")
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=is_secure(request)
    )
    return response

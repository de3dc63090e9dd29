"""The web UI put together: its routers, static files, error pages and the sign-in throttle."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.staticfiles import StaticFiles

from casefold.web import case_page, dashboard, queue, signin
from casefold.web.render import PageError, SignInRequired, page, redirect
from casefold.web.throttle import FailureThrottle

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages, their static files and error pages, and the sign-in throttle to `app`."""
    app.state.web_throttle = FailureThrottle(limit=10, window=300.0)
    app.include_router(signin.router)
    app.include_router(queue.router)
    app.include_router(case_page.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(_r: Request, _exc: SignInRequired) -> Response:
        return redirect("/login")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return page(request, "error.html", exc.status, title=exc.title, message=exc.message)

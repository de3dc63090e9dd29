"""Rendering pages: the Jinja2 environment, security headers, redirects and page errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

SECURITY_HEADERS = {
    # Scripts and styles come only from /static: no inline code, so injected markup cannot run.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show case data; a shared proxy or the back button should not keep them.
    "Cache-Control": "no-store",
}

# A one-line notice for the next page ("3 cases assigned to alice"), set on a redirect.
FLASH_COOKIE = "casefold_flash"

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """A timestamp as analysts read it: UTC, to the second."""
    at = _as_utc(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else ""


def ago(value: Any, now: datetime | None = None) -> str:
    """How long ago, in the largest sensible unit ("4 min ago", "3 h ago", "12 d ago")."""
    at = _as_utc(value)
    if at is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def pretty_json(value: Any) -> str:
    return orjson.dumps(
        value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str
    ).decode()


def label(value: Any) -> str:
    """An enum value as words: in_progress → in progress."""
    return str(value).replace("_", " ") if value is not None else ""


templates.filters.update(when=when, ago=ago, pretty_json=pretty_json, label=label)


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
    notice = request.cookies.get(FLASH_COOKIE)
    context.setdefault("notice", unquote(notice) if notice else "")
    context.setdefault("path", request.url.path)
    html = templates.get_template(template).render(**context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if notice:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(location: str, notice: str = "") -> RedirectResponse:
    # 303: the browser follows with a GET, whatever the method was.
    response = RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)
    if notice:
        response.set_cookie(
            FLASH_COOKIE, quote(notice[:300]), max_age=60, httponly=True, samesite="lax", path="/"
        )
    return response

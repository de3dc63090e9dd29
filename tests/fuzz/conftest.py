"""Fuzz fixtures: the API fixtures of tests/api, on SQLite only.

Each test builds its apps once and Hypothesis sends all its examples to them, so a property is
checked as a difference (rows before and after the request), never as an absolute count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from api.conftest import Api, api_factory  # noqa: F401  (api_factory is a fixture used below)

from casefold.access import Permission


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """SQLite (None), unless the test is marked postgres: fuzzing both backends would double the
    run time, and tests/api runs everything on both."""
    if request.node.get_closest_marker("postgres") is None:
        return None
    return request.getfixturevalue("postgres_server").new_database()


@dataclass
class IntakeApps:
    """The same intake behind its two front doors.

    `fast` trusts a verified token for minutes, so every request after the first goes through
    the lean ASGI fast path; `framework` never caches, so every request goes through FastAPI's
    routing, dependencies and exception handlers. Their body limits differ too: above 256 KiB
    the fast app parses off the event loop, and the framework app refuses anything over 64 KiB.
    """

    fast: Api
    framework: Api

    def pick(self, fast: bool) -> Api:
        return self.fast if fast else self.framework


@pytest.fixture
def intake_apps(api_factory: Callable[..., Api]) -> IntakeApps:  # noqa: F811
    common: dict[str, Any] = {"sqlite_synchronous": "NORMAL"}  # why: speed; durability is moot
    fast = api_factory(token_cache_seconds=300, max_body_bytes=512 * 1024, **common)
    framework = api_factory(token_cache_seconds=0, max_body_bytes=64 * 1024, **common)
    assert fast.get("/api/v1/alerts").status_code == 200  # verifies, and caches, the token
    principal = fast.runtime.tokens.cached(fast.tokens["admin"])
    assert principal is not None and principal.can(Permission.INGEST)
    return IntakeApps(fast, framework)

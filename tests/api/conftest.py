"""In-process API fixtures: a Runtime on a real SQLite file or PostgreSQL database, a TestClient,
and one token per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from casefold.access import Role, create_token
from casefold.app import create_app
from casefold.config import Settings
from casefold.runtime import Runtime


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "admin", **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kw)

    def post(self, path: str, role: str = "admin", **kw: Any) -> Any:
        headers = {**self.headers(role), **kw.pop("headers", {})}
        return self.client.post(path, headers=headers, **kw)

    def patch(self, path: str, role: str = "admin", **kw: Any) -> Any:
        headers = {**self.headers(role), **kw.pop("headers", {})}
        return self.client.patch(path, headers=headers, **kw)

    def fold(self) -> None:
        """Fold everything stored so far (the background worker would, a moment later)."""
        self.runtime.folding.drain()


def make_settings(tmp_path: Path, database_url: str | None, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, **kw)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    runtime = Runtime(settings)
    app = create_app(runtime, manage_runtime=True)
    with TestClient(app) as client:
        api = Api(client, runtime)
        api.tokens["admin"] = (settings.data_dir / "admin-token").read_text().strip()
        for role in (Role.ANALYST, Role.VIEWER, Role.INGEST):
            api.tokens[role.value] = runtime.writer.run(
                lambda conn, r=role: create_token(conn, f"test-{r.value}", r)
            )
        yield api


@pytest.fixture
def api_factory(tmp_path: Path, database_url: str | None) -> Iterator[Any]:
    """Build an Api with custom settings (e.g. other folding rules)."""
    stack: list[TestClient] = []

    def make(**kw: Any) -> Api:
        settings = make_settings(tmp_path / f"f{len(stack)}", database_url, **kw)
        runtime = Runtime(settings)
        client = TestClient(create_app(runtime, manage_runtime=True))
        client.__enter__()
        stack.append(client)
        api = Api(client, runtime)
        api.tokens["admin"] = (settings.data_dir / "admin-token").read_text().strip()
        return api

    yield make
    for client in stack:
        client.__exit__(None, None, None)

"""The web UI under test: an app on a fresh store (SQLite file or PostgreSQL), its client, and
helpers to create users, sign in and read CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from casefold.access import Role
from casefold.app import create_app
from casefold.config import Settings
from casefold.runtime import Runtime
from casefold.web.users import create_user, hash_password

PASSWORD = "correct horse battery"


@dataclass
class Web:
    client: TestClient
    runtime: Runtime
    settings: Settings
    admin_token: str

    def create_user(self, name: str, role: Role = Role.ANALYST, password: str = PASSWORD) -> None:
        hashed = hash_password(password)
        self.runtime.writer.run(lambda conn: create_user(conn, name, role, hashed))

    def login_csrf(self) -> str:
        r = self.client.get("/login")
        assert r.status_code == 200
        m = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
        assert m, r.text
        return m.group(1)

    def sign_in(self, **fields: str) -> Any:
        data = {"csrf_token": self.login_csrf(), **fields}
        return self.client.post("/login", data=data, follow_redirects=False)

    def csrf(self) -> str:
        """The session's CSRF token, from the sign-out form on a signed-in page."""
        r = self.client.get("/", follow_redirects=False)
        assert r.status_code == 200, r.status_code
        m = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
        assert m
        return m.group(1)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store alerts through the API and fold them (the worker would, a moment later)."""
        r = self.client.post(
            "/api/v1/alerts/wazuh",
            json=alerts,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        assert r.status_code == 202, r.text
        self.runtime.folding.drain()
        return list(r.json()["results"])

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """An API call as the admin token (cookies play no part in the API)."""
        headers = {"Authorization": f"Bearer {self.admin_token}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def signed_in(self, name: str = "ana", role: Role = Role.ANALYST) -> str:
        """Create a user, sign in as it and return the session's CSRF token."""
        self.create_user(name, role)
        r = self.sign_in(name=name, password=PASSWORD)
        assert r.status_code == 303, r.text
        return self.csrf()


def build_web(
    tmp_path: Path, database_url: str | None, base_url: str, **overrides: Any
) -> Iterator[Web]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, **overrides)
    runtime = Runtime(settings)
    with TestClient(create_app(runtime, manage_runtime=True), base_url=base_url) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        yield Web(client, runtime, settings, token)

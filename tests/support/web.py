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


def build_web(tmp_path: Path, database_url: str | None, base_url: str) -> Iterator[Web]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    runtime = Runtime(settings)
    with TestClient(create_app(runtime, manage_runtime=True), base_url=base_url) as client:
        token = (settings.data_dir / "admin-token").read_text().strip()
        yield Web(client, runtime, settings, token)

"""Root fixtures, kept small: sample paths, the PostgreSQL server, and a store on either backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import PostgresServer, find_bindir

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "wazuh"


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL. CI (CASEFOLD_REQUIRE_POSTGRES=1) fails rather than skips."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CASEFOLD_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL binaries not found but CASEFOLD_REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL is not installed (the test command installs it)")
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None means the default SQLite file in the data dir; otherwise a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()

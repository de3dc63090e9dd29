"""The Alembic migrations build exactly the schema the code's table definitions describe."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from casefold.config import Settings
from casefold.store.db import make_engine, migrate
from casefold.store.tables import metadata


def test_migrated_schema_matches_the_tables(tmp_path: Path, database_url: str | None):
    engine = make_engine(Settings(data_dir=tmp_path, database_url=database_url))
    migrate(engine)
    migrate(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.postgres
def test_processes_starting_together_migrate_once(tmp_path, postgres_server):
    """An API and its workers start at once on an empty PostgreSQL database: without the
    migration lock their DDL blocked each other for good."""
    url = postgres_server.new_database()
    engines = [make_engine(Settings(data_dir=tmp_path, database_url=url)) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine) -> None:
        try:
            migrate(engine)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,), daemon=True) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not any(t.is_alive() for t in threads), "migrations blocked each other"
        assert not errors, errors
        with engines[0].connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert len(list(versions)) == 1
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        for e in engines:
            e.dispose()

"""The Alembic migrations build exactly the schema the code's table definitions describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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

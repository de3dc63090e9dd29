"""The engine, its dialect quirks, and schema migration at start.

SQLite runs in WAL mode so readers never block the writer; every write goes through
`casefold.store.writer.Writer`, one thread, as Datasette does. PostgreSQL is driven by psycopg 3.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import Connection

from casefold.config import Settings
from casefold.errors import ConfigError

log = logging.getLogger("casefold.store")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    # JSON columns go through orjson: the stdlib encoder was a visible share of intake CPU.
    json_opts: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, pool_size=8, max_overflow=8, connect_args={"timeout": 30}, **json_opts
        )
        _configure_sqlite(engine, settings.sqlite_synchronous)
        return engine
    try:
        return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, **json_opts)
    except Exception as exc:  # a malformed URL or missing driver
        raise ConfigError("database_url", str(exc).splitlines()[0]) from exc


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (needed for SAVEPOINT).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY instead of waiting when another process (the CLI) writes at the same time.
        if conn.get_execution_options().get("casefold_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def schema_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())

"""Alembic environment: run migrations on the connection Casefold hands over."""

from __future__ import annotations

from alembic import context

from casefold.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - Casefold always passes its own connection
    raise RuntimeError("casefold migrations run through casefold.store.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

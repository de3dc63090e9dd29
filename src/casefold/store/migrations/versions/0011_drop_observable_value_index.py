"""Drop the index of case observables by (type, value): no query reads it.

Every observable a fold adds is a row; each syscheck or Sysmon hash is a new one, and this index
took it at a random place, a write folding paid for on every batch. Cases are looked up by their
own observables (the unique constraint on case_id, type, value serves that).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_case_observables_value", table_name="case_observables")


def downgrade() -> None:
    op.create_index("ix_case_observables_value", "case_observables", ["type", "value"])

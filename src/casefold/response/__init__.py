"""Active response under policy: decisions, approvals, execution and undo."""

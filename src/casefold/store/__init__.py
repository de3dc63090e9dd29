"""Persistence: the tables, the engine and its dialect quirks, the single writer, migrations."""

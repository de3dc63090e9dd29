"""The JSON REST API under /api/v1."""

"""The analyst web UI: server-rendered pages, signed-in users and their sessions."""

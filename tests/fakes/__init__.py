"""Fakes of the external APIs Casefold talks to: small ASGI apps, served on 127.0.0.1."""

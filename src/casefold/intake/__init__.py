"""Intake: receive alerts, validate them, persist them, then acknowledge; never the reverse."""

"""Intake: receive alerts, validate them, persist them, then acknowledge. Never the other way round."""

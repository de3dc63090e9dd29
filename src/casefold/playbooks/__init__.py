"""Playbooks: YAML workflows in Tracecat's syntax, validated and compiled at load, run per alert."""

"""Verbs a playbook can call. Built-ins register here exactly as extensions would."""

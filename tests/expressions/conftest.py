"""Fixtures for the expression-language tests: the article's workflow context."""

from __future__ import annotations

from typing import Any

import pytest


def article_context(
    level: int = 12, reputation: str = "malicious", groups: list[str] | None = None
) -> dict[str, Any]:
    """A context shaped like the Wazuh → Tracecat ticketing article's workflow run."""
    meta = [
        {"key": "target_fqdn", "value": "www.example.org"},
        {"key": "target_uri", "value": "/wp-login.php"},
        {"key": "http_status", "value": "404"},
    ]
    trigger = {
        "data": {
            "rule": {
                "level": level,
                "id": "100201",
                "description": "CrowdSec alert",
                "groups": groups if groups is not None else ["crowdsec", "attack"],
            },
            "agent": {"id": "001", "name": "web-01"},
            "data": {
                "crowdsec": {
                    "alert": {
                        "scenario": "crowdsecurity/http-bf-wordpress_bf",
                        "source": {"ip": "203.0.113.7"},
                        "events": [{"meta": meta}],
                    }
                }
            },
        }
    }
    actions = {
        "stock_groups": {"result": trigger["data"]["rule"]["groups"]},
        "stock_ip": {"result": "203.0.113.7"},
        "lookup_ip_address": {"result": {"data": {"reputation": reputation}}},
        "create_case": {"result": {"id": "case-123"}},
        "stock_reputation": {"result": reputation},
        "stock_level": {"result": level},
        "recup_case_id": {"result": "case-123"},
        "map": {"result": [f"{m['key']}: {m['value']}" for m in meta]},
    }
    return {"TRIGGER": trigger, "ACTIONS": actions, "SECRETS": {}, "VARS": {}, "ENV": {}}


@pytest.fixture
def ctx() -> dict[str, Any]:
    return article_context()


@pytest.fixture
def make_context():
    """Factory fixture: ``make_context(level=15, reputation='known')``."""
    return article_context

"""Helpers for tests that post alerts and look at the playbook runs they caused."""

from __future__ import annotations

from typing import Any

URL = "/api/v1/alerts/wazuh"


def post(api: Any, alert: dict[str, Any]) -> int:
    """Post one Wazuh alert; its stored id."""
    r = api.post(URL, json=alert)
    assert r.status_code == 202, r.text
    return r.json()["results"][0]["id"]


def process(api: Any) -> None:
    """Fold what is stored, then run every playbook run that folding queued."""
    api.fold()
    api.runtime.playbooks.drain()


def only_run(api: Any, alert_id: int) -> dict[str, Any]:
    runs = api.get(f"/api/v1/alerts/{alert_id}/runs").json()["items"]
    assert len(runs) == 1, runs
    return runs[0]


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["ref"]: s for s in run["steps"]}

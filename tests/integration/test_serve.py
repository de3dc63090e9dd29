"""`casefold serve` as a process: bootstrap token, restart, and the data surviving it."""

from __future__ import annotations

import stat

import httpx
import pytest
from support.alerts import sshd_alert

pytestmark = pytest.mark.slow


def test_first_start_creates_an_admin_token_once(server_factory):
    srv = server_factory().start()
    path = srv.data_dir / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = srv.token
    log = srv.log_path.read_text()
    assert log.count("created admin token") == 1
    assert token not in log  # the log says where the token is, never the token
    r = httpx.get(srv.url + "/api/v1/cases", headers=srv.headers())
    assert r.status_code == 200
    srv.restart()
    assert srv.token == token
    assert srv.log_path.read_text().count("created admin token") == 1


def test_alerts_and_cases_survive_a_restart(server_factory):
    srv = server_factory().start()
    r = httpx.post(
        srv.url + "/api/v1/alerts/wazuh",
        headers=srv.headers(),
        json=[sshd_alert(i, minutes=i) for i in range(5)],
    )
    assert r.status_code == 202
    srv.wait_folded()
    srv.restart()
    cases = httpx.get(srv.url + "/api/v1/cases", headers=srv.headers()).json()["items"]
    assert [c["alert_count"] for c in cases] == [5]
    again = httpx.post(
        srv.url + "/api/v1/alerts/wazuh", headers=srv.headers(), json=sshd_alert(0, minutes=0)
    ).json()
    assert again["duplicates"] == 1


def test_serve_on_postgres(server_factory, postgres_server):
    srv = server_factory(database_url=postgres_server.new_database()).start()
    r = httpx.post(
        srv.url + "/api/v1/alerts/wazuh",
        headers=srv.headers(),
        json=[sshd_alert(i, minutes=i) for i in range(3)],
    )
    assert r.json()["accepted"] == 3
    srv.wait_folded()
    cases = httpx.get(srv.url + "/api/v1/cases", headers=srv.headers()).json()["items"]
    assert [c["alert_count"] for c in cases] == [3]

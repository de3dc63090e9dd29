"""Web UI sign-in: users, sessions, CSRF, the throttle, and the first signed-in page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.alerts import sshd_alert
from support.web import PASSWORD, Web, build_web
from typer.testing import CliRunner

from casefold.access import Role, create_token, revoke_token
from casefold.app import create_app
from casefold.cli import app as cli_app
from casefold.config import Settings
from casefold.runtime import Runtime
from casefold.web import users
from casefold.web.session import COOKIE
from casefold.web.signin import SIGN_IN_FAILED
from casefold.web.throttle import FailureThrottle
from casefold.web.users import disable_user, list_users


def _set_cookies(r: Any) -> list[str]:
    return r.headers.get_list("set-cookie")


def _session_cookie(r: Any) -> str:
    found = [c for c in _set_cookies(r) if c.startswith(f"{COOKIE}=")]
    assert len(found) == 1, _set_cookies(r)
    return found[0]


# -- users -------------------------------------------------------------------------------------


def test_cli_creates_lists_and_disables_users(tmp_path: Path, database_url: str | None):
    runner = CliRunner()
    common = ["--data-dir", str(tmp_path / "data")]
    if database_url:
        common += ["--database-url", database_url]
    r = runner.invoke(
        cli_app,
        ["user", "create", "--name", "ana", "--role", "analyst", "--password-stdin", *common],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    listed = runner.invoke(cli_app, ["user", "list", *common])
    assert "ana" in listed.output and "analyst" in listed.output
    assert "argon2" not in listed.output

    again = runner.invoke(
        cli_app,
        ["user", "create", "--name", "ana", "--role", "analyst", "--password-stdin", *common],
        input=PASSWORD + "\n",
    )
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(
        cli_app,
        ["user", "create", "--name", "bo", "--role", "viewer", "--password-stdin", *common],
        input="short\n",
    )
    assert short.exit_code != 0 and "at least 12" in short.output
    bad_role = runner.invoke(
        cli_app,
        ["user", "create", "--name", "bo", "--role", "boss", "--password-stdin", *common],
        input=PASSWORD + "\n",
    )
    assert bad_role.exit_code != 0 and "unknown role" in bad_role.output

    assert runner.invoke(cli_app, ["user", "disable", "ana", *common]).exit_code == 0
    assert "yes" in runner.invoke(cli_app, ["user", "list", *common]).output
    missing = runner.invoke(cli_app, ["user", "disable", "nobody", *common])
    assert missing.exit_code != 0 and "no user named" in missing.output

    # The CLI's user signs in to the server on the same store (once re-enabled: a new one here).
    runner.invoke(
        cli_app,
        ["user", "create", "--name", "cy", "--role", "viewer", "--password-stdin", *common],
        input=PASSWORD + "\n",
    )
    for web in build_web(tmp_path, database_url, "http://testserver"):
        assert web.sign_in(name="cy", password=PASSWORD).status_code == 303
        assert web.sign_in(name="ana", password=PASSWORD).status_code == 401


def test_password_is_never_a_cli_argument():
    r = CliRunner().invoke(cli_app, ["user", "create", "--help"])
    assert "--password-stdin" in r.output
    assert re.search(r"--password\b(?!-)", r.output) is None


def test_module_stores_only_a_hash(web: Web):
    web.create_user("ana")
    with web.runtime.engine.connect() as conn:
        rows = list_users(conn)
    assert [(r["name"], r["role"], r["disabled"]) for r in rows] == [("ana", "analyst", False)]
    assert "password_hash" not in rows[0]


def test_the_dummy_hash_is_made_by_the_login_form_not_at_import(web: Web):
    """Starting any `casefold` command no longer runs argon2 (64 MiB for a moment); the login
    form makes the hash an unknown name is checked against, before any sign-in can be posted."""
    probe = (
        "import casefold.app, casefold.web.users as u; print(u._dummy_hash.cache_info().currsize)"
    )
    fresh = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == "0"
    users._dummy_hash.cache_clear()
    assert web.client.get("/login").status_code == 200
    assert users._dummy_hash.cache_info().currsize == 1
    r = web.sign_in(name="nobody", password=PASSWORD)
    assert r.status_code == 401 and SIGN_IN_FAILED in r.text


# -- signing in --------------------------------------------------------------------------------


def test_sign_in_with_password_sets_a_strict_cookie(web: Web):
    web.create_user("ana")
    r = web.sign_in(name="ana", password=PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = _session_cookie(r).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http (the test server): a Secure cookie would vanish
    page = web.client.get("/")
    assert page.status_code == 200 and "ana" in page.text
    with web.runtime.engine.connect() as conn:
        assert list_users(conn)[0]["last_login_at"] is not None


def test_cookie_is_secure_over_https(tmp_path: Path, database_url: str | None):
    for web in build_web(tmp_path, database_url, "https://testserver"):
        web.create_user("ana")
        cookie = _session_cookie(web.sign_in(name="ana", password=PASSWORD)).lower()
        assert "secure" in cookie and "httponly" in cookie


def test_sign_in_with_an_api_token(web: Web):
    token = web.runtime.writer.run(lambda conn: create_token(conn, "vic", Role.VIEWER))
    r = web.sign_in(token=token)
    assert r.status_code == 303
    assert "vic <small>(viewer)</small>" in web.client.get("/").text
    # Revoking the token ends the session signed in with it.
    web.runtime.writer.run(lambda conn: revoke_token(conn, "vic"))
    r = web.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_an_ingest_token_cannot_sign_in(web: Web):
    token = web.runtime.writer.run(lambda conn: create_token(conn, "mgr", Role.INGEST))
    r = web.sign_in(token=token)
    assert r.status_code == 401 and COOKIE not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "ana", "password": "wrong password!!"},
        {"name": "nobody", "password": PASSWORD},
        {"name": "ana", "password": ""},
        {"token": "cf_not-a-token"},
        {},
    ],
)
def test_failed_sign_in_is_one_generic_message_and_no_session(web: Web, fields: dict[str, str]):
    web.create_user("ana")
    r = web.sign_in(**fields)
    assert r.status_code == 401
    assert SIGN_IN_FAILED in r.text
    assert not any(c.startswith(f"{COOKIE}=") for c in _set_cookies(r))
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_login_post_needs_its_csrf_token(web: Web):
    web.create_user("ana")
    web.login_csrf()  # the cookie half is set; the form half is missing or wrong below
    for data in ({}, {"csrf_token": "forged"}):
        r = web.client.post(
            "/login", data={"name": "ana", "password": PASSWORD, **data}, follow_redirects=False
        )
        assert r.status_code == 403
        assert not any(c.startswith(f"{COOKIE}=") for c in _set_cookies(r))


# -- sessions, CSRF, signing out ---------------------------------------------------------------


def test_post_without_or_with_a_wrong_csrf_token_is_403(web: Web):
    web.create_user("ana")
    web.sign_in(name="ana", password=PASSWORD)
    for data in ({}, {"csrf_token": "forged"}):
        r = web.client.post("/logout", data=data, follow_redirects=False)
        assert r.status_code == 403 and "Forbidden" in r.text
    assert web.client.get("/", follow_redirects=False).status_code == 200  # still signed in


def test_logout_revokes_the_session(web: Web):
    web.create_user("ana")
    cookie = web.sign_in(name="ana", password=PASSWORD).cookies[COOKIE]
    r = web.client.post("/logout", data={"csrf_token": web.csrf()}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # Replaying the old cookie does not bring the session back: it is gone from the store.
    web.client.cookies.set(COOKIE, cookie)
    r = web.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_signing_in_again_replaces_the_old_session(web: Web):
    web.create_user("ana")
    first = web.sign_in(name="ana", password=PASSWORD).cookies[COOKIE]
    second = web.sign_in(name="ana", password=PASSWORD).cookies[COOKIE]
    assert first != second
    web.client.cookies.set(COOKIE, first)
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_a_disabled_user_is_signed_out_and_cannot_sign_in(web: Web):
    web.create_user("ana")
    web.sign_in(name="ana", password=PASSWORD)
    assert web.client.get("/", follow_redirects=False).status_code == 200
    web.runtime.writer.run(lambda conn: disable_user(conn, "ana"))
    assert web.client.get("/", follow_redirects=False).status_code == 303
    r = web.sign_in(name="ana", password=PASSWORD)
    assert r.status_code == 401 and SIGN_IN_FAILED in r.text


def test_an_expired_session_no_longer_works(tmp_path: Path, database_url: str | None):
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    runtime = Runtime(settings.model_copy(update={"web_session_hours": -1.0}))
    with TestClient(create_app(runtime, manage_runtime=True)) as client:
        web = Web(client, runtime, settings, "")
        web.create_user("ana")
        assert web.sign_in(name="ana", password=PASSWORD).status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 303


# -- throttle ----------------------------------------------------------------------------------


def test_ten_failures_in_five_minutes_are_throttled(web: Web):
    web.create_user("ana")
    for _ in range(10):
        assert web.sign_in(name="ana", password="wrong password!!").status_code == 401
    r = web.sign_in(name="ana", password=PASSWORD)  # even the right password, for now
    assert r.status_code == 429 and "Too many" in r.text
    assert r.headers["x-frame-options"] == "DENY"
    # Another name from the same address is a different key.
    web.create_user("bo")
    assert web.sign_in(name="bo", password=PASSWORD).status_code == 303


def test_throttle_window_and_clear():
    now = [0.0]
    t = FailureThrottle(limit=3, window=300.0, clock=lambda: now[0])
    for _ in range(3):
        t.failed("k")
    assert t.blocked("k") and not t.blocked("other")
    now[0] = 299.0
    assert t.blocked("k")
    now[0] = 300.0
    assert not t.blocked("k")
    t.failed("k")
    t.clear("k")
    assert not t.blocked("k")


# -- pages -------------------------------------------------------------------------------------


def test_home_redirects_when_signed_out(web: Web):
    r = web.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    csp = r.headers["content-security-policy"]
    # No inline script or style is allowed: nothing injected into a page can run.
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_home_lists_recent_cases_when_signed_in(web: Web):
    auth = {"Authorization": f"Bearer {web.admin_token}"}
    assert web.client.post("/api/v1/alerts/wazuh", json=sshd_alert(1), headers=auth).is_success
    web.runtime.folding.drain()
    web.create_user("vi", Role.VIEWER)
    web.sign_in(name="vi", password=PASSWORD)
    r = web.client.get("/")
    assert r.status_code == 200
    assert "CASE-1" in r.text and "new" in r.text
    # The only script is the site's own file; case text never becomes markup.
    assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/static/queue.js" defer>']


def test_an_ingest_user_is_forbidden_pages(web: Web):
    web.create_user("ing", Role.INGEST)
    # Same generic failure as a wrong password: the role has nothing to read.
    assert web.sign_in(name="ing", password=PASSWORD).status_code == 401


def test_html_responses_carry_the_security_headers(web: Web):
    web.create_user("ana")
    web.sign_in(name="ana", password=PASSWORD)
    for r in (web.client.get("/"), web.client.get("/login", follow_redirects=False)):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
    r = web.client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403 and r.headers["x-frame-options"] == "DENY"


def test_login_page_has_no_session_form(web: Web):
    web.create_user("ana")
    web.sign_in(name="ana", password=PASSWORD)
    r = web.client.get("/login")
    assert r.status_code == 200 and 'action="/logout"' not in r.text

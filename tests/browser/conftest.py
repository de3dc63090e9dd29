"""Browser tests: Debian's Chromium driven by Playwright, against a real `casefold serve`.

The browser is the system's (`/usr/bin/chromium`, installed by the test command); Playwright's own
browser download is never used. A failing test leaves a full-page screenshot under
`test-artifacts/browser/` (or `$CASEFOLD_ARTIFACTS`), named after the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.firewall import FirewallFake
from support.server import ServerProcess

CHROMIUM = Path(os.environ.get("CASEFOLD_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium keeps trying to reach the internet from a machine that cannot.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("CASEFOLD_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
PASSWORD = "correct horse battery"
PLAYBOOK = """\
title: Block brute force
trigger:
  source: wazuh
actions:
  - ref: block
    action: firewall.block_ip
    args:
      ip_address: ${{ TRIGGER.data.data.srcip }}
      ttl: 600
      reason: brute force
"""


def _missing(what: str) -> None:
    if os.environ.get("CASEFOLD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} but CASEFOLD_REQUIRE_BROWSER=1 (the test command installs it)")
    pytest.skip(f"{what} (the test command installs it)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    # Keep each phase's report on the test item, so the page fixture knows whether it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield found
        found.close()


class Served:
    """The server under test, its firewall fake, and shortcuts for the API."""

    def __init__(self, server: ServerProcess, firewall: FirewallFake) -> None:
        self.server = server
        self.firewall = firewall

    @property
    def url(self) -> str:
        return self.server.url

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        import httpx

        r = httpx.post(
            f"{self.url}/api/v1/alerts/wazuh", json=alerts, headers=self.server.headers()
        )
        assert r.status_code == 202, r.text
        self.server.wait_folded()

    def api(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        return httpx.request(method, f"{self.url}{path}", headers=self.server.headers(), **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`casefold serve` with a blocking playbook whose responses wait for an analyst."""
    root = tmp_path_factory.mktemp("browser")
    books = root / "books"
    books.mkdir()
    (books / "block.yml").write_text(PLAYBOOK)
    with FirewallFake() as firewall:
        config = root / "casefold.yml"
        config.write_text(
            "playbooks_dir: " + str(books) + "\n"
            "response:\n"
            "  require_approval: true\n"
            f"  firewall_block_url: {firewall.url}/api/block\n"
            f"  firewall_unblock_url: {firewall.url}/api/block/{{ip}}\n"
            "secrets:\n"
            "  firewall:\n"
            f"    API_TOKEN: {firewall.token}\n"
        )
        data = root / "data"
        for name, role in (("ana", "analyst"), ("vic", "viewer")):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "casefold",
                    "user",
                    "create",
                    "--name",
                    name,
                    "--role",
                    role,
                    "--password-stdin",
                    "--data-dir",
                    str(data),
                    "--config",
                    str(config),
                ],
                input=PASSWORD.encode(),
                check=True,
                capture_output=True,
            )
        server = ServerProcess(data, extra_args=("--config", str(config))).start()
        try:
            yield Served(server, firewall)
        finally:
            server.stop()


@pytest.fixture
def page(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.joinpath("browser").mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "browser" / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")
        try:
            tab.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failing page: {shot}")
        except Exception as exc:  # the page may be gone; the failure itself matters more
            print(f"no screenshot: {exc}")
    context.close()


def sign_in(page: Any, name: str = "ana", password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

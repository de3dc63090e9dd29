"""The custom-casefold integration script, run exactly the way wazuh-integratord runs it.

Integratord writes the alert to /tmp/<name>-<time>-<random>.alert, execs integrations/<name> with
argv[0] = "integrations" and no shell (so "> /dev/null 2>&1" is a literal argument), from the
Wazuh directory, waits for it, and unlinks the temp file right after. `run_like_integratord`
does the same against a script installed by `install_integration` into a temp Wazuh dir.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import ServerProcess, free_port

from casefold.errors import InvalidInputError
from casefold.wazuh_side import install_integration, integration_script_text

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "wazuh"
REDIRECT = "> /dev/null 2>&1"
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connection refused


def sample_alerts() -> list[dict[str, Any]]:
    """The real alerts (the active-response stdin message is not an alert)."""
    paths = sorted(p for p in SAMPLES.glob("*.json") if not p.name.startswith("active_response"))
    assert paths, f"no samples in {SAMPLES}"
    return [json.loads(p.read_text()) for p in paths]


class AlertMaker:
    """Copies of the real samples, each with its own Wazuh `id` so none is a duplicate."""

    def __init__(self) -> None:
        self.samples = sample_alerts()
        self.n = 0

    def __call__(self) -> dict[str, Any]:
        alert = json.loads(json.dumps(self.samples[self.n % len(self.samples)]))
        self.n += 1
        alert["id"] = f"{int(time.time())}.{os.getpid()}{self.n:06d}"
        return alert


@dataclass
class Install:
    ossec: Path
    script: Path
    spool: Path
    log: Path
    conf: Path

    def spooled(self) -> list[Path]:
        return sorted(p for p in self.spool.glob("*.json"))

    def rejected(self) -> list[Path]:
        return sorted((self.spool / "rejected").glob("*.json"))

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def set_conf(self, **changes: Any) -> None:
        conf = json.loads(self.conf.read_text())
        conf.update(changes)
        self.conf.write_text(json.dumps(conf))


@dataclass
class Run:
    rc: int
    out: str
    elapsed: float


def install(tmp_path: Path, url: str, token: str) -> Install:
    ossec = tmp_path / "ossec"
    ossec.mkdir()
    r = install_integration(url, token, ossec_dir=ossec, python=sys.executable)
    return Install(ossec, r.script_path, r.spool_dir, r.log_file, r.conf_path)


def temp_file(suffix: str, content: str) -> Path:
    # Same shape as integratord's names, including its signed random part.
    rand = int.from_bytes(os.urandom(4), "big", signed=True)
    path = Path(tempfile.gettempdir()) / f"custom-casefold-{int(time.time())}-{rand}{suffix}"
    path.write_text(content)
    return path


def layout(
    version: str,
    alert: str,
    *,
    key: str = "",
    hook: str = "",
    debug: bool = False,
    options: str = "",
    timeout: int = 10,
    retries: int = 3,
) -> list[str]:
    """argv[1:] exactly as each integratord version builds it (wazuh.md §1.5)."""
    if version == "4.2":  # N=5: the rest of the command string lands in argv[4]
        return [alert, key, hook, "debug" if debug else " " + REDIRECT]
    if version == "4.7":  # N=7
        return [alert, key, hook, "debug" if debug else "", options, *([] if debug else [REDIRECT])]
    if version == "4.8":  # N=9, since 4.8.0: timeout and retries
        return [
            alert,
            key,
            hook,
            "debug" if debug else "",
            options,
            str(timeout),
            str(retries),
            *([] if debug else [REDIRECT]),
        ]
    raise AssertionError(version)


def run_like_integratord(
    inst: Install,
    alert: dict[str, Any] | str | None,
    version: str = "4.8",
    *,
    missing: bool = False,
    **kw: Any,
) -> Run:
    content = alert if isinstance(alert, str) else json.dumps(alert, separators=(",", ":")) + "\n"
    alert_file = temp_file(".alert", content)
    options_file = temp_file(".options", kw.pop("options_text")) if "options_text" in kw else None
    if options_file is not None:
        kw["options"] = str(options_file)
    if missing:
        alert_file.unlink()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["integrations", *layout(version, str(alert_file), **kw)],
            executable=str(inst.script),
            cwd=inst.ossec,
            capture_output=True,
            timeout=60,
        )
    finally:
        # Integratord unlinks the temp files as soon as the child has exited.
        alert_file.unlink(missing_ok=True)
        if options_file is not None:
            options_file.unlink()
    elapsed = time.monotonic() - started
    return Run(proc.returncode, (proc.stdout + proc.stderr).decode(), elapsed)


def stored(server: ServerProcess) -> list[dict[str, Any]]:
    """Every stored alert, in arrival (row id) order."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        r = httpx.get(
            server.url + "/api/v1/alerts", params=params, headers=server.headers(), timeout=10
        )
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return sorted(items, key=lambda i: i["id"])


def stored_ids(server: ServerProcess) -> list[str]:
    return [i["source_id"] for i in stored(server)]


def assert_token_hidden(inst: Install, token: str, *runs: Run) -> None:
    assert token not in inst.log_text()
    for run in runs:
        assert token not in run.out


@pytest.fixture
def make_alert() -> AlertMaker:
    return AlertMaker()


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{lsock.getsockname()[1]}"
    stop.set()
    t.join()
    for s in held:
        s.close()
    lsock.close()


# ------------------------------------------------------------------------------- argv layouts

LAYOUTS: list[tuple[str, dict[str, Any]]] = [
    ("4.2", {}),
    ("4.2", {"debug": True}),
    ("4.7", {}),
    ("4.7", {"options_text": '{"extra": 1}'}),
    ("4.7", {"debug": True, "options_text": "{}"}),
    ("4.8", {}),
    ("4.8", {"options_text": '{"extra": 1}', "timeout": 5, "retries": 0}),
    ("4.8", {"debug": True}),
    ("4.8", {"debug": True, "options_text": ""}),
]


def test_every_argv_layout_delivers(
    tmp_path: Path, server_factory: Callable[..., ServerProcess], make_alert: AlertMaker
) -> None:
    server = server_factory().start()
    inst = install(tmp_path, server.url, server.token)
    sent, runs = [], []
    for version, kw in LAYOUTS:
        alert = make_alert()
        run = run_like_integratord(inst, alert, version, **kw)
        assert run.rc == 0, (version, kw, run.out)
        assert run.out == "", (version, kw, run.out)  # nothing to say when delivered
        sent.append(alert["id"])
        runs.append(run)
    # Fewer and more arguments than any real layout are tolerated too.
    for tail in ([], ["", "", "", "", "", "", "extra"]):
        alert = make_alert()
        alert_file = temp_file(".alert", json.dumps(alert))
        try:
            proc = subprocess.run(
                ["integrations", str(alert_file), "", "", *tail],
                executable=str(inst.script),
                cwd=inst.ossec,
                capture_output=True,
                timeout=60,
            )
        finally:
            alert_file.unlink()
        assert proc.returncode == 0, proc.stderr
        sent.append(alert["id"])
    assert stored_ids(server) == sent  # in order, each once
    assert inst.spooled() == [] and inst.rejected() == []
    assert_token_hidden(inst, server.token, *runs)


def test_hook_url_and_api_key_override_the_conf(
    tmp_path: Path, make_alert: AlertMaker, server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory().start()
    inst = install(tmp_path, DEAD_URL, "wrong-token-0123456789")
    a = make_alert()
    run = run_like_integratord(inst, a, "4.8", hook=server.url, key=server.token)
    assert run.rc == 0 and run.out == ""
    b = make_alert()
    run = run_like_integratord(
        inst, b, "4.2", hook=server.url + "/api/v1/alerts/wazuh/", key=server.token
    )
    assert run.rc == 0 and run.out == ""
    assert stored_ids(server) == [a["id"], b["id"]]

    # Right URL, wrong token in the conf: a 401 spools (the token may be fixed later) ...
    inst.set_conf(url=server.url)
    c = make_alert()
    run401 = run_like_integratord(inst, c, "4.8")
    assert run401.rc == 0
    assert len(inst.spooled()) == 1
    assert "HTTP 401" in inst.log_text()
    # ... and the next run with a good api_key drains it before sending its own alert.
    d = make_alert()
    run = run_like_integratord(inst, d, "4.7", key=server.token)
    assert run.rc == 0
    assert inst.spooled() == []
    assert stored_ids(server) == [a["id"], b["id"], c["id"], d["id"]]
    assert "wrong-token" not in inst.log_text()
    assert_token_hidden(inst, server.token, run, run401)


def test_url_userinfo_and_query_never_logged(tmp_path: Path, make_alert: AlertMaker) -> None:
    inst = install(tmp_path, DEAD_URL, "tok-url-abcdef")
    hook = "http://someuser:hunter2pw@127.0.0.1:9/base?key=querysecret"
    run = run_like_integratord(inst, make_alert(), "4.8", hook=hook, debug=True)
    assert run.rc == 0
    assert len(inst.spooled()) == 1
    log = inst.log_text()
    assert "Connection refused" in log and "127.0.0.1:9/base" in log
    for secret in ("someuser", "hunter2pw", "querysecret", "tok-url-abcdef"):
        assert secret not in log and secret not in run.out
    assert run.out.strip() == log.strip()  # debug echoes the same single line to stdout


# --------------------------------------------------------------------- outage, spool and drain


def test_outage_spools_then_drains_each_alert_exactly_once(
    tmp_path: Path, server_factory: Callable[..., ServerProcess], make_alert: AlertMaker
) -> None:
    server = server_factory().start()
    token = server.token
    inst = install(tmp_path, server.url, token)
    sent: list[str] = []
    for version in ("4.2", "4.8"):
        alert = make_alert()
        assert run_like_integratord(inst, alert, version).rc == 0
        sent.append(alert["id"])
    assert stored_ids(server) == sent

    server.stop()
    outage: list[str] = []
    outage_alerts: list[dict[str, Any]] = []
    runs = []
    for i, version in enumerate(["4.8", "4.7", "4.2", "4.8", "4.8", "4.7"]):
        alert = make_alert()
        run = run_like_integratord(inst, alert, version)
        assert run.rc == 0, run.out
        assert run.elapsed < 3, run.elapsed  # connection refused: no waiting
        assert len(inst.spooled()) == i + 1
        outage.append(alert["id"])
        outage_alerts.append(alert)
        runs.append(run)
    # Lexical order of the spool files is arrival order.
    assert [json.loads(p.read_text())["id"] for p in inst.spooled()] == outage
    lines = inst.log_text().splitlines()
    assert len(lines) == len(outage)  # one line per failed run
    assert all("spooled" in line and "Connection refused" in line for line in lines)
    assert all(line[:4].isdigit() for line in lines)  # timestamped
    assert_token_hidden(inst, token, *runs)

    server.start()  # same data dir and port
    last = make_alert()
    run = run_like_integratord(inst, last, "4.8")
    assert run.rc == 0 and run.out == ""
    assert inst.spooled() == []
    # Oldest first, the current alert last, nothing missing, nothing twice.
    assert stored_ids(server) == sent + outage + [last["id"]]
    # Every spooled alert was new to the server when the drain sent it (no double sending).
    assert f"delivered {len(outage)} spooled alert(s), 0 already stored" in inst.log_text()

    # Sending them again is answered "duplicate" for each: the server holds each exactly once.
    body = "\n".join(json.dumps(a) for a in outage_alerts)
    r = httpx.post(
        server.url + "/api/v1/alerts/wazuh",
        content=body,
        timeout=10,
        headers={**server.headers(), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["duplicates"] == len(outage) and r.json()["accepted"] == 0
    assert_token_hidden(inst, token, run)


def test_large_spool_drains_in_batches_in_order(
    tmp_path: Path, server_factory: Callable[..., ServerProcess], make_alert: AlertMaker
) -> None:
    """A long outage's backlog goes out as several NDJSON batches, oldest first."""
    server = server_factory().start()
    inst = install(tmp_path, server.url, server.token)
    backlog = [make_alert() for _ in range(1100)]
    # Spool files as the script names them (zero-padded time_ns first), written directly
    # because 1100 interpreter starts would make the test slow for no extra coverage.
    base = time.time_ns()
    for n, alert in enumerate(backlog):
        name = f"{base + n:020d}-{os.getpid()}-{n:08x}.json"
        (inst.spool / name).write_text(json.dumps(alert) + "\n")
        if n == 700:  # a damaged file in the middle is set aside, not retried forever
            (inst.spool / f"{base + n:020d}-{os.getpid()}-zz.json").write_text("{not json")
    last = make_alert()
    run = run_like_integratord(inst, last, "4.8")  # the default 10 s timeout
    assert run.rc == 0, run.out
    assert inst.spooled() == []
    assert len(inst.rejected()) == 1
    assert stored_ids(server) == [a["id"] for a in backlog] + [last["id"]]
    assert "delivered 1100 spooled alert(s), 0 already stored" in inst.log_text()


def test_spool_only_drains_under_the_lock(
    tmp_path: Path, make_alert: AlertMaker, server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory().start()
    inst = install(tmp_path, server.url, server.token)
    inst.spool.mkdir(exist_ok=True)
    with open(inst.spool / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run is draining
        alert = make_alert()
        run = run_like_integratord(inst, alert, "4.8", timeout=2)
        assert run.rc == 0
        assert run.elapsed < 3
    assert len(inst.spooled()) == 1
    assert "another run holds the spool lock" in inst.log_text()
    assert stored_ids(server) == []
    nxt = make_alert()
    assert run_like_integratord(inst, nxt, "4.8").rc == 0
    assert stored_ids(server) == [alert["id"], nxt["id"]]


def test_unanswered_request_times_out_and_spools(
    tmp_path: Path, hanging_server: str, make_alert: AlertMaker
) -> None:
    inst = install(tmp_path, hanging_server, "tok-hanging-abcdef")
    # What starting the script costs on this machine right now (a run that exits at once):
    # on a loaded machine the interpreter alone can take a second, which is not the script's.
    startup = run_like_integratord(inst, make_alert(), "4.8", missing=True).elapsed
    run = run_like_integratord(inst, make_alert(), "4.8", timeout=2)
    assert run.rc == 0, run.out
    # the 2 s timeout covers the whole network phase: one hung request, never two
    assert run.elapsed - startup < 2.5, (run.elapsed, startup)
    assert len(inst.spooled()) == 1
    assert "timed out" in inst.log_text()

    # Before 4.8 there is no argv timeout: the conf's applies. A second spooled alert must
    # queue behind the first, and the drain attempt counts against the same budget.
    inst.set_conf(timeout=2)
    run = run_like_integratord(inst, make_alert(), "4.7")
    assert run.rc == 0 and run.elapsed - startup < 2.5, (run, startup)
    assert len(inst.spooled()) == 2
    assert_token_hidden(inst, "tok-hanging-abcdef", run)


# ------------------------------------------------------------------------------ bad alerts


def test_legacy_format_is_refused_with_one_line(tmp_path: Path) -> None:
    inst = install(tmp_path, DEAD_URL, "tok-legacy-abcdef")
    legacy = (
        "alertdate='2024 Jan 01 00:00:00'\nalertlocation='/var/log/auth.log'\n"
        "ruleid='5712'\nalertlevel='10'\nruledescription='sshd: brute force'\n"
        "alertlog='Jan  1 00:00:00 host sshd[1]: Invalid user admin'\nsrcip='10.0.0.1'\n"
    )
    run = run_like_integratord(inst, legacy, "4.2")
    assert run.rc != 0
    assert len(run.out.strip().splitlines()) == 1
    assert "legacy" in run.out and "alert_format" in run.out
    assert inst.spooled() == []


@pytest.mark.parametrize("missing", [True, False], ids=["missing", "empty"])
def test_unreadable_alert_file_exits_non_zero(tmp_path: Path, missing: bool) -> None:
    inst = install(tmp_path, DEAD_URL, "tok-missing-abcdef")
    run = run_like_integratord(inst, "", "4.8", missing=missing)
    assert run.rc != 0
    assert len(run.out.strip().splitlines()) == 1
    assert inst.spooled() == []
    # Not even an argument: the same, one line.
    proc = subprocess.run(
        ["integrations"],
        executable=str(inst.script),
        cwd=inst.ossec,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode != 0 and len((proc.stdout + proc.stderr).splitlines()) == 1


def test_invalid_alerts_go_to_rejected_and_are_not_retried(
    tmp_path: Path, server_factory: Callable[..., ServerProcess], make_alert: AlertMaker
) -> None:
    server = server_factory().start()
    inst = install(tmp_path, server.url, server.token)
    bad = make_alert()
    del bad["rule"]  # the server answers 422
    run = run_like_integratord(inst, bad, "4.8")
    assert run.rc == 0
    assert inst.spooled() == [] and len(inst.rejected()) == 1
    assert "rejected" in inst.log_text()

    # During an outage good and bad alerts are spooled together; the drain's batch gets a 202
    # with a per-item error for the bad one, which is set aside while the good ones arrive.
    server.stop()
    good1, bad2, good3 = make_alert(), make_alert(), make_alert()
    del bad2["rule"]
    for alert in (good1, bad2, good3):
        assert run_like_integratord(inst, alert, "4.7").rc == 0
    assert len(inst.spooled()) == 3
    server.start()
    last = make_alert()
    assert run_like_integratord(inst, last, "4.8").rc == 0
    assert inst.spooled() == []
    assert len(inst.rejected()) == 2
    assert stored_ids(server) == [good1["id"], good3["id"], last["id"]]

    # Rejected alerts stay put: later runs do not send them again.
    log_before = inst.log_text().count("rejected")
    again = make_alert()
    assert run_like_integratord(inst, again, "4.2").rc == 0
    assert len(inst.rejected()) == 2
    assert inst.log_text().count("rejected") == log_before
    assert stored_ids(server)[-1] == again["id"]
    assert_token_hidden(inst, server.token, run)


def test_server_error_answer_spools(tmp_path: Path, make_alert: AlertMaker) -> None:
    """5xx and 429 are the server's problem: spool, retry later."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 503

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(Handler.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        inst = install(tmp_path, f"http://127.0.0.1:{httpd.server_port}", "tok-5xx-abcdef")
        for n, status in enumerate((503, 429, 302), start=1):
            Handler.status = status
            assert run_like_integratord(inst, make_alert(), "4.8").rc == 0
            assert len(inst.spooled()) == n
            assert f"HTTP {status}" in inst.log_text()
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------------- installer


def test_install_integration_files_modes_and_xml(tmp_path: Path) -> None:
    ossec = tmp_path / "ossec"
    ossec.mkdir()
    result = install_integration(
        "https://casefold.example:8800/",
        "tok-install-abcdef",
        ossec_dir=ossec,
        python="/usr/bin/python3",
    )
    script = ossec / "integrations" / "custom-casefold"
    conf = ossec / "integrations" / "custom-casefold.conf"
    assert result.script_path == script and result.conf_path == conf
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE(result.spool_dir.stat().st_mode) == 0o770
    assert script.read_text().splitlines()[0] == "#!/usr/bin/python3"
    assert "tok-install-abcdef" not in script.read_text()
    settings = json.loads(conf.read_text())
    assert settings["url"] == "https://casefold.example:8800/"
    assert settings["token"] == "tok-install-abcdef"
    assert settings["spool_dir"] == str(result.spool_dir)
    xml = result.integration_xml
    assert "<name>custom-casefold</name>" in xml
    assert "<alert_format>json</alert_format>" in xml
    assert "<level>" in xml and "tok-install" not in xml and "casefold.example" not in xml
    try:
        import grp

        grp.getgrnam("wazuh")
        has_wazuh = True
    except KeyError:
        has_wazuh = False
    if not has_wazuh:
        assert not result.chowned and any("wazuh" in n for n in result.notes)
    # Re-installing (an upgrade) replaces the files in place.
    again = install_integration("http://other:1", "tok-2", ossec_dir=ossec, python="/bin/py3")
    assert json.loads(conf.read_text())["token"] == "tok-2"
    assert again.python == "/bin/py3"


@pytest.mark.parametrize("url", ["ftp://x", "casefold:8800", "http://", "", "javascript:alert(1)"])
def test_install_refuses_a_bad_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInputError, match="url"):
        install_integration(url, "tok", ossec_dir=tmp_path)
    assert not (tmp_path / "integrations").exists()


def test_install_refuses_a_missing_ossec_dir_and_bad_token(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        install_integration("http://x:1", "tok", ossec_dir=tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="token"):
        install_integration("http://x:1", "tok en", ossec_dir=tmp_path)


def test_script_is_python39_syntax() -> None:
    # Wazuh 4.2-4.7 embed Python 3.9: no match statements or other newer syntax.
    ast.parse(integration_script_text(), feature_version=(3, 9))


def test_cli_install_integration(tmp_path: Path) -> None:
    ossec = tmp_path / "ossec"
    ossec.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "casefold",
        "wazuh",
        "install-integration",
        "--url",
        "http://127.0.0.1:8800",
        "--token",
        "tok-cli-abcdef",
        "--ossec-dir",
        str(ossec),
        "--python",
        sys.executable,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "<name>custom-casefold</name>" in proc.stdout
    assert str(ossec / "integrations" / "custom-casefold") in proc.stdout
    assert "tok-cli-abcdef" not in proc.stdout + proc.stderr
    assert (ossec / "integrations" / "custom-casefold").exists()

    bad = subprocess.run(
        [*cmd[:6], "ftp://nope", *cmd[7:]], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1 and "url" in bad.stderr

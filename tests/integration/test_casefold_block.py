"""The casefold-block active-response script, run the way wazuh-execd runs it.

execd writes one JSON line to the script's stdin and keeps stdin open; for `add` it reads one
check_keys line from stdout and answers continue/abort. `run_ar` does exactly that, so a script
that waited for EOF would time out here. Firewall tools are fakes that keep state in a file (so
idempotency is real, not assumed), dry-run output, or real nftables in a private network
namespace (`unshare -rn`).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from casefold.cli import app
from casefold.errors import InvalidInputError
from casefold.wazuh_side import active_response_xml, install_active_response

pytestmark = pytest.mark.slow

SCRIPT = (
    Path(__file__).resolve().parents[2] / "src" / "casefold" / "wazuh_side" / "casefold_block.py"
)
SAMPLE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "samples"
    / "wazuh"
    / "active_response_stdin_add_firewall_drop_31168.json"
)
SAMPLE_IP = "192.168.0.223"
LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d casefold-block: (.*)$")
TIMEOUT = 10


def check_keys(ip: str) -> dict[str, Any]:
    return {
        "version": 1,
        "origin": {"name": "casefold-block", "module": "active-response"},
        "command": "check_keys",
        "parameters": {"keys": [ip]},
    }


def message(command: str = "add", *, ip: str | None = SAMPLE_IP, **data: Any) -> dict[str, Any]:
    """The real execd message, with the source IP (or other data fields) replaced."""
    msg = json.loads(SAMPLE.read_text())
    msg["command"] = command
    alert_data = msg["parameters"]["alert"]["data"]
    alert_data.pop("srcip")
    if ip is not None:
        alert_data["srcip"] = ip
    alert_data.update(data)
    return msg


@dataclass
class Result:
    rc: int
    handshake: dict[str, Any] | None
    out: bytes  # stdout after the handshake line
    err: str


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from a pipe, byte by byte, giving up after `timeout` (never blocks for ever)."""
    buf = b""
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError(f"no line from the script within {timeout}s (got {buf!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf


def run_ar(msg: dict[str, Any] | bytes, env: dict[str, str], answer: str | None = None) -> Result:
    """Run the script as execd does: one line in, stdin left open, optional check_keys answer."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        line = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        handshake = None
        if answer is not None:
            handshake = json.loads(_read_line(proc.stdout.fileno(), TIMEOUT))
            assert proc.poll() is None, "the script must wait for the check_keys answer"
            reply = dict(json.loads(line), command=answer)  # execd echoes the message
            proc.stdin.write(json.dumps(reply).encode() + b"\n")
            proc.stdin.flush()
        # stdin is still open here: a script reading to EOF would hang and fail this wait.
        rc = proc.wait(TIMEOUT)
        return Result(rc, handshake, proc.stdout.read(), proc.stderr.read().decode())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()


FAKE_FW = """\
#!@PYTHON@
# Fake nft / iptables / ip6tables: records argv, keeps state in a JSON file, and fails the way
# the real tools do (delete of a missing element or rule, list of a missing table).
import json, os, sys
tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
state_path = os.environ["FAKE_FW_STATE"]
with open(os.environ["FAKE_FW_CALLS"], "a") as f:
    f.write(json.dumps([tool] + args) + "\\n")
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {}
s = state.setdefault(tool, {"table": False, "sets": {}, "chain": False, "rules": []})
def done(rc=0, out="", err=""):
    with open(state_path, "w") as f:
        json.dump(state, f)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(rc)
if tool == "nft":
    verb, kind = args[0], args[1]
    if (verb, kind) == ("list", "table"):
        if not s["table"]:
            done(1, err="Error: No such file or directory\\n")
        text = "table inet casefold {\\n"
        for name, elems in s["sets"].items():
            text += "\\tset %s {\\n\\t\\telements = { %s }\\n\\t}\\n" % (name, ", ".join(elems))
        if s["chain"]:
            rules = "".join("\\t\\t%s\\n" % r for r in s["rules"])
            text += "\\tchain input {\\n" + rules + "\\t}\\n"
        done(0, out=text + "}\\n")
    if verb == "flush":
        s["rules"] = []
    elif kind == "table":
        s["table"] = True
    elif kind == "set":
        s["sets"].setdefault(args[4], [])
    elif kind == "chain":
        s["chain"] = True
    elif kind == "rule":
        s["rules"].append(" ".join(args[5:]))
    elif kind == "element":
        elems = s["sets"].get(args[4])
        ip = args[5].strip("{} ").split()[0]
        if elems is None:
            done(1, err="Error: No such file or directory\\n")
        if verb == "get":
            done(0 if ip in elems else 1)
        if verb == "add" and ip not in elems:
            elems.append(ip)
        if verb == "delete":
            if ip not in elems:
                done(1, err="Error: No such file or directory\\n")
            elems.remove(ip)
    done()
op, spec = args[1], " ".join(args[2:])
if op == "-C":
    done(0 if spec in s["rules"] else 1)
if op == "-I":
    s["rules"].insert(0, spec)
if op == "-D":
    if spec not in s["rules"]:
        done(1, err="iptables: Bad rule (does a matching rule exist in that chain?).\\n")
    s["rules"].remove(spec)
done()
"""


@dataclass
class Host:
    """A fake Wazuh host: a Wazuh dir for the log and fake firewall tools in bin/."""

    wazuh: Path
    bin: Path
    state_file: Path
    calls_file: Path
    env: dict[str, str]

    def log_lines(self) -> list[str]:
        path = self.wazuh / "logs" / "active-responses.log"
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            assert LOG_LINE.match(line), line
        return [LOG_LINE.match(line).group(1) for line in lines]  # type: ignore[union-attr]

    def state(self, tool: str = "nft") -> dict[str, Any]:
        return json.loads(self.state_file.read_text())[tool] if self.state_file.exists() else {}

    def calls(self) -> list[list[str]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def mutating_calls(self) -> list[list[str]]:
        queries = {"list", "get", "-C"}
        return [c for c in self.calls() if not queries & set(c[1:3])]

    def use_iptables(self) -> None:
        self.env["CASEFOLD_BLOCK_NFT"] = str(self.bin / "absent-nft")
        self.env["CASEFOLD_BLOCK_IPTABLES"] = str(self.bin / "iptables")
        self.env["CASEFOLD_BLOCK_IP6TABLES"] = str(self.bin / "ip6tables")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    wazuh = tmp_path / "ossec"
    (wazuh / "logs").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = FAKE_FW.replace("@PYTHON@", sys.executable)
    for tool in ("nft", "iptables", "ip6tables"):
        (bin_dir / tool).write_text(fake)
        (bin_dir / tool).chmod(0o755)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WAZUH_HOME": str(wazuh),
        "CASEFOLD_BLOCK_NFT": str(bin_dir / "nft"),
        "FAKE_FW_STATE": str(tmp_path / "fw-state.json"),
        "FAKE_FW_CALLS": str(tmp_path / "fw-calls.ndjson"),
    }
    return Host(wazuh, bin_dir, tmp_path / "fw-state.json", tmp_path / "fw-calls.ndjson", env)


# ------------------------------------------------------------------------- handshake and nft


def test_add_sends_check_keys_and_blocks_on_continue(host: Host):
    r = run_ar(message(), host.env, answer="continue")
    assert r.rc == 0, r.err
    assert r.handshake == check_keys(SAMPLE_IP)
    assert r.out == b""  # nothing but the one check_keys line goes to execd
    nft = host.state()
    assert nft["table"] and nft["chain"]
    assert nft["sets"] == {"blocked4": [SAMPLE_IP], "blocked6": []}
    assert nft["rules"] == ["ip saddr @blocked4 drop", "ip6 saddr @blocked6 drop"]
    assert host.log_lines() == [
        f"add {SAMPLE_IP}: blocked with nft (rule 31168, alert 1612213124.6448363)"
    ]


def test_handshake_arrives_while_stdin_stays_open(host: Host):
    """Read the check_keys line before writing anything else: the script must not need EOF."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host.env,
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(json.dumps(message()).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(_read_line(proc.stdout.fileno(), TIMEOUT)) == check_keys(SAMPLE_IP)
        assert proc.poll() is None
        proc.stdin.write(b'{"command":"abort"}\n')
        proc.stdin.flush()
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        assert proc.stderr
        proc.stderr.close()


def test_add_twice_keeps_one_element_and_two_rules(host: Host):
    assert run_ar(message(), host.env, answer="continue").rc == 0
    first = len(host.calls())
    r = run_ar(message(), host.env, answer="continue")
    assert r.rc == 0, r.err
    nft = host.state()
    assert nft["sets"]["blocked4"] == [SAMPLE_IP]
    assert len(nft["rules"]) == 2
    # The second run only looked: list the table, get the element.
    assert [c[1] for c in host.calls()[first:]] == ["list", "get"]
    assert host.log_lines()[1].startswith(f"add {SAMPLE_IP}: already blocked with nft")


def test_partial_table_is_repaired_without_duplicate_rules(host: Host):
    assert run_ar(message(), host.env, answer="continue").rc == 0
    state = json.loads(host.state_file.read_text())
    del state["nft"]["sets"]["blocked6"]  # someone deleted a set by hand
    host.state_file.write_text(json.dumps(state))
    assert run_ar(message(ip="2001:db8::7"), host.env, answer="continue").rc == 0
    nft = host.state()
    assert nft["sets"] == {"blocked4": [SAMPLE_IP], "blocked6": ["2001:db8::7"]}
    assert nft["rules"] == ["ip saddr @blocked4 drop", "ip6 saddr @blocked6 drop"]


def test_abort_blocks_nothing(host: Host):
    r = run_ar(message(), host.env, answer="abort")
    assert r.rc == 0, r.err
    assert r.handshake == check_keys(SAMPLE_IP)
    assert host.calls() == []
    assert host.log_lines() == [
        f"add {SAMPLE_IP}: aborted by execd (already in its timeout list) "
        "(rule 31168, alert 1612213124.6448363)"
    ]


def test_unexpected_answer_blocks_nothing_and_fails(host: Host):
    r = run_ar(message(), host.env, answer="maybe")
    assert r.rc == 2
    assert host.calls() == []
    assert "unexpected check_keys answer" in host.log_lines()[0]


def test_delete_without_handshake_unblocks(host: Host):
    assert run_ar(message(), host.env, answer="continue").rc == 0
    r = run_ar(message("delete"), host.env)  # no answer: it must exit on its own
    assert r.rc == 0, r.err
    assert r.out == b""  # no check_keys for delete
    assert host.state()["sets"]["blocked4"] == []
    # Deleting again: the fake nft fails like the real one on a missing element, so this passes
    # only because the script looks first.
    before = len(host.mutating_calls())
    again = run_ar(message("delete"), host.env)
    assert again.rc == 0, again.err
    assert len(host.mutating_calls()) == before
    assert host.log_lines()[1:] == [
        f"delete {SAMPLE_IP}: unblocked with nft",
        f"delete {SAMPLE_IP}: was not blocked with nft",
    ]


def test_delete_before_any_table_exists(host: Host):
    r = run_ar(message("delete"), host.env)
    assert r.rc == 0, r.err
    assert host.mutating_calls() == []


def test_ipv6_add_and_delete(host: Host):
    ip = "2001:db8::10"
    r = run_ar(message(ip=ip), host.env, answer="continue")
    assert r.rc == 0, r.err
    assert r.handshake == check_keys(ip)
    assert host.state()["sets"] == {"blocked4": [], "blocked6": [ip]}
    assert run_ar(message("delete", ip=ip), host.env).rc == 0
    assert host.state()["sets"]["blocked6"] == []


def test_expire_sets_an_element_timeout(host: Host):
    msg = message()
    msg["parameters"]["extra_args"] = ["--expire", "600"]
    assert run_ar(msg, host.env, answer="continue").rc == 0
    assert host.mutating_calls()[-1][1:] == [
        "add",
        "element",
        "inet",
        "casefold",
        "blocked4",
        "{ 192.168.0.223 timeout 600s }",
    ]


# ------------------------------------------------------------------------- where the IP comes from


@pytest.mark.parametrize(
    ("msg_kwargs", "extra", "key"),
    [
        ({"ip": None, "src_ip": "198.51.100.4"}, [], "198.51.100.4"),
        ({}, ["--ip", "203.0.113.9"], "203.0.113.9"),  # explicit beats the alert
        ({}, ["--ip=203.0.113.9"], "203.0.113.9"),
        ({"ip": "::ffff:198.51.100.5"}, [], "198.51.100.5"),  # mapped: blocked as IPv4
        ({"ip": " 2001:DB8::1 "}, [], "2001:db8::1"),
    ],
)
def test_ip_sources(host: Host, msg_kwargs: dict[str, Any], extra: list[str], key: str):
    msg = message(**msg_kwargs)
    msg["parameters"]["extra_args"] = extra
    r = run_ar(msg, host.env, answer="continue")
    assert r.rc == 0, r.err
    assert r.handshake == check_keys(key)
    family = "blocked6" if ":" in key else "blocked4"
    assert host.state()["sets"][family] == [key]


# ------------------------------------------------------------------------- bad input


def _bad_messages() -> list[Any]:
    no_ip = message(ip=None)
    return [
        pytest.param(b"", "empty message", id="empty"),
        pytest.param(b"not json", "not a JSON message", id="not-json"),
        pytest.param(b"firewall-drop600 - 1.2.3.4 1 5712", "not a JSON message", id="legacy"),
        pytest.param(b'{"parameters":{}}', "no 'command'", id="no-command"),
        pytest.param(b'{"command":"add"}', "no 'parameters'", id="no-parameters"),
        pytest.param(no_ip, "no IP", id="no-ip"),
        pytest.param(message(ip="999.1.1.1"), "not an IP address", id="bad-ip"),
        pytest.param(message(ip="1.2.3.4; rm -rf /"), "not an IP address", id="injection"),
        pytest.param(message(ip="fe80::1%eth0"), "scope id", id="scope-id"),
        pytest.param(message(ip="127.0.0.1"), "refused", id="loopback4"),
        pytest.param(message(ip="::1"), "refused", id="loopback6"),
        pytest.param(message(ip="0.0.0.0"), "refused", id="unspecified4"),
        pytest.param(message(ip="::"), "refused", id="unspecified6"),
        pytest.param(message(ip="224.0.0.251"), "refused", id="multicast4"),
        pytest.param(message(ip="ff02::1"), "refused", id="multicast6"),
    ]


@pytest.mark.parametrize(("msg", "reason"), _bad_messages())
def test_bad_input_fails_with_one_log_line(host: Host, msg: Any, reason: str):
    r = run_ar(msg, host.env)  # no handshake expected: it must exit on its own
    assert r.rc == 2, r.err
    assert r.out == b""
    assert host.calls() == []
    lines = host.log_lines()
    assert len(lines) == 1 and reason in lines[0], lines


def test_bad_expire_is_bad_input(host: Host):
    msg = message()
    msg["parameters"]["extra_args"] = ["--expire", "soon"]
    assert run_ar(msg, host.env).rc == 2
    assert "--expire" in host.log_lines()[0]


def test_unknown_command_is_ignored(host: Host):
    r = run_ar(message("firewall-drop600"), host.env)
    assert r.rc == 0
    assert host.calls() == []
    assert host.log_lines() == ["ignored: command 'firewall-drop600'"]


def test_log_goes_to_stderr_when_log_dir_is_missing(host: Host, tmp_path: Path):
    host.env["WAZUH_HOME"] = str(tmp_path / "no-such-wazuh")
    r = run_ar(message(ip="127.0.0.1"), host.env)
    assert r.rc == 2
    assert LOG_LINE.match(r.err.strip()) and "refused" in r.err


def test_firewall_failure_exits_non_zero(host: Host):
    (host.bin / "nft").write_text("#!/bin/sh\necho 'Error: Operation not permitted' >&2\nexit 1\n")
    r = run_ar(message(), host.env, answer="continue")
    assert r.rc == 1
    line = host.log_lines()[-1]
    assert "failed (1): Error: Operation not permitted" in line


# ------------------------------------------------------------------------- dry run

NFT = "/fake/nft"
NFT_SETUP = [
    f"dry-run query: {NFT} list table inet casefold",
    f"dry-run: {NFT} add table inet casefold",
    f"dry-run: {NFT} add set inet casefold blocked4 '{{ type ipv4_addr; flags timeout; }}'",
    f"dry-run: {NFT} add set inet casefold blocked6 '{{ type ipv6_addr; flags timeout; }}'",
    f"dry-run: {NFT} add chain inet casefold input "
    "'{ type filter hook input priority -10; policy accept; }'",
    f"dry-run: {NFT} flush chain inet casefold input",
    f"dry-run: {NFT} add rule inet casefold input ip saddr @blocked4 drop",
    f"dry-run: {NFT} add rule inet casefold input ip6 saddr @blocked6 drop",
]


@pytest.mark.parametrize(("ip", "family"), [("192.0.2.8", "blocked4"), ("2001:db8::8", "blocked6")])
def test_dry_run_nft_commands(host: Host, ip: str, family: str):
    fake = host.bin / "fake"
    fake.mkdir()
    shutil.copy(host.bin / "nft", fake / "nft")
    env = dict(host.env, CASEFOLD_BLOCK_DRY_RUN="1", CASEFOLD_BLOCK_NFT=str(fake / "nft"))
    r = run_ar(message(ip=ip), env, answer="continue")
    assert r.rc == 0, r.err
    shown = [line.replace(str(fake / "nft"), NFT) for line in r.err.splitlines()]
    assert shown == [
        *NFT_SETUP,
        f"dry-run query: {NFT} get element inet casefold {family} '{{ {ip} }}'",
        f"dry-run: {NFT} add element inet casefold {family} '{{ {ip} }}'",
    ]
    r = run_ar(message("delete", ip=ip), env)
    assert r.rc == 0, r.err
    shown = [line.replace(str(fake / "nft"), NFT) for line in r.err.splitlines()]
    assert shown == [
        f"dry-run query: {NFT} get element inet casefold {family} '{{ {ip} }}'",
        f"dry-run: {NFT} delete element inet casefold {family} '{{ {ip} }}'",
    ]
    assert host.calls() == []  # dry run runs nothing


@pytest.mark.parametrize(("ip", "tool"), [("192.0.2.8", "iptables"), ("2001:db8::8", "ip6tables")])
def test_dry_run_iptables_when_nft_is_absent(host: Host, tmp_path: Path, ip: str, tool: str):
    absent = str(tmp_path / "absent")
    env = dict(
        host.env,
        CASEFOLD_BLOCK_DRY_RUN="1",
        CASEFOLD_BLOCK_NFT=absent,
        CASEFOLD_BLOCK_IPTABLES=absent,
        CASEFOLD_BLOCK_IP6TABLES=absent,
    )
    spec = f"INPUT -s {ip} -m comment --comment casefold -j DROP"
    r = run_ar(message(ip=ip), env, answer="continue")
    assert r.rc == 0, r.err
    assert r.err.splitlines() == [
        f"dry-run query: {tool} -w -C {spec}",
        f"dry-run: {tool} -w -I {spec}",
    ]
    r = run_ar(message("delete", ip=ip), env)
    assert r.err.splitlines() == [
        f"dry-run query: {tool} -w -C {spec}",
        f"dry-run: {tool} -w -D {spec}",
    ]
    assert host.log_lines()[-1] == f"delete {ip}: unblocked with iptables"


# ------------------------------------------------------------------------- iptables fallback


@pytest.mark.parametrize(("ip", "tool"), [("192.0.2.8", "iptables"), ("2001:db8::8", "ip6tables")])
def test_iptables_fallback_is_idempotent(host: Host, ip: str, tool: str):
    host.use_iptables()
    spec = f"INPUT -s {ip} -m comment --comment casefold -j DROP"
    for _ in range(2):
        assert run_ar(message(ip=ip), host.env, answer="continue").rc == 0
    assert host.state(tool)["rules"] == [spec]
    for _ in range(2):
        assert run_ar(message("delete", ip=ip), host.env).rc == 0
    assert host.state(tool)["rules"] == []
    assert [c[:3] for c in host.mutating_calls()] == [[tool, "-w", "-I"], [tool, "-w", "-D"]]
    assert host.log_lines() == [
        f"add {ip}: blocked with iptables (rule 31168, alert 1612213124.6448363)",
        f"add {ip}: already blocked with iptables (rule 31168, alert 1612213124.6448363)",
        f"delete {ip}: unblocked with iptables",
        f"delete {ip}: was not blocked with iptables",
    ]


def test_no_firewall_tool_at_all(host: Host, tmp_path: Path):
    absent = str(tmp_path / "absent")
    env = dict(
        host.env,
        CASEFOLD_BLOCK_NFT=absent,
        CASEFOLD_BLOCK_IPTABLES=absent,
        CASEFOLD_BLOCK_IP6TABLES=absent,
    )
    r = run_ar(message(), env)  # fails before the handshake: execd sees a stateless exit
    assert r.rc == 1
    assert host.log_lines() == ["neither nft nor iptables is installed"]


# ------------------------------------------------------------------------- real nftables

NETNS_WRAPPER = """\
# Runs inside `unshare -rn`: a private network namespace where we are root.
import json, os, socket, subprocess, sys
script, nft = sys.argv[1], sys.argv[2]
env = dict(os.environ)
def ip(*args):
    subprocess.run(["ip", *args], check=True)
ip("link", "set", "lo", "up")
ip("addr", "add", "192.0.2.1/32", "dev", "lo")
server = socket.socket()
server.bind(("192.0.2.1", 0))
server.listen(16)  # the kernel completes handshakes; nothing needs to accept
port = server.getsockname()[1]
def reachable():
    # Source and destination are both 192.0.2.1, so the input chain sees saddr 192.0.2.1.
    try:
        socket.create_connection(("192.0.2.1", port), timeout=1).close()
        return True
    except OSError:
        return False
def ar(command, answer=None):
    msg = {"version": 1, "origin": {"name": "", "module": "wazuh-execd"}, "command": command,
           "parameters": {"extra_args": [], "alert": {"data": {"srcip": "192.0.2.1"}}}}
    p = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=env)
    p.stdin.write(json.dumps(msg).encode() + b"\\n")
    p.stdin.flush()
    if answer:
        p.stdout.readline()
        p.stdin.write(json.dumps(dict(msg, command=answer)).encode() + b"\\n")
        p.stdin.flush()
    rc = p.wait(@TIMEOUT@)
    p.stdin.close()
    p.stdout.close()
    return rc
def listing():
    return subprocess.run([nft, "list", "table", "inet", "casefold"], capture_output=True,
                          text=True).stdout
out = {"before": reachable()}
out["add_rc"] = [ar("add", "continue"), ar("add", "continue")]
out["after_add"] = listing()
out["blocked"] = not reachable()
out["delete_rc"] = [ar("delete"), ar("delete")]
out["after_delete"] = listing()
out["after"] = reachable()
print(json.dumps(out))
"""


def _netns_skip_reason() -> tuple[str | None, str]:
    nft = shutil.which(
        "nft", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    )
    if not nft:
        return "nft is not installed (apt-get install nftables)", ""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) is not installed", nft
    probe = subprocess.run(
        ["unshare", "-rn", nft, "list", "ruleset"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        why = (probe.stderr or probe.stdout).strip().splitlines()
        return f"`unshare -rn nft list ruleset` failed: {why[0] if why else probe.returncode}", nft
    return None, nft


def test_real_nftables_in_a_network_namespace(tmp_path: Path):
    reason, nft = _netns_skip_reason()
    if reason:
        pytest.skip(reason)
    wrapper = tmp_path / "in_netns.py"
    wrapper.write_text(NETNS_WRAPPER.replace("@TIMEOUT@", str(TIMEOUT)))
    wazuh = tmp_path / "ossec"
    (wazuh / "logs").mkdir(parents=True)
    env = {
        "PATH": os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]),
        "WAZUH_HOME": str(wazuh),
    }
    proc = subprocess.run(
        ["unshare", "-rn", sys.executable, str(wrapper), str(SCRIPT), nft],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["add_rc"] == [0, 0] and out["delete_rc"] == [0, 0], proc.stderr
    assert out["before"] is True  # the probe works at all
    assert "192.0.2.1" in out["after_add"]
    assert re.search(r"elements = \{ 192\.0\.2\.1 \}", out["after_add"]), out["after_add"]
    assert out["after_add"].count("ip saddr @blocked4 drop") == 1
    assert out["after_add"].count("ip6 saddr @blocked6 drop") == 1
    assert out["blocked"] is True, "the drop rule did not stop a new connection"
    assert "192.0.2.1" not in out["after_delete"]
    assert out["after"] is True
    log = (wazuh / "logs" / "active-responses.log").read_text().splitlines()
    assert [LOG_LINE.match(line).group(1) for line in log] == [  # type: ignore[union-attr]
        "add 192.0.2.1: blocked with nft (rule ?, alert ?)",
        "add 192.0.2.1: already blocked with nft (rule ?, alert ?)",
        "delete 192.0.2.1: unblocked with nft",
        "delete 192.0.2.1: was not blocked with nft",
    ]


# ------------------------------------------------------------------------- installer and CLI

COMMAND_XML = (
    "<command>\n"
    "  <name>casefold-block</name>\n"
    "  <executable>casefold-block</executable>\n"
    "  <timeout_allowed>yes</timeout_allowed>\n"
    "</command>\n"
)
AR_XML = (
    "<active-response>\n"
    "  <command>casefold-block</command>\n"
    "  <location>local</location>\n"
    "  <rules_id>5712,5763</rules_id>\n"
    "  <timeout>3600</timeout>\n"
    "</active-response>\n"
)


def test_install_active_response(host: Host):
    path, xml = install_active_response(host.wazuh)
    assert path == host.wazuh / "active-response" / "bin" / "casefold-block"
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert str(host.wazuh / "framework" / "python" / "bin" / "python3") in text
    assert text.count("def main() -> int:") == 1
    assert COMMAND_XML in xml and AR_XML in xml and xml == active_response_xml()
    # Exec'd directly like execd does: the sh launcher finds a python3 and the script runs.
    proc = subprocess.Popen(
        [str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=host.env
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps(message()).encode() + b"\n")
    proc.stdin.flush()
    assert json.loads(_read_line(proc.stdout.fileno(), TIMEOUT)) == check_keys(SAMPLE_IP)
    proc.stdin.write(b'{"command":"continue"}\n')
    proc.stdin.flush()
    assert proc.wait(TIMEOUT) == 0
    proc.stdin.close()
    proc.stdout.close()
    assert host.state()["sets"]["blocked4"] == [SAMPLE_IP]


def test_install_active_response_is_repeatable_and_sets_ownership(host: Host):
    install_active_response(host.wazuh, mode=0o700)
    path, _ = install_active_response(host.wazuh, owner_group=("root", "root"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)
    assert [p.name for p in path.parent.iterdir()] == ["casefold-block"]  # no temp leftovers


def test_install_active_response_needs_the_wazuh_dir(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        install_active_response(tmp_path / "nope")


def test_cli_install_ar(host: Host):
    r = CliRunner().invoke(app, ["wazuh", "install-ar", "--wazuh-dir", str(host.wazuh)])
    assert r.exit_code == 0, r.output
    script = host.wazuh / "active-response" / "bin" / "casefold-block"
    assert f"wrote script: {script}" in r.output
    assert COMMAND_XML in r.output and AR_XML in r.output
    assert script.exists()


def test_cli_install_ar_error_is_one_line(tmp_path: Path):
    r = CliRunner().invoke(app, ["wazuh", "install-ar", "--wazuh-dir", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and r.output.startswith("casefold: ")

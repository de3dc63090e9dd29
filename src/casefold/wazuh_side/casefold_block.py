#!/usr/bin/env python3
"""casefold-block: a Wazuh active-response script that drops traffic from an alert's source IP.

Installed as <wazuh>/active-response/bin/casefold-block by `casefold wazuh install-ar`, which
replaces the first line with a launcher that picks the interpreter. Stdlib only; Python 3.9+.

Protocol (Wazuh 4.2+, execd): one JSON line on stdin, and stdin stays open, so exactly one line is
read and never to EOF. For `add` the script writes one `check_keys` line keyed by the IP and acts
only on a `continue` answer (`abort` means execd already holds this block in its timeout list).
`delete` comes from execd's timeout list, without a handshake.

The IP is `--ip <addr>` in extra_args, else alert.data.srcip, else alert.data.src_ip.
`--expire <seconds>` in extra_args gives nft elements their own timeout, so a block still ends if
execd dies and its in-memory delete is lost.

Blocking: nftables table `inet casefold` with sets blocked4/blocked6 and an input chain dropping
both; iptables/ip6tables rules with the comment `casefold` when nft is absent.

Environment (mainly for tests): WAZUH_HOME (default /var/ossec), CASEFOLD_BLOCK_NFT,
CASEFOLD_BLOCK_IPTABLES, CASEFOLD_BLOCK_IP6TABLES (binary paths), CASEFOLD_BLOCK_DRY_RUN=1
(print commands on stderr instead of running them).

Exit codes: 0 done, aborted or ignored; 2 bad input; 1 the firewall command failed.
"""

# No `from __future__` import: the installed launcher puts a string literal before this file.
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Optional, Union

NAME = "casefold-block"
TABLE = "casefold"
CHAIN = "input"
SETS = {4: "blocked4", 6: "blocked6"}
COMMENT = "casefold"
MAX_LINE = 1024 * 1024  # execd's messages are far smaller; this only bounds memory
COMMAND_TIMEOUT = 20  # seconds per firewall command
RUN_TIMEOUT = 60  # whole run: never leave execd waiting on a hung script
# execd may run us with a minimal PATH; firewall tools live in sbin.
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

IPAddr = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Fatal(Exception):
    """Ends the run with one log line and the given exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------- logging


def log(message: str) -> None:
    """One line in Wazuh's AR log format; stderr when the log is not writable (e.g. tests)."""
    line = f"{time.strftime('%Y/%m/%d %H:%M:%S')} {NAME}: {' '.join(message.split())}\n"
    path = os.path.join(
        os.environ.get("WAZUH_HOME") or "/var/ossec", "logs", "active-responses.log"
    )
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError:
        sys.stderr.write(line)
        sys.stderr.flush()


# ---------------------------------------------------------------------------------- protocol


def read_line() -> bytes:
    """One line from stdin. execd keeps the pipe open, so reading to EOF would hang for ever."""
    return sys.stdin.buffer.readline(MAX_LINE)


def parse_message(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise Fatal("bad input: empty message on stdin", EXIT_BAD_INPUT)
    try:
        msg = json.loads(raw)
    except ValueError:
        # Agents before 4.2 get the legacy space-separated string, which we do not support.
        raise Fatal(
            "bad input: stdin is not a JSON message (Wazuh < 4.2?)", EXIT_BAD_INPUT
        ) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("command"), str):
        raise Fatal("bad input: message has no 'command'", EXIT_BAD_INPUT)
    if not isinstance(msg.get("parameters"), dict):
        raise Fatal("bad input: message has no 'parameters' object", EXIT_BAD_INPUT)
    return msg


def extra_args(params: dict[str, Any]) -> list[str]:
    value = params.get("extra_args")
    if isinstance(value, str):  # be lenient: a hand-made message may pass the raw string
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def option(args: list[str], name: str) -> Optional[str]:
    """The value of `--name value` or `--name=value` in extra_args."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def source_ip(params: dict[str, Any], args: list[str]) -> str:
    explicit = option(args, "--ip")
    if explicit:
        return explicit
    alert = params.get("alert")
    data = alert.get("data") if isinstance(alert, dict) else None
    if isinstance(data, dict):
        for key in ("srcip", "src_ip"):
            if isinstance(data.get(key), str) and data[key].strip():
                return data[key]
    raise Fatal("bad input: no IP (alert.data.srcip, alert.data.src_ip or --ip)", EXIT_BAD_INPUT)


def validate_ip(text: str) -> IPAddr:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise Fatal(f"bad input: {text!r} is not an IP address", EXIT_BAD_INPUT) from None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:  # fe80::1%eth0 has no meaning for a firewall set
            raise Fatal(f"bad input: {text!r} has a scope id", EXIT_BAD_INPUT)
        if ip.ipv4_mapped:  # ::ffff:a.b.c.d arrives as IPv4 on the wire
            ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        raise Fatal(f"refused: {ip} is loopback, unspecified or multicast", EXIT_BAD_INPUT)
    return ip


def expire_seconds(args: list[str]) -> Optional[int]:
    value = option(args, "--expire")
    if value is None:
        return None
    if not value.isdigit() or int(value) <= 0:
        raise Fatal(
            f"bad input: --expire must be a positive number of seconds, got {value!r}",
            EXIT_BAD_INPUT,
        )
    return int(value)


def handshake(ip: IPAddr) -> bool:
    """check_keys keyed by the IP alone, so each attacker IP is its own execd timeout entry."""
    request = {
        "version": 1,
        "origin": {"name": NAME, "module": "active-response"},
        "command": "check_keys",
        "parameters": {"keys": [str(ip)]},
    }
    sys.stdout.write(json.dumps(request, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    raw = read_line()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise Fatal(
            f"bad input: unreadable check_keys answer {raw[:80]!r}", EXIT_BAD_INPUT
        ) from None
    command = answer.get("command") if isinstance(answer, dict) else None
    if command == "continue":
        return True
    if command == "abort":
        return False
    raise Fatal(f"bad input: unexpected check_keys answer command {command!r}", EXIT_BAD_INPUT)


# ---------------------------------------------------------------------------------- commands


def dry_run() -> bool:
    return os.environ.get("CASEFOLD_BLOCK_DRY_RUN", "") not in ("", "0")


def find_binary(env: str, name: str) -> Optional[str]:
    """The configured path when set (even if missing: tests use that to hide a tool), else a
    search of PATH and the sbin dirs."""
    configured = os.environ.get(env)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(name, path=search)


def run(
    argv: list[str], *, query: bool = False, assume: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run a firewall command. Dry run prints it instead and returns `assume` as its exit code,
    chosen so the printed sequence is the one that changes something."""
    if dry_run():
        sys.stderr.write(("dry-run query: " if query else "dry-run: ") + shlex.join(argv) + "\n")
        return subprocess.CompletedProcess(argv, assume, "", "")
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Fatal(f"cannot run {shlex.join(argv)}: {exc}", EXIT_FAILED) from None


def must(proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise Fatal(
            f"{shlex.join(proc.args)} failed ({proc.returncode}): {err[0] if err else ''}",
            EXIT_FAILED,
        )


class Nft:
    def __init__(self, binary: str) -> None:
        self.nft = binary

    def ensure_table(self) -> None:
        """Create whatever part of the table is missing; rules are rewritten only then, so a
        repeated add never duplicates them."""
        listing = run([self.nft, "list", "table", "inet", TABLE], query=True, assume=1)
        text = listing.stdout if listing.returncode == 0 else ""
        wanted = [f"set {SETS[4]} ", f"set {SETS[6]} ", f"chain {CHAIN} "]
        wanted += [f"@{SETS[4]}", f"@{SETS[6]}"]
        if text and all(w in text for w in wanted):
            return
        n = self.nft
        # `add` of a table, set or chain that exists is a no-op in nft; rules are not, hence flush.
        must(run([n, "add", "table", "inet", TABLE]))
        must(run([n, "add", "set", "inet", TABLE, SETS[4], "{ type ipv4_addr; flags timeout; }"]))
        must(run([n, "add", "set", "inet", TABLE, SETS[6], "{ type ipv6_addr; flags timeout; }"]))
        chain = "{ type filter hook input priority -10; policy accept; }"
        must(run([n, "add", "chain", "inet", TABLE, CHAIN, chain]))
        must(run([n, "flush", "chain", "inet", TABLE, CHAIN]))
        must(run([n, "add", "rule", "inet", TABLE, CHAIN, "ip", "saddr", f"@{SETS[4]}", "drop"]))
        must(run([n, "add", "rule", "inet", TABLE, CHAIN, "ip6", "saddr", f"@{SETS[6]}", "drop"]))

    def _element(self, verb: str, ip: IPAddr, suffix: str = "") -> list[str]:
        return [self.nft, verb, "element", "inet", TABLE, SETS[ip.version], f"{{ {ip}{suffix} }}"]

    def present(self, ip: IPAddr, dry_assume: int) -> bool:
        # `get element` fails when the element or the whole table is missing: absent either way.
        return run(self._element("get", ip), query=True, assume=dry_assume).returncode == 0

    def block(self, ip: IPAddr, expire: Optional[int]) -> str:
        self.ensure_table()
        if self.present(ip, dry_assume=1):
            return "already blocked"
        must(run(self._element("add", ip, f" timeout {expire}s" if expire else "")))
        return "blocked" + (f" for {expire}s" if expire else "")

    def unblock(self, ip: IPAddr) -> str:
        if not self.present(ip, dry_assume=0):
            return "was not blocked"
        must(run(self._element("delete", ip)))
        return "unblocked"


class Iptables:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def _rule(self, op: str, ip: IPAddr) -> list[str]:
        # -w waits for the xtables lock instead of failing when another tool holds it.
        spec = ["-s", str(ip), "-m", "comment", "--comment", COMMENT, "-j", "DROP"]
        return [self.binary, "-w", op, "INPUT", *spec]

    def present(self, ip: IPAddr, dry_assume: int) -> bool:
        proc = run(self._rule("-C", ip), query=True, assume=dry_assume)
        if proc.returncode not in (0, 1):  # 1 = no such rule; anything else is a real error
            must(proc)
        return proc.returncode == 0

    def block(self, ip: IPAddr, expire: Optional[int]) -> str:
        if self.present(ip, dry_assume=1):
            return "already blocked"
        must(run(self._rule("-I", ip)))
        return "blocked" + (" (iptables: --expire not supported)" if expire else "")

    def unblock(self, ip: IPAddr) -> str:
        if not self.present(ip, dry_assume=0):
            return "was not blocked"
        must(run(self._rule("-D", ip)))
        return "unblocked"


def firewall(ip: IPAddr) -> Union[Nft, Iptables]:
    nft = find_binary("CASEFOLD_BLOCK_NFT", "nft")
    if nft:
        return Nft(nft)
    env, name = ("CASEFOLD_BLOCK_IPTABLES", "iptables")
    if ip.version == 6:
        env, name = ("CASEFOLD_BLOCK_IP6TABLES", "ip6tables")
    binary = find_binary(env, name)
    if binary:
        return Iptables(binary)
    if dry_run():  # show what would run on a host that has the tool
        return Iptables(name)
    raise Fatal(f"neither nft nor {name} is installed", EXIT_FAILED)


# ---------------------------------------------------------------------------------- main


def describe(msg: dict[str, Any]) -> str:
    alert = msg["parameters"].get("alert")
    if not isinstance(alert, dict):
        return ""
    rule = alert.get("rule") if isinstance(alert.get("rule"), dict) else {}
    return f" (rule {rule.get('id', '?')}, alert {alert.get('id', '?')})"


def handle(msg: dict[str, Any]) -> None:
    command = msg["command"]
    if command not in ("add", "delete"):
        log(f"ignored: command {command!r}")
        return
    args = extra_args(msg["parameters"])
    ip = validate_ip(source_ip(msg["parameters"], args))
    expire = expire_seconds(args)
    fw = firewall(ip)
    tool = "nft" if isinstance(fw, Nft) else "iptables"
    if command == "add":
        if not handshake(ip):
            log(f"add {ip}: aborted by execd (already in its timeout list){describe(msg)}")
            return
        log(f"add {ip}: {fw.block(ip, expire)} with {tool}{describe(msg)}")
    else:
        log(f"delete {ip}: {fw.unblock(ip)} with {tool}")


def _timed_out(signum: int, frame: Any) -> None:
    raise Fatal(f"gave up after {RUN_TIMEOUT}s", EXIT_FAILED)


def main() -> int:
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _timed_out)
        signal.alarm(RUN_TIMEOUT)
    try:
        handle(parse_message(read_line()))
    except Fatal as exc:
        log(str(exc))
        return exc.code
    except BrokenPipeError:
        # execd closed our stdout before reading check_keys: nothing was blocked.
        log("stdout closed by execd before the handshake; nothing done")
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

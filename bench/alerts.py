"""Realistic Wazuh alerts for benchmarks and load tests, reproducible from a seed.

The shapes follow real `alerts.json` lines (see /work/shared/samples/wazuh/): sshd 5710/5712 with
`data.srcip`, syscheck 554 with file hashes, web access log 31108 with `data.srcip`/`data.url`,
and Sysmon event 1 (61603/100500) with `data.win.eventdata.hashes`.

Every alert gets a distinct Wazuh `id` ("<epoch seconds>.<byte offset>", the offset growing like
the manager's alerts.json offset), so with one `AlertGenerator` no two alerts are duplicates of
each other. The same seed always yields the same alerts.

    gen = AlertGenerator(seed=7)
    alerts = gen.take(1000)          # list of dicts
    body = ndjson(alerts)            # bytes for Content-Type: application/x-ndjson
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

DEFAULT_SEED = 20240611
# 2023-11-14T22:13:20Z: fixed, so a seed reproduces the same timestamps and ids.
DEFAULT_START_EPOCH = 1_700_000_000

MANAGER = "wazuh-manager-01"
CLUSTER = {"name": "wazuh", "node": "wazuh-master"}

_TZ = timezone(timedelta(hours=0))

# Addresses attacking us: public ranges (TEST-NET and friends) and a few internal hosts.
SRC_IPS = tuple(
    [f"203.0.113.{n}" for n in range(10, 40)]
    + [f"198.51.100.{n}" for n in range(5, 25)]
    + [f"192.0.2.{n}" for n in range(100, 110)]
    + [f"10.20.{a}.{b}" for a in (1, 2) for b in (15, 33, 71, 140)]
)
LINUX_AGENTS = tuple(
    {"id": f"{i:03d}", "name": name, "ip": f"10.0.{i // 10}.{i}"}
    for i, name in enumerate(
        [
            "web-01",
            "web-02",
            "web-03",
            "db-01",
            "db-02",
            "bastion",
            "mail-01",
            "ci-runner-1",
            "ci-runner-2",
            "k8s-node-1",
            "k8s-node-2",
            "k8s-node-3",
            "vpn-gw",
            "files-01",
        ],
        start=1,
    )
)
WINDOWS_AGENTS = tuple(
    {"id": f"{i:03d}", "name": f"DESKTOP-{code}", "ip": f"192.168.252.{i}"}
    for i, code in enumerate(
        ["NCLALBR", "7Q2KX1M", "AB12CDE", "F00BA12", "HR0003X", "SALES17", "DEV0042", "ACC0007"],
        start=101,
    )
)
USERS = ("admin", "root", "test", "oracle", "postgres", "ubuntu", "guest", "paco", "git", "pi")
URLS = (
    "/",
    "/wp-login.php",
    "/xmlrpc.php",
    "/.env",
    "/admin/config.php",
    "/cgi-bin/luci",
    "/phpmyadmin/index.php",
    "/login?next=/dashboard",
    "/api/v1/users?id=1%27%20OR%201=1",
    "/.git/config",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
)
AGENTS_UA = (
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
)
FILE_PATHS = (
    "/usr/bin/{name}",
    "/tmp/.{name}",
    "/var/www/html/{name}.php",
    "/etc/cron.d/{name}",
    "/home/ubuntu/.ssh/{name}",
    "/dev/shm/{name}",
)
FILE_NAMES = ("kworker", "dbus-helper", "shell", "update", "sshd_backup", "x", "miner", "authk")
WIN_IMAGES = (
    ("C:\\Program Files\\Sublime Text\\sublime_text.exe", "Sublime Text", "Sublime HQ Pty Ltd"),
    (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "Windows PowerShell",
        "Microsoft Corporation",
    ),
    ("C:\\Windows\\System32\\cmd.exe", "Windows Command Processor", "Microsoft Corporation"),
    (
        "C:\\Users\\Public\\svchost.exe",
        "Host Process for Windows Services",
        "Microsoft Corporation",
    ),
    (
        "C:\\Windows\\System32\\rundll32.exe",
        "Windows host process (Rundll32)",
        "Microsoft Corporation",
    ),
)

_SSHD_COMPLIANCE = {
    "gdpr": ["IV_35.7.d", "IV_32.2"],
    "hipaa": ["164.312.b"],
    "nist_800_53": ["SI.4", "AU.14", "AC.7"],
    "pci_dss": ["10.2.4", "10.2.5"],
    "tsc": ["CC6.1", "CC6.8", "CC7.2", "CC7.3"],
}


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


class AlertGenerator:
    """Yields Wazuh alerts with strictly increasing, unique ids. Not thread-safe."""

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        start_epoch: int = DEFAULT_START_EPOCH,
        *,
        manager: str = MANAGER,
        cluster_node: str | None = CLUSTER["node"],
    ) -> None:
        self.rng = random.Random(seed)
        self.t = float(start_epoch)
        self.offset = self.rng.randrange(1_000, 5_000_000)
        self.manager = manager
        self.cluster_node = cluster_node
        self.count = 0
        # (weight, builder); weights roughly follow a busy manager's mix.
        self._families: list[tuple[int, Callable[[], dict[str, Any]]]] = [
            (30, self._sshd_5710),
            (10, self._sshd_5712),
            (20, self._web_31108),
            (20, self._syscheck_554),
            (20, self._sysmon),
        ]
        self._builders = [b for _, b in self._families]
        self._weights = [w for w, _ in self._families]

    # -- public -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.next()

    def next(self) -> dict[str, Any]:
        builder = self.rng.choices(self._builders, self._weights)[0]
        alert = builder()
        self.count += 1
        return alert

    def take(self, n: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(n)]

    # -- common parts -------------------------------------------------------------------------

    def _envelope(
        self,
        rule: dict[str, Any],
        agent: dict[str, str],
        location: str,
        full_log: str | None,
        decoder: dict[str, str],
    ) -> dict[str, Any]:
        # ~20 alerts/s on the manager; the id is "<epoch>.<offset in alerts.json>".
        self.t += self.rng.expovariate(20.0)
        epoch = int(self.t)
        self.offset += self.rng.randrange(600, 4_000)
        ts = datetime.fromtimestamp(self.t, UTC).astimezone(_TZ)
        doc: dict[str, Any] = {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{ts.microsecond // 1000:03d}"
            + ts.strftime("%z"),
            "rule": rule,
            "agent": dict(agent),
            "manager": {"name": self.manager},
            "id": f"{epoch}.{self.offset}",
        }
        if self.cluster_node:
            doc["cluster"] = {"name": CLUSTER["name"], "node": self.cluster_node}
        if full_log is not None:
            doc["full_log"] = full_log
        doc["decoder"] = decoder
        doc["location"] = location
        return doc

    def _syslog_time(self) -> str:
        return datetime.fromtimestamp(self.t, UTC).strftime("%b %d %H:%M:%S")

    # -- families -----------------------------------------------------------------------------

    def _sshd_5710(self) -> dict[str, Any]:
        rng = self.rng
        agent = rng.choice(LINUX_AGENTS)
        ip, user, port, pid = (
            rng.choice(SRC_IPS),
            rng.choice(USERS),
            rng.randrange(32768, 61000),
            rng.randrange(1000, 99999),
        )
        rule = {
            "level": 5,
            "description": "sshd: Attempt to login using a non-existent user",
            "id": "5710",
            "mitre": {
                "id": ["T1110.001"],
                "tactic": ["Credential Access"],
                "technique": ["Password Guessing"],
            },
            "firedtimes": rng.randrange(1, 400),
            "mail": False,
            "groups": ["syslog", "sshd", "authentication_failed", "invalid_login"],
            **_SSHD_COMPLIANCE,
        }
        host = agent["name"]
        doc = self._envelope(
            rule,
            agent,
            "/var/log/auth.log",
            f"{self._syslog_time()} {host} sshd[{pid}]: Invalid user {user} from {ip} port {port}",
            {"parent": "sshd", "name": "sshd"},
        )
        doc["predecoder"] = {
            "program_name": "sshd",
            "timestamp": self._syslog_time(),
            "hostname": host,
        }
        doc["data"] = {"srcip": ip, "srcport": str(port), "srcuser": user}
        return doc

    def _sshd_5712(self) -> dict[str, Any]:
        rng = self.rng
        agent = rng.choice(LINUX_AGENTS)
        ip, user = rng.choice(SRC_IPS), rng.choice(USERS)
        port, pid = rng.randrange(32768, 61000), rng.randrange(1000, 99999)
        host = agent["name"]
        rule = {
            "level": 10,
            "description": "sshd: brute force trying to get access to the system. "
            "Non existent user.",
            "id": "5712",
            "mitre": {
                "id": ["T1110"],
                "tactic": ["Credential Access"],
                "technique": ["Brute Force"],
            },
            "frequency": 8,
            "firedtimes": rng.randrange(1, 50),
            "mail": False,
            "groups": ["syslog", "sshd", "authentication_failures"],
            **_SSHD_COMPLIANCE,
        }
        prev = "\n".join(
            f"{self._syslog_time()} {host} sshd[{pid - 2 * k}]: Invalid user {user} from {ip} "
            f"port {port - 2 * k}"
            for k in range(1, 8)
        )
        doc = self._envelope(
            rule,
            agent,
            "/var/log/secure",
            f"{self._syslog_time()} {host} sshd[{pid}]: Invalid user {user} from {ip} port {port}",
            {"parent": "sshd", "name": "sshd"},
        )
        doc["previous_output"] = prev
        doc["predecoder"] = {
            "program_name": "sshd",
            "timestamp": self._syslog_time(),
            "hostname": host,
        }
        doc["data"] = {"srcip": ip, "srcport": str(port), "srcuser": user}
        return doc

    def _web_31108(self) -> dict[str, Any]:
        # 31108 as sites commonly override it: a request from an address on a reputation list.
        rng = self.rng
        agent = rng.choice(LINUX_AGENTS[:3])
        ip, url, ua = rng.choice(SRC_IPS), rng.choice(URLS), rng.choice(AGENTS_UA)
        method = rng.choice(("GET", "GET", "GET", "POST", "HEAD"))
        status = rng.choice(("200", "301", "403", "404", "404", "500"))
        stamp = datetime.fromtimestamp(self.t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        rule = {
            "level": 10,
            "description": "IP address found in AlienVault reputation database.",
            "id": "31108",
            "firedtimes": rng.randrange(1, 900),
            "mail": False,
            "groups": ["web", "accesslog", "attack"],
            "pci_dss": ["6.5", "11.4"],
            "gdpr": ["IV_35.7.d"],
            "nist_800_53": ["SA.11", "SI.4"],
            "tsc": ["PI1.4", "CC6.6", "CC7.1", "CC8.1", "CC6.1", "CC6.8", "CC7.2", "CC7.3"],
        }
        doc = self._envelope(
            rule,
            agent,
            rng.choice(("/var/log/nginx/access.log", "/var/log/apache2/access.log")),
            f'{ip} - - [{stamp}] "{method} {url} HTTP/1.1" {status} {rng.randrange(0, 20000)} '
            f'"-" "{ua}"',
            {"name": "web-accesslog"},
        )
        doc["data"] = {"protocol": method, "srcip": ip, "id": status, "url": url}
        return doc

    def _syscheck_554(self) -> dict[str, Any]:
        rng = self.rng
        agent = rng.choice(LINUX_AGENTS)
        path = rng.choice(FILE_PATHS).format(name=rng.choice(FILE_NAMES))
        rule = {
            "level": 5,
            "description": "File added to the system.",
            "id": "554",
            "firedtimes": rng.randrange(1, 100),
            "mail": False,
            "groups": ["ossec", "syscheck", "syscheck_entry_added", "syscheck_file"],
            "pci_dss": ["11.5"],
            "gpg13": ["4.11"],
            "gdpr": ["II_5.1.f"],
            "hipaa": ["164.312.c.1", "164.312.c.2"],
            "nist_800_53": ["SI.7"],
            "tsc": ["PI1.4", "PI1.5", "CC6.1", "CC6.8", "CC7.2", "CC7.3"],
        }
        mode = rng.choice(("realtime", "scheduled", "whodata"))
        doc = self._envelope(
            rule,
            agent,
            "syscheck",
            f"File '{path}' added\nMode: {mode}\n",
            {"name": "syscheck_new_entry"},
        )
        doc["syscheck"] = {
            "path": path,
            "mode": mode,
            "size_after": str(rng.randrange(0, 4_000_000)),
            "perm_after": rng.choice(("rw-r--r--", "rwxr-xr-x", "rwx------")),
            "uid_after": "0",
            "gid_after": "0",
            "md5_after": _hex(rng, 16),
            "sha1_after": _hex(rng, 20),
            "sha256_after": _hex(rng, 32),
            "uname_after": "root",
            "gname_after": "root",
            "mtime_after": datetime.fromtimestamp(self.t, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "inode_after": rng.randrange(100_000, 9_999_999),
            "event": "added",
        }
        return doc

    def _sysmon(self) -> dict[str, Any]:
        rng = self.rng
        agent = rng.choice(WINDOWS_AGENTS)
        image, desc, company = rng.choice(WIN_IMAGES)
        suspicious = image.startswith("C:\\Users\\Public")
        if suspicious:
            rule = {
                "level": 12,
                "description": "Sysmon - Suspicious Process - svchost.exe",
                "id": "61618",
                "mitre": {
                    "id": ["T1055"],
                    "tactic": ["Defense Evasion", "Privilege Escalation"],
                    "technique": ["Process Injection"],
                },
                "firedtimes": rng.randrange(1, 20),
                "mail": True,
                "groups": ["windows", "sysmon", "sysmon_process-anomalies"],
            }
        else:
            rule = {
                "level": 10,
                "description": f"Sysmon - Event 1: Process {desc} started but not allowed by "
                "the software policy.",
                "id": "100500",
                "mitre": {
                    "id": ["T1036"],
                    "tactic": ["Defense Evasion"],
                    "technique": ["Masquerading"],
                },
                "firedtimes": rng.randrange(1, 60),
                "mail": False,
                "groups": ["windows", "sysmon", "sysmon_event1", "software_policy"],
            }
        sha1, md5, sha256, imphash = (
            _hex(rng, 20).upper(),
            _hex(rng, 16).upper(),
            _hex(rng, 32).upper(),
            _hex(rng, 16).upper(),
        )
        hashes = f"SHA1={sha1},MD5={md5},SHA256={sha256},IMPHASH={imphash}"
        guid = f"{{ac15d313-{_hex(rng, 2)}-{_hex(rng, 2)}-{_hex(rng, 2)}-{_hex(rng, 6)}}}"
        pid, ppid = rng.randrange(100, 30000), rng.randrange(100, 30000)
        user = f"MYORG\\\\{rng.choice(('jromero', 'asmith', 'svc_backup', 'lchen'))}"
        utc = datetime.fromtimestamp(self.t, UTC)
        doubled = image.replace("\\", "\\\\")
        doc = self._envelope(rule, agent, "EventChannel", None, {"name": "windows_eventchannel"})
        doc["data"] = {
            "win": {
                "system": {
                    "providerName": "Microsoft-Windows-Sysmon",
                    "providerGuid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
                    "eventID": "1",
                    "version": "5",
                    "level": "4",
                    "task": "1",
                    "opcode": "0",
                    "keywords": "0x8000000000000000",
                    "systemTime": utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z",
                    "eventRecordID": str(rng.randrange(10_000, 9_999_999)),
                    "processID": str(rng.randrange(1000, 9000)),
                    "threadID": str(rng.randrange(1000, 9000)),
                    "channel": "Microsoft-Windows-Sysmon/Operational",
                    "computer": f"{agent['name']}.MYORG.ORG",
                    "severityValue": "INFORMATION",
                    "message": f'"Process Create:\r\nUtcTime: {utc:%Y-%m-%d %H:%M:%S}\r\n'
                    f"ProcessGuid: {guid}\r\nProcessId: {pid}\r\nImage: {image}\r\n"
                    f"Hashes: {hashes}\r\nParentProcessId: {ppid}\r\n"
                    f'ParentImage: C:\\Windows\\explorer.exe"',
                },
                "eventdata": {
                    "utcTime": f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}",
                    "processGuid": guid,
                    "processId": str(pid),
                    "image": doubled,
                    "description": desc,
                    "company": company,
                    "originalFileName": image.rsplit("\\", 1)[-1],
                    "commandLine": f'\\"{doubled}\\"',
                    "currentDirectory": "C:\\\\Windows\\\\system32\\\\",
                    "user": user,
                    "logonId": f"0x{rng.getrandbits(32):x}",
                    "terminalSessionId": str(rng.randrange(0, 5)),
                    "integrityLevel": rng.choice(("Medium", "High", "System")),
                    "hashes": hashes,
                    "parentProcessId": str(ppid),
                    "parentImage": "C:\\\\Windows\\\\explorer.exe",
                    "parentCommandLine": "C:\\\\Windows\\\\Explorer.EXE",
                },
            }
        }
        return doc


def source_key(alert: dict[str, Any]) -> tuple[str, str]:
    """The key the service dedups on: (cluster.node or manager.name, id)."""
    node = (alert.get("cluster") or {}).get("node") or alert["manager"]["name"]
    return node, alert["id"]


def encode(alert: dict[str, Any]) -> bytes:
    return orjson.dumps(alert)


def ndjson(alerts: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(a) + b"\n" for a in alerts)


if __name__ == "__main__":  # print a few, for eyeballing
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for a in AlertGenerator().take(n):
        sys.stdout.buffer.write(orjson.dumps(a, option=orjson.OPT_INDENT_2) + b"\n")

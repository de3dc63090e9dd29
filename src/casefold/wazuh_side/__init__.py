"""Wazuh-side pieces: the integratord script (integration.py), the active-response script
(casefold_block.py) and their installers.

The script is shipped as package data and copied onto the manager as
<ossec>/integrations/custom-casefold, with its URL and token in a conf file beside it so the token
never appears in ossec.conf, argv (visible in `ps` and integratord's debug log) or the script.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from casefold.errors import InvalidInputError

SCRIPT_NAME = "custom-casefold"
CONF_NAME = "custom-casefold.conf"
WAZUH_ACCOUNT = "wazuh"  # integratord's user and group (USER/GROUPGLOBAL in Wazuh's defs.h)
DEFAULT_TIMEOUT = 10


@dataclass(frozen=True)
class InstallResult:
    script_path: Path
    conf_path: Path
    spool_dir: Path
    log_file: Path
    python: str
    chowned: bool
    integration_xml: str
    notes: list[str] = field(default_factory=list)


def integration_script_text() -> str:
    """The packaged integration script, as shipped (with its development shebang)."""
    return resources.files(__name__).joinpath("integration.py").read_text(encoding="utf-8")


def integration_xml(level: int, conf_path: Path) -> str:
    """The block for ossec.conf.

    No <timeout>/<retries>: Wazuh before 4.8 rejects unknown tags and the whole config with them.
    """
    return (
        "<integration>\n"
        f"  <!-- Casefold: URL and token are read from {conf_path} (mode 640), not from here. -->\n"
        f"  <name>{SCRIPT_NAME}</name>\n"
        f"  <level>{level}</level>\n"
        "  <alert_format>json</alert_format>\n"
        "</integration>\n"
    )


def _validate(url: str, token: str, ossec_dir: Path, python: str, level: int) -> None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"--url must be an http:// or https:// URL with a host, got {url!r}", field="url"
        )
    if not token.strip() or any(c.isspace() for c in token):
        # The token becomes an HTTP header value; whitespace would break or inject into it.
        raise InvalidInputError(
            "--token must be a non-empty string without whitespace", field="token"
        )
    if not ossec_dir.is_dir():
        raise InvalidInputError(
            f"Wazuh directory {ossec_dir} does not exist (use --ossec-dir)", field="ossec_dir"
        )
    if not os.path.isabs(python) or any(c.isspace() for c in python):
        # The kernel splits a shebang line on whitespace, so a path with spaces cannot work.
        raise InvalidInputError(
            f"--python must be an absolute path without spaces, got {python!r}", field="python"
        )
    if not 0 <= level <= 16:
        raise InvalidInputError(f"level must be 0..16, got {level}", field="level")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Temp file created with the final mode, then renamed: integratord never execs half a file
    and the token is never briefly world-readable."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # os.open's mode is filtered by the umask
    os.replace(tmp, path)


def _wazuh_ids() -> tuple[int | None, int | None]:
    try:
        uid: int | None = pwd.getpwnam(WAZUH_ACCOUNT).pw_uid
    except KeyError:
        uid = None
    try:
        gid: int | None = grp.getgrnam(WAZUH_ACCOUNT).gr_gid
    except KeyError:
        gid = None
    return uid, gid


def install_integration(
    url: str,
    token: str,
    ossec_dir: Path = Path("/var/ossec"),
    python: str | None = None,
    *,
    level: int = 3,
    timeout: int = DEFAULT_TIMEOUT,
) -> InstallResult:
    """Install the script, its conf and spool dir; return what was written and the XML block."""
    ossec_dir = Path(ossec_dir)
    python = str(python) if python else str(ossec_dir / "framework" / "python" / "bin" / "python3")
    _validate(url, token, ossec_dir, python, level)
    notes: list[str] = []

    integrations = ossec_dir / "integrations"
    logs = ossec_dir / "logs"
    spool = ossec_dir / "var" / "casefold-spool"
    integrations.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    spool.mkdir(parents=True, exist_ok=True)
    script_path = integrations / SCRIPT_NAME
    conf_path = integrations / CONF_NAME
    log_file = logs / "casefold-integration.log"

    body = integration_script_text()
    if body.startswith("#!"):
        body = body.split("\n", 1)[1]
    # integratord execs custom-* directly (no wrapper), so the shebang picks the interpreter.
    _write_atomic(script_path, f"#!{python}\n{body}".encode(), 0o750)
    conf = {
        "url": url.strip(),
        "token": token,
        "spool_dir": str(spool),
        "log_file": str(log_file),
        "timeout": timeout,
    }
    _write_atomic(conf_path, (json.dumps(conf, indent=2) + "\n").encode(), 0o640)
    os.chmod(spool, 0o770)
    if not log_file.exists():
        _write_atomic(log_file, b"", 0o640)
    if not Path(python).exists():
        notes.append(f"{python} does not exist here: pass --python with the interpreter to use")

    uid, gid = _wazuh_ids()
    chowned = False
    if uid is None or gid is None:
        notes.append(
            "no 'wazuh' user/group on this host: ownership left unchanged; on the manager "
            "make the script and conf root:wazuh and the spool dir and log wazuh:wazuh"
        )
    else:
        try:
            # root:wazuh and not writable by wazuh: integratord's W_CHECK_WRITE refuses otherwise.
            for p in (script_path, conf_path):
                os.chown(p, 0, gid)
            os.chown(spool, uid, gid)
            os.chown(log_file, uid, gid)
            chowned = True
        except PermissionError:
            notes.append("not allowed to change ownership (run as root): ownership left unchanged")

    return InstallResult(
        script_path=script_path,
        conf_path=conf_path,
        spool_dir=spool,
        log_file=log_file,
        python=python,
        chowned=chowned,
        integration_xml=integration_xml(level, conf_path),
        notes=notes,
    )


AR_NAME = "casefold-block"


def active_response_script_text() -> str:
    """The packaged active-response script, as shipped (with its development shebang)."""
    return resources.files(__name__).joinpath("casefold_block.py").read_text(encoding="utf-8")


def _ar_launcher(wazuh_dir: Path) -> str:
    """Lines that replace the shebang: a sh/Python polyglot.

    execd execs the file directly. Managers have Wazuh's embedded Python, agents (where
    location=local runs it) have none, so the shell part picks the first interpreter that exists.
    For Python the block is a string literal, which is why the script cannot use __future__.
    """
    candidates = " ".join(
        shlex.quote(p)
        for p in (
            str(wazuh_dir / "framework" / "python" / "bin" / "python3"),
            "/usr/bin/python3",
            "/usr/local/bin/python3",
        )
    )
    return (
        "#!/bin/sh\n"
        '""":"\n'
        f"for py in {candidates} python3; do\n"
        '  command -v "$py" >/dev/null 2>&1 && exec "$py" "$0" "$@"\n'
        "done\n"
        f'echo "{AR_NAME}: no python3 found" >&2\n'
        "exit 127\n"
        '":"""\n'
    )


def active_response_xml(timeout: int = 3600) -> str:
    """The <command> and an example <active-response> block for ossec.conf."""
    return (
        "<command>\n"
        f"  <name>{AR_NAME}</name>\n"
        f"  <executable>{AR_NAME}</executable>\n"
        "  <timeout_allowed>yes</timeout_allowed>\n"
        "</command>\n"
        "\n"
        "<!-- Example: block sshd brute force sources for an hour (adjust rules_id). -->\n"
        "<active-response>\n"
        f"  <command>{AR_NAME}</command>\n"
        "  <location>local</location>\n"
        "  <rules_id>5712,5763</rules_id>\n"
        f"  <timeout>{timeout}</timeout>\n"
        "</active-response>\n"
    )


def install_active_response(
    target_dir: Path,
    *,
    owner_group: tuple[str, str] = ("root", WAZUH_ACCOUNT),
    mode: int = 0o750,
) -> tuple[Path, str]:
    """Install casefold-block into <wazuh>/active-response/bin; return its path and the XML."""
    target_dir = Path(target_dir)
    if not target_dir.is_dir():
        raise InvalidInputError(
            f"Wazuh directory {target_dir} does not exist (use --wazuh-dir)", field="wazuh_dir"
        )
    bin_dir = target_dir / "active-response" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script_path = bin_dir / AR_NAME

    body = active_response_script_text()
    if body.startswith("#!"):
        body = body.split("\n", 1)[1]
    _write_atomic(script_path, (_ar_launcher(target_dir) + body).encode(), mode)

    # Only root can give a file away; Wazuh's own AR binaries are root:wazuh 750.
    if os.geteuid() == 0:
        try:
            uid = pwd.getpwnam(owner_group[0]).pw_uid
            gid = grp.getgrnam(owner_group[1]).gr_gid
        except KeyError:
            pass  # no such user/group here (not a Wazuh host): leave ownership as is
        else:
            os.chown(script_path, uid, gid)
    return script_path, active_response_xml()


__all__ = [
    "InstallResult",
    "active_response_script_text",
    "active_response_xml",
    "install_active_response",
    "install_integration",
    "integration_script_text",
    "integration_xml",
]

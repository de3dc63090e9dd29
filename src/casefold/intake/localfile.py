"""Accepted webhook events as JSON lines, for a Wazuh agent's `<localfile>` to read.

    <localfile>
      <log_format>json</log_format>
      <location>/var/lib/casefold/github-events.json</location>
    </localfile>

One line per event (wazuh_side/rules/casefold_github_rules.xml matches them):

    {"casefold": {"source": "github", "event": "dependabot_alert", "action": "created",
                  "delivery": "<X-GitHub-Delivery>", "received": "<ISO>", "level": 12,
                  "severity": "high", "title": "...", "rule_id": "GHSA-...", "node": "org/repo",
                  "location": "...", "url": "https://github.com/...", "sender": "octocat"},
     "github": {...the payload, trimmed...}}

Why a summary beside a trimmed payload rather than the payload as it came:
- Wazuh rules cannot compute: severity words, our level and a title must already be fields, and
  one set of names (`casefold.*`) serves every event type.
- Wazuh refuses big lines and many fields: logcollector and analysisd cut messages at 64 KiB
  (OS_MAXSTR), and the JSON decoder keeps at most 256 fields by default. A GitHub payload carries
  a full repository object (about a hundred fields, mostly `url`/`*_url` API links) and advisory
  descriptions in markdown of any length. So API links are dropped, the repository, sender,
  organization objects keep their identity fields, strings and lists are clipped, and if the line
  still exceeds the limit the payload is left out (`casefold.truncated: true`). Casefold's own
  store keeps the raw payload verbatim, so nothing is lost overall.
- Secrets never reach the file: keys such as `secret`, `token`, `password` are dropped at any
  depth (a secret-scanning payload may carry the leaked credential in `alert.secret`).

Durability and rotation: each batch is one `write` then `fsync`. When the next batch would take
the file past `max_bytes`, the file is renamed to `<name>.1` (replacing the previous one) and a new
file is created: logcollector follows files by inode, sees the new one and finishes the old one.
A file renamed or removed by someone else (logrotate) is noticed before the next batch and
recreated. One process per file: the lock is per writer object, not across processes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casefold.sources.github import github_severity
from casefold.sources.model import NormalizedAlert

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Below Wazuh's 64 KiB OS_MAXSTR with room for the header logcollector puts in front of a line.
MAX_LINE_BYTES = 60_000
FILE_MODE = 0o640  # why: group-readable for a wazuh group, never world-readable

# Keys whose values are credentials, dropped wherever they appear (compared lower-cased).
SENSITIVE_KEYS = frozenset(
    {"secret", "token", "password", "api_key", "apikey", "private_key", "client_secret"}
)
# Identity fields kept of the top-level account/repository objects of a GitHub payload.
_GITHUB_IDENTITY: dict[str, tuple[str, ...]] = {
    "repository": ("id", "full_name", "private", "visibility", "html_url", "default_branch"),
    "organization": ("id", "login"),
    "enterprise": ("id", "slug", "name"),
    "sender": ("id", "login", "type"),
    "installation": ("id",),
}
# (longest string, longest list) of each trimming pass; after the last, the payload is left out.
_TRIM_STEPS = ((2048, 25), (512, 10), (128, 3))
_MAX_DEPTH = 8


class JsonLinesWriter:
    """Append-only JSON-lines file, thread-safe, fsynced per batch, rotated by size."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if max_bytes <= 0 or max_line_bytes <= 0:
            raise ValueError("max_bytes and max_line_bytes must be positive")
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".1")
        self._max_bytes = max_bytes
        self._max_line_bytes = max_line_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._closed = False

    def write(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append one line per record, then fsync; returns the number of lines written.

        Every record is encoded and size-checked before the file is touched, so a bad record
        (not JSON-serialisable, NaN, a line over `max_line_bytes`) raises ValueError and writes
        nothing of its batch.
        """
        lines = [encode_line(r) for r in records]
        for i, line in enumerate(lines):
            if len(line) > self._max_line_bytes:
                raise ValueError(
                    f"record {i} encodes to {len(line)} bytes, over {self._max_line_bytes}"
                )
        if not lines:
            return 0
        data = b"".join(lines)
        with self._lock:
            if self._closed:
                raise ValueError(f"writer for {self.path} is closed")
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            if size > 0 and size + len(data) > self._max_bytes:
                fd = self._rotate()
                size = 0
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                # why: a half-written batch would glue its partial last line to the next one
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        return len(lines)

    def write_one(self, record: Mapping[str, Any]) -> None:
        self.write([record])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- file handling (lock held) -----------------------------------------------------------

    def _current_fd(self) -> int:
        if self._fd is not None:
            try:
                on_disk = os.stat(self.path)
                mine = os.fstat(self._fd)
                if (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino):
                    return self._fd
            except FileNotFoundError:
                pass
            # Renamed or removed behind our back (logrotate, an operator): start a new file.
            os.close(self._fd)
            self._fd = None
        self._fd = self._open()
        return self._fd

    def _rotate(self) -> int:
        os.replace(self.path, self.backup_path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = self._open()
        return self._fd

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            # An existing file keeps the mode and owner an administrator may have given it.
            return os.open(self.path, flags)
        os.fchmod(fd, FILE_MODE)  # why: the process umask may have taken group read away
        _fsync_dir(self.path.parent)
        return fd


# --- lines -----------------------------------------------------------------------------------


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One compact JSON line, newline-terminated. ASCII-only so lone surrogates and odd code
    points cannot break the encoding; Wazuh's JSON decoder reads the \\u escapes back."""
    try:
        text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"record is not JSON-serialisable: {exc}") from None
    return text.encode("ascii") + b"\n"


def github_line(
    event: str,
    delivery: str,
    payload: Mapping[str, Any],
    alert: NormalizedAlert | None,
    *,
    received: datetime | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> dict[str, Any]:
    """The line for one accepted GitHub delivery (see the module docstring for the shape)."""
    summary = _summary("github", event, delivery, payload, alert, received)
    severity = github_severity(event, payload)
    if severity is not None:
        summary["severity"] = severity
    sender = payload.get("sender")
    if isinstance(sender, dict) and isinstance(sender.get("login"), str):
        summary["sender"] = sender["login"]
    identity = {
        key: {k: value[k] for k in keep if k in value}
        for key, keep in _GITHUB_IDENTITY.items()
        if isinstance(value := payload.get(key), dict)
    }
    rest = {k: v for k, v in payload.items() if k not in identity}
    return _fit(summary, "github", rest, identity, github_api_links=True, limit=max_line_bytes)


def event_line(
    source: str,
    event: str,
    msg_id: str,
    payload: Mapping[str, Any],
    alert: NormalizedAlert | None,
    *,
    received: datetime | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> dict[str, Any]:
    """The line for a Standard Webhooks event: the same summary, the payload under "payload"."""
    summary = _summary(source, event, msg_id, payload, alert, received)
    return _fit(summary, "payload", dict(payload), {}, github_api_links=False, limit=max_line_bytes)


def _summary(
    source: str,
    event: str,
    delivery: str,
    payload: Mapping[str, Any],
    alert: NormalizedAlert | None,
    received: datetime | None,
) -> dict[str, Any]:
    when = (received or datetime.now(UTC)).astimezone(UTC)
    summary: dict[str, Any] = {
        "source": source,
        "event": event,
        "delivery": delivery,
        "received": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    action = payload.get("action")
    if isinstance(action, str) and action:
        summary["action"] = action
    if alert is not None:
        summary.update(level=alert.level, title=alert.title, node=alert.node)
        if alert.rule_id is not None:
            summary["rule_id"] = alert.rule_id
        if alert.location is not None:
            summary["location"] = alert.location
        url = next((o.value for o in alert.observables if o.type == "url"), None)
        if url is not None:
            summary["url"] = url
    return summary


def _fit(
    summary: dict[str, Any],
    key: str,
    body: dict[str, Any],
    exact: dict[str, Any],
    *,
    github_api_links: bool,
    limit: int,
) -> dict[str, Any]:
    """Summary plus the trimmed payload, trimmed harder until the line fits; else no payload."""
    for max_str, max_list in _TRIM_STEPS:
        trimmed = _trim(body, max_str, max_list, github_api_links, 0)
        trimmed.update(_trim(exact, max_str, max_list, github_api_links, 0))
        line = {"casefold": summary, key: trimmed}
        try:
            if len(encode_line(line)) <= limit:
                return line
        except ValueError:
            break  # not serialisable (NaN…): the summary alone still is
    return {"casefold": {**summary, "truncated": True}}


def _trim(value: Any, max_str: int, max_list: int, api_links: bool, depth: int) -> Any:
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if name.lower() in SENSITIVE_KEYS:
                continue
            if api_links and _is_api_link(name, v):
                continue  # why: REST links and URI templates, dozens per object, no meaning
            out[name] = _trim(v, max_str, max_list, api_links, depth + 1)
        return out
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            return []
        return [_trim(v, max_str, max_list, api_links, depth + 1) for v in value[:max_list]]
    if isinstance(value, str) and len(value) > max_str:
        return value[: max_str - 1] + "…"
    return value


def _is_api_link(name: str, value: Any) -> bool:
    """GitHub's `*_url` fields (but `html_url`) and `url`s into its REST API."""
    if name == "html_url":
        return False
    if name.endswith("_url"):
        return True
    # why: a plain "url" is the REST self-link on alerts but a real page in advisory references
    return (
        name == "url"
        and isinstance(value, str)
        and (value.startswith("https://api.github.com/") or "/api/v3/" in value)
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a created or renamed entry survive a crash; skipped where directories cannot be
    opened (not POSIX)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

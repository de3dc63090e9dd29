"""A fake analysisd queue socket: a real AF_UNIX datagram socket read by a thread.

Each datagram is parsed the way analysisd's `OS_CleanMSG` reads it (wazuh.md §2.3): the queue
character and `:`, the location up to the first unescaped `:` with `||`/`|:` unescaped, agent
id/name/IP from a `[id] (name) ip->location` location, and the rest as the message (JSON here).

    with QueueReceiver() as queue:
        QueueSender(queue.path).send([frame_event({"a": 1}, location="casefold", agent=None)])
        [message] = queue.wait_for(1)
        assert message.location == "casefold" and message.event == {"a": 1}

The socket lives in its own short temporary directory: AF_UNIX paths are limited to 107 bytes,
which pytest's tmp_path can exceed.
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import orjson

MIN_MESSAGE = 4  # analysisd rejects anything shorter
MAX_MESSAGE = 65_536  # OS_MAXSTR
_AGENT = re.compile(r"\[(?P<id>[^\]]*)\] \((?P<name>.*?)\) (?P<ip>\S+?)->(?P<location>.*)", re.S)


@dataclass(frozen=True)
class QueueMessage:
    raw: bytes
    valid: bool
    error: str | None = None  # why analysisd would reject it
    queue: str | None = None  # "1" for LOCALFILE_MQ
    location: str | None = None  # unescaped; after "->" for agent messages
    agent_id: str | None = None  # "000" when no agent is named
    agent_name: str | None = None
    agent_ip: str | None = None
    message: str | None = None  # the text after the location
    event: Any = None  # `message` as JSON, when it is JSON


def parse_datagram(raw: bytes) -> QueueMessage:
    """Read one datagram as analysisd would; invalid ones carry the reason."""
    if len(raw) < MIN_MESSAGE:
        return QueueMessage(raw, False, f"shorter than {MIN_MESSAGE} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return QueueMessage(raw, False, "not UTF-8")
    if len(text) < 2 or text[1] != ":":
        return QueueMessage(raw, False, "no ':' after the queue character")
    rest = text[2:]
    split = _first_unescaped_colon(rest)
    if split is None:
        return QueueMessage(raw, False, "no ':' between location and message", queue=text[0])
    location = re.sub(r"\|(.)", r"\1", rest[:split], flags=re.S)
    message = rest[split + 1 :]
    try:
        event = orjson.loads(message)
    except orjson.JSONDecodeError:
        event = None
    agent_id, name, ip = "000", None, None
    if location.startswith("["):
        match = _AGENT.fullmatch(location)
        if match is None:
            return QueueMessage(raw, False, "malformed agent location", queue=text[0])
        agent_id, name, ip, location = match["id"], match["name"], match["ip"], match["location"]
    return QueueMessage(raw, True, None, text[0], location, agent_id, name, ip, message, event)


def _first_unescaped_colon(text: str) -> int | None:
    i = 0
    while i < len(text):
        if text[i] == "|":
            i += 2  # `|x` is an escaped x
            continue
        if text[i] == ":":
            return i
        i += 1
    return None


class QueueReceiver:
    def __init__(self, path: Path | None = None) -> None:
        self._own_dir: Path | None = None
        if path is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="cfq-"))
            path = self._own_dir / "queue"
        self.path = Path(path)
        self.messages: list[QueueMessage] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def valid(self) -> list[QueueMessage]:
        with self._cond:
            return [m for m in self.messages if m.valid]

    @property
    def invalid(self) -> list[QueueMessage]:
        with self._cond:
            return [m for m in self.messages if not m.valid]

    def start(self) -> Self:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.settimeout(0.05)  # why: lets the thread notice stop() promptly
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="wazuh-queue-fake", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                raw = self._sock.recv(MAX_MESSAGE + 1)
            except TimeoutError:
                continue
            except OSError:
                return
            parsed = parse_datagram(raw)
            with self._cond:
                self.messages.append(parsed)
                self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[QueueMessage]:
        """The first `n` messages (valid or not); AssertionError if fewer arrive in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {n} datagrams arrived")
                self._cond.wait(left)
            return list(self.messages[:n])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        self._sock = self._thread = None
        self.path.unlink(missing_ok=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

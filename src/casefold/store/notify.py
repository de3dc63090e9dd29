"""Waking workers in other processes: PostgreSQL LISTEN/NOTIFY on one channel.

A transaction that leaves work behind (stored alerts, queued playbook runs, outbox effects) calls
`notify(conn, topic)`; PostgreSQL delivers the notification only if and when that transaction
commits, and folds repeats of one topic within a transaction into one. Each worker process runs a
`Listener` that wakes the matching loop at once.

Notifications are an accelerator, never the source of truth: every loop also polls the store, so
a notification lost while a listener reconnects delays work by one poll interval, no more. On
SQLite (one process) `notify` does nothing: in-process wake-ups already do the job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

log = logging.getLogger("casefold.notify")

CHANNEL = "casefold"
ALERTS = "alerts"  # alerts stored, waiting to be folded
RUNS = "runs"  # playbook runs queued
OUTBOX = "outbox"  # outbox effects written
TOPICS = (ALERTS, RUNS, OUTBOX)
STOP_CHECK_SECONDS = 0.1

_NOTIFY = text("SELECT pg_notify(:channel, :topic)")


def notify(conn: Connection, topic: str) -> None:
    """Announce `topic` to every listener when this transaction commits (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": CHANNEL, "topic": topic})


def conninfo(engine: Engine) -> str:
    """libpq connection string of a SQLAlchemy PostgreSQL engine (password included)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """A thread holding one LISTEN connection; calls `handlers[topic]()` for each notification.

    After every (re)connection it calls every handler once: whatever was announced while it was
    disconnected is picked up without waiting for a poll.
    """

    def __init__(
        self,
        engine: Engine,
        handlers: Mapping[str, Callable[[], None]],
        *,
        retry_seconds: float = 2.0,
    ) -> None:
        self._conninfo = conninfo(engine)
        self._handlers = dict(handlers)
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.received = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="casefold-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _wake_all(self) -> None:
        for handler in self._handlers.values():
            handler()

    def _run(self) -> None:
        import psycopg  # why: only PostgreSQL deployments need the driver loaded here

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    self._wake_all()
                    while not self._stop.is_set():
                        # The generator ends every tenth of a second so that stop() is prompt
                        # (a process, or a test, shutting down waits for it).
                        for note in conn.notifies(timeout=STOP_CHECK_SECONDS):
                            self.received += 1
                            handler = self._handlers.get(note.payload)
                            if handler is not None:
                                handler()
            except psycopg.Error as exc:
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("listening for work failed (%s); retrying", str(exc).strip())
                    self._stop.wait(self._retry)

"""Which Casefold processes are running: each writes a heartbeat row to the `workers` table.

Read by `/metrics` (`casefold_workers`) and by operators (`SELECT * FROM workers`). A row whose
heartbeat is older than a few intervals belongs to a process that died; rows a day old are pruned.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Connection

from casefold.background import PassLoop
from casefold.store.db import dialect_insert
from casefold.store.tables import workers
from casefold.store.writer import Writer

HEARTBEAT_SECONDS = 15.0
FORGET_AFTER = timedelta(days=1)


class Presence(PassLoop):
    thread_name = "casefold-presence"
    failure_message = "could not record this process's heartbeat; trying again"

    def __init__(self, writer: Writer, role: str, poll_seconds: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(poll_seconds)
        self.writer = writer
        self.role = role
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(4)}"[:120]
        self.started_at = datetime.now(UTC)

    def work(self) -> int:
        self.writer.run(self._beat, timeout=None, background=True)
        return 0  # why: 0 makes the loop wait poll_seconds before the next beat

    def _beat(self, conn: Connection) -> None:
        now = datetime.now(UTC)
        stmt = dialect_insert(conn, workers).values(
            id=self.id,
            role=self.role,
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            seen_at=now,
        )
        conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))
        conn.execute(delete(workers).where(workers.c.seen_at < now - FORGET_AFTER))

    def stop(self) -> None:
        """Stop beating and remove this process's row (a clean exit is not a dead worker)."""
        super().stop()
        try:
            self.writer.run(
                lambda conn: conn.execute(delete(workers).where(workers.c.id == self.id)),
                timeout=10,
            )
        except Exception:  # the store may already be gone at shutdown; the row ages out
            pass

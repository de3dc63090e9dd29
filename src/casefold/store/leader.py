"""One process at a time for the loops that must not run twice (SLA checks, pollers, reconcile).

On PostgreSQL a loop holds a session-level advisory lock on a connection of its own. Another
process asking for the same lock is told no at once and asks again on its next pass. When the
holder dies, even by SIGKILL, its connection closes, PostgreSQL releases the lock, and the next
asker takes over. On SQLite only one process runs the service, so the lock is always held.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("casefold.leader")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks are keyed by bigint)."""
    digest = hashlib.sha256(f"casefold:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._conn: Connection | None = None

    @property
    def shared_store(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def hold(self) -> bool:
        """True while this process is the one running `name` (takes the lock when free)."""
        if not self.shared_store:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                # The connection died, and the lock with it; someone else may hold it now.
                log.warning("%s: lost the store connection that held the lead", self.name)
                self._drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        except DBAPIError:
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("%s: this process took the lead", self.name)
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            except DBAPIError:
                pass
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # why: never hand a connection that held a lock back to the pool
                conn.close()
            except DBAPIError:
                pass

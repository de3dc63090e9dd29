"""The single writer: one thread runs every write, and writes queued together share a commit.

Group commit is what lets one SQLite file acknowledge thousands of alerts a second with a real
fsync per commit: requests that arrive while a commit is in flight are written by the next one.
Each job runs inside its own SAVEPOINT, so one failing job rolls back alone and the others in the
group still commit. A caller's future resolves only after the commit returned.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

log = logging.getLogger("casefold.writer")

T = TypeVar("T")
Job = Callable[[Connection], Any]
_STOP = object()


class Writer:
    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_group = max_group
        self._thread = threading.Thread(target=self._run, name="casefold-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._started = False

    def submit(self, job: Callable[[Connection], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((job, fut))
        return fut

    def run(self, job: Callable[[Connection], T], timeout: float | None = 60) -> T:
        """Run `job` in the writer and wait for its committed result (or its exception)."""
        return self.submit(job).result(timeout)

    def _run(self) -> None:
        conn = self._engine.connect().execution_options(casefold_write=True)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                group = [item]
                stop = False
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    group.append(nxt)
                conn = self._commit_group(conn, group)
                if stop:
                    return
        finally:
            conn.close()

    def _commit_group(self, conn: Connection, group: list[tuple[Job, Future[Any]]]) -> Connection:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            with conn.begin():
                for job, fut in group:
                    if not fut.set_running_or_notify_cancel():
                        continue
                    try:
                        with conn.begin_nested():
                            results.append((fut, True, job(conn)))
                    except Exception as exc:  # the job's own failure: only it is rolled back
                        results.append((fut, False, exc))
        except Exception as exc:  # the commit itself failed: nothing in this group was written
            log.error("write transaction failed: %s", exc)
            for _job, fut in group:
                if not fut.done():
                    if fut.running():
                        fut.set_exception(exc)
            try:
                conn.close()
            finally:
                conn = self._engine.connect().execution_options(casefold_write=True)
            return conn
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        return conn

"""Coalescing concurrent intake requests into one insert per commit.

With one alert per request, a statement per request would cost more than the alert itself. The
sink gathers the rows of every request that arrives while the writer is busy into one batch, stores
the batch with a single INSERT, and hands each request its own receipts once the commit returned.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from sqlalchemy.engine import Connection

from casefold.intake.persist import Receipt, store_alerts
from casefold.store.writer import Writer


class _Batch:
    def __init__(self) -> None:
        self.parts: list[tuple[list[dict[str, Any]], Future[list[Receipt]]]] = []
        self.closed = False


class AlertSink:
    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._open: _Batch | None = None

    def submit(self, rows: list[dict[str, Any]]) -> Future[list[Receipt]]:
        """Queue rows for storage; the future resolves with their receipts after the commit."""
        fut: Future[list[Receipt]] = Future()
        with self._lock:
            batch = self._open
            fresh = batch is None
            if batch is None:
                batch = self._open = _Batch()
            batch.parts.append((rows, fut))
        if fresh:
            job = self._writer.submit(lambda conn: self._store(conn, batch))
            job.add_done_callback(lambda done: self._distribute(batch, done))
        return fut

    def _store(self, conn: Connection, batch: _Batch) -> list[Receipt]:
        with self._lock:
            batch.closed = True  # later requests start a new batch
            if self._open is batch:
                self._open = None
        return store_alerts(conn, [row for rows, _ in batch.parts for row in rows])

    @staticmethod
    def _distribute(batch: _Batch, done: Future[list[Receipt]]) -> None:
        exc = done.exception()
        if exc is not None:
            for _rows, fut in batch.parts:
                fut.set_exception(exc)
            return
        receipts = done.result()
        start = 0
        for rows, fut in batch.parts:
            fut.set_result(receipts[start : start + len(rows)])
            start += len(rows)

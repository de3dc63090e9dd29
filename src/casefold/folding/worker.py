"""The folding loop: wakes when alerts are stored, folds them in batches through the writer."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Connection

from casefold.folding.apply import Folder, FoldResult
from casefold.store.writer import Writer

log = logging.getLogger("casefold.folding")


# While clients are waiting on the writer, fold in small slices so that no acknowledgement waits
# behind a long fold transaction; when intake is quiet, fold in full batches.
BUSY_SLICE = 8
BUSY_WINDOW = 1.0
# After a fold inside the tailer's transaction failed, how long batches are stored unfolded.
FOLD_STORED_PAUSE = 60.0


class FoldingWorker:
    def __init__(
        self, writer: Writer, folder: Folder, *, idle_poll: float = 1.0, coalesce: float = 0.2
    ) -> None:
        self._writer = writer
        self._folder = folder
        self._idle_poll = idle_poll
        # After a wake-up, wait this long so one pass folds many alerts, not one per request.
        self._coalesce = coalesce
        self._wake = threading.Event()
        self._batch_waiting = False  # a whole batch was stored: no need to wait for more
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="casefold-folding", daemon=True)
        self.folded = 0
        self._fold_stored_after = 0.0  # fold_stored is paused until then (monotonic)
        self._caught_up = False  # fold_stored left nothing pending: its batch's wake-up is moot

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)

    def wake(self, *, batch: bool = False) -> None:
        """Alerts were stored; `batch`: many at once (the tailer's), so fold them right away."""
        if batch:
            if self._caught_up:
                self._caught_up = False
                return
            self._batch_waiting = True
        self._wake.set()

    def drain(self) -> int:
        """Fold until nothing is pending; returns how many alerts were folded (used by the CLI)."""
        total = 0
        while True:
            res: FoldResult = self._writer.run(self._folder.fold_pending, background=True)
            total += res.alerts
            if res.alerts < self._folder.batch_size:
                return total

    def fold_stored(self, conn: Connection, stored: int) -> None:
        """Fold up to `stored` pending alerts in the caller's writer transaction (the tailer's,
        right after it stored them), unless acknowledgements are waiting on the writer: then the
        loop folds them in small slices.

        Without a savepoint (SQLite copies every page a savepoint's changes touch): a failure
        fails the caller's transaction, which is tried again without folding for a while, and
        the loop folds those alerts in transactions of their own.
        """
        self._caught_up = False
        if time.monotonic() < self._fold_stored_after or self._slice() < self._folder.batch_size:
            return
        # One more than was stored: if fewer come back, nothing else is pending.
        limit = min(stored, self._folder.batch_size) + 1
        try:
            res = self._folder.fold_pending(conn, limit)
        except Exception:
            self._fold_stored_after = time.monotonic() + FOLD_STORED_PAUSE
            log.exception("folding a stored batch failed; the folding loop will fold it")
            raise
        self.folded += res.alerts
        self._caught_up = res.alerts < limit

    def _slice(self) -> int:
        if time.monotonic() - self._writer.last_foreground < BUSY_WINDOW:
            return min(BUSY_SLICE, self._folder.batch_size)
        return self._folder.batch_size

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self._idle_poll) and not self._batch_waiting:
                self._stop.wait(self._coalesce)
            self._wake.clear()
            self._batch_waiting = False
            try:
                while not self._stop.is_set():
                    limit = self._slice()
                    res: FoldResult = self._writer.run(
                        lambda conn, n=limit: self._folder.fold_pending(conn, n),
                        background=True,
                        timeout=None,
                    )
                    self.folded += res.alerts
                    if res.alerts < limit:
                        break
            except Exception:  # keep folding alive; the alerts stay pending and are retried
                log.exception("folding failed; will retry")
                self._stop.wait(1.0)

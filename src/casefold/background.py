"""A background thread that works in passes: at once again while there is work, otherwise
after `poll_seconds` or as soon as someone calls `wake()`. Used by automatic enrichment and
the outbox's delivery worker."""

from __future__ import annotations

import logging
import threading

from casefold.store.leader import LeaderLock

log = logging.getLogger("casefold")


class PassLoop:
    thread_name = "casefold-loop"
    failure_message = "background pass failed; trying again shortly"

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._pass = threading.Lock()  # one pass at a time: the thread's, or drain()'s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set for loops that must run in one process at a time (PostgreSQL, many workers).
        self.leader: LeaderLock | None = None

    def run_once(self) -> int:
        """One pass; how much it did (0: nothing to do)."""
        with self._pass:
            return self.work()

    def work(self) -> int:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def enabled(self) -> bool:
        return True

    def drain(self, max_passes: int = 100_000) -> int:
        """Pass until there is nothing left to do now (tests and commands); how much was done."""
        total = 0
        for _ in range(max_passes):
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    def start(self) -> None:
        if not self.enabled() or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.leader is not None:
            self.leader.release()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.leader is not None and not self.leader.hold():
                self._stop.wait(self.poll_seconds)  # another process runs it; ask again later
                continue
            try:
                done = self.run_once()
            except Exception:  # keep going after a store hiccup; say what happened
                log.exception(self.failure_message)
                done = 0
            if not done:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

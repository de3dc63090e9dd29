"""The ExtraHop safety net: poll the detection REST API by mod_time and store what changed.

Pushing (the trigger) is the fast path; anything it failed to deliver (a full ODS queue,
Casefold down) turns up at the next poll. A polled detection gives the same alert id as the
pushed one for the same detection version, so nothing is stored twice. The cursor starts
`lookback` before start-up and lives in memory: after a restart the lookback window is read
again, and duplicates are dropped by the alert key.
"""

from __future__ import annotations

import logging
import threading
import time

from casefold.connectors.extrahop import ExtraHop
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import SourceParser, receive
from casefold.sources.extrahop import parse_extrahop_detection
from casefold.store.leader import LeaderLock
from casefold.store.writer import Writer

log = logging.getLogger("casefold.intake")


class ExtraHopPoller:
    def __init__(
        self,
        client: ExtraHop,
        writer: Writer,
        parse: SourceParser = parse_extrahop_detection,
        *,
        interval: float,
        lookback: float = 3600.0,
        on_stored: object = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.parse = parse
        self.interval = interval
        self.cursor = int((time.time() - lookback) * 1000)
        self.seen: set[int] = set()
        self.on_stored = on_stored
        self.stored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.leader: LeaderLock | None = None  # one poller across processes

    def poll_once(self) -> int:
        """Fetch what changed since the cursor and store it; return how many were new."""
        detections, cursor = self.client.poll_since(self.cursor, self.seen)
        if detections:
            parsed = Parsed([Item(i, d) for i, d in enumerate(detections)], single=False)
            result = receive(parsed, self.parse, self.writer)
            self.stored += result.accepted
            if result.rejected:
                log.warning("extrahop poll: %d detection(s) refused", result.rejected)
            if result.accepted and callable(self.on_stored):
                self.on_stored()
        self.cursor = cursor
        return len(detections)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="casefold-extrahop-poll", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.leader is not None:
            self.leader.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.leader is not None and not self.leader.hold():
                self._stop.wait(self.interval)  # another process polls
                continue
            try:
                self.poll_once()
            except Exception as exc:  # ExtraHop down: the next round tries again
                log.warning("extrahop poll failed: %s", exc)
            self._stop.wait(self.interval)

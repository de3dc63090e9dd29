"""Delivering outbox effects: claim, call the target, record the answer.

A handler gets an effect's payload and returns `Delivered`: the result to keep and, optionally,
a write to make in the same transaction that marks the effect done (link the case to the issue
just created, queue the detection update that carries the ticket id). A handler that fails
raises: a retryable ProviderError comes back after an exponential back-off with jitter (or the
provider's Retry-After); a refusal (400, 401, 404 …) or a spent attempt budget makes the effect
dead, with its reason, until someone retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from casefold.background import PassLoop
from casefold.connectors.http import ProviderError, QuotaExceeded
from casefold.metrics import OUTBOX_DELIVERIES
from casefold.outbox import store
from casefold.store.writer import Writer

log = logging.getLogger("casefold.outbox")


@dataclass
class Delivered:
    result: Any = None
    record: Callable[[Connection], None] | None = None  # written with the "done" mark


@dataclass(frozen=True)
class Attempt:
    """What a handler knows of the effect it delivers."""

    id: int
    kind: str
    case_id: int | None
    payload: dict[str, Any]
    attempt: int  # 1 for the first; >1 means an earlier attempt may have reached the target


Handler = Callable[[Attempt], Delivered]


class RetryLater(Exception):
    """A handler cannot deliver yet (e.g. the issue it comments on is not created)."""

    def __init__(self, message: str, seconds: float = 30.0) -> None:
        super().__init__(message)
        self.seconds = seconds


class DeliveryWorker(PassLoop):
    thread_name = "casefold-outbox"
    failure_message = "outbox delivery pass failed; trying again shortly"

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        handlers: Mapping[str, Handler],
        *,
        batch: int = 20,
        poll_seconds: float = 0.5,
        lease: timedelta = timedelta(minutes=5),
        retry_base: float = store.BASE_DELAY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.retry_base = retry_base
        super().__init__(poll_seconds)
        self.engine = engine
        self.writer = writer
        self.handlers = dict(handlers)
        self.batch = batch
        self.lease = lease
        self.clock = clock or (lambda: datetime.now(UTC))
        self.delivered = 0

    def enabled(self) -> bool:
        return bool(self.handlers)

    def work(self) -> int:
        """Claim a batch of due effects and deliver them one by one, each while its lease holds."""

        def claim(conn: Connection) -> tuple[datetime, list[Any]]:
            now = self.clock()  # why: taken in the job, the lease starts when the claim does
            rows = store.claim(conn, now, limit=self.batch, lease=self.lease, kinds=self.handlers)
            return now + self.lease, rows

        lease_until, rows = self.writer.run(
            claim,
            timeout=None,
            # No client waits on deliveries. In the foreground lane this twice-a-second claim
            # counted as client traffic, and folding shrank to 8-alert slices for good.
            background=True,
        )
        for done, row in enumerate(rows):
            # Past half its lease, an effect may be taken by another worker before this one's
            # call ends, and both would act: hand the rest of the batch back instead.
            if self.clock() >= lease_until - self.lease / 2:
                rest = [r.id for r in rows[done:]]
                self.writer.run(
                    lambda conn, rest=rest: store.release(conn, rest, lease_until),
                    timeout=None,
                    background=True,
                )
                break
            self._deliver(row)
        return len(rows)

    def _deliver(self, row: Any) -> None:
        handler = self.handlers.get(row.kind)
        attempt = Attempt(row.id, row.kind, row.case_id, dict(row.payload), row.attempts + 1)
        try:
            if handler is None:
                raise ProviderError(row.target, f"no handler for {row.kind} in this process")
            outcome = handler(attempt)
        except QuotaExceeded as exc:
            wait = exc.retry_after if exc.retry_after is not None else self._backoff(row)
            self._failed(row, str(exc), max(wait, 1.0))
            return
        except RetryLater as exc:
            self._failed(row, str(exc), exc.seconds)
            return
        except ProviderError as exc:
            self._failed(row, str(exc), self._backoff(row) if exc.retryable else None)
            return
        except Exception as exc:  # a bug or an unexpected answer: worth a later attempt
            log.exception("outbox effect %s (%s) failed", row.id, row.kind)
            self._failed(row, f"{type(exc).__name__}: {exc}", self._backoff(row))
            return
        now = self.clock()

        def job(conn: Connection) -> None:
            if outcome.record is not None:
                outcome.record(conn)
            store.mark_done(conn, row.id, outcome.result, now)

        self.writer.run(job, timeout=None, background=True)
        self.delivered += 1
        OUTBOX_DELIVERIES.labels(row.kind, "done").inc()

    def _backoff(self, row: Any) -> float:
        return store.backoff(row.attempts + 1, self.retry_base)

    def _failed(self, row: Any, error: str, retry_in: float | None) -> None:
        now = self.clock()
        state = self.writer.run(
            lambda conn: store.mark_failed(conn, row.id, error, now, retry_in=retry_in),
            timeout=None,
            background=True,
        )
        OUTBOX_DELIVERIES.labels(row.kind, "dead" if state == "dead" else "retry").inc()
        level = logging.WARNING if state == "dead" else logging.INFO
        log.log(level, "outbox effect %s (%s) %s: %s", row.id, row.kind, state, error)

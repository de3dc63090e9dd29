"""Per-provider lookup budgets: N calls per minute, hour or day, kept across restarts.

A provider's free tier is a daily allowance (CrowdSec's community key: 50 lookups a day). The
budget is spent before a call is made, so a flood of alerts can never overspend it; when it is
gone, lookups report "skipped: budget" until the window turns. A 429 from the provider (its own
count disagrees with ours) closes the provider for the Retry-After it gave, or until the end of
its longest window.

Windows are fixed UTC calendar windows. Usage is written to the store in the background (losing
the last few counts in a crash costs at most that many lookups); each process keeps its own
count between writes, so several worker processes can together overspend by the calls in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from casefold.store.db import dialect_insert
from casefold.store.tables import provider_budgets
from casefold.store.writer import Writer

Period = Literal["minute", "hour", "day"]
_LENGTH: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


@dataclass(frozen=True)
class Limit:
    calls: int
    per: Period


def window_start(period: str, now: datetime) -> datetime:
    if period == "minute":
        return now.replace(second=0, microsecond=0)
    if period == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class _Window:
    start: datetime
    used: int


class Budgets:
    def __init__(
        self,
        limits: dict[str, Iterable[Limit]],
        engine: Engine | None = None,
        writer: Writer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.limits = {name: tuple(ls) for name, ls in limits.items()}
        self.engine = engine
        self.writer = writer
        self.clock = clock or (lambda: datetime.now(UTC))
        self._windows: dict[tuple[str, str], _Window] = {}
        self._closed_until: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._loaded = False

    def _load(self) -> None:
        if self._loaded or self.engine is None:
            self._loaded = True
            return
        with self.engine.connect() as conn:
            rows = conn.execute(select(provider_budgets)).all()
        with self._lock:
            for row in rows:
                key = (row.provider, row.period)
                if key not in self._windows:
                    self._windows[key] = _Window(_utc(row.window_start), int(row.used))
            self._loaded = True

    def spend(self, provider: str) -> str | None:
        """Take one call from the provider's budget: None if granted, else why not."""
        if not self._loaded:
            self._load()
        now = self.clock()
        with self._lock:
            closed = self._closed_until.get(provider)
            if closed is not None:
                if closed > now:
                    return "quota"
                del self._closed_until[provider]
            limits = self.limits.get(provider, ())
            windows = []
            for limit in limits:
                start = window_start(limit.per, now)
                win = self._windows.get((provider, limit.per))
                if win is None or win.start != start:
                    win = self._windows[(provider, limit.per)] = _Window(start, 0)
                if win.used >= limit.calls:
                    return "budget"
                windows.append((limit.per, win))
            for _, win in windows:
                win.used += 1
            snapshot = [(per, win.start, win.used) for per, win in windows]
        if snapshot and self.writer is not None:
            self.writer.submit(lambda conn: self._store(conn, provider, snapshot), background=True)
        return None

    def close(self, provider: str, retry_after: float | None) -> None:
        """The provider said 429: ask it nothing more until Retry-After or its longest window."""
        now = self.clock()
        if retry_after is not None:
            until = now + timedelta(seconds=retry_after)
        else:
            limits = self.limits.get(provider, ())
            longest = max((_LENGTH[lim.per] for lim in limits), default=_LENGTH["hour"])
            period = next((p for p, d in _LENGTH.items() if d == longest), "hour")
            until = window_start(period, now) + longest
        with self._lock:
            self._closed_until[provider] = until

    def status(self, provider: str) -> dict[str, object]:
        """Budget left per window, and whether the provider closed itself with a 429."""
        if not self._loaded:
            self._load()
        now = self.clock()
        out: dict[str, object] = {}
        with self._lock:
            for limit in self.limits.get(provider, ()):
                win = self._windows.get((provider, limit.per))
                used = (
                    win.used if win is not None and win.start == window_start(limit.per, now) else 0
                )
                out[limit.per] = {"limit": limit.calls, "used": used}
            closed = self._closed_until.get(provider)
            if closed is not None and closed > now:
                out["closed_until"] = closed.isoformat()
        return out

    @staticmethod
    def _store(conn: Connection, provider: str, snapshot: list[tuple[str, datetime, int]]) -> None:
        for period, start, used in snapshot:
            stmt = dialect_insert(conn, provider_budgets).values(
                provider=provider, period=period, window_start=start, used=used
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["provider", "period"],
                    set_={"window_start": stmt.excluded.window_start, "used": stmt.excluded.used},
                )
            )

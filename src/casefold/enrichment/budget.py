"""Per-provider lookup budgets: N calls per minute, hour or day, kept across restarts.

A provider's free tier is a daily allowance (CrowdSec's community key: 50 lookups a day). The
budget is spent before a call is made, so a flood of alerts can never overspend it; when it is
gone, lookups report "skipped: budget" until the window turns. A 429 from the provider (its own
count disagrees with ours) closes the provider for the Retry-After it gave, or until the end of
its longest window.

Windows are fixed UTC calendar windows. On SQLite (one process) usage is counted in memory and
written to the store in the background: a crash loses at most the last few counts. On PostgreSQL
several worker processes share one allowance, so each call is spent in the store itself by one
conditional upsert per window, all windows in one transaction: two processes can never both take
the last call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, case, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
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
        now = self.clock()
        if self.shared:
            return self._spend_shared(provider, now)
        if not self._loaded:
            self._load()
        with self._lock:
            if self._is_closed(provider, now):
                return "quota"
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

    @property
    def shared(self) -> bool:
        """Whether other processes spend the same allowance (a PostgreSQL store)."""
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    def _is_closed(self, provider: str, now: datetime) -> bool:
        closed = self._closed_until.get(provider)
        if closed is not None:
            if closed > now:
                return True
            del self._closed_until[provider]
        return False

    def _spend_shared(self, provider: str, now: datetime) -> str | None:
        with self._lock:
            if self._is_closed(provider, now):
                return "quota"
        limits = self.limits.get(provider, ())
        if not limits:
            return None
        assert self.engine is not None
        col = provider_budgets.c
        with self.engine.connect() as conn, conn.begin() as tx:
            for limit in limits:
                start = window_start(limit.per, now)
                stmt = pg_insert(provider_budgets).values(
                    provider=provider, period=limit.per, window_start=start, used=1
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[col.provider, col.period],
                    set_={
                        "window_start": start,
                        "used": case((col.window_start == start, col.used + 1), else_=1),
                    },
                    # No row comes back when this window is spent: the whole spend is undone.
                    where=or_(col.window_start != start, col.used < limit.calls),
                ).returning(col.used)
                if conn.execute(stmt).first() is None:
                    tx.rollback()
                    return "budget"
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
        if self.shared:
            self._loaded = False  # why: other processes spend too; read what the store says
            self._windows.clear()
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

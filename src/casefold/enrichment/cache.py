"""A TTL cache of threat-intel answers: in memory for speed, in the store so that restarts, other
workers and other processes share it. Negative answers ("unknown to CrowdSec") are cached too,
for a shorter time, because during a flood the same unknown address is asked about again and
again.

Every answer carries its provenance: provider, when it was fetched, and whether it came from the
cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from casefold.store.db import dialect_insert
from casefold.store.tables import enrichment_cache
from casefold.store.writer import Writer


@dataclass(frozen=True)
class Answer:
    value: Any
    negative: bool
    fetched_at: datetime
    expires_at: datetime
    from_cache: bool

    def provenance(self, provider: str) -> dict[str, Any]:
        return {
            "provider": provider,
            "fetched_at": self.fetched_at.isoformat(),
            "from_cache": self.from_cache,
        }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class EnrichmentCache:
    def __init__(
        self,
        engine: Engine | None,
        writer: Writer | None,
        *,
        ttl: timedelta = timedelta(days=1),
        negative_ttl: timedelta = timedelta(hours=1),
        memory_items: int = 50_000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.memory_items = memory_items
        self.clock = clock or (lambda: datetime.now(UTC))
        self._memory: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, provider: str, key: str) -> Answer | None:
        now = self.clock()
        with self._lock:
            hit = self._memory.get((provider, key))
            if hit is not None and hit.expires_at > now:
                self._memory.move_to_end((provider, key))
                self.hits += 1
                return hit
        if self.engine is not None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(enrichment_cache).where(
                        enrichment_cache.c.provider == provider, enrichment_cache.c.key == key
                    )
                ).first()
            if row is not None and _utc(row.expires_at) > now:
                answer = Answer(
                    row.value, bool(row.negative), _utc(row.fetched_at), _utc(row.expires_at), True
                )
                self._remember(provider, key, answer)
                with self._lock:
                    self.hits += 1
                return answer
        with self._lock:
            self.misses += 1
        return None

    def put(
        self,
        provider: str,
        key: str,
        value: Any,
        *,
        negative: bool = False,
        ttl: timedelta | None = None,
    ) -> Answer:
        """Remember a fresh answer (returned with from_cache=False) and store it durably."""
        now = self.clock()
        if ttl is None:
            ttl = self.negative_ttl if negative else self.ttl
        answer = Answer(value, negative, now, now + ttl, False)
        self._remember(provider, key, Answer(value, negative, now, answer.expires_at, True))
        if self.writer is not None:
            # Fire and forget: losing a cache entry costs one lookup, never correctness.
            self.writer.submit(
                lambda conn: self._store(conn, provider, key, answer), background=True
            )
        return answer

    def _remember(self, provider: str, key: str, answer: Answer) -> None:
        with self._lock:
            self._memory[(provider, key)] = answer
            self._memory.move_to_end((provider, key))
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    @staticmethod
    def _store(conn: Connection, provider: str, key: str, answer: Answer) -> None:
        stmt = dialect_insert(conn, enrichment_cache).values(
            provider=provider,
            key=key,
            value=answer.value,
            negative=answer.negative,
            fetched_at=answer.fetched_at,
            expires_at=answer.expires_at,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["provider", "key"],
                set_={
                    "value": stmt.excluded.value,
                    "negative": stmt.excluded.negative,
                    "fetched_at": stmt.excluded.fetched_at,
                    "expires_at": stmt.excluded.expires_at,
                },
            )
        )

"""Failed sign-in counting: after `limit` failures within `window` seconds a key is refused.

In memory, per process: enough to make guessing slow against one server; a restart forgets it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable


class FailureThrottle:
    def __init__(
        self,
        limit: int = 10,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked(self, key: Hashable) -> bool:
        with self._lock:
            times = self._recent(key, self._clock())
            return times is not None and len(times) >= self.limit

    def failed(self, key: Hashable) -> None:
        now = self._clock()
        with self._lock:
            times = self._recent(key, now)
            if times is None:
                if len(self._failures) >= self._max_keys:
                    # Bound memory under a flood of distinct keys; drop the stalest ones.
                    for old in list(self._failures)[: self._max_keys // 10]:
                        del self._failures[old]
                times = self._failures[key] = deque(maxlen=self.limit)
            times.append(now)

    def clear(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)

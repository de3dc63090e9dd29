"""Fold decisions made ahead of folding (by the tailer's helper process, casefold/prefold.py).

A hint only saves work, it never changes the outcome: it is what folding would compute itself
from the same document with the same rules. An alert without one is decided by folding.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from casefold.sources.model import NormalizedAlert


@dataclass(slots=True)
class FoldHint:
    """An alert normalised and decided ahead of folding."""

    alert: NormalizedAlert
    view: bytes  # its normalised view's JSON, as stored
    raw: str  # its document's JSON, as stored
    rule: int | None  # index of the matching rule in the rules; None: no rule matches
    key: str | None


class FoldHints:
    """Decisions made ahead, by dedup key, until folding takes them.

    Bounded: `add` waits up to `wait_seconds` for folding to make room, so the tailer does not
    run far ahead of folding (the file holds what is not read yet); past that, the oldest hints
    are dropped, and folding decides those alerts itself.
    """

    def __init__(self, capacity: int = 10_000, wait_seconds: float = 5.0) -> None:
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self._hints: dict[str, FoldHint] = {}
        self._room = threading.Condition()

    def __len__(self) -> int:
        return len(self._hints)

    def add(self, hints: dict[str, FoldHint]) -> None:
        with self._room:
            self._room.wait_for(
                lambda: len(self._hints) + len(hints) <= self.capacity, self.wait_seconds
            )
            self._hints.update(hints)
            over = len(self._hints) - self.capacity
            if over > 0:
                for key in list(self._hints)[:over]:  # the oldest first: dicts keep order
                    del self._hints[key]

    def take(self, keys: Iterable[str]) -> dict[str, FoldHint]:
        """Remove and return the hints of these dedup keys (those that have one)."""
        with self._room:
            pop = self._hints.pop
            found = {key: hint for key in keys if (hint := pop(key, None)) is not None}
            if found:
                self._room.notify_all()
        return found

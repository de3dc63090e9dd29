"""A monotonic-style clock a test moves by hand."""

from __future__ import annotations


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

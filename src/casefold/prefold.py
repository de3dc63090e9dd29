"""Normalising the tailer's alerts and deciding their folds in a helper process (SQLite).

On SQLite one process does all the writing, and its CPU bounds how fast alerts become cases.
Normalising an alert and matching it against the folding rules need nothing from the store, so
while this process writes, a helper process does that for the tailer's next batch of lines: it
returns the rows with their normalised view, and for each its fold decision (the rule and key),
which wait in `FoldHints`, by dedup key, until folding takes them. An alert without a hint (from
HTTP intake, or one whose hint was dropped) is decided by folding itself, as before: a hint only
saves work, it never changes the outcome, because the helper runs the same rules on the same
document. A dedup key names one alert, so the hint of a line already stored (a duplicate) holds
what the stored alert holds.
"""

from __future__ import annotations

import gc
import logging
import marshal
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from casefold.folding.hints import FoldHint, FoldHints
from casefold.folding.rules import FoldRule, choose
from casefold.intake.lines import LineBatch, PendingBatch, read_lines, read_now
from casefold.intake.persist import ALERT_COLUMNS
from casefold.sources.alert_files import Overlong
from casefold.sources.model import NormalizedAlert, Observable
from casefold.sources.normalized import encode_normalized
from casefold.sources.wazuh import parse_wazuh_alert

log = logging.getLogger("casefold.folding")


# -- in the helper process ----------------------------------------------------------------------

_rules: list[FoldRule] = []

# The rows and hints cross between the processes as marshal's plain tuples: pickling the rows'
# times and the alert dataclasses cost the tailer's process more than normalising them itself.
# The row's columns but its two times: `time_utc` travels as the alert's, `received_at` is set
# on arrival.
_ROW_KEYS = tuple(c for c in ALERT_COLUMNS if c not in ("time_utc", "received_at"))
_ALERT_FIELDS = tuple(NormalizedAlert.__dataclass_fields__)
_TIME = _ALERT_FIELDS.index("time_utc")
_OBSERVABLES = _ALERT_FIELDS.index("observables")


def _start_helper(rules: list[FoldRule]) -> None:
    _rules[:] = rules
    # Few reference cycles are made here; default thresholds collected every few batches.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _pack(alert: NormalizedAlert) -> tuple[Any, ...]:
    values = [getattr(alert, name) for name in _ALERT_FIELDS]
    values[_TIME] = alert.time_utc.isoformat()
    values[_OBSERVABLES] = [(o.type, o.value, o.field, o.kind, o.public) for o in alert.observables]
    return tuple(values)


def _unpack(values: list[Any]) -> NormalizedAlert:
    values[_TIME] = datetime.fromisoformat(values[_TIME])
    values[_OBSERVABLES] = [Observable(*o) for o in values[_OBSERVABLES]]
    return NormalizedAlert(*values)


def prefold_lines(
    lines: list[bytes | Overlong], start: int, max_line_bytes: int
) -> tuple[LineBatch, bytes]:
    """`read_lines`, with every row normalised in full and decided by the rules: the batch
    without its rows, and the rows and their hints (marshal)."""
    batch = read_lines(lines, start, max_line_bytes, parse_wazuh_alert, keep=True)
    prepared = batch.prepared
    if prepared is None:
        return batch, marshal.dumps(())
    index = {id(rule): i for i, rule in enumerate(_rules)}
    packed = []
    for row, (alert, doc) in zip(prepared.rows, prepared.kept, strict=True):
        alert, view = encode_normalized(alert)
        row["normalized"] = view
        decision = choose(_rules, alert, doc)
        packed.append(
            (
                tuple(row[key] for key in _ROW_KEYS),
                _pack(alert),
                index[id(decision.rule)] if decision is not None else None,
                decision.key if decision is not None else None,
            )
        )
    # Only the counts go back with the batch: the rows travel packed, and the per-item results
    # and documents are not used by the tailer.
    prepared.rows, prepared.kept, prepared.slots, prepared.result.results = [], [], [], []
    return batch, marshal.dumps(packed)


def unpack_rows(batch: LineBatch, packed: bytes) -> dict[str, FoldHint]:
    """Put the rows back into `batch`; return their hints."""
    hints: dict[str, FoldHint] = {}
    if batch.prepared is None:
        return hints
    rows = batch.prepared.rows
    now = datetime.now(UTC)
    for values, alert_values, rule, key in marshal.loads(packed):
        row = dict(zip(_ROW_KEYS, values, strict=True))
        alert = _unpack(list(alert_values))
        view = row["normalized"]
        row["normalized"] = orjson.Fragment(view)
        row["time_utc"] = alert.time_utc
        row["received_at"] = now
        rows.append(row)
        hints[row["dedup_key"]] = FoldHint(alert, view, row["raw"], rule, key)
    return hints


# -- in the tailer's process -----------------------------------------------------------------------


class Prefolder:
    """The tailer's `submit_batch`: each batch read in the helper process, its hints kept for
    folding. If the helper dies, the tailer reads its batches itself from then on."""

    def __init__(self, rules: list[FoldRule], hints: FoldHints) -> None:
        self.hints = hints
        # spawn, not fork: this process has threads (the writer's, uvicorn's) whose locks a fork
        # would copy mid-use.
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_helper,
            initargs=(rules,),
        )

    def __call__(
        self, lines: list[bytes | Overlong], start: int, max_line_bytes: int
    ) -> PendingBatch:
        if self._pool is None:
            return read_now(lines, start, max_line_bytes)
        try:
            future = self._pool.submit(prefold_lines, lines, start, max_line_bytes)
        except BrokenProcessPool as exc:
            self._failed(exc)
            return read_now(lines, start, max_line_bytes)
        return _HelperBatch(self, future, lines, start, max_line_bytes)

    def _failed(self, exc: BaseException) -> None:
        # Whatever went wrong (the helper killed, unable to start), reading stays possible here.
        # Said once: the batches read ahead fail with it.
        if self._pool is not None:
            log.error(
                "the fold helper failed (%s); the tailer reads its lines itself from now on", exc
            )
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class _HelperBatch:
    prefolder: Prefolder
    future: Future[tuple[LineBatch, bytes]]
    lines: list[bytes | Overlong]
    start: int
    max_line_bytes: int

    def result(self) -> LineBatch:
        try:
            batch, packed = self.future.result()
        except Exception as exc:
            self.prefolder._failed(exc)
            return read_lines(self.lines, self.start, self.max_line_bytes)
        self.prefolder.hints.add(unpack_rows(batch, packed))
        return batch

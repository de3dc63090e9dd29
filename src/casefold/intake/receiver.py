"""From a parsed body to receipts: validate each item with its source's parser, store the good ones.

Validation happens before the write, so a bad item never leaves a half-written record; the good
items of a batch are stored in one transaction and acknowledged only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from casefold.errors import InvalidAlertError, InvalidInputError
from casefold.intake.body import Parsed
from casefold.intake.persist import Receipt, alert_row, store_alerts, store_alerts_counted
from casefold.metrics import count_intake
from casefold.sources.model import NormalizedAlert
from casefold.store.writer import Writer

SourceParser = Callable[[Any], NormalizedAlert]


@dataclass
class IntakeResult:
    results: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "results": self.results,
        }


def _item_error(index: int, line: int | None, err: InvalidInputError) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "error": err.to_dict()}
    if line is not None:
        out["line"] = line
    return out


@dataclass
class Prepared:
    """Validated rows ready for the writer, and where each one's receipt goes."""

    result: IntakeResult
    rows: list[dict[str, Any]]
    slots: list[int]
    # With prepare(keep=True): each row's alert, as the parser made it, and its document.
    kept: list[tuple[NormalizedAlert, Any]] = field(default_factory=list)

    def store(self, conn: Connection) -> list[Receipt]:
        return store_alerts(conn, self.rows)

    def store_counted(self, conn: Connection) -> int:
        """Store without receipts (file intake); returns how many alerts were new."""
        return store_alerts_counted(conn, self.rows)

    def finish_counted(self, stored: int) -> IntakeResult:
        """Account for a `store_counted`: per-item ids are unknown, the totals are exact."""
        self.result.accepted += stored
        self.result.duplicates += len(self.rows) - stored
        return self._counted()

    def finish(self, receipts: list[Receipt]) -> IntakeResult:
        for slot, receipt in zip(self.slots, receipts, strict=True):
            self.result.results[slot].update(id=receipt.id, duplicate=receipt.duplicate)
            if receipt.duplicate:
                self.result.duplicates += 1
            else:
                self.result.accepted += 1
        return self._counted()

    def _counted(self) -> IntakeResult:
        """Count the finished batch for /metrics: every intake path finishes here, once.

        Under its first alert's source (a parser gives one source); a batch with no valid alert
        names none and is counted as "unknown"."""
        r = self.result
        source = self.rows[0]["source"] if self.rows else "unknown"
        count_intake(source, r.accepted, r.duplicates, r.rejected)
        return r


def receive(parsed: Parsed, parse: SourceParser, writer: Writer) -> IntakeResult:
    """Validate, store and account for every item, blocking until the commit (CLI and tests)."""
    prepared = prepare(parsed, parse)
    return prepared.finish(writer.run(prepared.store) if prepared.rows else [])


def prepare(
    parsed: Parsed, parse: SourceParser, *, complete: bool = True, keep: bool = False
) -> Prepared:
    """Validate every item; nothing is written here.

    `complete=False` (file intake, with a header parser): rows leave the normalised view to
    folding, see `alert_row`. `keep`: also keep each row's alert and document (`Prepared.kept`).
    """
    result = IntakeResult()
    rows: list[dict[str, Any]] = []
    slots: list[int] = []  # position in results of each stored row
    kept: list[tuple[NormalizedAlert, Any]] = []
    now = datetime.now(UTC)
    for item in parsed.items:
        err = item.error
        if err is None:
            if not isinstance(item.doc, dict):
                # A batch item is located by its index; a lone value is the whole body.
                where = "body" if parsed.single else None
                err = InvalidAlertError("an alert must be a JSON object", field=where)
            else:
                try:
                    alert = parse(item.doc)
                    row = alert_row(alert, item.doc, now, text=item.text, complete=complete)
                except InvalidInputError as exc:
                    err = exc
        if err is not None:
            result.rejected += 1
            result.results.append(_item_error(item.index, item.line, err))
            continue
        slots.append(len(result.results))
        result.results.append({"index": item.index})
        rows.append(row)
        if keep:
            kept.append((alert, item.doc))
    return Prepared(result, rows, slots, kept)

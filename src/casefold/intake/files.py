"""Importing alerts.json files into the store (`casefold ingest`): the same validation and duplicate
rules as the HTTP intake, in batches, every batch committed before the next is read.

A line that is not JSON or not an alert is counted with its file and line number and skipped; a
file that breaks off (a truncated gzip) is counted as one bad line, and the next file is read.
Importing the same file twice stores nothing the second time: every alert is a duplicate.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from casefold.errors import InvalidInputError
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import prepare
from casefold.sources.alert_files import numbered_lines
from casefold.sources.wazuh import wazuh_header
from casefold.store.writer import Writer

BATCH = 1000
KEPT_ERRORS = 20


@dataclass
class IngestReport:
    files: int = 0
    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)  # the first KEPT_ERRORS, "file:line: why"

    def bad(self, where: str, why: str) -> None:
        self.rejected += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(f"{where}: {why}")


def ingest_files(
    paths: Iterable[Path],
    writer: Writer,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
) -> IngestReport:
    """Store the alerts of `paths`; raise InvalidInputError before reading when one is missing."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise InvalidInputError(f"no such file: {path}")
    report = IngestReport()
    for path in paths:
        report.files += 1
        pending: list[tuple[int, Item]] = []  # (line number, item) not yet stored
        number = 0
        try:
            for number, line in numbered_lines(path, progress):
                if not line.strip():
                    continue
                report.lines += 1
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    reason = exc.msg.split(":")[0] if exc.msg else "invalid JSON"
                    report.bad(f"{path}:{number}", f"invalid JSON at column {exc.colno}: {reason}")
                    continue
                pending.append((number, Item(len(pending), doc, line=number, text=line)))
                if len(pending) >= batch:
                    _store(path, pending, writer, report)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            report.bad(f"{path}:{number + 1}", f"cannot read further: {exc}")
        _store(path, pending, writer, report)
    return report


def _store(
    path: Path, pending: list[tuple[int, Item]], writer: Writer, report: IngestReport
) -> None:
    """Store one batch in one transaction; account for it; empty `pending`."""
    if not pending:
        return
    parsed = Parsed([item for _, item in pending], single=False)
    prepared = prepare(parsed, wazuh_header, complete=False)  # folding normalises the rest
    stored = writer.run(prepared.store_counted) if prepared.rows else 0
    result = prepared.finish_counted(stored)
    report.stored += result.accepted
    report.duplicates += result.duplicates
    for entry in result.results:
        if "error" in entry:
            line = pending[entry["index"]][0]
            report.bad(f"{path}:{line}", str(entry["error"].get("message")))
    pending.clear()

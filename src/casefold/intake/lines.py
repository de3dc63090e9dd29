"""A batch of alerts.json lines, read into alert rows and rejected lines. Pure: no store here.

The tailer reads its batches with `read_lines` in its own thread, or hands them to a helper
process that does the same and more (casefold/prefold.py); everything here therefore pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import orjson

from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import Prepared, SourceParser, prepare
from casefold.sources.alert_files import HEAD_BYTES, Overlong
from casefold.sources.wazuh import wazuh_header


@dataclass(slots=True)
class RejectedLine:
    offset: int  # where the line begins in the file
    length: int  # without the newline
    reason: str
    head: bytes  # its first bytes, for the excerpt


@dataclass
class LineBatch:
    end: int  # the offset after the batch's last line
    lines: int  # lines counted: blank lines are passed over
    prepared: Prepared | None = None  # the valid alerts' rows
    rejects: list[RejectedLine] = field(default_factory=list)  # in file order


class PendingBatch(Protocol):
    """A batch being read (perhaps in another process); `result()` waits for it."""

    def result(self) -> LineBatch: ...


@dataclass(slots=True)
class ReadBatch:
    """A batch already read."""

    batch: LineBatch

    def result(self) -> LineBatch:
        return self.batch


def read_now(lines: list[bytes | Overlong], start: int, max_line_bytes: int) -> PendingBatch:
    """The tailer's default `submit_batch`: read the batch in the calling thread."""
    return ReadBatch(read_lines(lines, start, max_line_bytes))


def lines_end(lines: list[bytes | Overlong], start: int) -> int:
    """The offset after these lines, which begin at `start`."""
    return start + sum((x.length if isinstance(x, Overlong) else len(x)) + 1 for x in lines)


def read_lines(
    lines: list[bytes | Overlong],
    start: int,
    max_line_bytes: int,
    parse: SourceParser = wazuh_header,
    *,
    keep: bool = False,
) -> LineBatch:
    """Read lines that begin at offset `start`: each a JSON alert, or a rejected line.

    By default only what the store indexes is read (`wazuh_header`); folding normalises the rest.
    `keep` keeps each row's alert and document (see `prepare`)."""
    pos = start
    items: list[Item] = []
    starts: list[int] = []  # where each item's line begins
    rejects: list[RejectedLine] = []
    count = 0
    loads = orjson.loads
    too_long = f"line longer than tail_max_line_bytes ({max_line_bytes} bytes)"
    for index, line in enumerate(lines):
        begin = pos
        if isinstance(line, Overlong):
            pos += line.length + 1
            count += 1
            rejects.append(RejectedLine(begin, line.length, too_long, line.head[:HEAD_BYTES]))
            continue
        pos += len(line) + 1
        if len(line) > max_line_bytes:
            count += 1
            rejects.append(RejectedLine(begin, len(line), too_long, line[:HEAD_BYTES]))
            continue
        try:
            doc = loads(line)
        except orjson.JSONDecodeError as exc:
            if line.strip():  # blank lines are passed over, not counted
                count += 1
                reason = exc.msg.split(":")[0] if exc.msg else "invalid JSON"
                why = f"invalid JSON at column {exc.colno}: {reason}"
                rejects.append(RejectedLine(begin, len(line), why, line[:HEAD_BYTES]))
            continue
        count += 1
        starts.append(begin)
        items.append(Item(len(items), doc, line=index, text=line))
    batch = LineBatch(pos, count, rejects=rejects)
    if not items:
        return batch
    prepared = prepare(Parsed(items, single=False), parse, complete=False, keep=keep)
    if prepared.result.rejected:
        for entry in prepared.result.results:
            if "error" in entry:
                raw = lines[entry["line"]]
                assert isinstance(raw, bytes)
                why = str(entry["error"].get("message"))
                rejects.append(
                    RejectedLine(starts[entry["index"]], len(raw), why, raw[:HEAD_BYTES])
                )
        rejects.sort(key=lambda r: r.offset)
    batch.prepared = prepared
    return batch

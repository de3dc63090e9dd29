"""Following Wazuh's alerts.json (`tail_alerts_json`): every alert line stored once, none lost.

How it stays lossless (wazuh.md §1.2 and §5):
- A file is known by (device, inode), never by name: alerts.json is a hard link that analysisd
  moves to a new dated file at every rotation.
- Only `\\n`-terminated lines are consumed; a partial last line waits until analysisd flushes the
  rest. Lines of any length are read in 1 MiB chunks; one longer than `tail_max_line_bytes` is
  recorded as rejected and skipped without being held in memory.
- Each batch is one writer transaction holding its alerts, its rejected lines and the position
  after its last line (tail_positions), so after a crash the checkpoint and the store agree. The
  transaction first checks that the stored position is where the batch began (compare and set):
  a second process following the same file makes this one reload instead of overwriting. The
  writer commits one batch while the next is read and parsed; only one is ever in flight.
- When alerts.json names another inode, the old file is read to its end once more (analysisd may
  have written to it just before relinking), then the next archive in date order, and so on up
  to the live file, read from its start. After downtime the same walk starts at the checkpoint:
  its archive (plain, or gzipped by monitord: the offset then counts decompressed bytes), every
  later archive, then alerts.json.

Reading a line twice is harmless (the alert's dedup key drops the repeat), so every doubt is
settled by reading again, never by skipping.
"""

from __future__ import annotations

import gzip
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from casefold.config import Settings
from casefold.errors import ConflictError
from casefold.intake.lines import (
    LineBatch,
    PendingBatch,
    ReadBatch,
    RejectedLine,
    lines_end,
    read_now,
)
from casefold.intake.receiver import Prepared
from casefold.sources.alert_files import (
    GZIP_ERRORS,
    HEAD_BYTES,
    Archive,
    LineReader,
    Overlong,
    find_archive,
    last_line_end,
    list_archives,
    parse_archive,
    skip_gzip,
)
from casefold.store.db import dialect_insert
from casefold.store.tables import tail_positions, tail_rejects
from casefold.store.writer import Writer

log = logging.getLogger("casefold.tailer")

EXCERPT_CHARS = 512
MAX_BACKOFF = 30.0  # seconds between tries while following fails
# Batches handed to a helper process ahead of the one being stored: the helper always has the
# next one to read while the writer stores, and neither waits for the tailer's thread.
READ_AHEAD = 2
WRITE_TIMEOUT = 300.0  # a batch waits behind foreground writes; a late commit is caught by the CAS


@dataclass(frozen=True, slots=True)
class Position:
    """A file by identity and the offset after its last consumed line."""

    device: int
    inode: int
    offset: int
    archive: str | None = None  # e.g. "2026/Nov/ossec-alerts-22.json", relative to the alerts dir

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.device, self.inode, self.offset)


@dataclass(frozen=True, slots=True)
class _Stored:
    position: Position
    file_size: int
    updated_at: datetime


class _File(LineReader):
    """A file being read, known by its identity; its lines come from LineReader."""

    def __init__(
        self, label: str, stream: int | gzip.GzipFile, position: Position, max_line: int
    ) -> None:
        super().__init__(stream, position.offset, max_line)
        self.label = label  # the path, for messages and reject rows
        self.device = position.device
        self.inode = position.inode
        self.archive = position.archive
        self.retired = False  # no longer alerts.json: read to its end, then move on

    def position(self) -> Position:
        return self.position_at(self.consumed)

    def position_at(self, offset: int) -> Position:
        return Position(self.device, self.inode, offset, self.archive)


@dataclass
class _Commit:
    """One writer transaction: alerts, rejected lines and the new position, if the stored
    position is still `expected`; otherwise ConflictError and nothing is written."""

    # No fsync of its own (store/writer.py): the file is the durable copy of these alerts, and a
    # power cut undoes them with the checkpoint that covers them, so they are read again.
    durable: ClassVar[bool] = False

    name: str
    expected: Position
    new: Position
    file_size: int
    lines: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    prepared: Prepared | None = None
    # Run in the same transaction once the alerts are in, with how many were new (folding).
    after_store: Callable[[Connection, int], Any] | None = None

    def __call__(self, conn: Connection) -> int:
        """Write it all; return how many alerts were new."""
        tp = tail_positions
        row = conn.execute(
            select(tp.c.device, tp.c.inode, tp.c.offset)
            .where(tp.c.name == self.name)
            .with_for_update()  # PostgreSQL: a second process waits, then sees the new offset
        ).first()
        if row is None or tuple(row) != self.expected.key:
            raise ConflictError(
                f"tail position of {self.name} moved: stored {tuple(row) if row else None}, "
                f"expected {self.expected.key}"
            )
        stored = self.prepared.store_counted(conn) if self.prepared is not None else 0
        if self.rejects:
            conn.execute(tail_rejects.insert(), self.rejects)
        conn.execute(
            update(tp)
            .where(tp.c.name == self.name)
            .values(
                archive=self.new.archive,
                device=self.new.device,
                inode=self.new.inode,
                offset=self.new.offset,
                file_size=self.file_size,
                lines=tp.c.lines + self.lines,
                bad_lines=tp.c.bad_lines + len(self.rejects),
                updated_at=datetime.now(UTC),
            )
        )
        if stored and self.after_store is not None:
            self.after_store(conn, stored)
        return stored


class AlertsTailer:
    """Follows one alerts.json into the store; `start()` runs it in a thread."""

    def __init__(
        self,
        path: Path,
        writer: Writer,
        *,
        start: Literal["beginning", "end"] = "beginning",
        poll_seconds: float = 0.25,
        batch_lines: int = 2000,
        max_line_bytes: int = 64 * 1024 * 1024,
        on_stored: Callable[[], None] | None = None,
        name: str | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.alerts_dir = self.path.parent
        self.name = name or f"{socket.gethostname()}:{self.path}"
        self.writer = writer
        self.start_at = start
        self.poll_seconds = poll_seconds
        self.batch_lines = batch_lines
        self.max_line_bytes = max_line_bytes
        self.on_stored = on_stored
        # Reads a batch of lines into rows: in this thread, or replaced by one that hands the
        # batch to a helper process (casefold/prefold.py) while the batch before it is stored.
        self.submit_batch: Callable[[list[bytes | Overlong], int, int], PendingBatch] = read_now
        # Called in each batch's transaction after its alerts are stored (the runtime folds them
        # there: one transaction and one write of each alert instead of two).
        self.after_store: Callable[[Connection, int], Any] | None = None
        # Batches being read from the open file (oldest first), each with the offset after it.
        self._reading: deque[tuple[PendingBatch, int]] = deque()
        self.today = today  # local date: analysisd names its archives by local time
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self._file: _File | None = None
        # The batch being committed while the next is parsed, and what to do once it is.
        self._inflight: tuple[Future[int], Callable[[int], None]] | None = None
        self._waiting = False  # logged that the path is missing
        self._failures = 0  # failed steps in a row (the loop backs off)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, writer: Writer, *, on_stored: Callable[[], None] | None = None
    ) -> AlertsTailer:
        assert settings.tail_alerts_json is not None
        return cls(
            settings.tail_alerts_json,
            writer,
            start=settings.tail_start,
            poll_seconds=settings.tail_poll_seconds,
            batch_lines=settings.tail_batch_lines,
            max_line_bytes=settings.tail_max_line_bytes,
            on_stored=on_stored,
        )

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="casefold-tailer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._lock:
            try:
                self._settle()
            except Exception as exc:  # the store's checkpoint is right either way
                log.warning("the last batch of %s was not stored: %s", self.path, exc)
            self._close()

    def catch_up(self) -> None:
        """Read until nothing more can be read now, rotations included (tests, the CLI)."""
        while self.step():
            pass

    def step(self) -> bool:
        """Do one unit of work (a batch, a file switch); False when there is nothing to do."""
        with self._lock:
            try:
                busy = self._step()
                if not busy:
                    self._settle()  # idle: what was read is committed before we wait
                return busy
            except BaseException:
                try:
                    self._settle()
                except Exception:  # reported by the step that failed first
                    pass
                self._close()  # the store's checkpoint says where to read next
                raise

    def _run(self) -> None:
        last_error = ""
        while not self._stop.is_set():
            try:
                busy = self.step()
            except ConflictError as exc:
                log.warning("%s; reading on from the stored position", exc)
                busy = False
            except Exception as exc:  # the store or the file system: tried again, backing off
                self._failures += 1
                if str(exc) != last_error:  # a lasting failure (permissions) is logged once
                    last_error = str(exc)
                    log.error("following %s failed: %s", self.path, exc)
                self._stop.wait(min(MAX_BACKOFF, self.poll_seconds * 2 ** min(self._failures, 10)))
                continue
            if self._failures:
                self._failures, last_error = 0, ""
                log.info("following %s again", self.path)
            if not busy:
                self._stop.wait(self.poll_seconds)

    def _close(self) -> None:
        self._reading.clear()  # read again from the checkpoint, with the file
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- one step --------------------------------------------------------------------------------

    def _step(self) -> bool:
        f = self._file
        if f is None:
            return self._open()
        lines = f.take(self.batch_lines)
        if lines:
            reading = self._reading
            start = reading[-1][1] if reading else f.consumed
            pending = self.submit_batch(lines, start, self.max_line_bytes)
            if isinstance(pending, ReadBatch) and not reading:  # read here: store it now
                self._consume(f, pending.batch)
                return True
            # Read elsewhere: the next batches are read while this one is stored.
            reading.append((pending, lines_end(lines, start)))
            if len(reading) > READ_AHEAD:
                self._consume(f, reading.popleft()[0].result())
            return True
        if self._reading:  # the file's end for now: store what is being read
            self._consume(f, self._reading.popleft()[0].result())
            return True
        if f.retired:
            return self._next_file(f)
        if f.compressed:  # an archive never grows
            f.retired = True
            return True
        live = self._stat()
        if live is None:  # between analysisd's unlink and link, or gone: wait
            return False
        if (live.st_dev, live.st_ino) != (f.device, f.inode):
            # Rotated. Read the old inode once more to its end: analysisd may have written to it
            # after our last read and before relinking.
            f.retired = True
            return True
        if live.st_size < f.read_pos:
            log.warning(
                "%s shrank from %d to %d bytes (truncated in place): reading it again from 0",
                self.path,
                f.read_pos,
                live.st_size,
            )
            self._commit(_Commit(self.name, f.position(), f.position_at(0), live.st_size))
            f.rewind()
            return True
        return False

    def _consume(self, f: _File, batch: LineBatch) -> None:
        """Store one batch of lines (read from `f.consumed` on) and the position after it, in one
        transaction."""
        prepared = batch.prepared
        rejects = [self._reject(f, r) for r in batch.rejects]
        pos = batch.end
        job = _Commit(
            self.name,
            f.position(),
            f.position_at(pos),
            f.size(),
            lines=batch.lines,
            rejects=rejects,
            prepared=prepared if prepared is not None and prepared.rows else None,
            after_store=self.after_store,
        )
        label = f.label

        def committed(new: int) -> None:
            if prepared is not None:
                prepared.finish_counted(new)
                self.stored += new
                self.duplicates += len(prepared.rows) - new
            if rejects:
                self.rejected += len(rejects)
                first = rejects[0]
                log.warning(
                    "%s: %d bad line(s) recorded in tail_rejects; the first at offset %d: %s",
                    label,
                    len(rejects),
                    first["offset"],
                    first["reason"],
                )

        # The writer commits this batch while the next one is read and parsed. Only one is in
        # flight: if it fails, the next never starts, and the file is reopened at the checkpoint.
        self._settle()
        future = self.writer.submit(job, background=True)
        if prepared is not None and prepared.rows and self.on_stored is not None:
            future.add_done_callback(self._stored)
        self._inflight = (future, committed)
        f.consumed = pos

    def _stored(self, future: Future[int]) -> None:
        # In the writer's thread, the moment the batch is committed: folding need not wait until
        # this thread settles the batch, once the next one is read.
        if not future.cancelled() and future.exception() is None and future.result():
            assert self.on_stored is not None
            self.on_stored()

    def _reject(self, f: _File, line: RejectedLine) -> dict:
        # PostgreSQL text cannot hold NUL, and a garbage line may.
        head = line.head[:HEAD_BYTES].decode("utf-8", "replace")
        excerpt = head[:EXCERPT_CHARS].replace("\x00", "\ufffd")
        return {
            "name": self.name,
            "file": f.label,
            "inode": f.inode,
            "offset": line.offset,
            "length": line.length,
            "reason": line.reason.replace("\x00", "\ufffd"),
            "excerpt": excerpt,
            "at": datetime.now(UTC),
        }

    def _commit(self, job: _Commit) -> int:
        self._settle()
        # Background: a sender waiting for its acknowledgement goes first.
        return self.writer.run(job, WRITE_TIMEOUT, background=True)

    def _settle(self) -> None:
        """Wait for the batch in flight; raise what its transaction raised."""
        if self._inflight is not None:
            fut, committed = self._inflight
            self._inflight = None
            committed(fut.result(WRITE_TIMEOUT))

    # -- where to read ---------------------------------------------------------------------------

    def _open(self) -> bool:
        """Open the file the checkpoint names (making one if there is none)."""
        stored = self._load()
        if stored is None:
            if not self._create_checkpoint():
                return False
            stored = self._load()
            assert stored is not None
        pos = stored.position
        live = self._stat()
        if live is None:
            return False
        if (live.st_dev, live.st_ino) == (pos.device, pos.inode) and self._same_archive(pos):
            return self._open_live(pos)
        # alerts.json moved on while we were not reading: finish the checkpoint's file first.
        if pos.archive is None:
            since = _local_day(stored.updated_at)
            log.warning(
                "the checkpoint's file (inode %d) is no longer %s and its archive is unknown: "
                "reading every archive from %s on (again), then %s",
                pos.inode,
                self.path.name,
                since,
                self.path.name,
            )
            return self._switch(pos, next(iter(list_archives(self.alerts_dir, since)), None))
        archive = parse_archive(pos.archive)
        f = self._open_archived(pos)
        if f is not None:
            log.info(
                "%s rotated since the checkpoint: reading %s from offset %d first",
                self.path,
                f.label,
                pos.offset,
            )
            self._file = f
            return True
        if archive is not None and (self.alerts_dir / archive.name).exists():
            log.warning(
                "%s is not the checkpoint's file (inode %d): reading it from its start",
                self.alerts_dir / archive.name,
                pos.inode,
            )
            return self._switch(pos, archive)
        log.warning(
            "%s is gone (neither it nor its .gz exists): the alerts after its offset %d may be "
            "missed (%d bytes were unread at the last checkpoint); reading the later archives",
            self.alerts_dir / pos.archive,
            pos.offset,
            max(0, stored.file_size - pos.offset),
        )
        return self._switch(pos, self._next_archive(pos.archive))

    def _create_checkpoint(self) -> bool:
        """The first position: the live file's start, or its end (after the last newline)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._log_waiting()
            return False
        try:
            st = os.fstat(fd)
            offset = 0 if self.start_at == "beginning" else last_line_end(fd, st.st_size)
        finally:
            os.close(fd)
        archive = find_archive(self.alerts_dir, st.st_dev, st.st_ino, self._days())
        values = {
            "name": self.name,
            "path": str(self.path),
            "archive": archive,
            "device": st.st_dev,
            "inode": st.st_ino,
            "offset": offset,
            "file_size": st.st_size,
            "lines": 0,
            "bad_lines": 0,
            "updated_at": datetime.now(UTC),
        }

        def job(conn: Connection) -> None:
            # Another process may have created it meanwhile: then its position stands.
            stmt = dialect_insert(conn, tail_positions).values(values)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

        self.writer.run(job, WRITE_TIMEOUT, background=True)
        log.info("no checkpoint for %s: starting at offset %d of %s", self.name, offset, self.path)
        return True

    def _open_live(self, pos: Position) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (pos.device, pos.inode):  # rotated this instant
            os.close(fd)
            return True
        label = str(self.alerts_dir / pos.archive) if pos.archive else str(self.path)
        f = _File(label, fd, pos, self.max_line_bytes)
        if st.st_size < pos.offset:
            log.warning(
                "%s is shorter (%d bytes) than the checkpoint's offset %d (truncated in place): "
                "reading it from 0",
                self.path,
                st.st_size,
                pos.offset,
            )
            try:
                self._commit(_Commit(self.name, pos, f.position_at(0), st.st_size))
            except BaseException:
                os.close(fd)
                raise
            f.rewind()
        else:
            os.lseek(fd, pos.offset, os.SEEK_SET)
        self._waiting = False
        self._file = f
        log.info("following %s from offset %d", f.label, f.consumed)
        return True

    def _open_archived(self, pos: Position) -> _File | None:
        """The checkpoint's file by its archive name, at the checkpoint's offset; None if gone.

        The plain file counts only if it is the same inode; the .gz is trusted by its name.
        """
        if pos.archive is None:
            return None
        plain = self.alerts_dir / pos.archive
        try:
            fd = os.open(plain, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == (pos.device, pos.inode):
                os.lseek(fd, pos.offset, os.SEEK_SET)
                return _File(str(plain), fd, pos, self.max_line_bytes)
            os.close(fd)
            return None
        packed = Path(str(plain) + ".gz")
        try:
            gz = gzip.open(packed, "rb")
        except FileNotFoundError:
            return None
        f = _File(str(packed), gz, pos, self.max_line_bytes)
        try:
            reached = skip_gzip(gz, pos.offset)
        except GZIP_ERRORS as exc:
            reached, f.broken = -1, f"cannot read up to the checkpoint's offset: {exc}"
        if 0 <= reached < pos.offset:
            f.broken = f"ends at {reached}, before the checkpoint's offset"
        if f.broken is not None:
            log.warning("%s: %s (offset %d)", packed, f.broken, pos.offset)
        return f

    def _next_file(self, f: _File) -> bool:
        """`f` is read to its end and no longer alerts.json: move to the file after it."""
        reject: dict[str, Any] | None = None
        tail = f.fragment()
        if tail is not None:
            # analysisd ends every line; an unended one in a finished file is a crash's leftover.
            why = "unterminated last line"
            reject = self._reject(f, RejectedLine(f.consumed, tail.length, why, tail.head))
        elif f.broken is not None:
            reject = self._reject(f, RejectedLine(f.read_pos, 0, f.broken, b""))
        nxt = self._next_archive(f.archive)
        return self._switch(f.position(), nxt, reject=reject, previous=f)

    def _switch(
        self,
        expected: Position,
        target: Archive | None,
        *,
        reject: dict[str, Any] | None = None,
        previous: _File | None = None,
    ) -> bool:
        """Open `target` (None: alerts.json) at 0 and commit that position in place of
        `expected`, with the reject of the file left behind, if any."""
        if target is not None:
            opened = self._open_from_start(self.alerts_dir / target.file, target)
            if opened is None:  # compressed or removed meanwhile: list again
                return True
        else:
            if self._stat() is None:
                return False
            opened = self._open_from_start(self.path, None)
            if opened is None:
                return False
        job = _Commit(
            self.name,
            expected,
            opened.position(),
            opened.size(),
            lines=1 if reject else 0,
            rejects=[reject] if reject else [],
        )
        try:
            self._commit(job)
        except BaseException:
            opened.close()
            raise
        if reject is not None:
            self.rejected += 1
            log.warning(
                "%s: %s (%d bytes at offset %d)",
                reject["file"],
                reject["reason"],
                reject["length"],
                reject["offset"],
            )
        if previous is not None:
            log.info(
                "%s: finished at offset %d; now reading %s",
                previous.label,
                previous.consumed,
                opened.label,
            )
        else:
            log.info("now reading %s", opened.label)
        self._close()
        self._file = opened
        return True

    def _open_from_start(self, path: Path, archive: Archive | None) -> _File | None:
        try:
            if archive is not None and archive.compressed:
                gz = gzip.open(path, "rb")
                st = os.fstat(gz.fileno())
                pos = Position(st.st_dev, st.st_ino, 0, archive.name)
                return _File(str(path), gz, pos, self.max_line_bytes)
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        if archive is not None:
            name: str | None = archive.name
        else:
            name = find_archive(self.alerts_dir, st.st_dev, st.st_ino, self._days())
        label = str(self.alerts_dir / name) if name else str(path)
        return _File(label, fd, Position(st.st_dev, st.st_ino, 0, name), self.max_line_bytes)

    def _next_archive(self, after: str | None) -> Archive | None:
        """The archive written after `after`; None when there is none, or no order to go by."""
        current = parse_archive(after) if after is not None else None
        if current is None:
            return None
        later = (a for a in list_archives(self.alerts_dir, current.day) if a > current)
        return next(later, None)

    def _same_archive(self, pos: Position) -> bool:
        # An inode number can be reused once monitord deleted the plain file; the archive name
        # tells a reused number from the checkpoint's own file.
        if pos.archive is None:
            return True
        found = find_archive(self.alerts_dir, pos.device, pos.inode, self._days())
        return found is None or found == pos.archive

    def _load(self) -> _Stored | None:
        tp = tail_positions

        def job(conn: Connection) -> Any:
            return conn.execute(
                select(
                    tp.c.device,
                    tp.c.inode,
                    tp.c.offset,
                    tp.c.archive,
                    tp.c.file_size,
                    tp.c.updated_at,
                ).where(tp.c.name == self.name)
            ).first()

        self._settle()
        row = self.writer.run(job, WRITE_TIMEOUT, background=True)
        if row is None:
            return None
        device, inode, offset, archive, file_size, updated_at = row
        return _Stored(Position(device, inode, offset, archive), file_size, updated_at)

    def _stat(self) -> os.stat_result | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._log_waiting()
            return None
        self._waiting = False
        return st

    def _log_waiting(self) -> None:
        if not self._waiting:
            self._waiting = True
            log.warning("%s does not exist: waiting for it", self.path)

    def _days(self) -> tuple[date, date]:
        today = self.today()
        return (today, today - timedelta(days=1))


def _local_day(at: datetime) -> date:
    if at.tzinfo is None:  # SQLite gives back naive UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone().date()


def tail_status(conn: Connection, *, rejects: int = 10) -> list[dict[str, Any]]:
    """Every tailer's checkpoint, each with its latest rejected lines (newest first)."""
    tp, tr = tail_positions, tail_rejects
    out: list[dict[str, Any]] = []
    for row in conn.execute(select(tp).order_by(tp.c.name)).mappings():
        latest = conn.execute(
            select(tr).where(tr.c.name == row["name"]).order_by(tr.c.id.desc()).limit(rejects)
        ).mappings()
        out.append({**_plain(row), "rejects": [_plain(r) for r in latest]})
    return out


def _plain(row: Any) -> dict[str, Any]:
    # Column names come as quoted_name, a str subclass that JSON encoders refuse as a key.
    return {str(k): v for k, v in row.items()}

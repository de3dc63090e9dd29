"""Reading Wazuh's alerts.json files: plain or gzipped NDJSON, one numbered line at a time; the
dated archives analysisd rotates them into; and LineReader, for a file that is still growing.

`numbered_lines` serves `casefold ingest` (into the store), `casefold report` and `casefold replay`
(in memory). Lines are read as bytes with no length limit, so a 200 KB alert is one line like any
other. The alerts.json tailer (casefold.intake.tailer) finds and orders archives and reads them
with the rest of this module.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

# Lines between two progress reports: a report per line cost a tenth of `casefold ingest`.
PROGRESS_EVERY = 256


def numbered_lines(
    path: Path, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a plain or gzipped NDJSON file; `progress` gets on-disk bytes.

    A `.gz` name means gzip (Wazuh compresses rotated files so). Raises OSError, EOFError or
    gzip.BadGzipFile when the file cannot be read further; the lines before have been yielded.
    """
    with open(path, "rb") as disk:
        stream: IO[bytes] = gzip.GzipFile(fileobj=disk) if path.suffix == ".gz" else disk
        try:
            seen = 0
            for number, line in enumerate(stream, 1):
                if progress is not None and number % PROGRESS_EVERY == 0:
                    pos = disk.tell()
                    if pos != seen:
                        progress(pos - seen)
                        seen = pos
                yield number, line
            if progress is not None:
                progress(disk.seek(0, 2) - seen)
        finally:
            if stream is not disk:
                stream.close()


# -- Wazuh's dated archives ----------------------------------------------------------------------
# analysisd writes `<alerts dir>/<YYYY>/<Mon>/ossec-alerts-<DD>[-<NNN>].json` and keeps
# alerts.json as a hard link to the current one; monitord later gzips a finished day's files
# (wazuh.md §5). Month directories use English abbreviations whatever the locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name: number for number, name in enumerate(MONTHS, 1)}
_ARCHIVE_FILE = re.compile(r"ossec-alerts-(\d{2})(?:-(\d{3,}))?\.json(\.gz)?")


@dataclass(frozen=True, order=True)
class Archive:
    """One dated alerts file; archives sort in the order analysisd wrote them."""

    day: date
    sequence: int  # 0 for the day's first file, N for `-NNN`
    name: str = field(compare=False)  # relative to the alerts dir, always the plain `.json` name
    compressed: bool = field(compare=False, default=False)  # only the `.json.gz` exists

    @property
    def file(self) -> str:
        """The name of the file on disk (`.json.gz` once monitord compressed it)."""
        return self.name + ".gz" if self.compressed else self.name


def archive_name(day: date, sequence: int = 0) -> str:
    """`2026/Nov/ossec-alerts-22.json`, or `…-22-001.json` for a later file of the same day."""
    suffix = f"-{sequence:03d}" if sequence else ""
    return f"{day.year}/{MONTHS[day.month - 1]}/ossec-alerts-{day.day:02d}{suffix}.json"


def parse_archive(name: str) -> Archive | None:
    """The Archive an archive name (`YYYY/Mon/ossec-alerts-DD[-NNN].json[.gz]`) stands for."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in _MONTH_NUMBER:
        return None
    m = _ARCHIVE_FILE.fullmatch(parts[2])
    if m is None:
        return None
    try:
        day = date(int(parts[0]), _MONTH_NUMBER[parts[1]], int(m[1]))
    except ValueError:
        return None
    plain = name.removesuffix(".gz")
    return Archive(day, int(m[2] or 0), plain, compressed=m[3] is not None)


def list_archives(alerts_dir: Path, since: date | None = None) -> list[Archive]:
    """The archives under `alerts_dir` from `since`'s month on, oldest first.

    When a file exists both plain and gzipped (monitord is compressing it), the plain one is
    listed: it is the same content, and it can be matched by inode.
    """
    found: dict[tuple[date, int], Archive] = {}
    try:
        years = [e.name for e in os.scandir(alerts_dir) if e.name.isdigit() and e.is_dir()]
    except FileNotFoundError:
        return []
    for year in years:
        for month in MONTHS:
            if since is not None and (int(year), _MONTH_NUMBER[month]) < (since.year, since.month):
                continue
            try:
                names = os.listdir(alerts_dir / year / month)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for file in names:
                archive = parse_archive(f"{year}/{month}/{file}")
                if archive is None or (since is not None and archive.day < since):
                    continue
                key = (archive.day, archive.sequence)
                if key not in found or found[key].compressed:
                    found[key] = archive
    return sorted(found.values())


def find_archive(alerts_dir: Path, device: int, inode: int, days: Iterable[date]) -> str | None:
    """The plain archive that is the file (device, inode), looked for in the months of `days`.

    Stat, not the directory's inode numbers: on overlay file systems those can differ.
    """
    for month in dict.fromkeys(f"{d.year}/{MONTHS[d.month - 1]}" for d in days):
        try:
            names = os.listdir(alerts_dir / month)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for file in names:
            if not file.endswith(".json") or _ARCHIVE_FILE.fullmatch(file) is None:
                continue
            try:
                st = os.stat(alerts_dir / month / file)
            except FileNotFoundError:  # compressed away meanwhile
                continue
            if st.st_ino == inode and st.st_dev == device:
                return f"{month}/{file}"
    return None


# -- following a file that grows -----------------------------------------------------------------
READ_CHUNK = 1 << 20  # bytes per read: one syscall serves hundreds of lines
HEAD_BYTES = 2048  # what is kept of a line too long to keep: enough for a 512-character excerpt
GZIP_ERRORS = (OSError, EOFError, gzip.BadGzipFile)  # a truncated or corrupt .gz


@dataclass(slots=True)
class Overlong:
    """A line over the limit: only its length and first bytes were kept."""

    length: int  # without the newline
    head: bytes


class LineReader:
    """Complete lines of a file that may still be growing (an fd) or of a gzip stream, from an
    offset, with the offset of everything handed out.

    Reads are big (READ_CHUNK); a line is handed out only once its `\\n` was read, so the
    unterminated end of the file waits for the writer to finish it. A line longer than
    `max_line` is not kept: it is handed out as an Overlong once its end is found, so memory
    stays bounded whatever the file holds.
    """

    def __init__(self, stream: int | gzip.GzipFile, offset: int, max_line: int) -> None:
        self._fd = stream if isinstance(stream, int) else None
        self._gz = stream if isinstance(stream, gzip.GzipFile) else None
        self.consumed = offset  # after the last line handed out (the caller advances it)
        self.read_pos = offset  # the next byte to read
        self.broken: str | None = None  # why a gzip stream could not be read further
        self._max_line = max_line
        self._lines: list[bytes | Overlong] = []
        self._partial: list[bytes] = []  # the line begun at the end of the last read
        self._partial_len = 0
        self._overlong: Overlong | None = None  # a line over the limit being skipped

    @property
    def compressed(self) -> bool:
        return self._gz is not None

    def size(self) -> int:
        """Bytes in the file, in offset units (for a gzip stream: as far as it was read)."""
        return os.fstat(self._fd).st_size if self._fd is not None else self.read_pos

    def take(self, limit: int) -> list[bytes | Overlong]:
        """Up to `limit` complete lines (without their newline), reading as needed."""
        while len(self._lines) < limit and self._fill():
            pass
        if len(self._lines) <= limit:
            out, self._lines = self._lines, []
        else:
            out = self._lines[:limit]
            del self._lines[:limit]
        return out

    def fragment(self) -> Overlong | None:
        """The unterminated line at the end of what was read, if any."""
        if self._overlong is not None:
            return self._overlong
        if self._partial_len:
            return Overlong(self._partial_len, b"".join(self._partial)[:HEAD_BYTES])
        return None

    def rewind(self) -> None:
        """Back to offset 0 of the same file (it was truncated in place)."""
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        self.consumed = self.read_pos = self._partial_len = 0
        self._lines, self._partial, self._overlong = [], [], None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._gz is not None:
            self._gz.close()

    def _read(self) -> bytes:
        if self._fd is not None:
            return os.read(self._fd, READ_CHUNK)
        assert self._gz is not None
        if self.broken is not None:
            return b""
        try:
            return self._gz.read(READ_CHUNK)
        except GZIP_ERRORS as exc:  # what came before stands
            self.broken = f"cannot read further: {exc}"
            return b""

    def _fill(self) -> bool:
        chunk = self._read()
        if not chunk:
            return False
        self.read_pos += len(chunk)
        parts = chunk.split(b"\n")
        rest = parts.pop()  # after the last newline: a line not yet complete
        if parts:
            if self._overlong is not None:
                self._overlong.length += len(parts[0])
                self._lines.append(self._overlong)
                self._lines.extend(parts[1:])
                self._overlong = None
            elif self._partial:
                self._partial.append(parts[0])
                self._lines.append(b"".join(self._partial))
                self._lines.extend(parts[1:])
                self._partial, self._partial_len = [], 0
            else:
                self._lines.extend(parts)
        self._hold(rest)
        return True

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        if self._overlong is not None:
            self._overlong.length += len(data)
        elif self._partial_len + len(data) > self._max_line:
            head = (b"".join(self._partial) + data[:HEAD_BYTES])[:HEAD_BYTES]
            self._overlong = Overlong(self._partial_len + len(data), head)
            self._partial, self._partial_len = [], 0
        else:
            self._partial.append(data)
            self._partial_len += len(data)


def last_line_end(fd: int, size: int) -> int:
    """The offset just after the file's last newline (0 if it has none)."""
    end = size
    while end > 0:
        begin = max(0, end - READ_CHUNK)
        data = os.pread(fd, end - begin, begin)
        cut = data.rfind(b"\n")
        if cut >= 0:
            return begin + cut + 1
        end = begin
    return 0


def skip_gzip(gz: gzip.GzipFile, offset: int) -> int:
    """Read and drop `offset` decompressed bytes; return how far the stream got.

    Offsets into a rotated file stay valid once monitord gzipped it: they count the bytes of the
    decompressed stream. Raises what a corrupt stream raises (GZIP_ERRORS).
    """
    done = 0
    while done < offset:
        data = gz.read(min(READ_CHUNK, offset - done))
        if not data:
            break
        done += len(data)
    return done

"""Reading Wazuh's alerts.json files: plain or gzipped NDJSON, one numbered line at a time.

Shared by `casefold ingest` (into the store), `casefold report` and `casefold replay` (in memory).
Lines are read as bytes with no length limit, so a 200 KB alert is one line like any other.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
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

"""`casefold ingest`: import alerts.json files (gzip too) into the store, then fold them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casefold.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    byte_progress,
    guard,
    input_files,
    opened_runtime,
    out,
    settings_from,
)

# Exit status when some lines were not alerts: everything else was stored.
SOME_REJECTED = 3


# `casefold ingest`: a top-level command, registered on the root app in casefold.cli.
def ingest_command(
    files: Annotated[list[Path], typer.Argument(help="alerts.json files (NDJSON; .gz too).")],
    fold: Annotated[
        bool, typer.Option("--fold/--no-fold", help="Fold the new alerts into cases now.")
    ] = True,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Store the alerts of alerts.json files, with the same duplicate rules as the API.

    Importing a file twice stores nothing new. Lines that are not alerts are reported with their
    file and line and skipped; the exit status is then 3. A missing file stops before anything
    is read (exit 2)."""
    from casefold.intake.files import ingest_files

    total = input_files(files)
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        with byte_progress("ingesting", total) as advance:
            report = guard(lambda: ingest_files(files, runtime.writer, progress=advance), code=2)
        if fold:
            runtime.folding.drain()
    out.print(
        f"{report.files} file(s), {report.lines:,} lines: {report.stored:,} alerts stored, "
        f"{report.duplicates:,} duplicates, {report.rejected:,} rejected",
        highlight=False,
    )
    for line in report.errors:
        out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if report.rejected > len(report.errors):
        out.print(f"  … and {report.rejected - len(report.errors)} more", highlight=False)
    if report.rejected:
        raise typer.Exit(SOME_REJECTED)

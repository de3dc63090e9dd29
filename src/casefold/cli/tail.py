"""`casefold tail status`: where each alerts.json tailer stands, and its latest bad lines."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer

from casefold.cli.common import ConfigFile, DatabaseUrl, DataDir, opened_runtime, settings_from

tail_app = typer.Typer(help="The alerts.json tailer (tail_alerts_json).", no_args_is_help=True)


@tail_app.command("status")
def tail_status_command(
    rejects: Annotated[
        int, typer.Option("--rejects", min=0, max=10_000, help="Bad lines to show per file.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Each followed file's checkpoint (file, offset, lag, lines, bad lines) and its latest
    rejected lines with their offset and reason."""
    from casefold.intake.tailer import tail_status

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        found = tail_status(conn, rejects=rejects)
    if as_json:
        text = orjson.dumps(found, option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC).decode()
        sys.stdout.write(text + "\n")
        return
    if not found:
        print("no alerts.json is followed (set tail_alerts_json)")
    for entry in found:
        _print_entry(entry)


def _print_entry(e: dict[str, Any]) -> None:
    behind = max(0, e["file_size"] - e["offset"])
    print(e["name"])
    print(f"  file     {e['archive'] or e['path']} (device {e['device']}, inode {e['inode']})")
    print(f"  offset   {e['offset']:,} of {e['file_size']:,} bytes ({behind:,} behind)")
    print(f"  lines    {e['lines']:,} read, {e['bad_lines']:,} bad")
    print(f"  updated  {e['updated_at']}")
    for r in e["rejects"]:
        print(f"  bad line {r['file']} at {r['offset']:,} ({r['length']:,} bytes): {r['reason']}")
        print(f"           {r['excerpt'][:100]!r}")

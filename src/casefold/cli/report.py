"""`casefold report`: alert counts by level, band, rule, agent and MITRE technique."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from casefold.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    byte_progress,
    fail,
    guard,
    input_files,
    opened_runtime,
    out,
    settings_from,
)


def _parse_when(option: str, value: str | None) -> Any:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 date or date-time (e.g. 2024-06-19T09:00Z)")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _print_report(r: dict[str, Any]) -> None:
    from rich.box import SIMPLE_HEAD

    from casefold.report import BANDS

    where = "the store" if r["sources"] == ["store"] else f"{len(r['sources'])} file(s)"
    span = f", {r['first']} to {r['last']}" if r["first"] else ""
    print(
        f"Alerts in {where}: {r['total']}{span}; {r['duplicates']} duplicates skipped, "
        f"{r['outside_window']} outside --since/--until, {r['bad_line_count']} bad lines."
    )
    for b in r["bad_lines"]:
        place = f"{b['file']}:{b['line']}" if "file" in b else str(b["line"])
        print(f"  bad line {place}: {b['reason']}")
    if r["bad_line_count"] > len(r["bad_lines"]):
        print(f"  … and {r['bad_line_count'] - len(r['bad_lines'])} more bad lines")
    if not r["total"]:
        return  # empty tables would say nothing more than the line above

    def table(title: str, *columns: str) -> Table:
        t = Table(title=title, title_justify="left", box=SIMPLE_HEAD)
        for c in columns:
            numeric = c in ("alerts", "level", "max level")
            t.add_column(c, justify="right" if numeric else "left", overflow="fold")
        return t

    bands = table("By band", "band", "levels", "alerts")
    for name, low, high in BANDS:
        bands.add_row(name, f"{low}–{high}", str(r["by_band"][name]))
    out.print(bands)
    levels = table("By level", "level", "alerts")
    for level, n in r["by_level"].items():
        if n:  # all 17 rows would mostly be zeros; --json has them all
            levels.add_row(level, str(n))
    out.print(levels)
    rules = table("Top rules", "rule", "description", "max level", "alerts")
    for x in r["top_rules"]:
        rules.add_row(x["rule_id"], x["description"], str(x["max_level"]), str(x["count"]))
    out.print(rules)
    agents = table("Top agents", "agent", "id", "alerts")
    for x in r["top_agents"]:
        agents.add_row(x["name"], x["id"], str(x["count"]))
    out.print(agents)
    techniques = table("Top MITRE ATT&CK techniques", "technique", "name", "alerts")
    for x in r["top_techniques"]:
        techniques.add_row(x["id"], x["name"] or "", str(x["count"]))
    if r["top_techniques"]:
        out.print(techniques)
    else:
        print("\nNo alert carries a MITRE ATT&CK technique.")


# Below this many bytes the bar would only flicker.
_REPORT_BAR_BYTES = 8 * 1024 * 1024


def _report_files(files: list[Path], total: int, since: Any, until: Any) -> Any:
    from casefold.report import report_from_files

    if total < _REPORT_BAR_BYTES:
        return report_from_files(files, since=since, until=until)
    with byte_progress("reading", total) as advance:
        return report_from_files(files, since=since, until=until, progress=advance)


# `casefold report`: a top-level command, registered on the root app in casefold.cli.
def report_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="alerts.json files (NDJSON; .gz too). None: the stored alerts."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many rules, agents, …")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only alerts at or after this ISO time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only alerts before this ISO time.")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Count alerts by level and band, with the top rules, agents and MITRE techniques.

    Reads alerts.json files when given, otherwise the store. Lines that are not alerts are
    counted, not fatal; alerts repeated (same source, node and id) are counted once."""
    from casefold.report import report_from_store

    start = _parse_when("--since", since)
    end = _parse_when("--until", until)
    if files:
        total = input_files(files)
        report = guard(lambda: _report_files(files, total, start, end), code=2)
    else:
        settings = settings_from(config, data_dir=data_dir, database_url=database_url)
        with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
            report = report_from_store(conn, since=start, until=end)
    result = report.to_dict(top)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_report(result)

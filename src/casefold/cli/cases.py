"""`casefold cases`: read cases from the store."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from casefold.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    fail,
    guard,
    opened_runtime,
    out,
    settings_from,
)

cases_app = typer.Typer(help="Read cases from the store.", no_args_is_help=True)


@cases_app.command("list")
def cases_list(
    status: Annotated[list[str] | None, typer.Option(help="Filter by status (repeatable).")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="Filter by severity.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Filter by assignee.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Filter by tag.")] = None,
    text: Annotated[str | None, typer.Option(help="Search summary and description.")] = None,
    limit: Annotated[int, typer.Option(help="How many cases.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """List cases, most recently updated first."""
    from casefold.cases.queries import list_cases

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        page = list_cases(
            conn,
            status=status,
            severity=severity,
            assignee=assignee,
            tag=tag,
            text=text,
            limit=limit,
        )
    if as_json:
        sys.stdout.write(orjson.dumps(page.items, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table("case", "status", "severity", "priority", "alerts", "assignee", "summary")
    for c in page.items:
        table.add_row(
            c["ref"],
            c["status"],
            c["severity"],
            c["priority"],
            str(c["alert_count"]),
            c["assignee"] or "",
            c["summary"],
        )
    out.print(table)


@cases_app.command("show")
def cases_show(
    ref: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Show one case with its observables, comments and timeline."""
    from casefold.cases.model import parse_case_ref
    from casefold.cases.queries import case_timeline, get_case

    case_id = parse_case_ref(ref)
    if case_id is None:
        fail(f"{ref!r} is not a case reference like CASE-12")
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        case = guard(lambda: get_case(conn, case_id))
        case["timeline"] = case_timeline(conn, case_id, limit=1000).items
    if as_json:
        sys.stdout.write(
            orjson.dumps(case, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode() + "\n"
        )
        return
    # Summaries, assignees and observable values come from alerts: text, never Rich markup (a
    # stray "[/x]" in an alert would otherwise crash the command).
    out.print(f"[bold]{case['ref']}[/bold] {escape(case['summary'])}", highlight=False)
    out.print(
        f"status {case['status']} · severity {case['severity']} · priority "
        f"{case['priority']} · assignee {case['assignee'] or '-'} · alerts "
        f"{case['alert_count']}",
        highlight=False,
        markup=False,
    )
    if case["tags"]:
        out.print("tags: " + ", ".join(case["tags"]), highlight=False, markup=False)
    out.print(case["description"], markup=False, highlight=False)
    if case["observables"]:
        table = Table("type", "value", "public", "alerts")
        for o in case["observables"]:
            table.add_row(
                o["type"],
                Text(o["value"]),
                "" if o["public"] is None else str(o["public"]),
                str(o["alert_count"]),
            )
        out.print(table)
    for c in case["comments"]:
        out.print(
            f"— {c['author']} ({str(c['created_at'])[:19]}): {c['content']}",
            markup=False,
            highlight=False,
        )
    for e in case["timeline"]:
        what = (e["detail"] or {}).get("reason") or (
            f"{e['field']}: {e['old']} → {e['new']}" if e["field"] else ""
        )
        out.print(
            f"{str(e['at'])[:19]} {e['actor']} {e['kind']} {what}", markup=False, highlight=False
        )

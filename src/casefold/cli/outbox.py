"""`casefold outbox`: list and retry effects on other systems."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from casefold.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    fail,
    guard,
    opened_runtime,
    settings_from,
)

outbox_app = typer.Typer(
    help="Effects on other systems (Jira, ExtraHop, webhooks): list and retry.",
    no_args_is_help=True,
)


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        str | None, typer.Option("--state", help="pending, delivering, done or dead.")
    ] = None,
    case: Annotated[
        int | None, typer.Option("--case", help="Only this case's (its number).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """List outbox effects, newest first, with their state in words."""
    from datetime import UTC, datetime

    from casefold.outbox import store as outbox_store

    if state is not None and state not in ("pending", "delivering", "done", "dead"):
        fail(f"--state must be pending, delivering, done or dead, not {state!r}")
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        items = outbox_store.list_effects(
            conn, datetime.now(UTC), state=state, case_id=case, limit=limit
        )
    if as_json:
        sys.stdout.write(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not items:
        print("no effects")
    for e in items:
        case_text = f"CASE-{e['case_id']}" if e["case_id"] else "-"
        print(f"{e['id']:>6}  {case_text:<10} {e['summary']}")


@outbox_app.command("retry")
def outbox_retry(
    effect_id: Annotated[int, typer.Argument(help="The effect's id (see `outbox list`).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Queue a dead (or waiting) effect again now; a running `casefold serve` delivers it."""
    from casefold.outbox import store as outbox_store

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        effect = guard(lambda: runtime.writer.run(lambda conn: outbox_store.retry(conn, effect_id)))
    print(f"effect {effect_id} queued again: {effect['summary']}")

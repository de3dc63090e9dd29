"""`casefold expr`, `playbook`, `replay` and `runs`: trying playbooks and reading their runs."""

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
from casefold.errors import CasefoldError

playbook_app = typer.Typer(help="Check and try playbooks.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect and retry playbook runs.", no_args_is_help=True)


_CONTEXT_KEYS = ("TRIGGER", "ACTIONS", "VARS", "SECRETS", "ENV", "var")


def _read_context(path: Path) -> dict[str, Any]:
    """The JSON context file of `casefold expr`: an object keyed by context names."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read context file {path}: {exc.strerror or exc}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    if not isinstance(data, dict):
        fail(f"{path}: the context is a JSON object with keys among {', '.join(_CONTEXT_KEYS)}")
    unknown = sorted(set(data) - set(_CONTEXT_KEYS))
    if unknown:
        fail(
            f"{path}: unknown context key {unknown[0]!r} (the keys are {', '.join(_CONTEXT_KEYS)})"
        )
    return data


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)  # timedelta, Decimal, …: their plain text


# `casefold expr`: a top-level command, registered on the root app in casefold.cli.
def expr(
    expression: Annotated[
        str, typer.Argument(help="An expression, e.g. 'TRIGGER.rule.level > 10'.")
    ],
    context: Annotated[
        Path | None,
        typer.Option(
            "--context",
            help="JSON file holding TRIGGER, ACTIONS, VARS, SECRETS, ENV and var.",
        ),
    ] = None,
    template: Annotated[
        bool,
        typer.Option("--template", help="The argument is a string with ${{ … }} templates in it."),
    ] = False,
) -> None:
    """Evaluate one expression (or template) against a context and print the result as JSON.

    An argument that is exactly one ${{ … }} is treated as a template, so text copied from a
    playbook works as is. Exit 2 on a syntax error, 1 when evaluation fails."""
    from casefold.expressions import (
        ExpressionError,
        ParseError,
        compile_expression,
        compile_template,
    )

    ctx = _read_context(context) if context is not None else {}
    stripped = expression.strip()
    as_template = template or (stripped.startswith("${{") and stripped.endswith("}}"))
    try:
        compiled = compile_template(expression) if as_template else compile_expression(expression)
    except ParseError as exc:
        # The caret needs its own lines: this is the author's tool, not a log line.
        sys.stderr.write(f"casefold: {exc}\n")
        raise typer.Exit(2) from None
    try:
        if as_template:
            result = compiled.render(ctx)  # type: ignore[union-attr]
        else:
            result = compiled.evaluate(ctx)  # type: ignore[union-attr]
    except ExpressionError as exc:
        fail(str(exc), 1)
    try:
        text = orjson.dumps(
            result,
            default=_json_default,
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
        )
    except orjson.JSONEncodeError as exc:
        fail(f"the result cannot be written as JSON: {exc}", 1)
    sys.stdout.write(text.decode() + "\n")


@playbook_app.command("validate")
def playbook_validate(
    files: Annotated[list[Path], typer.Argument(help="Playbook YAML files.")],
) -> None:
    """Load each playbook as the engine would and list every problem as file:line: reason.

    Exit 0 when every file is valid, 1 otherwise."""
    import casefold.actions.cases  # noqa: F401 - registers the cases.* actions
    import casefold.actions.core  # noqa: F401 - registers the core.* actions
    import casefold.actions.cti  # noqa: F401 - registers the cti.* actions
    from casefold.playbooks.loader import PlaybookError, load_playbook

    valid = True
    for path in files:
        try:
            playbook = load_playbook(path)
        except PlaybookError as exc:
            valid = False
            for problem in exc.problems:
                print(problem)
            continue
        except Exception as exc:  # a loader bug must not hide the other files' results
            valid = False
            print(f"{path}: cannot validate: {type(exc).__name__}: {exc}")
            continue
        print(f"{path}: ok ({len(playbook.steps)} actions)")
    if not valid:
        raise typer.Exit(1)


# -- playbook test, replay, runs --------------------------------------------------------------

BRIEF_CHARS = 300  # a step's input or result beyond this is cut in the text output


def _brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """Compact one-line JSON, cut after `limit` characters."""
    text = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > limit:
        return text[:limit] + f"… ({len(text)} characters; --json shows all)"
    return text


def _indented(text: str) -> str:
    return str(text).replace("\n", "\n        ")


def _print_step(step: dict[str, Any]) -> None:
    """`[status] ref (action) 12 ms`, then the step's input, result, error or skip reason."""
    took = f" {step['duration_ms']} ms" if step.get("duration_ms") is not None else ""
    attempts = step.get("attempts") or 0
    tries = f", {attempts} attempts" if attempts > 1 else ""
    print(f"[{step['status']}] {step['ref']} ({step['action']}){took}{tries}")
    if step["status"] == "skipped":
        print(f"    skipped: {_indented(step.get('reason') or '')}")
        return
    if step["status"] == "waiting":
        print(f"    waiting: {_indented(step.get('reason') or '')}")
    if step.get("input") is not None:
        print(f"    input:  {_brief(step['input'])}")
    if step["status"] == "succeeded":
        print(f"    result: {_brief(step.get('result'))}")
    if step.get("error"):
        print(f"    error:  {_indented(step['error'])}")
    for note in step.get("notes") or ():
        print(f"    note:   {_indented(note)}")


def _print_trace(t: dict[str, Any]) -> None:
    pb, alert, case = t["playbook"], t["alert"], t["case"]
    print(
        f"Playbook: {pb['name']} ({pb['title']}), version {pb['version']}, {pb['actions']} actions"
    )
    print(
        f"Alert:    rule {alert['rule_id'] or '-'}, level {alert['level']}: {alert['title']} "
        f"(id {alert['id']} on {alert['node']}, agent {alert['agent'] or '-'})"
    )
    if case is None:
        print("Case:     no folding rule matches: the alert would belong to no case")
    else:
        print(
            f"Case:     {case['ref']} stands for the case folding would open: rule "
            f'{case["rule"]}, key {case["key"]}, "{case["summary"]}"'
        )
    mode = "live: HTTP requests are sent" if t["live"] else "dry run: no request is sent"
    print(f"Mode:     {mode}; no case is changed")
    verdict = "matched" if t["trigger"]["matched"] else "did not match"
    print(f"Trigger:  {verdict}: {t['trigger']['reason']}")
    if not t["trigger"]["matched"] and not t["steps"]:
        print("\nNothing runs for this alert (--force runs the steps anyway).")
        return
    print()
    for step in t["steps"]:
        _print_step(step)
    counts: dict[str, int] = {}
    for step in t["steps"]:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no steps"
    print(f"\nRun: {t['status']} ({summary})")
    if t["error"]:
        print(f"    error: {_indented(t['error'])}")
    print("\nCase changes that would happen:")
    for effect in t["effects"] or ["(none)"]:
        print(f"  - {effect}")
    print("\nHTTP requests (sent):" if t["live"] else "\nHTTP requests (not sent):")
    for req in t["http"]:
        line = f"  - {req.get('method', 'GET')} {req.get('url')}"
        if req.get("params"):
            line += f" params {_brief(req['params'])}"
        if req.get("sent"):
            status = req.get("status_code")
            line += f" → {status}" if status is not None else " → no response"
        print(line)
        if req.get("headers"):
            print(f"      headers: {_brief(req['headers'])}")
        if req.get("json") is not None:
            print(f"      json:    {_brief(req['json'])}")
    if not t["http"]:
        print("  (none)")


def _read_alert(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read alert file {path}: {exc.strerror or exc}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} "
            "(one alert per file; `casefold replay --dry-run` reads alerts.json)"
        )


@playbook_app.command("test")
def playbook_test(
    file: Annotated[Path, typer.Argument(help="The playbook YAML file.")],
    alert: Annotated[Path, typer.Argument(help="One Wazuh alert as JSON (an alerts.json line).")],
    live: Annotated[
        bool,
        typer.Option("--live", help="Send the HTTP requests (lookups); cases stay unchanged."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Run the steps even when the trigger does not match.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Run a playbook against one alert without changing anything, and show every step.

    Folding is decided with the configured rules, in memory; case changes are listed, not made;
    HTTP requests are shown, not sent, unless --live. Exit 0 when the run succeeds or the trigger
    does not match, 1 when a step fails, 2 for a bad playbook, alert or setting."""
    from casefold.errors import InvalidInputError
    from casefold.playbooks.loader import PlaybookError, load_playbook
    from casefold.playbooks.trial import trial_run

    settings = settings_from(config, data_dir=data_dir)
    try:
        playbook = load_playbook(file)
    except PlaybookError as exc:
        more = len(exc.problems) - 1
        extra = f" (and {more} more: casefold playbook validate lists them)" if more else ""
        fail(f"{exc.problems[0]}{extra}")
    doc = _read_alert(alert)
    try:
        trace = trial_run(playbook, doc, settings=settings, live=live, force=force)
    except InvalidInputError as exc:
        fail(f"{alert}: not a usable Wazuh alert: {exc}")
    except CasefoldError as exc:
        fail(str(exc))
    result = trace.to_dict()
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                result,
                default=_json_default,
                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
            ).decode()
            + "\n"
        )
    else:
        _print_trace(result)
    if not trace.ok:
        raise typer.Exit(1)


def _counts_table(title: str, rows: dict[str, dict[str, int]], first: str) -> Table:
    statuses = sorted({s for counts in rows.values() for s in counts})
    table = Table(first, "total", *statuses, title=title, title_justify="left")
    for name, counts in sorted(rows.items()):
        table.add_row(name, str(sum(counts.values())), *(str(counts.get(s, 0)) for s in statuses))
    return table


def _print_replay(r: dict[str, Any], shown: int = 50) -> None:
    from rich.box import SIMPLE_HEAD

    p = print  # plain lines: paths and reasons reach the terminal unwrapped
    p(
        f"Replay (dry run, nothing written) of {len(r['files'])} file(s): {r['lines']} lines, "
        f"{r['alerts']} alerts, {r['unique_alerts']} unique, {r['duplicates']} duplicates "
        f"skipped ({r['dedup']}), {r['bad_line_count']} bad lines."
    )
    for b in r["bad_lines"][:shown]:
        p(f"  bad line {b['position']}: {b['error']}")
    if r["bad_line_count"] > shown:
        p(f"  … and {r['bad_line_count'] - shown} more bad lines (--json lists them)")
    p(
        f"\nCases that would open: {len(r['cases'])}; alerts joining a would-be case: "
        f"{r['merges']}; alerts no folding rule matches: {r['unmatched']}; cases closed to new "
        f"alerts (window or max_alerts): {r['closed_slots']}."
    )
    if r["cases"]:
        biggest = sorted(r["cases"], key=lambda c: -c["alerts"])[:shown]
        more = f" (the {shown} largest; --json lists all)" if len(r["cases"]) > shown else ""
        table = Table(title="Cases that would open" + more, title_justify="left", box=SIMPLE_HEAD)
        table.add_column("alerts", justify="right", no_wrap=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("first / last seen", no_wrap=True)
        table.add_column("rule / key", overflow="fold", min_width=15)
        table.add_column("summary", overflow="fold", min_width=12, ratio=1)
        for c in biggest:
            table.add_row(
                str(c["alerts"]),
                c["severity"],
                f"{c['first_seen'][:16]}\n{c['last_seen'][:16]}".replace("T", " "),
                f"{c['rule']}\n{c['key']}",
                c["summary"],
            )
        out.print(table)
    if r["playbook_problems"]:
        p("\nPlaybook files that failed to load (not replayed):")
        for problem in r["playbook_problems"]:
            p(f"  {problem}")
    if not r["playbook_runs"]:
        p("\nNo playbook would run (none is enabled, or no trigger matches).")
        return
    out.print(_counts_table("Playbook runs", r["playbook_runs"], "playbook"))
    out.print(_counts_table("Steps", r["steps"], "playbook"))
    for name, errors in sorted(r["errors"].items()):
        for error, n in sorted(errors.items(), key=lambda e: -e[1])[:10]:
            p(f"  {name}: {n} × {error}")
    effects = Table(
        "case change", "count", title="Case changes that would happen", title_justify="left"
    )
    for kind, n in sorted(r["effects"].items(), key=lambda e: (-e[1], e[0])):
        effects.add_row(kind, str(n))
    out.print(effects)
    if r["http"]:
        http = Table(
            "request", "count", title="HTTP requests that would be sent", title_justify="left"
        )
        for target, n in sorted(r["http"].items(), key=lambda e: (-e[1], e[0])):
            http.add_row(target, str(n))
        out.print(http)


# `casefold replay`: a top-level command, registered on the root app in casefold.cli.
def replay_command(
    files: Annotated[list[Path], typer.Argument(help="alerts.json files (NDJSON; .gz too).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fold and run playbooks in memory (required).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    folding_rules: Annotated[
        Path | None, typer.Option("--folding-rules", help="Folding rules YAML.")
    ] = None,
    playbooks_dir: Annotated[
        Path | None, typer.Option("--playbooks-dir", help="Directory of playbook files.")
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Show what Casefold would make of past alerts: the cases folding would open, the alerts
    that would join them, and what the enabled playbooks would do. Nothing is stored or sent.

    Alerts repeated (same source, node and id) are counted once, as intake does."""
    from casefold.playbooks.trial import replay

    if not dry_run:
        fail("replay only supports --dry-run (nothing is written): add --dry-run")
    total = input_files(files)
    settings = settings_from(
        config, data_dir=data_dir, folding_rules=folding_rules, playbooks_dir=playbooks_dir
    )
    with byte_progress("replaying", total) as advance:
        try:
            report = replay(files, settings=settings, progress=advance)
        except CasefoldError as exc:
            fail(str(exc))
    result = report.to_dict()
    if as_json:
        sys.stdout.write(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
            + "\n"
        )
        return
    _print_replay(result)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Show one playbook run and its steps."""
    from casefold.playbooks.history import get_run

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        run = guard(lambda: get_run(conn, run_id))
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                run, default=_json_default, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z
            ).decode()
            + "\n"
        )
        return
    print(
        f"Run {run['id']}: playbook {run['playbook']} (version {run['version']}), {run['status']}"
    )
    print(f"alert {run['alert_id']} · case {run['case'] or '-'} · attempts {run['attempts']}")
    times = [
        (what, run[key])
        for what, key in (
            ("created", "created_at"),
            ("started", "started_at"),
            ("finished", "finished_at"),
        )
    ]
    print(" · ".join(f"{what} {str(at)[:19]}" for what, at in times if at is not None))
    if run["error"]:
        print(f"error: {_indented(run['error'])}")
    if run["steps"]:
        print()
    for step in run["steps"]:
        _print_step(step)


@runs_app.command("retry")
def runs_retry(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Queue a finished run again: its failed and skipped steps run again, done ones do not.

    A running `casefold serve` picks it up."""
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        runtime.playbooks.retry(run_id)
    print(f"run {run_id} queued again")

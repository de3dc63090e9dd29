"""The `casefold` command. Each command reads options, builds Settings, and calls one function."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from casefold.config import Settings, load_settings
from casefold.errors import CasefoldError, ConfigError

app = typer.Typer(
    help="Casefold: Wazuh alerts in, folded cases out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
cases_app = typer.Typer(help="Read cases from the store.", no_args_is_help=True)
wazuh_app = typer.Typer(
    help="Wazuh-side helpers: the integration and active-response scripts, the health wodle.",
    no_args_is_help=True,
)
playbook_app = typer.Typer(help="Check and try playbooks.", no_args_is_help=True)
user_app = typer.Typer(help="Create, list and disable web UI users.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(cases_app, name="cases")
app.add_typer(wazuh_app, name="wazuh")
app.add_typer(playbook_app, name="playbook")
runs_app = typer.Typer(help="Inspect and retry playbook runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
outbox_app = typer.Typer(
    help="Effects on other systems (Jira, ExtraHop, webhooks): list and retry.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")

T = TypeVar("T")
out = Console()

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./casefold-data).")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="postgresql://… to use PostgreSQL.")
]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML settings file.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """One line saying why, on stderr, and a non-zero exit."""
    # Plain stderr, never wrapped: scripts and Wazuh's logs read this as one line.
    sys.stderr.write("casefold: " + " ".join(str(message).split()) + "\n")
    raise typer.Exit(code)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        fail(str(exc))


@contextmanager
def opened_runtime(settings: Settings) -> Iterator[Any]:
    from casefold.runtime import Runtime  # keeps `casefold --help` fast

    try:
        runtime = Runtime(settings)
        runtime.open_store()
    except CasefoldError as exc:
        fail(str(exc))
    runtime.writer.start()
    try:
        yield runtime
    except CasefoldError as exc:
        fail(str(exc), 1)
    finally:
        runtime.stop()


def _guard(fn: Callable[[], T], code: int = 1) -> T:
    try:
        return fn()
    except CasefoldError as exc:
        fail(str(exc), code)


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 8800).")] = None,
    folding_rules: Annotated[
        Path | None, typer.Option("--folding-rules", help="Folding rules YAML.")
    ] = None,
) -> None:
    """Run the whole service: API, intake and folding, in one process."""
    import uvicorn

    from casefold.app import create_app
    from casefold.runtime import Runtime

    settings = settings_from(
        config,
        data_dir=data_dir,
        database_url=database_url,
        host=host,
        port=port,
        folding_rules=folding_rules,
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        runtime = Runtime(settings)
        runtime.open_store()
    except CasefoldError as exc:
        fail(str(exc))
    uvicorn.run(
        create_app(runtime, manage_runtime=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A name for the token's holder.")],
    role: Annotated[str, typer.Option("--role", help="admin, analyst, viewer or ingest.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Create a token and print it (it is shown this once, and stored only as a hash)."""
    from casefold.access import create_token, parse_role

    r = _guard(lambda: parse_role(role), code=2)
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        token = runtime.writer.run(lambda conn: create_token(conn, name, r))
    print(token)


@token_app.command("list")
def token_list(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """List tokens (names and roles; never the tokens themselves)."""
    from casefold.access import list_tokens

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        rows = list_tokens(conn)
    table = Table("name", "role", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            r["name"],
            r["role"],
            str(r["created_at"])[:19],
            str(r["last_used_at"] or "")[:19],
            str(r["revoked_at"] or "")[:19],
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    name: str, data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Revoke a token by name; it stops working within token_cache_seconds."""
    from casefold.access import revoke_token

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        runtime.writer.run(lambda conn: revoke_token(conn, name))
    out.print(f"revoked {name}")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # The first line only, so `echo pw | casefold user create …` works; never an argument,
        # which would show in `ps` and shell history.
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password; use --password-stdin")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Option("--name", help="The name to sign in with.")],
    role: Annotated[str, typer.Option("--role", help="admin, analyst, viewer or ingest.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Create a web UI user; the password is asked for (or read with --password-stdin)."""
    from casefold.access import parse_role
    from casefold.web.users import create_user, hash_password

    r = _guard(lambda: parse_role(role), code=2)
    password = _read_password(password_stdin)
    # Hashed here, not in the store's writer thread: argon2 is slow on purpose.
    hashed = _guard(lambda: hash_password(password), code=2)
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        runtime.writer.run(lambda conn: create_user(conn, name, r, hashed))
    out.print(f"created user {name} ({r.value})")


@user_app.command("list")
def user_list(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """List web UI users (never their password hashes)."""
    from casefold.web.users import list_users

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        rows = list_users(conn)
    table = Table("name", "role", "created", "last sign-in", "disabled")
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["role"]),
            str(r["created_at"])[:19],
            str(r["last_login_at"] or "")[:19],
            "yes" if r["disabled"] else "",
        )
    out.print(table)


@user_app.command("disable")
def user_disable(
    name: str, data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Disable a user: they cannot sign in, and their open sessions end now."""
    from casefold.web.users import disable_user

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        runtime.writer.run(lambda conn: disable_user(conn, name))
    out.print(f"disabled {name}")


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
        case = _guard(lambda: get_case(conn, case_id))
        case["timeline"] = case_timeline(conn, case_id, limit=1000).items
    if as_json:
        sys.stdout.write(
            orjson.dumps(case, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode() + "\n"
        )
        return
    out.print(f"[bold]{case['ref']}[/bold] {case['summary']}", highlight=False)
    out.print(
        f"status {case['status']} · severity {case['severity']} · priority "
        f"{case['priority']} · assignee {case['assignee'] or '-'} · alerts "
        f"{case['alert_count']}",
        highlight=False,
    )
    if case["tags"]:
        out.print("tags: " + ", ".join(case["tags"]), highlight=False, markup=False)
    out.print(case["description"], markup=False, highlight=False)
    if case["observables"]:
        table = Table("type", "value", "public", "alerts")
        for o in case["observables"]:
            table.add_row(
                o["type"],
                o["value"],
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


@wazuh_app.command("wodle")
def wazuh_wodle(
    spool_dir: Annotated[
        Path | None,
        typer.Option("--spool-dir", help="The integration's spool (default: the Wazuh one)."),
    ] = Path("/var/ossec/var/casefold-spool"),
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Print Casefold's pipeline health as JSON lines, for a Wazuh <wodle name="command">."""
    from casefold.wodle import status_lines

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime:
        lines = status_lines(runtime, spool_dir)
    for line in lines:
        sys.stdout.write(orjson.dumps(line).decode() + "\n")


@wazuh_app.command("install-integration")
def wazuh_install_integration(
    url: Annotated[
        str, typer.Option("--url", help="Casefold's base URL, e.g. https://casefold:8800.")
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="CASEFOLD_WAZUH_TOKEN",
            help="An ingest token (or set CASEFOLD_WAZUH_TOKEN).",
        ),
    ],
    ossec_dir: Annotated[Path, typer.Option("--ossec-dir", help="Wazuh's install dir.")] = Path(
        "/var/ossec"
    ),
    python: Annotated[
        str | None,
        typer.Option(
            "--python", help="Interpreter for the shebang (default: Wazuh's embedded Python)."
        ),
    ] = None,
) -> None:
    """Install the custom-casefold integration script on a Wazuh manager and print the
    <integration> block to add to ossec.conf."""
    from casefold.wazuh_side import install_integration

    try:
        result = install_integration(url, token, ossec_dir=ossec_dir, python=python)
    except CasefoldError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. not allowed to write into the Wazuh directory
        fail(f"cannot install into {ossec_dir}: {exc.strerror or exc}", 1)
    # Plain prints: paths and XML must reach the terminal or a file unwrapped and unstyled.
    for what, path in (
        ("script", result.script_path),
        ("settings (holds the token)", result.conf_path),
        ("spool dir", result.spool_dir),
        ("log file", result.log_file),
    ):
        print(f"wrote {what}: {path}")
    print(f"interpreter: {result.python}")
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    print("\nAdd this to ossec.conf, then restart the manager:\n")
    print(result.integration_xml, end="")


@wazuh_app.command("install-ar")
def wazuh_install_ar(
    wazuh_dir: Annotated[
        Path, typer.Option("--wazuh-dir", help="Wazuh's install dir (manager or agent).")
    ] = Path("/var/ossec"),
) -> None:
    """Install the casefold-block active-response script and print the <command> and
    <active-response> blocks to add to ossec.conf."""
    from casefold.wazuh_side import install_active_response

    try:
        script, xml = install_active_response(wazuh_dir)
    except CasefoldError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. not allowed to write into the Wazuh directory
        fail(f"cannot install into {wazuh_dir}: {exc.strerror or exc}", 1)
    print(f"wrote script: {script}")
    print("\nAdd this to ossec.conf (on the manager), then restart it:\n")
    print(xml, end="")


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


@app.command("expr")
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


@app.command("replay")
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
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from casefold.playbooks.trial import replay

    if not dry_run:
        fail("replay only supports --dry-run (nothing is written): add --dry-run")
    for path in files:
        if not path.is_file():
            fail(f"no such file: {path}")
    settings = settings_from(
        config, data_dir=data_dir, folding_rules=folding_rules, playbooks_dir=playbooks_dir
    )
    total = sum(path.stat().st_size for path in files)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=total)
        try:
            report = replay(files, settings=settings, progress=lambda n: bar.advance(task, n))
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
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from casefold.report import report_from_files

    if total < _REPORT_BAR_BYTES:
        return report_from_files(files, since=since, until=until)
    with Progress(
        TextColumn("reading"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("report", total=total)
        return report_from_files(
            files, since=since, until=until, progress=lambda n: bar.advance(task, n)
        )


@app.command("report")
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
        for path in files:
            if not path.is_file():
                fail(f"no such file: {path}")
        total = sum(path.stat().st_size for path in files)
        report = _guard(lambda: _report_files(files, total, start, end), code=2)
    else:
        settings = settings_from(config, data_dir=data_dir, database_url=database_url)
        with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
            report = report_from_store(conn, since=start, until=end)
    result = report.to_dict(top)
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_report(result)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Show one playbook run and its steps."""
    from casefold.playbooks.engine import get_run

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    with opened_runtime(settings) as runtime, runtime.engine.connect() as conn:
        run = _guard(lambda: get_run(conn, run_id))
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
        effect = _guard(
            lambda: runtime.writer.run(lambda conn: outbox_store.retry(conn, effect_id))
        )
    print(f"effect {effect_id} queued again: {effect['summary']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

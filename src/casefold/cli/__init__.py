"""The `casefold` command. Each command reads options, builds Settings, and calls one function."""

from __future__ import annotations

import typer

from casefold.cli.access import token_app, user_app
from casefold.cli.cases import cases_app
from casefold.cli.ingest import ingest_command
from casefold.cli.outbox import outbox_app
from casefold.cli.playbooks import expr, playbook_app, replay_command, runs_app
from casefold.cli.report import report_command
from casefold.cli.serve import serve
from casefold.cli.tail import tail_app
from casefold.cli.wazuh import wazuh_app
from casefold.cli.worker import worker

app = typer.Typer(
    help="Casefold: Wazuh alerts in, folded cases out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(cases_app, name="cases")
app.add_typer(wazuh_app, name="wazuh")
app.add_typer(playbook_app, name="playbook")
app.add_typer(runs_app, name="runs")
app.add_typer(outbox_app, name="outbox")
app.add_typer(tail_app, name="tail")

# The top-level commands, in the order `casefold --help` lists them.
app.command()(serve)
app.command()(worker)
app.command("ingest")(ingest_command)
app.command("expr")(expr)
app.command("replay")(replay_command)
app.command("report")(report_command)


def main() -> None:
    app()

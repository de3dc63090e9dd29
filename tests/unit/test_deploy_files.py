"""The shipped systemd units and container file start commands that exist, with options that
exist: a renamed flag must not leave a unit that fails at boot."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main

from casefold.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _options_of(subcommand: str) -> set[str]:
    group = typer.main.get_command(app)
    command = group.commands[subcommand]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


def _check(argv: list[str]) -> None:
    assert argv[0] in ("serve", "worker"), argv
    known = _options_of(argv[0])
    for word in argv[1:]:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{argv[0]} has no option {word}"


def test_every_unit_runs_a_real_command_with_real_options():
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {
        "casefold.service",
        "casefold-api.service",
        "casefold-worker@.service",
    }
    for unit in units:
        text = unit.read_text()
        (exec_start,) = re.findall(r"^ExecStart=(.+)$", text, flags=re.M)
        words = shlex.split(exec_start)
        if words[:2] == ["/bin/sh", "-c"]:  # the worker unit computes its metrics port
            words = shlex.split(words[2].removeprefix("exec "))
        assert words[0].endswith("/casefold"), unit.name
        _check(words[1:])
        assert "Restart=always" in text and "KillSignal=SIGTERM" in text


def test_the_container_runs_serve_by_default():
    text = (DEPLOY / "Containerfile").read_text()
    assert 'ENTRYPOINT ["casefold"]' in text
    (cmd,) = re.findall(r"^CMD (\[.+\])$", text, flags=re.M)
    _check([w.strip('" ') for w in cmd.strip("[]").split(",")])

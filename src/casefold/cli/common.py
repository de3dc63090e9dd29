"""Helpers shared by the command modules: the console, failing, settings, the runtime, options."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from casefold.config import Settings, load_settings
from casefold.errors import CasefoldError, ConfigError

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


def guard(fn: Callable[[], T], code: int = 1) -> T:
    try:
        return fn()
    except CasefoldError as exc:
        fail(str(exc), code)


def input_files(files: list[Path]) -> int:
    """Stop with one line if any file is missing (before anything is read); their total bytes."""
    for path in files:
        if not path.is_file():
            fail(f"no such file: {path}")
    return sum(path.stat().st_size for path in files)


@contextmanager
def byte_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr over `total` bytes; yields the callback to advance it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)

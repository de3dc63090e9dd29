"""`casefold worker`: the background work without HTTP, one of many processes on PostgreSQL."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from casefold.cli.common import ConfigFile, DatabaseUrl, DataDir, fail, settings_from
from casefold.errors import CasefoldError

log = logging.getLogger("casefold")


# `casefold worker`: a top-level command, registered on the root app in casefold.cli.
def worker(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics on this port without a token (overrides metrics_port; give "
            "each worker on one host its own port)."
        ),
    ] = None,
) -> None:
    """Fold alerts, run playbooks, enrich, deliver the outbox and check SLAs, sharing the work
    with every other worker on the same PostgreSQL store. Stops cleanly on SIGTERM or Ctrl-C."""
    from casefold.runtime import Runtime, tune_gc

    settings = settings_from(
        config, data_dir=data_dir, database_url=database_url, metrics_port=metrics_port
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        runtime = Runtime(settings)
        runtime.check_role("worker")
        runtime.open_store()
    except CasefoldError as exc:
        fail(str(exc))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime.start(role="worker")
    tune_gc()
    log.info("worker %s started", runtime.presence.id if runtime.presence else "")
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        log.info("worker stopping: finishing what it holds")
        runtime.stop()

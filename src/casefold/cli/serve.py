"""`casefold serve`: the whole service in one process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from casefold.cli.common import ConfigFile, DatabaseUrl, DataDir, fail, settings_from
from casefold.errors import CasefoldError, ConfigError


# `casefold serve`: a top-level command, registered on the root app in casefold.cli.
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 8800).")] = None,
    folding_rules: Annotated[
        Path | None, typer.Option("--folding-rules", help="Folding rules YAML.")
    ] = None,
    role: Annotated[
        str,
        typer.Option(
            help="all: everything in this process. api: HTTP and intake only, with "
            "`casefold worker` processes doing the rest (PostgreSQL).",
        ),
    ] = "all",
) -> None:
    """Run the service: API, intake and (unless --role api) folding, playbooks and sync."""
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
        if role not in ("all", "api"):
            raise ConfigError("role", "must be all or api (background work: casefold worker)")
        runtime.check_role(role)
        runtime.open_store()
    except CasefoldError as exc:
        fail(str(exc))
    uvicorn.run(
        create_app(runtime, manage_runtime=True, role=role),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )

"""`casefold wazuh`: the health wodle and the Wazuh-side installers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from casefold.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    fail,
    opened_runtime,
    settings_from,
)
from casefold.errors import CasefoldError

wazuh_app = typer.Typer(
    help="Wazuh-side helpers: the integration and active-response scripts, the health wodle.",
    no_args_is_help=True,
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

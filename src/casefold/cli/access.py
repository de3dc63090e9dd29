"""`casefold token` and `casefold user`: API tokens and web UI users."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

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

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Create, list and disable web UI users.", no_args_is_help=True)


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

    r = guard(lambda: parse_role(role), code=2)
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

    r = guard(lambda: parse_role(role), code=2)
    password = _read_password(password_stdin)
    # Hashed here, not in the store's writer thread: argon2 is slow on purpose.
    hashed = guard(lambda: hash_password(password), code=2)
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

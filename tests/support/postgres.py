"""A throwaway PostgreSQL server for the test session (machine-recipes.md).

Started from Debian's binaries as the `postgres` user (the server refuses to run as root), on a
temporary data directory and a free port; stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from support.server import free_port


def find_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PostgresServer:
    def __init__(self, bindir: Path, *, fsync: str = "off") -> None:
        self.bindir = bindir
        self.fsync = fsync  # off for tests, which need no durability; benchmarks ask for on
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="casefold-pg-"))
        self._counter = 0

    def _run(self, *args: str) -> None:
        cmd = " ".join(args)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres")
            subprocess.run(
                ["su", "postgres", "-s", "/bin/sh", "-c", cmd],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        else:
            subprocess.run(
                ["sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )

    def start(self) -> PostgresServer:
        self._run(
            f"{self.bindir}/initdb",
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )
        opts = (
            f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync={self.fsync} "
            "-c max_connections=200"
        )
        self._run(
            f"{self.bindir}/pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            f"'{opts}'",
            "-l",
            f"{self.datadir}/log",
            "-w",
            "start",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not start")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its postgresql:// URL."""
        self._counter += 1
        name = f"casefold_test_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(f"{self.bindir}/pg_ctl", "-D", str(self.datadir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)

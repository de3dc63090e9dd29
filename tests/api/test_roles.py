"""Many processes on one PostgreSQL: API-only and worker runtimes share the work, loops that must
run once hold a lead that passes on when its holder dies, and NOTIFY wakes workers at commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from support.alerts import sshd_alert
from typer.testing import CliRunner

from casefold.cli import app as cli_app
from casefold.config import Settings
from casefold.errors import ConfigError
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.leader import LeaderLock
from casefold.store.notify import ALERTS, OUTBOX, Listener, notify
from casefold.store.tables import alerts, cases, workers


def wait_for(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def post(rt: Runtime, docs: list[dict]) -> None:
    parsed = Parsed([Item(i, d) for i, d in enumerate(docs)], single=False)
    assert receive(parsed, parse_wazuh_alert, rt.writer).accepted == len(docs)


def pending(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(alerts).where(alerts.c.state == "pending")
        ).scalar_one()


@pytest.fixture
def pg_url(postgres_server) -> str:
    return postgres_server.new_database()


def test_sqlite_refuses_split_roles_with_one_line(tmp_path: Path):
    rt = Runtime(Settings(data_dir=tmp_path / "d"))
    try:
        for role in ("api", "worker"):
            with pytest.raises(ConfigError, match="need PostgreSQL"):
                rt.check_role(role)
        with pytest.raises(ConfigError, match="must be one of"):
            rt.check_role("leader")
    finally:
        rt.stop()
    result = CliRunner().invoke(cli_app, ["worker", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "need PostgreSQL" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.postgres
def test_api_process_stores_and_a_worker_process_folds(tmp_path: Path, pg_url: str):
    api = Runtime(Settings(data_dir=tmp_path / "a", database_url=pg_url))
    worker = Runtime(Settings(data_dir=tmp_path / "w", database_url=pg_url))
    api.start(role="api")
    try:
        post(api, [sshd_alert(i, srcip="198.51.100.4", minutes=i) for i in range(20)])
        time.sleep(1.5)  # longer than the folding poll: the API process folds nothing itself
        assert pending(api) == 20
        worker.start(role="worker")
        assert wait_for(lambda: pending(api) == 0)
        # The worker's listener is connected now: a new alert is folded at once, well before
        # the worker's own poll would have found it.
        assert worker.listener is not None and worker.listener.connected.wait(5)
        worker.folding._idle_poll = 60.0  # only a notification can wake it now
        time.sleep(1.2)  # let the loop enter its long wait
        post(api, [sshd_alert(100, srcip="198.51.100.4", minutes=30)])
        assert wait_for(lambda: pending(api) == 0, timeout=5)
        with api.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == 1
            roles = sorted(conn.execute(select(workers.c.role)).scalars())
        assert roles == ["api", "worker"]
    finally:
        worker.stop()
        api.stop()
    check = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with check.connect() as conn:
        # A clean stop removes the process's heartbeat row.
        assert conn.execute(select(func.count()).select_from(workers)).scalar_one() == 0
    check.dispose()


@pytest.mark.postgres
def test_a_lead_is_held_once_and_passes_on_when_its_holder_dies(tmp_path: Path, pg_url: str):
    one = Runtime(Settings(data_dir=tmp_path / "1", database_url=pg_url))
    two = Runtime(Settings(data_dir=tmp_path / "2", database_url=pg_url))
    one.open_store()
    try:
        first, second = LeaderLock(one.engine, "sla"), LeaderLock(two.engine, "sla")
        other = LeaderLock(two.engine, "poller")
        assert first.hold() and first.hold()  # held, and still held
        assert not second.hold()
        assert other.hold()  # a different name is a different lead
        # The holder's connection dies (as when its process is SIGKILLed).
        with two.engine.connect() as conn:
            ended = (
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND objid = (:k & 4294967295) "
                        "AND classid = ((:k >> 32) & 4294967295)"
                    ),
                    {"k": first.key},
                )
                .scalars()
                .all()
            )
        assert ended == [True]
        assert wait_for(second.hold, timeout=5)
        assert not first.hold()  # it notices, and does not take the lead back
        second.release()
        assert first.hold()
        first.release()
        other.release()
    finally:
        one.stop()
        two.stop()


def test_on_sqlite_the_lead_is_always_this_process(tmp_path: Path):
    rt = Runtime(Settings(data_dir=tmp_path / "d"))
    try:
        assert LeaderLock(rt.engine, "sla").hold()
        assert LeaderLock(rt.engine, "sla").hold()
    finally:
        rt.stop()


@pytest.mark.postgres
def test_notifications_arrive_on_commit_only(tmp_path: Path, pg_url: str):
    rt = Runtime(Settings(data_dir=tmp_path / "d", database_url=pg_url))
    rt.open_store()
    got: list[str] = []
    woke = threading.Event()

    def on(topic: str):
        def handler() -> None:
            got.append(topic)
            woke.set()

        return handler

    listener = Listener(rt.engine, {ALERTS: on(ALERTS), OUTBOX: on(OUTBOX)})
    listener.start()
    try:
        assert listener.connected.wait(5)
        assert wait_for(lambda: len(got) == 2)  # every handler once after connecting
        got.clear()
        woke.clear()
        with rt.engine.connect() as conn:
            with conn.begin() as tx:
                notify(conn, OUTBOX)
                tx.rollback()
            with conn.begin():
                notify(conn, ALERTS)
                notify(conn, ALERTS)  # folded into one by PostgreSQL
                time.sleep(0.3)
                assert got == []  # not before the commit
        assert woke.wait(5)
        time.sleep(0.5)
        assert got == [ALERTS]
    finally:
        listener.stop()
        rt.stop()

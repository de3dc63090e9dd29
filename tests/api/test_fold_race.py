"""Two workers folding the same key at the same time still make one case."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select
from support.alerts import sshd_alert

from casefold.config import Settings
from casefold.intake.body import Item, Parsed
from casefold.intake.receiver import receive
from casefold.runtime import Runtime
from casefold.sources.wazuh import parse_wazuh_alert
from casefold.store.tables import alerts, cases


def test_racing_workers_open_one_case_per_key(tmp_path: Path, database_url: str | None):
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, fold_batch_size=15)
    a, b = Runtime(settings), Runtime(settings)
    a.start(folding=False)
    b.start(folding=False)
    try:
        docs = [
            sshd_alert(i, srcip=("198.51.100.1", "198.51.100.2")[i % 2], minutes=i / 10)
            for i in range(300)
        ]
        receive(
            Parsed([Item(i, d) for i, d in enumerate(docs)], single=False),
            parse_wazuh_alert,
            a.writer,
        )
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(rt: Runtime) -> None:
            try:
                barrier.wait()
                rt.folding.drain()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(rt,)) for rt in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        with a.engine.connect() as conn:
            rows = conn.execute(
                select(cases.c.fold_key, cases.c.alert_count).order_by(cases.c.fold_key)
            ).all()
            pending = conn.execute(
                select(func.count()).select_from(alerts).where(alerts.c.state == "pending")
            ).scalar_one()
        assert [tuple(r) for r in rows] == [("198.51.100.1", 150), ("198.51.100.2", 150)]
        assert pending == 0
    finally:
        a.stop()
        b.stop()

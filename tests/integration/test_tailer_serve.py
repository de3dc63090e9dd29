"""A real `casefold serve` following alerts.json while analysisd writes and rotates it, killed
with SIGKILL twice: afterwards every line was taken exactly once.

A writer thread plays analysisd (lines appended in bursts, some cut in two, alerts.json relinked
to the next dated file every ROTATE_EVERY alerts) and monitord (the file before the previous one
gzipped and deleted). While the server is down at least two rotations happen, so the restarted
server must finish the checkpoint's file from its .gz and read the archives in between.
"""

from __future__ import annotations

import gzip
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, func, select
from support.alerts import sshd_alert
from support.server import ServerProcess

from casefold.sources.alert_files import archive_name
from casefold.store.tables import alerts, tail_positions, tail_rejects

pytestmark = pytest.mark.slow

SEED = 4242
TOTAL = 5000
ROTATE_EVERY = 700
KILL_AT = (1400, 3300)  # alerts written when the server is killed
BAD_AT = {500: b"{not json\n", 2500: b"[1, 2, 3]\n", 4500: b'{"no": "rule"}\n'}
DEADLINE_S = 90.0


class Analysisd(threading.Thread):
    """Writes TOTAL alerts into alerts.json the way analysisd does, rotating as it goes."""

    def __init__(self, alerts_dir: Path, rng: random.Random) -> None:
        super().__init__(name="analysisd", daemon=True)
        self.dir = alerts_dir
        self.rng = rng
        self.link = alerts_dir / "alerts.json"
        # Yesterday's file first, then today's -NNN files: the names the server expects now.
        self.day = date.today() - timedelta(days=1)
        self.sequence = 0
        self.files: list[Path] = []
        self.written = 0  # alerts written so far (read by the test thread)
        self.rotations = 0
        self.pauses = list(KILL_AT)  # it waits there until the test has killed the server
        self.resume = threading.Event()
        self.error: BaseException | None = None
        self.out = self._next_file()

    def _next_file(self) -> object:
        path = self.dir / archive_name(self.day, self.sequence)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "ab", buffering=0)  # noqa: SIM115 - closed at the next rotation
        self.files.append(path)
        if self.link.exists():
            self.link.unlink()
        os.link(path, self.link)
        return out

    def rotate(self) -> None:
        self.out.close()
        if self.day < date.today():
            self.day, self.sequence = date.today(), 0
        else:
            self.sequence += 1
        self.out = self._next_file()
        self.rotations += 1
        if len(self.files) >= 3:  # monitord, one rotation behind
            old = self.files[-3]
            packed = Path(str(old) + ".gz")
            packed.write_bytes(gzip.compress(old.read_bytes()))
            old.unlink()

    def run(self) -> None:
        try:
            n = 0
            while n < TOTAL:
                if self.pauses and n >= self.pauses[0]:
                    self.pauses.pop(0)
                    self.resume.wait(DEADLINE_S)
                    self.resume.clear()
                burst = b""
                for _ in range(self.rng.randint(1, 30)):
                    if n >= TOTAL or (self.pauses and n >= self.pauses[0]):
                        break
                    burst += BAD_AT.get(n, b"") + orjson.dumps(sshd_alert(n)) + b"\n"
                    n += 1
                if self.rng.random() < 0.3:  # half a line now, the rest a moment later
                    cut = self.rng.randint(1, len(burst) - 1)
                    self.out.write(burst[:cut])
                    time.sleep(0.002)
                    burst = burst[cut:]
                self.out.write(burst)
                self.written = n
                if n // ROTATE_EVERY > self.rotations and n < TOTAL:
                    self.rotate()
                time.sleep(0.008)
            self.out.close()
        except BaseException as exc:  # reported by the test
            self.error = exc


def wait_until(cond: Callable[[], bool], deadline: float, what: str) -> None:
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkill_while_following_a_rotating_file_loses_and_repeats_nothing(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    alerts_dir = tmp_path / "ossec" / "logs" / "alerts"
    alerts_dir.mkdir(parents=True)
    wazuh = Analysisd(alerts_dir, random.Random(SEED))
    env = {"CASEFOLD_TAIL_ALERTS_JSON": str(wazuh.link), "CASEFOLD_TAIL_POLL_SECONDS": "0.05"}
    srv = server_factory("tail", env=env).start()
    store = create_engine(f"sqlite:///{srv.data_dir / 'casefold.db'}")

    def stored() -> int:
        with store.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(alerts)) or 0)

    wazuh.start()
    try:
        for at in KILL_AT:
            wait_until(lambda a=at: wazuh.written >= a, deadline, f"{at} alerts written")
            wait_until(lambda a=at: stored() >= a - 300, deadline, "the server to catch up")
            srv.kill()  # SIGKILL, most likely with a batch in flight
            rotations = wazuh.rotations
            wazuh.resume.set()
            # Down across two rotations: the checkpoint's file is gzipped meanwhile.
            wait_until(lambda r=rotations: wazuh.rotations >= r + 2, deadline, "two rotations")
            srv.start()
        wazuh.join(max(0.0, deadline - time.monotonic()))
        assert not wazuh.is_alive() and wazuh.error is None, wazuh.error
        wait_until(lambda: stored() >= TOTAL, deadline, f"{TOTAL} alerts stored")
        time.sleep(0.3)  # anything read twice would land now
    finally:
        srv.stop()

    with store.connect() as conn:
        ids = Counter(conn.scalars(select(alerts.c.source_id)))
        pos = conn.execute(select(tail_positions)).one()
        reasons = list(conn.scalars(select(tail_rejects.c.reason)))
    store.dispose()
    assert set(ids) == {str(sshd_alert(n)["id"]) for n in range(TOTAL)}
    assert max(ids.values()) == 1
    # Each line was counted once: a batch and its checkpoint commit together or not at all.
    assert (pos.lines, pos.bad_lines) == (TOTAL + len(BAD_AT), len(BAD_AT))
    assert len(reasons) == len(BAD_AT)
    assert pos.inode == wazuh.link.stat().st_ino
    assert pos.offset == wazuh.link.stat().st_size
    log = srv.log_path.read_text()
    assert log.count("rotated since the checkpoint: reading") == len(KILL_AT), log[-3000:]
    assert ".json.gz from offset" in log

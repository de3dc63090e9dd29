"""The alerts.json tailer against files written the way analysisd and monitord write them.

`Analysisd` below keeps the day file `YYYY/Mon/ossec-alerts-DD[-NNN].json` with alerts.json as a
hard link to it, rotates by creating the next file and relinking alerts.json, and `compress`
does what monitord does to a finished file. Every test reads real files into a real store and
checks what the store holds: the alerts by Wazuh id, tail_positions and tail_rejects.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from support.alerts import sample, sshd_alert

from casefold.config import Settings, load_settings
from casefold.errors import ConflictError
from casefold.intake.tailer import AlertsTailer
from casefold.runtime import Runtime
from casefold.sources.alert_files import (
    Archive,
    archive_name,
    find_archive,
    list_archives,
    parse_archive,
)
from casefold.store.tables import alerts, tail_positions, tail_rejects
from casefold.store.writer import Writer

DAY = date(2026, 11, 22)


class Analysisd:
    """Writes alerts the way wazuh-analysisd does (wazuh.md §5)."""

    def __init__(self, alerts_dir: Path, day: date = DAY) -> None:
        self.dir = alerts_dir
        self.day = day
        self.sequence = 0
        self.link = alerts_dir / "alerts.json"
        self.out = self._create()
        self.files = [self.current]
        os.link(self.current, self.link)

    @property
    def current(self) -> Path:
        return self.dir / archive_name(self.day, self.sequence)

    def _create(self) -> Any:
        self.current.parent.mkdir(parents=True, exist_ok=True)
        return open(self.current, "ab", buffering=0)  # noqa: SIM115 - closed at rotation

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def rotate(self, *, next_day: bool = True) -> Path:
        """The next day's file (or the day's next -NNN file), and alerts.json relinked to it."""
        old, old_path = self.out, self.current
        if next_day:
            self.day += timedelta(days=1)
            self.sequence = 0
        else:
            self.sequence += 1
        old.close()
        self.out = self._create()
        self.files.append(self.current)
        self.link.unlink()
        os.link(self.current, self.link)
        return old_path

    def close(self) -> None:
        self.out.close()


def compress(path: Path) -> Path:
    """monitord: gzip a finished file to <name>.gz and delete the plain one."""
    packed = Path(str(path) + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return packed


def line(n: int, **kwargs: Any) -> bytes:
    return orjson.dumps(sshd_alert(n, **kwargs)) + b"\n"


def lines(numbers: range) -> bytes:
    return b"".join(line(n) for n in numbers)


def wazuh_id(n: int) -> str:
    return str(sshd_alert(n)["id"])


@pytest.fixture
def runtime(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    url = (
        request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    )
    rt = Runtime(Settings(data_dir=tmp_path / "data", database_url=url))
    rt.open_store()
    rt.writer.start()
    yield rt
    rt.stop()


@pytest.fixture
def wazuh(tmp_path: Path) -> Iterator[Analysisd]:
    sim = Analysisd(tmp_path / "alerts")
    yield sim
    sim.close()


@pytest.fixture
def make_tailer(runtime: Runtime, wazuh: Analysisd) -> Iterator[Callable[..., AlertsTailer]]:
    made: list[AlertsTailer] = []

    def make(
        writer: Writer | None = None, cls: type[AlertsTailer] = AlertsTailer, **kwargs: Any
    ) -> AlertsTailer:
        kwargs.setdefault("today", lambda: wazuh.day)
        kwargs.setdefault("name", "test:alerts.json")
        tailer = cls(wazuh.link, writer or runtime.writer, **kwargs)
        made.append(tailer)
        return tailer

    yield make
    for tailer in made:
        tailer.stop()


def stored_ids(rt: Runtime) -> list[str]:
    """Wazuh ids of the stored alerts, in the order they were stored."""
    with rt.engine.connect() as conn:
        return list(conn.scalars(select(alerts.c.source_id).order_by(alerts.c.id)))


def checkpoint(rt: Runtime) -> Any:
    with rt.engine.connect() as conn:
        return conn.execute(select(tail_positions)).one()


def rejects(rt: Runtime) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(tail_rejects).order_by(tail_rejects.c.id)))


# -- lines -----------------------------------------------------------------------------------------


def test_a_partial_line_waits_for_its_newline(runtime, wazuh, make_tailer):
    whole = line(3)
    wazuh.write(lines(range(3)) + whole[:700])
    tailer = make_tailer()
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(3)]
    assert checkpoint(runtime).offset == len(lines(range(3)))  # not past the last newline
    wazuh.write(whole[700:-1])  # everything but the newline: still not a line
    tailer.catch_up()
    assert len(stored_ids(runtime)) == 3
    wazuh.write(b"\n")
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(4)]
    pos = checkpoint(runtime)
    assert pos.offset == pos.file_size == wazuh.current.stat().st_size
    assert (pos.lines, pos.bad_lines, pos.archive) == (4, 0, archive_name(DAY))
    assert (pos.device, pos.inode) == (wazuh.link.stat().st_dev, wazuh.link.stat().st_ino)


def test_lines_of_200_kb_and_1_mb_are_read_whole(runtime, wazuh, make_tailer):
    big = sshd_alert(1)
    big["full_log"] = "x" * 200_000
    huge = sshd_alert(2)
    huge["full_log"] = "y" * 1_000_000
    data = line(0) + orjson.dumps(big) + b"\n" + orjson.dumps(huge) + b"\n" + line(3)
    tailer = make_tailer()
    # Written in pieces that cut the long lines, so reads see them in several parts.
    for cut in range(0, len(data), 150_000):
        wazuh.write(data[cut : cut + 150_000])
        tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(4)]
    with runtime.engine.connect() as conn:
        raws = list(conn.scalars(select(alerts.c.raw).order_by(alerts.c.id)))
    assert len(orjson.loads(raws[2])["full_log"]) == 1_000_000
    assert checkpoint(runtime).offset == len(data) and not rejects(runtime)


def test_a_line_over_the_limit_is_recorded_and_skipped(runtime, wazuh, make_tailer):
    limit = 100_000
    long_in_one_read = b'{"full_log": "' + b"a" * 300_000 + b'"}\n'
    longer_than_a_read = b'{"full_log": "' + b"b" * 3_000_000 + b'"}\n'  # never held whole
    parts = [line(0), long_in_one_read, line(1), longer_than_a_read, line(2)]
    for part in parts:
        wazuh.write(part)
    tailer = make_tailer(max_line_bytes=limit)
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(3)]
    found = rejects(runtime)
    assert [(r.offset, r.length) for r in found] == [
        (len(parts[0]), len(long_in_one_read) - 1),
        (sum(map(len, parts[:3])), len(longer_than_a_read) - 1),
    ]
    assert all("tail_max_line_bytes" in r.reason for r in found)
    assert found[1].excerpt == ('{"full_log": "' + "b" * 600)[:512]
    pos = checkpoint(runtime)
    assert (pos.offset, pos.lines, pos.bad_lines) == (sum(map(len, parts)), 5, 2)


def test_bad_lines_are_recorded_and_counted_and_the_tail_goes_on(
    runtime, wazuh, make_tailer, database_url
):
    bad = [
        b'{"rule": {"level": 3, "id": "5715"\n',  # cut short
        b"[1, 2]\n",  # JSON, not an object
        b'{"hello": "world", "nul": "\\u0000"}\n',  # an object, not a Wazuh alert
        b"\x00\xff garbage \x00\n",  # not JSON, with NUL bytes PostgreSQL text cannot hold
    ]
    parts = [line(0), bad[0], b"\n", line(1), bad[1], b"   \n", bad[2], line(2), bad[3], line(3)]
    wazuh.write(b"".join(parts))
    tailer = make_tailer()
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(4)]
    found = rejects(runtime)
    starts = [sum(map(len, parts[:i])) for i in range(len(parts))]
    assert [(r.offset, r.length) for r in found] == [
        (starts[parts.index(b)], len(b) - 1) for b in bad
    ]
    assert found[0].reason.startswith("invalid JSON at column ")
    assert found[1].reason == "an alert must be a JSON object"
    assert "rule" in found[2].reason
    assert found[3].reason.startswith("invalid JSON")
    assert "\x00" not in found[3].excerpt and "garbage" in found[3].excerpt
    assert found[0].excerpt == bad[0][:-1].decode()
    assert {r.name for r in found} == {"test:alerts.json"}
    assert {r.file for r in found} == {str(wazuh.current)}
    assert {r.inode for r in found} == {wazuh.current.stat().st_ino}
    pos = checkpoint(runtime)
    assert (pos.lines, pos.bad_lines, pos.offset) == (8, 4, len(b"".join(parts)))
    assert (tailer.stored, tailer.rejected) == (4, 4)


# -- rotation --------------------------------------------------------------------------------------


class RacedTailer(AlertsTailer):
    """Runs `before_stat` once, between the tailer's read that found the end of the file and
    its look at alerts.json: the moment a rotation is easiest to get wrong."""

    before_stat: Callable[[], None] | None = None

    def _stat(self) -> os.stat_result | None:
        action, self.before_stat = self.before_stat, None
        if action is not None:
            action()
        return super()._stat()


def test_live_rotation_drains_the_old_inode(runtime, wazuh, make_tailer, caplog):
    caplog.set_level(logging.INFO, "casefold.tailer")
    tailer = make_tailer(cls=RacedTailer)
    wazuh.write(lines(range(0, 10)))
    tailer.catch_up()

    def analysisd_writes_then_rotates() -> None:
        # After the tailer's last read of the old file, before it looks at alerts.json.
        wazuh.write(lines(range(10, 20)))
        wazuh.rotate()
        wazuh.write(lines(range(20, 30)))

    tailer.before_stat = analysisd_writes_then_rotates
    tailer.catch_up()
    first = wazuh.files[0]
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(30)]
    # Two rotations between two looks (rotate_interval): the file in between is not skipped.
    wazuh.write(lines(range(30, 35)))
    wazuh.rotate(next_day=False)
    wazuh.write(lines(range(35, 40)))
    wazuh.rotate(next_day=False)
    wazuh.write(lines(range(40, 45)))
    compress(first)  # monitord, meanwhile
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(45)]
    assert tailer.duplicates == 0
    pos = checkpoint(runtime)
    assert pos.archive == "2026/Nov/ossec-alerts-23-002.json"
    assert pos.inode == wazuh.link.stat().st_ino and pos.offset == len(lines(range(40, 45)))
    switches = [r.getMessage() for r in caplog.records if "now reading" in r.getMessage()]
    assert len(switches) == 3, switches  # one line per file, none per alert


def test_an_unended_line_left_in_a_rotated_file_is_recorded(runtime, wazuh, make_tailer):
    tailer = make_tailer()
    wazuh.write(lines(range(3)) + line(3)[:50])  # analysisd crashed mid-line
    tailer.catch_up()
    wazuh.rotate()
    wazuh.write(lines(range(4, 6)))
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in (0, 1, 2, 4, 5)]
    [reject] = rejects(runtime)
    assert (reject.reason, reject.offset, reject.length) == (
        "unterminated last line",
        len(lines(range(3))),
        50,
    )
    assert reject.file == str(wazuh.files[0])


def test_a_file_truncated_in_place_is_read_again_from_its_start(
    runtime, wazuh, make_tailer, caplog
):
    tailer = make_tailer()
    wazuh.write(lines(range(5)))
    tailer.catch_up()
    os.truncate(wazuh.current, 0)  # copytruncate: same inode, size 0
    wazuh.write(lines(range(5, 7)))
    with caplog.at_level(logging.WARNING, "casefold.tailer"):
        tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(7)]
    assert any("truncated in place" in r.getMessage() for r in caplog.records)
    assert checkpoint(runtime).offset == len(lines(range(5, 7)))


def test_a_missing_file_is_waited_for(runtime, tmp_path, caplog):
    path = tmp_path / "later" / "alerts.json"
    tailer = AlertsTailer(path, runtime.writer, name="test:later")
    with caplog.at_level(logging.WARNING, "casefold.tailer"):
        tailer.catch_up()
        tailer.catch_up()
    assert [r.getMessage() for r in caplog.records] == [f"{path} does not exist: waiting for it"]
    with runtime.engine.connect() as conn:
        assert conn.execute(select(tail_positions)).first() is None
    path.parent.mkdir()
    path.write_bytes(lines(range(2)))
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(0), wazuh_id(1)]
    tailer.stop()


def test_start_at_the_end_skips_what_is_already_there(runtime, wazuh, make_tailer):
    partial = line(3)
    wazuh.write(lines(range(3)) + partial[:100])
    tailer = make_tailer(start="end")
    tailer.catch_up()
    assert stored_ids(runtime) == []
    assert checkpoint(runtime).offset == len(lines(range(3)))
    wazuh.write(partial[100:] + line(4))  # the line begun before the start counts
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(3), wazuh_id(4)]


# -- restarts and downtime -------------------------------------------------------------------------


def test_a_restart_resumes_at_the_checkpoint(runtime, wazuh, make_tailer, database_url):
    first = make_tailer(batch_lines=7)
    wazuh.write(lines(range(50)))
    first.catch_up()
    first.stop()
    wazuh.write(lines(range(50, 80)))
    second = make_tailer(batch_lines=7)
    second.catch_up()
    ids = stored_ids(runtime)
    assert ids == [wazuh_id(n) for n in range(80)]
    assert (first.stored, second.stored, second.duplicates) == (50, 30, 0)  # nothing read twice
    assert checkpoint(runtime).lines == 80


def test_downtime_across_rotations_backfills_from_the_archives(runtime, wazuh, make_tailer, caplog):
    caplog.set_level(logging.INFO, "casefold.tailer")
    first = make_tailer()
    wazuh.write(lines(range(0, 10)))
    first.catch_up()
    first.stop()  # Casefold is down from here
    wazuh.write(lines(range(10, 20)))
    day1 = wazuh.rotate()  # 23rd
    wazuh.write(lines(range(20, 30)))
    day2 = wazuh.rotate(next_day=False)  # 23rd, -001
    wazuh.write(lines(range(30, 40)))
    day2b = wazuh.rotate()  # 24th
    wazuh.write(lines(range(40, 50)))
    for done in (day1, day2, day2b):
        compress(done)
    assert sorted(p.name for p in wazuh.current.parent.iterdir()) == [
        "ossec-alerts-22.json.gz",
        "ossec-alerts-23-001.json.gz",
        "ossec-alerts-23.json.gz",
        "ossec-alerts-24.json",
    ]
    second = make_tailer()
    second.catch_up()
    # In the order they were written: the checkpoint's file from its offset, then the later
    # archives by date and sequence, then alerts.json; nothing read twice.
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(50)]
    assert second.duplicates == 0
    pos = checkpoint(runtime)
    assert (pos.archive, pos.inode) == ("2026/Nov/ossec-alerts-24.json", wazuh.link.stat().st_ino)
    [resumed] = [r.getMessage() for r in caplog.records if "since the checkpoint" in r.getMessage()]
    assert resumed == (
        f"{wazuh.link} rotated since the checkpoint: reading {day1}.gz "
        f"from offset {len(lines(range(10)))} first"
    )


class CrashingWriter(Writer):
    """Lets `commits` tailer batches through, then crashes on the next: before it reaches the
    writer, or (`in_transaction`) after its statements ran, as a crash before COMMIT would."""

    def __init__(self, inner: Writer, commits: int = 0, *, in_transaction: bool = False) -> None:
        self.inner, self.commits, self.in_transaction = inner, commits, in_transaction

    def submit(self, job, *, background=False):  # type: ignore[no-untyped-def]
        if type(job).__name__ == "_Commit":
            if self.commits:
                self.commits -= 1
            elif not self.in_transaction:
                raise RuntimeError("crash")
            else:

                def failing(conn: Any) -> Any:
                    job(conn)
                    raise RuntimeError("lost before commit")

                return self.inner.submit(failing, background=background)
        return self.inner.submit(job, background=background)


def test_a_restart_in_the_middle_of_a_backfill_resumes_inside_the_gzip(runtime, wazuh, make_tailer):
    first = make_tailer()
    wazuh.write(lines(range(0, 5)))
    first.catch_up()
    first.stop()
    wazuh.write(lines(range(5, 40)))
    compress(wazuh.rotate())
    wazuh.write(lines(range(40, 45)))

    crashing = make_tailer(writer=CrashingWriter(runtime.writer, commits=2), batch_lines=10)
    with pytest.raises(RuntimeError, match="crash"):
        crashing.catch_up()
    crashing.stop()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(25)]
    assert checkpoint(runtime).archive == "2026/Nov/ossec-alerts-22.json"
    last = make_tailer(batch_lines=10)
    last.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(45)]
    assert last.duplicates == 0


def test_a_vanished_archive_is_reported_and_the_later_ones_read(
    runtime, wazuh, make_tailer, caplog
):
    first = make_tailer()
    wazuh.write(lines(range(0, 5)))
    first.catch_up()
    first.stop()
    wazuh.write(lines(range(5, 10)))
    gone = wazuh.rotate()
    wazuh.write(lines(range(10, 15)))
    compress(wazuh.rotate())
    wazuh.write(lines(range(15, 20)))
    gone.unlink()  # deleted by someone, never compressed
    with caplog.at_level(logging.WARNING, "casefold.tailer"):
        make_tailer().catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in (*range(5), *range(10, 20))]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        f"{gone} is gone (neither it nor its .gz exists): the alerts after its offset "
        f"{len(lines(range(5)))} may be missed"
    )


def test_a_reused_inode_number_is_told_apart_by_the_archive_name(runtime, wazuh, make_tailer):
    first = make_tailer()
    wazuh.write(lines(range(0, 5)))
    first.catch_up()
    first.stop()
    wazuh.write(lines(range(5, 10)))
    compress(wazuh.rotate())
    wazuh.write(lines(range(10, 20)))
    # The file system gave the 23rd's file the inode number the 22nd's had (monitord deleted
    # that one): same number, another file.
    live = wazuh.link.stat()
    with runtime.engine.begin() as conn:
        conn.execute(tail_positions.update().values(device=live.st_dev, inode=live.st_ino))
    second = make_tailer()
    second.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(20)]
    assert second.duplicates == 0


def test_a_file_outside_wazuhs_layout_is_followed_too(runtime, tmp_path, caplog):
    path = tmp_path / "plain" / "alerts.json"
    path.parent.mkdir()
    path.write_bytes(lines(range(0, 3)))
    tailer = AlertsTailer(path, runtime.writer, name="test:plain")
    tailer.catch_up()
    with open(path, "ab") as old:  # rotated by someone else: a new file under the name
        path.unlink()
        path.write_bytes(lines(range(5, 8)))
        old.write(lines(range(3, 5)))
    tailer.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(8)]
    tailer.stop()
    path.unlink()  # and again while Casefold is down: the new file is read from its start
    path.write_bytes(lines(range(8, 10)))
    with caplog.at_level(logging.WARNING, "casefold.tailer"):
        again = AlertsTailer(path, runtime.writer, name="test:plain")
        again.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(10)]
    assert "its archive is unknown" in caplog.records[0].getMessage()
    again.stop()


# -- one transaction -------------------------------------------------------------------------------


def test_the_checkpoint_and_its_alerts_commit_together(runtime, wazuh, make_tailer, database_url):
    wazuh.write(lines(range(3)) + b"not json\n")
    failing = make_tailer(writer=CrashingWriter(runtime.writer, in_transaction=True))
    with pytest.raises(RuntimeError, match="lost before commit"):
        failing.catch_up()
    # The alerts, the reject and the offset were all in the failed transaction.
    assert stored_ids(runtime) == [] and rejects(runtime) == []
    pos = checkpoint(runtime)
    assert (pos.offset, pos.lines, pos.bad_lines) == (0, 0, 0)
    failing.stop()
    working = make_tailer()
    working.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(3)]
    assert len(rejects(runtime)) == 1
    assert checkpoint(runtime).offset == len(lines(range(3))) + len(b"not json\n")


def test_two_tailers_on_one_checkpoint_never_move_it_back(
    runtime, wazuh, make_tailer, database_url
):
    wazuh.write(lines(range(20)))
    one = make_tailer(batch_lines=4)
    other = make_tailer(batch_lines=4)
    assert one.step() and other.step()  # both open at offset 0
    assert one.step()  # lines 0..3
    assert other.step()  # lines 0..3 again, also from offset 0
    with pytest.raises(ConflictError, match="moved"):
        other.catch_up()  # refused once its batch reaches the writer: nothing written
    assert checkpoint(runtime).offset == len(lines(range(4)))
    assert other.stored == 0
    for _ in range(10):  # they take turns; each reloads the stored position when refused
        for tailer in (other, one):
            try:
                tailer.step()
            except ConflictError:
                pass
    one.catch_up()
    assert stored_ids(runtime) == [wazuh_id(n) for n in range(20)]
    pos = checkpoint(runtime)
    assert (pos.offset, pos.lines) == (len(lines(range(20))), 20)


# -- settings and runtime --------------------------------------------------------------------------


def test_settings_come_from_the_environment(tmp_path: Path):
    s = load_settings(
        environ={
            "CASEFOLD_TAIL_ALERTS_JSON": "/var/ossec/logs/alerts/alerts.json",
            "CASEFOLD_TAIL_START": "end",
            "CASEFOLD_TAIL_BATCH_LINES": "500",
        }
    )
    assert s.tail_alerts_json == Path("/var/ossec/logs/alerts/alerts.json")
    assert (s.tail_start, s.tail_batch_lines, s.tail_poll_seconds) == ("end", 500, 0.25)
    assert s.tail_max_line_bytes == 64 * 1024 * 1024
    assert load_settings(environ={}).tail_alerts_json is None


def test_the_runtime_follows_the_file_and_folds_what_it_stores(tmp_path: Path, wazuh):
    wazuh.write(lines(range(5)))
    rt = Runtime(Settings(data_dir=tmp_path / "d", tail_alerts_json=wazuh.link))
    assert rt.tailer is not None and rt.tailer.path == wazuh.link
    rt.start()
    try:
        for _ in range(200):
            with rt.engine.connect() as conn:
                states = list(conn.scalars(select(alerts.c.state)))
            if len(states) == 5 and set(states) == {"folded"}:
                break
            time.sleep(0.05)
        assert len(states) == 5 and set(states) == {"folded"}
    finally:
        rt.stop()
    assert Runtime(Settings(data_dir=tmp_path / "e")).tailer is None


# -- archive names ---------------------------------------------------------------------------------


def test_archive_names_and_their_order(tmp_path: Path):
    assert archive_name(date(2026, 1, 5)) == "2026/Jan/ossec-alerts-05.json"
    assert archive_name(date(2026, 12, 31), 12) == "2026/Dec/ossec-alerts-31-012.json"
    assert parse_archive("2026/Nov/ossec-alerts-22-003.json.gz") == Archive(
        date(2026, 11, 22), 3, "2026/Nov/ossec-alerts-22-003.json", compressed=True
    )
    for bad in ("2026/Nov/ossec-alerts-22.log", "2026/Foo/ossec-alerts-22.json", "x.json"):
        assert parse_archive(bad) is None
    names = [
        "2025/Dec/ossec-alerts-31.json.gz",
        "2026/Jan/ossec-alerts-01.json.gz",
        "2026/Jan/ossec-alerts-01-002.json.gz",
        "2026/Jan/ossec-alerts-01-010.json",
        "2026/Jan/ossec-alerts-01-010.json.gz",  # being compressed: the plain one is listed
        "2026/Jan/ossec-alerts-01.json.sum",
        "2026/Jan/ossec-alerts-01.log.gz",
        "2026/Feb/ossec-alerts-02.json",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [a.file for a in list_archives(tmp_path)] == [
        "2025/Dec/ossec-alerts-31.json.gz",
        "2026/Jan/ossec-alerts-01.json.gz",
        "2026/Jan/ossec-alerts-01-002.json.gz",
        "2026/Jan/ossec-alerts-01-010.json",
        "2026/Feb/ossec-alerts-02.json",
    ]
    assert [a.file for a in list_archives(tmp_path, date(2026, 2, 1))] == [
        "2026/Feb/ossec-alerts-02.json"
    ]
    st = (tmp_path / "2026/Feb/ossec-alerts-02.json").stat()
    found = find_archive(tmp_path, st.st_dev, st.st_ino, [date(2026, 3, 1), date(2026, 2, 28)])
    assert found == "2026/Feb/ossec-alerts-02.json"
    assert find_archive(tmp_path, st.st_dev, st.st_ino, [date(2026, 3, 1)]) is None


def test_real_samples_are_stored(runtime, wazuh, make_tailer):
    names = ["syscheck_file_added_554_sha256.json", "osquery_24010.json", "osquery_24010.json"]
    wazuh.write(b"".join(orjson.dumps(sample(n)) + b"\n" for n in names))
    tailer = make_tailer()
    tailer.catch_up()
    assert (tailer.stored, tailer.duplicates, tailer.rejected) == (2, 1, 0)


def test_tail_status_shows_the_checkpoint_and_the_bad_lines(tmp_path: Path, wazuh):
    from typer.testing import CliRunner

    from casefold.cli import app

    data = tmp_path / "data"
    wazuh.write(lines(range(3)) + b"{oops\n" + line(3)[:40])
    rt = Runtime(Settings(data_dir=data))
    rt.open_store()
    rt.writer.start()
    try:
        AlertsTailer(wazuh.link, rt.writer, name="mgr:alerts.json", today=lambda: DAY).catch_up()
    finally:
        rt.stop()
    runner = CliRunner()
    shown = runner.invoke(app, ["tail", "status", "--data-dir", str(data)])
    assert shown.exit_code == 0, shown.output
    offset = len(lines(range(3)) + b"{oops\n")
    assert f"offset   {offset:,} of {offset + 40:,} bytes (40 behind)" in shown.output
    assert "lines    4 read, 1 bad" in shown.output
    assert "file     2026/Nov/ossec-alerts-22.json" in shown.output
    assert f"at {len(lines(range(3))):,} (5 bytes): invalid JSON at column 2" in shown.output
    as_json = runner.invoke(app, ["tail", "status", "--json", "--data-dir", str(data)])
    [entry] = orjson.loads(as_json.output)
    assert (entry["name"], entry["bad_lines"], entry["rejects"][0]["excerpt"]) == (
        "mgr:alerts.json",
        1,
        "{oops",
    )
    empty = runner.invoke(app, ["tail", "status", "--data-dir", str(tmp_path / "other")])
    assert "no alerts.json is followed" in empty.output

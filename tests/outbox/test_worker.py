"""The outbox on a real store (SQLite and PostgreSQL): order within a chain, back-off, dead
letters, manual retry, leases after a crash, and the state in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from casefold.config import Settings
from casefold.connectors.http import ProviderError, QuotaExceeded
from casefold.outbox import store
from casefold.outbox.store import Effect
from casefold.outbox.worker import Attempt, Delivered, DeliveryWorker
from casefold.store.db import make_engine, migrate
from casefold.store.tables import outbox
from casefold.store.writer import Writer


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path: Path, database_url: str | None):
    engine = make_engine(Settings(data_dir=tmp_path, database_url=database_url))
    migrate(engine)
    writer = Writer(engine)
    writer.start()
    yield engine, writer
    writer.stop()
    engine.dispose()


def effect(n: int, chain: str = "jira:1", kind: str = "test.deliver") -> Effect:
    return Effect("test", kind, chain, f"key-{chain}-{n}", {"n": n}, None, 3)


def states(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.idempotency_key: r.state for r in conn.execute(select(outbox))}


def test_effects_of_a_chain_go_in_order_and_a_failure_holds_the_rest(db):
    engine, writer = db
    clock = Clock()
    seen: list[str] = []
    fail = {"jira:1": 1}

    def deliver(a: Attempt) -> Delivered:
        chain = "jira:1" if a.payload["n"] < 10 else "jira:2"
        if a.payload["n"] == 0 and fail[chain]:
            fail[chain] -= 1
            raise ProviderError("test", "server error 500", retryable=True)
        seen.append(f"{chain}/{a.payload['n']}")
        return Delivered({"ok": a.payload["n"]})

    writer.run(lambda c: store.enqueue(c, [effect(0), effect(1), effect(2)], clock.now))
    writer.run(lambda c: store.enqueue(c, [effect(10, "jira:2"), effect(11, "jira:2")], clock.now))
    worker = DeliveryWorker(engine, writer, {"test.deliver": deliver}, clock=clock)
    worker.drain()
    # chain 1's first effect failed: its others wait; chain 2 went on
    assert seen == ["jira:2/10", "jira:2/11"]
    clock.now += timedelta(seconds=10)  # past the first back-off (2.5–5 s)
    worker.drain()
    assert seen[2:] == ["jira:1/0", "jira:1/1", "jira:1/2"]
    assert set(states(engine).values()) == {"done"}


def test_writing_the_same_key_twice_makes_one_effect(db):
    engine, writer = db
    assert writer.run(lambda c: store.enqueue(c, [effect(0)])) == 1
    writer.run(lambda c: store.enqueue(c, [effect(0)]))
    assert len(states(engine)) == 1


def test_spent_attempts_make_it_dead_with_the_reason_then_a_retry_revives_it(db):
    engine, writer = db
    clock = Clock()
    calls = []

    def deliver(a: Attempt) -> Delivered:
        calls.append(a.attempt)
        if len(calls) <= 3:
            raise ProviderError("test", "server error 503", retryable=True)
        return Delivered({"ok": True})

    writer.run(lambda c: store.enqueue(c, [effect(0)], clock.now))
    worker = DeliveryWorker(engine, writer, {"test.deliver": deliver}, clock=clock)
    for _ in range(5):
        worker.drain()
        clock.now += timedelta(minutes=5)
    assert calls == [1, 2, 3]  # max_attempts is 3
    with engine.connect() as conn:
        row = conn.execute(select(outbox)).one()
    assert row.state == "dead" and "503" in row.last_error
    assert store.describe(row, clock.now).startswith("test.deliver: failed after 3 attempt(s)")
    writer.run(lambda c: store.retry(c, row.id, clock.now))
    worker.drain()
    assert calls == [1, 2, 3, 1] and states(engine) == {row.idempotency_key: "done"}


def test_a_refusal_is_dead_at_once_and_a_quota_waits_its_retry_after(db):
    engine, writer = db
    clock = Clock()

    def refuse(a: Attempt) -> Delivered:
        raise ProviderError("test", "answered 400: labels must not contain spaces")

    def quota(a: Attempt) -> Delivered:
        raise QuotaExceeded("test", "429", retry_after=120)

    writer.run(
        lambda c: store.enqueue(c, [effect(0, "a"), effect(1, "b", "test.quota")], clock.now)
    )
    worker = DeliveryWorker(
        engine, writer, {"test.deliver": refuse, "test.quota": quota}, clock=clock
    )
    worker.drain()
    with engine.connect() as conn:
        rows = {r.kind: r for r in conn.execute(select(outbox))}
    assert rows["test.deliver"].state == "dead" and rows["test.deliver"].attempts == 1
    waiting = rows["test.quota"]
    assert waiting.state == "pending"
    assert store.describe(waiting, clock.now) == "test.quota: retry 2/3, next in 2 min"


def test_a_crashed_delivery_is_claimed_again_after_its_lease(db):
    engine, writer = db
    clock = Clock()
    writer.run(lambda c: store.enqueue(c, [effect(0)], clock.now))
    # a worker claims it and dies before recording anything
    claimed = writer.run(lambda c: store.claim(c, clock.now, lease=timedelta(minutes=5)))
    assert len(claimed) == 1
    attempts: list[int] = []

    def deliver(a: Attempt) -> Delivered:
        attempts.append(a.attempt)
        return Delivered({})

    worker = DeliveryWorker(engine, writer, {"test.deliver": deliver}, clock=clock)
    assert worker.drain() == 0  # still leased
    clock.now += timedelta(minutes=6)
    worker.drain()
    assert attempts == [2]  # the handler knows an earlier attempt may have happened
    assert states(engine) == {"key-jira:1-0": "done"}


def test_records_written_with_done_are_atomic_with_it(db):
    engine, writer = db
    clock = Clock()
    writer.run(lambda c: store.enqueue(c, [effect(0)], clock.now))

    def deliver(a: Attempt) -> Delivered:
        def record(conn) -> None:
            store.enqueue(conn, [effect(1, "follow-up")], clock.now)

        return Delivered({"ok": True}, record)

    DeliveryWorker(engine, writer, {"test.deliver": deliver}, clock=clock).run_once()
    assert states(engine) == {"key-jira:1-0": "done", "key-follow-up-1": "pending"}


def test_enqueue_counts_only_new_effects(db):
    engine, writer = db
    assert writer.run(lambda c: store.enqueue(c, [effect(0), effect(1)])) == 2
    assert writer.run(lambda c: store.enqueue(c, [effect(0), effect(2)])) == 1


def test_a_batch_is_handed_back_once_half_its_lease_is_gone(db):
    """A slow call must not leave the rest of its batch to be delivered after another worker may
    have claimed it (their leases ran out): the rest go back, undelivered, and go out once."""
    engine, writer = db
    clock = Clock()
    lease = timedelta(seconds=60)
    writer.run(lambda c: store.enqueue(c, [effect(0, f"jira:{n}") for n in range(5)], clock.now))
    calls: list[str] = []

    def deliver(a: Attempt) -> Delivered:
        calls.append(a.kind)
        if len(calls) == 1:
            clock.now += timedelta(seconds=31)  # the first call took just over half the lease
        return Delivered({})

    worker = DeliveryWorker(engine, writer, {"test.deliver": deliver}, clock=clock, lease=lease)
    assert worker.run_once() == 5  # five claimed…
    assert len(calls) == 1  # …one delivered, four handed back
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.state, outbox.c.attempts)).all()
    assert sorted(r.state for r in rows) == ["done"] + ["pending"] * 4
    assert {r.attempts for r in rows if r.state == "pending"} == {0}  # a handed-back try is free
    worker.drain()
    assert len(calls) == 5 and set(states(engine).values()) == {"done"}

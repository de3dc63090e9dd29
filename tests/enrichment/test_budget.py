"""Provider budgets: calendar windows, several limits, 429 closing, kept across restarts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from casefold.config import Settings
from casefold.enrichment.budget import Budgets, Limit
from casefold.store.db import make_engine, migrate
from casefold.store.writer import Writer


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 23, 59, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_daily_budget_is_spent_then_refused_until_the_day_turns():
    clock = Clock()
    budgets = Budgets({"crowdsec": [Limit(3, "day")]}, clock=clock)
    assert [budgets.spend("crowdsec") for _ in range(4)] == [None, None, None, "budget"]
    assert budgets.status("crowdsec")["day"] == {"limit": 3, "used": 3}
    clock.now += timedelta(minutes=2)  # past midnight UTC
    assert budgets.spend("crowdsec") is None
    assert budgets.status("crowdsec")["day"] == {"limit": 3, "used": 1}


def test_every_limit_must_allow_and_a_refusal_spends_nothing():
    clock = Clock()
    budgets = Budgets({"vt": [Limit(2, "minute"), Limit(3, "day")]}, clock=clock)
    assert budgets.spend("vt") is None and budgets.spend("vt") is None
    assert budgets.spend("vt") == "budget"  # minute spent
    assert budgets.status("vt")["day"]["used"] == 2  # the refused call did not count
    clock.now = clock.now.replace(second=59)  # same minute: still refused
    assert budgets.spend("vt") == "budget"
    clock.now = clock.now.replace(hour=12, minute=0)  # (earlier the same day, for the test)
    assert budgets.spend("vt") is None  # a new minute, day usage 3 of 3
    clock.now = clock.now.replace(minute=1)
    assert budgets.spend("vt") == "budget"  # the day is spent


def test_unlimited_provider_and_429_closing():
    clock = Clock()
    budgets = Budgets({"opencti": [], "crowdsec": [Limit(50, "day")]}, clock=clock)
    assert all(budgets.spend("opencti") is None for _ in range(1000))
    budgets.close("crowdsec", retry_after=None)  # no Retry-After: closed until the day ends
    assert budgets.spend("crowdsec") == "quota"
    assert "closed_until" in budgets.status("crowdsec")
    clock.now += timedelta(minutes=1, seconds=1)
    assert budgets.spend("crowdsec") is None
    budgets.close("crowdsec", retry_after=10)
    assert budgets.spend("crowdsec") == "quota"
    clock.now += timedelta(seconds=11)
    assert budgets.spend("crowdsec") is None


def test_usage_survives_a_restart(tmp_path, database_url):
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    engine = make_engine(settings)
    migrate(engine)
    writer = Writer(engine)
    writer.start()
    try:
        budgets = Budgets({"crowdsec": [Limit(5, "day")]}, engine, writer)
        for _ in range(4):
            assert budgets.spend("crowdsec") is None
        writer.run(lambda conn: None, background=True)  # background jobs run in order
        again = Budgets({"crowdsec": [Limit(5, "day")]}, engine, writer)
        assert again.spend("crowdsec") is None
        assert again.spend("crowdsec") == "budget"
    finally:
        writer.stop()
        engine.dispose()


@pytest.mark.postgres
def test_worker_processes_share_one_allowance(tmp_path, postgres_server):
    """Three processes (three Budgets on one PostgreSQL store), many threads each: the daily
    allowance and the per-minute one are granted exactly, never once more."""
    settings = Settings(data_dir=tmp_path, database_url=postgres_server.new_database())
    engines = [make_engine(settings) for _ in range(3)]
    migrate(engines[0])
    clock = Clock()
    clock.now = clock.now.replace(hour=12)
    try:
        workers = [
            Budgets({"crowdsec": [Limit(7, "minute"), Limit(10, "day")]}, e, clock=clock)
            for e in engines
        ]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: workers[i % 3].spend("crowdsec"), range(60)))
        assert answers.count(None) == 7  # the minute's allowance, across every process
        assert set(answers) == {None, "budget"}
        assert workers[2].status("crowdsec")["minute"] == {"limit": 7, "used": 7}
        clock.now += timedelta(seconds=60)  # the next minute: 3 calls are left of the day
        answers = [w.spend("crowdsec") for w in workers for _ in range(3)]
        assert answers.count(None) == 3
        assert workers[0].status("crowdsec")["day"] == {"limit": 10, "used": 10}
    finally:
        for e in engines:
            e.dispose()

"""Outbox rows: writing effects, claiming due ones, recording how a delivery went.

An effect is written in the transaction of the change that causes it, with an idempotency key
(writing the same key again is a no-op). Effects of one chain, e.g. one case on Jira, are
delivered in order: an effect is due only when every earlier effect of its chain is done, so a
comment never reaches Jira before the issue it belongs to. A claim is a lease: a worker that dies
mid-delivery leaves the row to be claimed again when the lease runs out, and the handler's own
idempotency check (is the issue already there?) keeps the effect from happening twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.engine import Connection, Row

from casefold.errors import ConflictError, NotFoundError
from casefold.store.db import dialect_insert
from casefold.store.notify import OUTBOX, notify
from casefold.store.tables import (
    OUTBOX_DEAD,
    OUTBOX_DELIVERING,
    OUTBOX_DONE,
    OUTBOX_PENDING,
    case_links,
    outbox,
)

DEFAULT_MAX_ATTEMPTS = 8
BASE_DELAY = 5.0  # seconds before the second attempt; doubles, with jitter
MAX_DELAY = 3600.0


@dataclass(frozen=True)
class Effect:
    target: str  # "jira", "extrahop", "webhook"
    kind: str  # "jira.create", "jira.comment", …
    chain: str  # effects of one chain are delivered in order
    key: str  # idempotency key: one effect per key, ever
    payload: dict[str, Any] = field(default_factory=dict)
    case_id: int | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: datetime | None = None  # a delayed effect (undo at the end of a TTL)


def enqueue(conn: Connection, effects: Iterable[Effect], now: datetime | None = None) -> int:
    """Write effects; an idempotency key already written is skipped. Returns how many are new."""
    now = now or datetime.now(UTC)
    rows = [
        {
            "target": e.target,
            "kind": e.kind,
            "chain": e.chain,
            "idempotency_key": e.key,
            "case_id": e.case_id,
            "payload": e.payload,
            "state": OUTBOX_PENDING,
            "attempts": 0,
            "max_attempts": e.max_attempts,
            "next_attempt_at": e.not_before or now,
            "created_at": now,
            "updated_at": now,
        }
        for e in effects
    ]
    if not rows:
        return 0
    stmt = (
        dialect_insert(conn, outbox)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(outbox.c.id)
    )
    # RETURNING gives one row per effect actually written: the count is exact on both backends.
    written = len(conn.execute(stmt, rows).all())
    if written:
        notify(conn, OUTBOX)
    return written


def claim(
    conn: Connection,
    now: datetime,
    *,
    limit: int = 20,
    lease: timedelta = timedelta(minutes=5),
    kinds: Iterable[str] | None = None,
) -> list[Row[Any]]:
    """Claim due effects whose chain has nothing earlier left to do; mark them delivering.
    With `kinds`, only effects this process can deliver."""
    earlier = outbox.alias("earlier")
    blocked = exists(
        select(earlier.c.id).where(
            earlier.c.chain == outbox.c.chain,
            earlier.c.id < outbox.c.id,
            earlier.c.state != OUTBOX_DONE,
        )
    )
    stmt = (
        select(outbox)
        .where(
            or_(
                and_(outbox.c.state == OUTBOX_PENDING, outbox.c.next_attempt_at <= now),
                # a worker died mid-delivery: its lease ran out
                and_(outbox.c.state == OUTBOX_DELIVERING, outbox.c.lease_until < now),
            ),
            ~blocked,
            *([outbox.c.kind.in_(list(kinds))] if kinds is not None else []),
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=outbox)
    rows = conn.execute(stmt).all()
    if rows:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r.id for r in rows]))
            .values(
                state=OUTBOX_DELIVERING,
                lease_until=now + lease,
                attempts=outbox.c.attempts + 1,
                updated_at=now,
            )
        )
    return rows


def backoff(attempt: int, base_delay: float = BASE_DELAY) -> float:
    """Seconds before the next attempt after `attempt` failed ones (full jitter on half)."""
    base = min(MAX_DELAY, base_delay * 2 ** max(0, attempt - 1))
    return base / 2 + random.uniform(0, base / 2)


def mark_done(conn: Connection, effect_id: int, result: Any, now: datetime) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == effect_id)
        .values(state=OUTBOX_DONE, result=result, last_error=None, lease_until=None, updated_at=now)
    )


def release(conn: Connection, ids: list[int], lease_until: datetime) -> int:
    """Hand claimed effects back, undelivered, if they are still ours (same lease)."""
    if not ids:
        return 0
    return conn.execute(
        update(outbox)
        .where(
            outbox.c.id.in_(ids),
            outbox.c.state == OUTBOX_DELIVERING,
            outbox.c.lease_until == lease_until,
        )
        .values(state=OUTBOX_PENDING, lease_until=None, attempts=outbox.c.attempts - 1)
    ).rowcount


def mark_failed(
    conn: Connection,
    effect_id: int,
    error: str,
    now: datetime,
    *,
    retry_in: float | None,
) -> str:
    """Record a failed attempt: pending again after `retry_in` seconds, or dead when None or
    when the attempts are spent. Returns the new state."""
    row = conn.execute(
        select(outbox.c.attempts, outbox.c.max_attempts).where(outbox.c.id == effect_id)
    ).one()
    dead = retry_in is None or row.attempts >= row.max_attempts
    conn.execute(
        update(outbox)
        .where(outbox.c.id == effect_id)
        .values(
            state=OUTBOX_DEAD if dead else OUTBOX_PENDING,
            last_error=error[:2000],
            lease_until=None,
            next_attempt_at=now if dead else now + timedelta(seconds=retry_in or 0),
            updated_at=now,
        )
    )
    return OUTBOX_DEAD if dead else OUTBOX_PENDING


def retry(conn: Connection, effect_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Queue a dead (or waiting) effect again, now, with a fresh set of attempts."""
    now = now or datetime.now(UTC)
    row = conn.execute(select(outbox).where(outbox.c.id == effect_id)).first()
    if row is None:
        raise NotFoundError(f"outbox effect {effect_id} does not exist")
    if row.state in (OUTBOX_DONE, OUTBOX_DELIVERING):
        raise ConflictError(f"outbox effect {effect_id} is {row.state}; only waiting or dead ones")
    conn.execute(
        update(outbox)
        .where(outbox.c.id == effect_id)
        .values(state=OUTBOX_PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return effect_dict(conn.execute(select(outbox).where(outbox.c.id == effect_id)).one(), now)


LABELS = {
    "jira.create": "Jira create",
    "jira.comment": "Jira comment",
    "jira.transition": "Jira status",
    "jira.assign": "Jira assignee",
    "extrahop.update": "ExtraHop detection",
    "webhook.post": "Webhook",
    "response.execute": "Response",
    "response.undo": "Response undo",
    "response.expire": "Approval deadline",
}


def _in_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


def describe(row: Any, now: datetime) -> str:
    """The state in words, e.g. "Jira create: retry 3/8, next in 2 min"."""
    label = LABELS.get(row.kind, row.kind)
    if row.state == OUTBOX_DONE:
        return f"{label}: done"
    if row.state == OUTBOX_DEAD:
        return f"{label}: failed after {row.attempts} attempt(s): {row.last_error}"
    if row.state == OUTBOX_DELIVERING:
        return f"{label}: delivering (attempt {row.attempts}/{row.max_attempts})"
    due = _utc(row.next_attempt_at)
    if row.attempts == 0:
        return f"{label}: queued"
    wait = (due - now).total_seconds()
    when = f"next in {_in_words(wait)}" if wait > 0 else "due now"
    return f"{label}: retry {row.attempts + 1}/{row.max_attempts}, {when}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def effect_dict(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "target": row.target,
        "kind": row.kind,
        "case_id": row.case_id,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_attempt_at": _utc(row.next_attempt_at).isoformat(),
        "last_error": row.last_error,
        "result": row.result,
        "created_at": _utc(row.created_at).isoformat(),
        "updated_at": _utc(row.updated_at).isoformat(),
        "summary": describe(row, now),
    }


def effects_for_case(conn: Connection, case_id: int, now: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(outbox).where(outbox.c.case_id == case_id).order_by(outbox.c.id)
    ).all()
    return [effect_dict(r, now) for r in rows]


def list_effects(
    conn: Connection,
    now: datetime,
    *,
    state: str | None = None,
    case_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Effects, newest first, with their state in words."""
    stmt = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(outbox.c.state == state)
    if case_id is not None:
        stmt = stmt.where(outbox.c.case_id == case_id)
    return [effect_dict(r, now) for r in conn.execute(stmt)]


def link_case(
    conn: Connection, case_id: int, target: str, remote_id: str, url: str | None, now: datetime
) -> None:
    """Record the case's counterpart on another system (once)."""
    stmt = dialect_insert(conn, case_links).values(
        case_id=case_id,
        target=target,
        remote_id=remote_id,
        url=url,
        state={},
        created_at=now,
        updated_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["case_id", "target", "remote_id"]))


def links_for_case(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    return [
        {"target": r.target, "id": r.remote_id, "url": r.url}
        for r in conn.execute(
            select(case_links).where(case_links.c.case_id == case_id).order_by(case_links.c.id)
        )
    ]


def counts(conn: Connection) -> dict[str, int]:
    return {
        state: int(n)
        for state, n in conn.execute(
            select(outbox.c.state, func.count()).group_by(outbox.c.state)
        ).all()
    }

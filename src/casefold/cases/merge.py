"""Merging duplicate cases into one, in the caller's write transaction.

The target takes everything the sources hold: their alerts, observables (one row per type and
value: sightings summed, first seen the earliest, last seen the latest, the verdicts of an
enriched row kept over an unenriched one, the target's own when both are enriched), comments,
playbook runs, ExtraHop detection links (a detection follows its alerts; a Jira issue stays with
its case), and tags. Its alert count is the sum, first/last seen the widest span, and its severity
the highest of them all.

Each source is closed with the custom field `merged_into: "CASE-N"` and left empty (alert count
0). Closing goes through `cases.bulk` like any close: it releases the source's fold slot, so a new
alert with a source's fold key does not come back to the source; it opens a new case (or joins
the target, when the target itself holds that slot). Its outbox effects (a Jira transition) fire
as for any close.

The timeline says what happened: a `merged` event on the target with the sources and the counts
moved, a `merged_into` event on each source, and the usual events of the changes (tags added,
severity raised, case closed, fields changed).

A closed or resolved target is refused (reopen it first); sources may be in any status, since
analysts merge closed duplicates too, and a source merged before may be merged again (it has
nothing left to move, but now points at the new target).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from casefold.cases import timeline
from casefold.cases.bulk import CaseOp, apply_ops
from casefold.cases.model import DONE, case_ref, higher_severity
from casefold.errors import ConflictError, InvalidInputError, NotFoundError
from casefold.store.tables import (
    alerts,
    case_comments,
    case_links,
    case_observables,
    case_tags,
    cases,
    playbook_runs,
)

MAX_SOURCES = 100
MERGED_INTO_FIELD = "merged_into"
# Links to another system's object that belongs to the alerts rather than to the case.
_LINKS_FOLLOW_ALERTS = ("extrahop",)


def merge_cases(
    conn: Connection,
    target_id: int,
    source_ids: Sequence[int],
    *,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Merge the source cases into the target; return what moved:
    `{"case", "merged", "alerts", "observables", "comments", "playbook_runs"}`.

    Raises InvalidInputError (no sources, too many, the target among them; `field` is `cases` or
    `cases[i]`), NotFoundError (a case does not exist), ConflictError (the target is closed or
    resolved).
    """
    given = list(source_ids)
    if not given:
        raise InvalidInputError("name at least one case to merge", field="cases")
    if len(given) > MAX_SOURCES:
        raise InvalidInputError(f"at most {MAX_SOURCES} cases can be merged at once", field="cases")
    for i, source in enumerate(given):
        if source == target_id:
            raise InvalidInputError(
                f"{case_ref(target_id)} cannot be merged into itself", field=f"cases[{i}]"
            )
    sources = list(dict.fromkeys(given))  # a case named twice is merged once
    rows = _lock(conn, [target_id, *sources])
    target = rows[target_id]
    ref = case_ref(target_id)
    if target["status"] in DONE:
        raise ConflictError(f"{ref} is {target['status']}: reopen {ref} first")
    src_rows = [rows[s] for s in sources]

    moved_alerts = conn.execute(
        update(alerts).where(alerts.c.case_id.in_(sources)).values(case_id=target_id)
    ).rowcount
    moved_observables = _merge_observables(conn, target_id, sources)
    moved_comments = conn.execute(
        update(case_comments).where(case_comments.c.case_id.in_(sources)).values(case_id=target_id)
    ).rowcount
    moved_runs = conn.execute(
        update(playbook_runs).where(playbook_runs.c.case_id.in_(sources)).values(case_id=target_id)
    ).rowcount
    _move_links(conn, target_id, sources)

    seen = [r for r in (target, *src_rows) if r["first_seen"] is not None]
    conn.execute(
        update(cases)
        .where(cases.c.id == target_id)
        .values(
            alert_count=target["alert_count"] + sum(r["alert_count"] for r in src_rows),
            first_seen=min((r["first_seen"] for r in seen), default=None),
            last_seen=max((r["last_seen"] or r["first_seen"] for r in seen), default=None),
            version=target["version"] + 1,
            updated_at=now,
        )
    )
    # The sources' alerts are the target's now.
    conn.execute(update(cases).where(cases.c.id.in_(sources)).values(alert_count=0))

    refs = [case_ref(s) for s in sources]
    events = [
        timeline.event_row(
            target_id,
            "merged",
            actor=actor,
            detail={
                "cases": refs,
                "alerts": moved_alerts,
                "observables": moved_observables,
                "comments": moved_comments,
                "playbook_runs": moved_runs,
            },
            at=now,
        )
    ]
    events += [
        timeline.event_row(s, "merged_into", actor=actor, detail={"case": ref}, at=now)
        for s in sources
    ]
    timeline.record(conn, events)

    severity = target["severity"]
    for r in src_rows:
        severity = higher_severity(severity, r["severity"])
    tags = [
        t
        for t in conn.execute(
            select(case_tags.c.tag)
            .where(case_tags.c.case_id.in_(sources))
            .group_by(case_tags.c.tag)
            .order_by(case_tags.c.tag)
        ).scalars()
    ]
    # Tags, severity, closing and the merged_into field go through the one path every case
    # change takes: the same timeline events and outbox effects as when done by hand.
    ops = [
        CaseOp(
            "update",
            target_id,
            actor,
            values={"severity": severity} if severity != target["severity"] else {},
            tags=tags,
        )
    ]
    ops += [
        CaseOp("update", s, actor, values={"status": "closed"}, fields={MERGED_INTO_FIELD: ref})
        for s in sources
    ]
    apply_ops(conn, ops, now)
    return {
        "case": ref,
        "merged": refs,
        "alerts": moved_alerts,
        "observables": moved_observables,
        "comments": moved_comments,
        "playbook_runs": moved_runs,
    }


def _lock(conn: Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    stmt = select(cases).where(cases.c.id.in_(ids)).order_by(cases.c.id)
    if conn.dialect.name == "postgresql":
        # In id order, as cases.bulk locks them: two merges over the same cases wait, not deadlock.
        stmt = stmt.with_for_update()
    rows = {r["id"]: dict(r) for r in conn.execute(stmt).mappings()}
    for case_id in ids:
        if case_id not in rows:
            raise NotFoundError(f"{case_ref(case_id)} does not exist")
    return rows


_OBS_COLUMNS = (
    "id",
    "case_id",
    "type",
    "value",
    "kind",
    "public",
    "first_seen",
    "last_seen",
    "alert_count",
    "verdicts",
    "verdict",
    "enriched_at",
)
_ENRICHMENT = ("verdicts", "verdict", "enriched_at")


def _merge_observables(conn: Connection, target_id: int, sources: list[int]) -> int:
    """Fold the sources' observables into the target's (unique per type and value); return how
    many source rows there were."""
    found = [
        dict(r)
        for r in conn.execute(
            select(*(case_observables.c[n] for n in _OBS_COLUMNS))
            .where(case_observables.c.case_id.in_([target_id, *sources]))
            .order_by(case_observables.c.id)
        ).mappings()
    ]
    # The target's rows first, so that they are the ones kept.
    found.sort(key=lambda r: (r["case_id"] != target_id, r["id"]))
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    changed: set[int] = set()  # kept rows whose values change
    moved: list[int] = []  # source rows that become the target's as they are
    dropped: list[int] = []  # source rows folded into a kept row
    for row in found:
        key = (row["type"], row["value"])
        keep = kept.get(key)
        if keep is None:
            kept[key] = row
            if row["case_id"] != target_id:
                moved.append(row["id"])
            continue
        keep["alert_count"] += row["alert_count"]
        keep["first_seen"] = min(keep["first_seen"], row["first_seen"])
        keep["last_seen"] = max(keep["last_seen"], row["last_seen"])
        for name in ("kind", "public"):
            if keep[name] is None:
                keep[name] = row[name]
        if keep["enriched_at"] is None and row["enriched_at"] is not None:
            for name in _ENRICHMENT:
                keep[name] = row[name]
        changed.add(keep["id"])
        dropped.append(row["id"])
    # Dropped rows go first: a moved row never collides with the target's (one per key).
    if dropped:
        conn.execute(delete(case_observables).where(case_observables.c.id.in_(dropped)))
    if moved:
        conn.execute(
            update(case_observables)
            .where(case_observables.c.id.in_(moved))
            .values(case_id=target_id)
        )
    if changed:
        names = ("alert_count", "first_seen", "last_seen", "kind", "public", *_ENRICHMENT)
        conn.execute(
            update(case_observables)
            .where(case_observables.c.id == bindparam("o_id"))
            .values({n: bindparam(f"o_{n}") for n in names}),
            [
                {"o_id": r["id"], **{f"o_{n}": r[n] for n in names}}
                for r in kept.values()
                if r["id"] in changed
            ],
        )
    return len(moved) + len(dropped)


def _move_links(conn: Connection, target_id: int, sources: list[int]) -> None:
    """Links that belong to the alerts (ExtraHop detections) follow them to the target."""
    rows = conn.execute(
        select(case_links.c.id, case_links.c.case_id, case_links.c.target, case_links.c.remote_id)
        .where(
            case_links.c.case_id.in_([target_id, *sources]),
            case_links.c.target.in_(_LINKS_FOLLOW_ALERTS),
        )
        .order_by(case_links.c.id)
    ).all()
    rows.sort(key=lambda r: r.case_id != target_id)  # the target's own links are kept
    have: set[tuple[str, str]] = set()
    moved: list[int] = []
    dropped: list[int] = []
    for r in rows:
        key = (r.target, r.remote_id)
        if r.case_id == target_id:
            have.add(key)
        elif key in have:
            dropped.append(r.id)
        else:
            have.add(key)
            moved.append(r.id)
    if dropped:
        conn.execute(delete(case_links).where(case_links.c.id.in_(dropped)))
    if moved:
        conn.execute(update(case_links).where(case_links.c.id.in_(moved)).values(case_id=target_id))

"""Applying many case changes at once: what playbook runs ask for, in a handful of statements.

A playbook run typically updates its case and comments on it. Done one call at a time
(`service.update_case`, `service.add_comment`) that is a dozen statements per run; a batch of runs
shares them here instead: one read of the cases involved, then one write per kind of row. The
semantics are those of `service`: one timeline event per changed field with old and new value,
`version` bumped per change, closing a case releases its fold slot, tags from a playbook are
added (never removed), comments on the timeline.

The SLA times are kept here too, in the same statement as the change: `acknowledged_at` is set
the first time the status leaves new/unknown or the case gets an assignee, and never cleared;
`resolved_at` when the status becomes resolved or closed; reopening clears it and the resolve
breach, so the resolve deadline can be breached again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from casefold.cases import timeline
from casefold.cases.model import DONE, OPEN, UNACKNOWLEDGED, case_ref
from casefold.errors import NotFoundError
from casefold.store.tables import case_comments, case_tags, cases

SCALARS = ("summary", "description", "status", "priority", "severity", "assignee")
_WRITTEN = (
    *SCALARS,
    "fields",
    "fold_open",
    "version",
    "updated_at",
    "acknowledged_at",
    "resolved_at",
    "sla_resolve_breached_at",
)


@dataclass
class CaseOp:
    """One change to one case. `kind`: update (values, tags, fields, replace_tags), comment, or
    append (to the description); the last two carry `text`."""

    kind: str
    case_id: int
    actor: str
    values: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    fields: dict[str, Any] | None = None
    text: str = ""
    replace_tags: list[str] | None = None  # the whole new tag set (an analyst's PATCH)

    def describe(self) -> str:
        if self.kind == "comment":
            return f"comment on {case_ref(self.case_id)}"
        parts = (
            sorted(self.values)
            + (["tags"] if self.tags else [])
            + (["fields"] if self.fields else [])
        )
        return f"update {case_ref(self.case_id)}: {', '.join(parts)}"


def apply_ops(conn: Connection, ops: Iterable[CaseOp], now: datetime) -> None:
    ops = list(ops)
    if not ops:
        return
    ids = sorted({op.case_id for op in ops})
    stmt = select(cases).where(cases.c.id.in_(ids)).order_by(cases.c.id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    state = {r["id"]: dict(r) for r in conn.execute(stmt).mappings()}
    missing = [i for i in ids if i not in state]
    if missing:
        raise NotFoundError(f"{case_ref(missing[0])} does not exist")
    tagged = sorted({op.case_id for op in ops if op.tags or op.replace_tags is not None})
    tags: dict[int, set[str]] = {i: set() for i in tagged}
    if tagged:
        for r in conn.execute(
            select(case_tags.c.case_id, case_tags.c.tag).where(case_tags.c.case_id.in_(tagged))
        ):
            tags[r.case_id].add(r.tag)
    events: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    comment_events: list[dict[str, Any]] = []  # get their comment's id once it is inserted
    new_tags: list[dict[str, Any]] = []
    removed_tags: list[tuple[int, str]] = []
    changed: set[int] = set()
    for op in ops:
        case = state[op.case_id]
        if op.kind == "comment":
            comments.append(
                {"case_id": op.case_id, "author": op.actor, "content": op.text, "created_at": now}
            )
            event = timeline.event_row(op.case_id, "comment_created", actor=op.actor, at=now)
            comment_events.append(event)
            events.append(event)
            case["updated_at"] = now
            changed.add(op.case_id)
            continue
        if op.kind == "append":
            # Appending is a description change computed from the current text.
            appended = (case["description"] + "\n" + op.text).strip()
            op = CaseOp("update", op.case_id, op.actor, values={"description": appended})
        touched = False
        for name, new in op.values.items():
            old = case[name]
            if old == new:
                continue
            case[name] = new
            touched = True
            kind = f"{name}_changed"
            if name == "status":
                kind = (
                    "case_closed"
                    if new == "closed"
                    else "case_reopened"
                    if old == "closed"
                    else kind
                )
                if new not in OPEN:
                    case["fold_open"] = False
                _status_times(case, old, new, now)
            elif name == "assignee" and new is not None and case["acknowledged_at"] is None:
                case["acknowledged_at"] = now
            events.append(
                timeline.event_row(
                    op.case_id, kind, actor=op.actor, field=name, old=old, new=new, at=now
                )
            )
        if op.fields:
            merged = {**(case["fields"] or {}), **op.fields}
            merged = {k: v for k, v in merged.items() if v is not None}
            if merged != (case["fields"] or {}):
                events.append(
                    timeline.event_row(
                        op.case_id,
                        "fields_changed",
                        actor=op.actor,
                        field="fields",
                        old=case["fields"],
                        new=merged,
                        at=now,
                    )
                )
                case["fields"] = merged
                touched = True
        if op.replace_tags is not None:
            current = tags[op.case_id]
            gone = sorted(current - set(op.replace_tags))
            if gone:
                removed_tags.extend((op.case_id, t) for t in gone)
                events.extend(
                    timeline.event_row(
                        op.case_id, "tag_removed", actor=op.actor, field="tags", old=t, at=now
                    )
                    for t in gone
                )
                current.difference_update(gone)
                touched = True
        for tag in [*op.tags, *(op.replace_tags or ())]:
            if tag not in tags[op.case_id]:
                tags[op.case_id].add(tag)
                new_tags.append({"case_id": op.case_id, "tag": tag})
                events.append(
                    timeline.event_row(
                        op.case_id, "tag_added", actor=op.actor, field="tags", new=tag, at=now
                    )
                )
                touched = True
        if touched:
            case["version"] += 1
            case["updated_at"] = now
            changed.add(op.case_id)
    if changed:
        conn.execute(
            update(cases)
            .where(cases.c.id == bindparam("c_id"))
            .values(**{name: bindparam(f"c_{name}") for name in _WRITTEN}),
            [
                {"c_id": i, **{f"c_{name}": state[i][name] for name in _WRITTEN}}
                for i in sorted(changed)
            ],
        )
    if comments:
        # The timeline names each comment by id (the outbox mirrors comments by it).
        inserted = conn.execute(
            insert(case_comments).returning(case_comments.c.id, sort_by_parameter_order=True),
            comments,
        ).all()
        for event, row in zip(comment_events, inserted, strict=True):
            event["detail"] = {"comment_id": row.id}
    for case_id, tag in removed_tags:
        conn.execute(
            delete(case_tags).where(case_tags.c.case_id == case_id, case_tags.c.tag == tag)
        )
    if new_tags:
        conn.execute(insert(case_tags), new_tags)
    timeline.record(conn, events)


def _status_times(case: dict[str, Any], old: str, new: str, now: datetime) -> None:
    """The SLA times a status change sets or clears (see the module docstring)."""
    if new not in UNACKNOWLEDGED and case["acknowledged_at"] is None:
        case["acknowledged_at"] = now
    if new in DONE:
        if old not in DONE:  # resolved → closed keeps the time it was first done
            case["resolved_at"] = now
    elif old in DONE:
        case["resolved_at"] = None
        case["sla_resolve_breached_at"] = None

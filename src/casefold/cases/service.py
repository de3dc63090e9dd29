"""Opening and changing cases. Every function here runs inside the caller's write transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from casefold.cases import timeline
from casefold.cases.bulk import CaseOp, apply_ops
from casefold.cases.model import (
    DONE,
    OPEN,
    PRIORITIES,
    SEVERITIES,
    STATUSES,
    UNACKNOWLEDGED,
    case_ref,
)
from casefold.errors import ConflictError, InvalidInputError, NotFoundError
from casefold.store.db import dialect_insert
from casefold.store.tables import case_comments, case_tags, cases

MAX_TAG_LEN = case_tags.c.tag.type.length
MAX_COMMENT_LEN = 25_000
PATCHABLE = (
    "summary",
    "description",
    "status",
    "priority",
    "severity",
    "assignee",
    "tags",
    "fields",
)
_CHOICES = {"status": STATUSES, "priority": PRIORITIES, "severity": SEVERITIES}


def open_case(
    conn: Connection,
    *,
    summary: str,
    description: str = "",
    status: str = "new",
    priority: str = "unknown",
    severity: str = "unknown",
    assignee: str | None = None,
    tags: Iterable[str] = (),
    fields: Mapping[str, Any] | None = None,
    source: str | None = None,
    fold_rule: str | None = None,
    fold_key: str | None = None,
    first_seen: datetime | None = None,
    actor: str = timeline.SYSTEM_ACTOR,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Insert a case and its `case_created` event; return its id.

    With a fold rule and key, the case claims the open fold slot for them; a second claim on the
    same slot raises IntegrityError from the unique index (the caller decides what to do).
    """
    now = at or datetime.now(UTC)
    values = validate_fields(
        {
            "summary": summary,
            "description": description,
            "status": status,
            "priority": priority,
            "severity": severity,
            "assignee": assignee,
        }
    )
    tag_list = clean_tags(tags)
    res = conn.execute(
        insert(cases)
        .values(
            **values,
            fields=dict(fields or {}),
            created_at=now,
            updated_at=now,
            first_seen=first_seen,
            last_seen=first_seen,
            alert_count=0,
            source=source,
            fold_rule=fold_rule,
            fold_key=fold_key,
            fold_open=fold_rule is not None and status in OPEN,
            # A case may be born assigned, in progress or even closed: its SLA clock says so.
            acknowledged_at=now
            if values["status"] not in UNACKNOWLEDGED or values["assignee"]
            else None,
            resolved_at=now if values["status"] in DONE else None,
        )
        .returning(cases.c.id)
    )
    case_id = int(res.scalar_one())
    if tag_list:
        conn.execute(insert(case_tags), [{"case_id": case_id, "tag": t} for t in tag_list])
    timeline.record(
        conn,
        [
            timeline.event_row(
                case_id,
                "case_created",
                actor=actor,
                new={**values, "tags": tag_list},
                detail=detail,
                at=now,
            )
        ],
    )
    return case_id


def open_fold_cases(
    conn: Connection, specs: list[dict[str, Any]], *, at: datetime
) -> dict[tuple[str, str], int]:
    """Open one case per fold slot, in the order given; return {(rule, key): id} of those opened.

    A slot that already has an open case (another worker won the race) is skipped by
    ON CONFLICT DO NOTHING on the partial unique index, so the caller can join that case instead.
    Bulk statements: folding opens hundreds of cases a second during a flood.
    """
    rows = []
    for spec in specs:
        values = validate_fields(
            {
                "summary": spec["summary"],
                "description": spec["description"],
                "status": "new",
                "priority": "unknown",
                "severity": spec["severity"],
                "assignee": None,
            }
        )
        rows.append(
            {
                **values,
                "fields": {},
                "created_at": at,
                "updated_at": at,
                "first_seen": spec["first_seen"],
                "last_seen": spec["first_seen"],
                "alert_count": 0,
                "source": spec["source"],
                "fold_rule": spec["fold_rule"],
                "fold_key": spec["fold_key"],
                "fold_open": True,
                "version": 1,
            }
        )
    stmt = (
        dialect_insert(conn, cases)
        .on_conflict_do_nothing(
            index_elements=[cases.c.fold_rule, cases.c.fold_key], index_where=cases.c.fold_open
        )
        .returning(cases.c.id, cases.c.fold_rule, cases.c.fold_key)
    )
    opened = {(r.fold_rule, r.fold_key): int(r.id) for r in conn.execute(stmt, rows)}
    tag_rows = []
    events = []
    for spec, row in zip(specs, rows, strict=True):
        case_id = opened.get((spec["fold_rule"], spec["fold_key"]))
        if case_id is None:
            continue
        tags = usable_tags(spec["tags"])
        tag_rows += [{"case_id": case_id, "tag": t} for t in tags]
        new = {
            k: row[k]
            for k in ("summary", "description", "status", "priority", "severity", "assignee")
        }
        events.append(
            timeline.event_row(
                case_id,
                "case_created",
                new={**new, "tags": tags},
                detail={"rule": spec["fold_rule"], "key": spec["fold_key"]},
                at=at,
            )
        )
    if tag_rows:
        conn.execute(insert(case_tags), tag_rows)
    timeline.record(conn, events)
    return opened


def get_case_for_update(conn: Connection, case_id: int) -> Mapping[str, Any]:
    stmt = select(cases).where(cases.c.id == case_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFoundError(f"{case_ref(case_id)} does not exist")
    return row


def update_case(
    conn: Connection,
    case_id: int,
    patch: Mapping[str, Any],
    *,
    actor: str,
    expected_version: int | None = None,
) -> None:
    """Apply a partial change, writing one timeline event per changed field.

    `expected_version` (optimistic locking, from If-Match) makes a concurrent edit a 409 instead
    of a silent overwrite.
    """
    unknown = set(patch) - set(PATCHABLE)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInputError(f"{name} cannot be changed", field=name)
    row = get_case_for_update(conn, case_id)
    if expected_version is not None and row["version"] != expected_version:
        raise ConflictError(
            f"{case_ref(case_id)} was changed by someone else (version {row['version']}, "
            f"expected {expected_version})"
        )
    scalar = validate_fields({k: v for k, v in patch.items() if k not in ("tags", "fields")})
    if "fields" in patch:
        _merged_fields(row["fields"] or {}, patch["fields"])  # validates the names
    # One code path for every case change, with its timeline events: cases.bulk.
    apply_ops(
        conn,
        [
            CaseOp(
                "update",
                case_id,
                actor,
                values=scalar,
                fields=patch.get("fields"),
                replace_tags=clean_tags(patch["tags"]) if "tags" in patch else None,
            )
        ],
        datetime.now(UTC),
    )


def add_comment(conn: Connection, case_id: int, content: str, *, author: str) -> dict[str, Any]:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInputError("content must be a non-empty string", field="content")
    if len(content) > MAX_COMMENT_LEN:
        raise InvalidInputError(
            f"content is longer than {MAX_COMMENT_LEN} characters", field="content"
        )
    get_case_for_update(conn, case_id)
    now = datetime.now(UTC)
    comment_id = conn.execute(
        insert(case_comments)
        .values(case_id=case_id, author=author, content=content, created_at=now)
        .returning(case_comments.c.id)
    ).scalar_one()
    conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now))
    timeline.record(
        conn,
        [
            timeline.event_row(
                case_id, "comment_created", actor=author, detail={"comment_id": comment_id}, at=now
            )
        ],
    )
    return {
        "id": comment_id,
        "case_id": case_id,
        "author": author,
        "content": content,
        "created_at": now,
    }


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise InvalidInputError(
                    f"{name} must be one of {', '.join(_CHOICES[name])}", field=name
                )
        elif name == "summary":
            if not isinstance(value, str) or not value.strip() or len(value) > 500:
                raise InvalidInputError("summary must be 1 to 500 characters", field=name)
        elif name == "description":
            if not isinstance(value, str) or len(value) > 100_000:
                raise InvalidInputError(
                    "description must be a string of at most 100000 characters", field=name
                )
        elif name == "assignee":
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise InvalidInputError(
                    "assignee must be a name of at most 200 characters, or null", field=name
                )
            value = value or None
        out[name] = value
    return out


def _is_tag(tag: Any) -> bool:
    return isinstance(tag, str) and bool(tag.strip()) and len(tag) <= MAX_TAG_LEN


def usable_tags(tags: Iterable[Any]) -> list[str]:
    """The tags a case can hold, once each, from text an alert brought (its rule groups, MITRE
    ids); the others are left out rather than refused, as an alert must fold whatever it says."""
    return list(dict.fromkeys(tag.strip() for tag in tags if _is_tag(tag)))


def clean_tags(tags: Any) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise InvalidInputError("tags must be a list of strings", field="tags")
    seen: dict[str, None] = {}
    for i, tag in enumerate(tags):
        if not _is_tag(tag):
            raise InvalidInputError(
                f"tags[{i}] must be a non-empty string of at most {MAX_TAG_LEN} characters",
                field=f"tags[{i}]",
            )
        seen[tag.strip()] = None
    return list(seen)


def _merged_fields(current: Mapping[str, Any], change: Any) -> dict[str, Any]:
    """Custom fields merge key by key (JSON merge patch): a null value removes the key."""
    if not isinstance(change, Mapping):
        raise InvalidInputError("fields must be an object", field="fields")
    merged = dict(current)
    for key, value in change.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise InvalidInputError("field names must be 1 to 100 characters", field="fields")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged

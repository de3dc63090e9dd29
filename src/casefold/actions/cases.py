"""cases.*: create, update, comment, tag, assign, search and upsert (Tracecat's core.cases.*).

How playbooks and folding compose (an alert never opens two cases by accident): folding runs
first, so when a playbook runs for an alert, the alert usually already belongs to a case.
`create_case` then *is* that case:

* the alert opened the case → the playbook's summary, description, status, priority, severity,
  tags and fields are applied to it, and its id is returned;
* the alert joined an existing case → that case's id is returned unchanged (`folded: true` in
  the step's result), so a flood of alerts still makes one case;
* the alert belongs to no case (no folding rule matched) → a new case is opened.

`upsert_case` folds by an explicit `key` instead: one open case per (playbook, key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.cases import queries, service
from casefold.cases.bulk import CaseOp
from casefold.cases.model import case_ref, parse_case_ref
from casefold.errors import InvalidInputError
from casefold.store.tables import cases

_CASE_FIELDS = service.PATCHABLE
_CREATE_OPTIONAL = (
    "status",
    "priority",
    "severity",
    "assignee",
    "tags",
    "fields",
    "payload",
    "create_missing_tags",
    "dropdown_values",
)


def _case_id(value: Any) -> int:
    case_id = parse_case_ref(value) if value is not None else None
    if case_id is None:
        raise InvalidInputError(
            f"case_id {value!r} is not a case id or a reference like CASE-12", field="case_id"
        )
    return case_id


def _summary(case_id: int, values: dict[str, Any]) -> dict[str, Any]:
    return {"id": case_id, "ref": case_ref(case_id), "short_id": case_ref(case_id), **values}


def _clean(args: dict[str, Any]) -> dict[str, Any]:
    """The case fields of an action's args, validated now so that applying them cannot fail."""
    out = {k: args[k] for k in _CASE_FIELDS if k in args and args[k] is not None}
    scalar = {k: v for k, v in out.items() if k not in ("tags", "fields")}
    service.validate_fields(scalar)
    if "tags" in out:
        out["tags"] = service.clean_tags(out["tags"])
    if "fields" in out and not isinstance(out["fields"], dict):
        raise InvalidInputError("fields must be an object", field="fields")
    return out


def _update_op(case_id: int, values: dict[str, Any], actor: str) -> CaseOp:
    # A playbook adds tags; it never silently removes the ones folding or analysts put there.
    scalar = {k: v for k, v in values.items() if k not in ("tags", "fields")}
    return CaseOp(
        "update",
        case_id,
        actor,
        values=scalar,
        tags=list(values.get("tags", ())),
        fields=values.get("fields"),
    )


@REGISTRY.action(
    "cases.create_case",
    kind="case",
    required=("summary", "description"),
    optional=_CREATE_OPTIONAL,
    aliases=("core.cases.create_case",),
)
def create_case(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Create a case, or take the one the alert folded into."""
    values = _clean(args)
    if ctx.case_id is not None:
        case_id = ctx.case_id
        if ctx.case_opened_by_alert:
            ctx.change_case(_update_op(case_id, values, ctx.actor))
            return _summary(case_id, {**values, "folded": False})
        # Nothing to write: the step's result says `folded: true`, and the run itself is on the
        # case's timeline (a note per alert of a flood would bury it).
        return _summary(case_id, {"folded": True})
    if ctx.dry_run:
        return _summary(0, {**values, "folded": False, "dry_run": True})
    assert ctx.run_now is not None
    # The case is opened at once (later steps need its id), keyed by this alert: if the run is
    # taken over after a crash, the same key finds the case instead of opening a second one.
    new_id, _created = ctx.run_now(
        lambda conn: _open_or_find(
            conn,
            values,
            ctx,
            f"playbook:{ctx.playbook}",
            f"alert:{ctx.alert_id}" if ctx.alert_id else None,
        )
    )
    ctx.case_id = int(new_id)
    ctx.case_opened_by_alert = True
    return _summary(int(new_id), {**values, "folded": False})


def _open_or_find(
    conn: Connection, values: dict[str, Any], ctx: ActionContext, rule: str, key: str | None
) -> tuple[int, bool]:
    """The open case of (rule, key), or a new one holding that slot."""
    if key is not None:
        found = conn.execute(
            select(cases.c.id).where(
                cases.c.fold_rule == rule, cases.c.fold_key == key, cases.c.fold_open
            )
        ).first()
        if found is not None:
            return int(found.id), False
    scalar = {k: v for k, v in values.items() if k not in ("tags", "fields")}
    return service.open_case(
        conn,
        **scalar,
        tags=values.get("tags", ()),
        fields=values.get("fields"),
        source="playbook",
        fold_rule=rule if key else None,
        fold_key=key,
        actor=ctx.actor,
    ), True


@REGISTRY.action(
    "cases.update_case",
    kind="case",
    required=("case_id",),
    optional=(*_CASE_FIELDS, "payload", "append", "dropdown_values", "create_missing_tags"),
    aliases=("core.cases.update_case",),
)
def update_case(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Change a case's fields; every change lands on its timeline."""
    case_id = _case_id(args.get("case_id"))
    values = _clean(args)
    if args.get("append") and "description" in values:
        ctx.change_case(CaseOp("append", case_id, ctx.actor, text=values.pop("description")))
    if values:
        ctx.change_case(_update_op(case_id, values, ctx.actor))
    return _summary(case_id, values)


@REGISTRY.action(
    "cases.create_comment",
    kind="case",
    required=("case_id", "content"),
    optional=("parent_id", "workflow_id"),
    aliases=("core.cases.create_comment",),
)
def create_comment(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Comment on a case."""
    case_id = _case_id(args.get("case_id"))
    content = args.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InvalidInputError("content must be a non-empty string", field="content")
    ctx.change_case(CaseOp("comment", case_id, ctx.actor, text=content))
    return {"case_id": case_id, "content": content}


@REGISTRY.action(
    "cases.add_tag",
    kind="case",
    required=("case_id", "tag"),
    optional=("create_if_missing",),
    aliases=("core.cases.add_case_tag",),
)
def add_tag(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Add a tag to a case."""
    case_id = _case_id(args.get("case_id"))
    tags = service.clean_tags([args.get("tag")])
    ctx.change_case(CaseOp("update", case_id, ctx.actor, tags=tags))
    return {"case_id": case_id, "tag": tags[0]}


@REGISTRY.action(
    "cases.assign",
    kind="case",
    required=("case_id", "assignee"),
    aliases=("core.cases.assign_user", "core.cases.assign"),
)
def assign(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Assign a case (null unassigns)."""
    case_id = _case_id(args.get("case_id"))
    values = {"assignee": args.get("assignee")}
    service.validate_fields(values)
    ctx.change_case(_update_op(case_id, values, ctx.actor))
    return _summary(case_id, values)


@REGISTRY.action(
    "cases.search_cases",
    kind="pure",
    optional=(
        "search_term",
        "status",
        "priority",
        "severity",
        "tags",
        "assignee",
        "limit",
        "order_by",
        "sort",
        "start_time",
        "end_time",
    ),
    aliases=("core.cases.search_cases", "core.cases.list_cases"),
)
def search_cases(args: dict[str, Any], ctx: ActionContext) -> list[dict[str, Any]]:
    """Search cases (committed state)."""
    if ctx.engine is None:
        return []

    def as_list(v: Any) -> list[str] | None:
        return None if v is None else ([v] if isinstance(v, str) else [str(x) for x in v])

    order = args.get("order_by") or "updated_at"
    sort = "-" + order if (args.get("sort") or "desc") == "desc" else order
    with ctx.engine.connect() as conn:
        page = queries.list_cases(
            conn,
            text=args.get("search_term"),
            status=as_list(args.get("status")),
            priority=as_list(args.get("priority")),
            severity=as_list(args.get("severity")),
            tag=as_list(args.get("tags")),
            assignee=args.get("assignee"),
            since=args.get("start_time"),
            until=args.get("end_time"),
            sort=sort,
            limit=int(args.get("limit") or 100),
        )
    return page.items


@REGISTRY.action(
    "cases.upsert_case",
    kind="case",
    required=("key", "summary"),
    optional=("description", *_CREATE_OPTIONAL),
)
def upsert_case(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """One open case per (playbook, key): join it if it exists, open it otherwise."""
    key = args.get("key")
    if not isinstance(key, str | int) or str(key) == "":
        raise InvalidInputError("key must be a non-empty string", field="key")
    values = _clean({"description": "", **args})
    rule = f"playbook:{ctx.playbook}"
    if ctx.dry_run:
        return _summary(0, {**values, "key": str(key), "dry_run": True})
    assert ctx.run_now is not None

    def job(conn: Connection) -> tuple[int, bool]:
        # Joining writes nothing, so a run taken over after a crash changes nothing twice.
        return _open_or_find(conn, values, ctx, rule, str(key))

    case_id, created = ctx.run_now(job)
    return _summary(case_id, {"created": created, "key": str(key)})

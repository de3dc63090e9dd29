"""The case queue: the analyst's home page.

Filters, sorting and pages are plain GET parameters, so every view of the queue is a link that can
be bookmarked or shared. Bulk actions post the selected cases in one CSRF-checked form and change
them in one transaction. New cases are fetched by a small script (`static/queue.js`) from
`/cases/live` and slotted in above the analyst's place, which stays where it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from casefold.access import Permission
from casefold.cases import queries
from casefold.cases.bulk import CaseOp, apply_ops
from casefold.cases.merge import merge_cases
from casefold.cases.model import PRIORITIES, SEVERITIES, STATUSES, case_ref, parse_case_ref
from casefold.cases.service import validate_fields
from casefold.cases.sla import sla_badge
from casefold.errors import InvalidInputError
from casefold.web.deps import (
    CaseChange,
    Form,
    Reader,
    local_path,
    page_error,
    read_store,
    runtime_of,
    write_store,
)
from casefold.web.render import SECURITY_HEADERS, PageError, page, redirect, templates
from casefold.web.session import Session

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
COUNT_CAP = 10_000
MAX_BULK = 500
SORTS = {
    "-updated_at": "Recently updated",
    "-created_at": "Newest",
    "created_at": "Oldest",
    "-severity": "Severity",
    "-priority": "Priority",
    "-alert_count": "Most alerts",
    "-last_seen": "Latest alert",
}
# The filters a queue URL may carry, and whether each takes several values.
MULTI = ("status", "priority", "severity", "tag")
SINGLE = ("assignee", "source", "q", "sla")


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    found: dict[str, Any] = {}
    for name in MULTI:
        values = [v for v in params.getlist(name) if v]
        if values:
            found[name] = values
    for name in SINGLE:
        value = params.get(name, "").strip()
        if value:
            if len(value) > 200:
                raise PageError(400, "Bad request", f"The {name} filter is too long.")
            found[name] = value
    return found


def _query_args(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters as `queries.list_cases` names them."""
    args = {k: v for k, v in filters.items() if k not in ("q", "sla")}
    if "q" in filters:
        args["text"] = filters["q"]
    if "sla" in filters:
        if filters["sla"] != "breached":
            raise PageError(400, "Bad request", "The sla filter takes one value: breached.")
        args["sla_breached"] = True
    return args


def with_badges(
    request: Request, items: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Each case with its SLA badge (the deadline it is working towards), if it has one."""
    targets = runtime_of(request).sla_targets
    return [{**c, "sla": sla_badge(c, targets, now)} for c in items]


def _pairs(filters: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in filters.items():
        out.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    return out


def _url(filters: dict[str, Any], **extra: str) -> str:
    pairs = _pairs(filters) + [(k, v) for k, v in extra.items() if v]
    return "/?" + urlencode(pairs) if pairs else "/"


def _rows_html(request: Request, items: list[dict[str, Any]], session: Session) -> str:
    now = datetime.now(UTC)
    return templates.get_template("_case_rows.html").render(
        cases=with_badges(request, items, now),
        can_change=session.principal.can(Permission.WRITE_CASES),
        now=now,
    )


@router.get("/")
async def queue(request: Request, session: Reader) -> Response:
    filters = _filters(request)
    sort = request.query_params.get("sort") or "-updated_at"
    if sort not in SORTS:
        raise PageError(400, "Bad request", f"Unknown sort {sort!r}.")
    cursor = request.query_params.get("after") or None
    args = _query_args(filters)

    def load(conn: Connection) -> tuple[queries.Page, tuple[int, bool], list[str], int]:
        found = queries.list_cases(conn, sort=sort, limit=PAGE_SIZE, cursor=cursor, **args)
        if "text" in args:
            # A text search reads every summary and description: counting all matches would cost
            # several times the page itself, so it says "50+" when there is a next page.
            more = found.next_cursor is not None
            total = (len(found.items), more)
        else:
            total = queries.count_cases(conn, cap=COUNT_CAP, **args)
        return found, total, queries.assignees(conn), queries.max_case_id(conn)

    found, (total, capped), assignees, max_id = await read_store(request, load)
    now = datetime.now(UTC)
    kept = {**filters, **({"sort": sort} if sort != "-updated_at" else {})}
    return page(
        request,
        "cases.html",
        cases=with_badges(request, found.items, now),
        total=total,
        capped=capped,
        filters=filters,
        sort=sort,
        sorts=SORTS,
        statuses=STATUSES,
        priorities=PRIORITIES,
        severities=SEVERITIES,
        assignees=assignees,
        first_page=cursor is None,
        next_url=_url(kept, after=found.next_cursor) if found.next_cursor else None,
        first_url=_url(kept),
        live_url="/cases/live?" + urlencode(_pairs(kept)),
        max_id=max_id,
        back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        now=now,
        can_change=session.principal.can(Permission.WRITE_CASES),
    )


@router.get("/cases/live")
async def live(request: Request, session: Reader) -> Response:
    """Cases opened after `after_id` that match the queue's filters, as table rows."""
    try:
        after_id = int(request.query_params.get("after_id", ""))
    except ValueError:
        return JSONResponse(
            {"error": {"message": "after_id must be a case id", "field": "after_id"}},
            status_code=422,
            headers=SECURITY_HEADERS,
        )
    args = _query_args(_filters(request))

    def load(conn: Connection) -> queries.Page:
        return queries.list_cases(conn, sort="-id", limit=PAGE_SIZE, after_id=after_id, **args)

    found = await read_store(request, load)
    body = {
        "count": len(found.items),
        "more": found.next_cursor is not None,
        "max_id": max([c["id"] for c in found.items], default=after_id),
        "rows": _rows_html(request, found.items, session),
    }
    return JSONResponse(body, headers=SECURITY_HEADERS)


def _selected(form: Form) -> list[int]:
    ids: list[int] = []
    for value in form.getlist("case"):
        case_id = parse_case_ref(value)
        if case_id is None:
            raise PageError(422, "Not accepted", f"{value!r} is not a case.")
        ids.append(case_id)
    if not ids:
        raise PageError(422, "Not accepted", "Select at least one case.")
    if len(ids) > MAX_BULK:
        raise PageError(422, "Not accepted", f"Select at most {MAX_BULK} cases at a time.")
    return sorted(set(ids))


@router.post("/cases/bulk")
async def bulk(request: Request, posted: CaseChange) -> Response:
    """Assign, change the status of, or merge the selected cases, all in one transaction."""
    session, form = posted
    back = local_path(form.get("back"))
    ids = _selected(form)
    op = form.get("op", "")
    actor = session.principal.name
    now = datetime.now(UTC)
    if op in ("assign", "status"):
        if op == "assign":
            assignee = form.get("assignee", "").strip() or None
            change_to: dict[str, Any] = {"assignee": assignee}
            done = f"assigned to {assignee}" if assignee else "unassigned"
        else:
            change_to = {"status": form.get("status", "")}
            done = f"set to {change_to['status'].replace('_', ' ')}"
        try:
            values = validate_fields(change_to)
        except InvalidInputError as exc:
            raise page_error(exc) from None

        def change(conn: Connection) -> None:
            apply_ops(conn, [CaseOp("update", i, actor, values=values) for i in ids], now)

        await write_store(request, change)
        return redirect(back, f"{_count(ids)} {done}.")
    if op == "merge":
        target_ref = form.get("target", "").strip()
        target = parse_case_ref(target_ref) if target_ref else ids[0]
        if target is None:
            raise PageError(422, "Not accepted", f"{target_ref!r} is not a case.")
        sources = [i for i in ids if i != target]
        if not sources:
            raise PageError(422, "Not accepted", "Select at least two cases to merge.")
        await write_store(
            request, lambda conn: merge_cases(conn, target, sources, actor=actor, now=now)
        )
        return redirect(
            f"/cases/{case_ref(target)}",
            f"{_count(sources)} merged into {case_ref(target)}.",
        )
    raise PageError(422, "Not accepted", "Choose what to do with the selected cases.")


def _count(ids: list[int]) -> str:
    return "1 case" if len(ids) == 1 else f"{len(ids)} cases"

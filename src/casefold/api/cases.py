"""Case reads and changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from casefold.access import Permission, Principal
from casefold.api.auth import require
from casefold.api.params import case_id_from_ref
from casefold.api.responses import json_response
from casefold.cases import merge, queries, service
from casefold.cases.model import PRIORITIES, SEVERITIES, STATUSES, parse_case_ref
from casefold.errors import InvalidInputError
from casefold.outbox import store as outbox_store

router = APIRouter(prefix="/api/v1")

Status = Literal[STATUSES]  # type: ignore[valid-type]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]


class CasePatch(BaseModel):
    """Only the fields present are changed; `assignee: null` unassigns; `fields` merges (null
    removes a key); `tags` replaces the whole set."""

    model_config = ConfigDict(extra="forbid")

    summary: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=100_000)
    status: Status | None = None
    priority: Priority | None = None
    severity: Severity | None = None
    assignee: str | None = Field(None, max_length=200)
    tags: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    fields: dict[str, Any] | None = None


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=25_000)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Case references ("CASE-2") or ids (2); checked one by one so an error names its position.
    cases: list[Any] = Field(min_length=1, max_length=merge.MAX_SOURCES)


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    v = value.strip().strip('"').removeprefix("W/").strip('"')
    if not v.isdigit():
        raise InvalidInputError('If-Match must be the case version, e.g. "3"', field="If-Match")
    return int(v)


@router.get("/cases", dependencies=[Depends(require(Permission.READ))])
def list_cases(
    request: Request,
    status: Annotated[list[str] | None, Query()] = None,
    priority: Annotated[list[str] | None, Query()] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    assignee: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sort: str = "-updated_at",
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Response:
    with request.app.state.runtime.engine.connect() as conn:
        page = queries.list_cases(
            conn,
            status=status,
            priority=priority,
            severity=severity,
            assignee=assignee,
            tag=tag,
            text=text,
            source=source,
            since=since,
            until=until,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@router.get("/cases/{ref}", dependencies=[Depends(require(Permission.READ))])
def get_case(request: Request, ref: str) -> Response:
    case_id = case_id_from_ref(ref)
    with request.app.state.runtime.engine.connect() as conn:
        case = queries.get_case(conn, case_id)
        # Its counterparts elsewhere (Jira issue, ExtraHop detections) and the effects on them.
        case["links"] = outbox_store.links_for_case(conn, case_id)
        case["effects"] = outbox_store.effects_for_case(conn, case_id, datetime.now(UTC))
    return json_response(case, headers={"ETag": f'"{case["version"]}"'})


@router.patch("/cases/{ref}")
def patch_case(
    request: Request,
    ref: str,
    patch: CasePatch,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_CASES))],
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    case_id = case_id_from_ref(ref)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("summary", "status", "priority", "severity", "tags", "fields", "description"):
        if name in changes and changes[name] is None:
            raise InvalidInputError(f"{name} cannot be null", field=name)
    expected = _if_match(if_match)
    runtime = request.app.state.runtime

    def job(conn: Any) -> None:
        return service.update_case(
            conn, case_id, changes, actor=principal.name, expected_version=expected
        )

    runtime.writer.run(job)
    with runtime.engine.connect() as conn:
        case = queries.get_case(conn, case_id)
    return json_response(case, headers={"ETag": f'"{case["version"]}"'})


@router.post("/cases/{ref}/comments", status_code=201)
def post_comment(
    request: Request,
    ref: str,
    comment: CommentIn,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    case_id = case_id_from_ref(ref)
    created = request.app.state.runtime.writer.run(
        lambda conn: service.add_comment(conn, case_id, comment.content, author=principal.name)
    )
    return json_response(created, 201)


@router.post("/cases/{ref}/merge")
def merge_cases(
    request: Request,
    ref: str,
    body: MergeIn,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    """Merge the listed cases into this one; answer with this case as it is afterwards."""
    case_id = case_id_from_ref(ref)
    sources: list[int] = []
    for i, item in enumerate(body.cases):
        is_ref = isinstance(item, str | int) and not isinstance(item, bool)
        parsed = parse_case_ref(item) if is_ref else None
        if parsed is None:
            raise InvalidInputError(
                f"cases[{i}] must be a case reference like CASE-12, or its id",
                field=f"cases[{i}]",
            )
        sources.append(parsed)
    runtime = request.app.state.runtime
    moved = runtime.writer.run(
        lambda conn: merge.merge_cases(
            conn, case_id, sources, actor=principal.name, now=datetime.now(UTC)
        )
    )
    if moved["observables"]:
        # Observables of closed sources were never enriched; under an open case they may be.
        runtime.auto_enrich.rewind()
    with runtime.engine.connect() as conn:
        case = queries.get_case(conn, case_id)
    return json_response(case, headers={"ETag": f'"{case["version"]}"'})


@router.get("/cases/{ref}/timeline", dependencies=[Depends(require(Permission.READ))])
def get_timeline(
    request: Request,
    ref: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: str | None = None,
) -> Response:
    case_id = case_id_from_ref(ref)
    with request.app.state.runtime.engine.connect() as conn:
        page = queries.case_timeline(conn, case_id, limit=limit, cursor=cursor)
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@router.get("/cases/{ref}/alerts", dependencies=[Depends(require(Permission.READ))])
def get_case_alerts(
    request: Request,
    ref: str,
    sort: str = "time",
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Response:
    case_id = case_id_from_ref(ref)
    with request.app.state.runtime.engine.connect() as conn:
        page = queries.list_alerts(conn, case_id=case_id, sort=sort, limit=limit, cursor=cursor)
    return json_response({"items": page.items, "next_cursor": page.next_cursor})

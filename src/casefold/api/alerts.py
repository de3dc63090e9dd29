"""Alert intake and alert reads."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from casefold.access import Permission
from casefold.api.auth import require
from casefold.api.params import case_id_from_ref
from casefold.api.responses import error_body, json_response
from casefold.cases import queries
from casefold.errors import PayloadTooLargeError
from casefold.intake.body import parse_body
from casefold.intake.receiver import SourceParser, prepare
from casefold.sources.wazuh import parse_wazuh_alert

router = APIRouter(prefix="/api/v1")

# Bodies above this are parsed off the event loop so one large batch cannot stall other requests.
_INLINE_PARSE_BYTES = 256 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is larger than the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def handle_intake(
    runtime: Any, body: bytes, ctype: str | None, parse: SourceParser
) -> tuple[int, dict[str, Any]]:
    """Validate, store, acknowledge: (status, JSON body). Shared by the route and the fast path.

    Raises InvalidJSONError for a body that is not JSON at all.
    """

    def work() -> Any:
        parsed = parse_body(body, ctype)
        return parsed.single, prepare(parsed, parse)

    single, prepared = work() if len(body) <= _INLINE_PARSE_BYTES else await run_in_threadpool(work)
    receipts = (
        await asyncio.wrap_future(runtime.sink.submit(prepared.rows)) if prepared.rows else []
    )
    result = prepared.finish(receipts)
    if result.accepted:
        runtime.folding.wake()
    if not prepared.rows:
        # Nothing usable: 422 naming the first problem; a batch also lists every item's error.
        first = result.results[0]["error"]
        out = error_body(
            "invalid_alert",
            str(first.get("message")),
            field=first.get("field"),
            line=first.get("line"),
            column=first.get("column"),
            **({} if single else {"results": result.results}),
        )
        return 422, out
    return 202, result.to_dict()


async def ingest(request: Request, parse: SourceParser) -> Response:
    runtime = request.app.state.runtime
    body = await read_body(request, runtime.settings.max_body_bytes)
    status, payload = await handle_intake(runtime, body, request.headers.get("content-type"), parse)
    return json_response(payload, status)


@router.post(
    "/alerts/wazuh",
    dependencies=[Depends(require(Permission.INGEST))],
    status_code=202,
    summary="Ingest Wazuh alerts (object, array or NDJSON)",
)
async def post_wazuh_alerts(request: Request) -> Response:
    return await ingest(request, parse_wazuh_alert)


@router.post(
    "/alerts/extrahop",
    dependencies=[Depends(require(Permission.INGEST))],
    status_code=202,
    summary="Ingest ExtraHop detections as the Casefold trigger pushes them",
)
async def post_extrahop_detections(request: Request) -> Response:
    return await ingest(request, request.app.state.runtime.extrahop_parser)


@router.get("/alerts", dependencies=[Depends(require(Permission.READ))])
def list_alerts(
    request: Request,
    case: str | None = None,
    source: str | None = None,
    rule_id: str | None = None,
    agent: str | None = None,
    min_level: Annotated[int | None, Query(ge=0, le=16)] = None,
    state: str | None = None,
    text: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sort: str = "-time",
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Response:
    case_id = case_id_from_ref(case) if case else None
    with request.app.state.runtime.engine.connect() as conn:
        page = queries.list_alerts(
            conn,
            case_id=case_id,
            source=source,
            rule_id=rule_id,
            agent=agent,
            min_level=min_level,
            state=state,
            text=text,
            since=since,
            until=until,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@router.get("/alerts/{alert_id}", dependencies=[Depends(require(Permission.READ))])
def get_alert(request: Request, alert_id: int) -> Response:
    with request.app.state.runtime.engine.connect() as conn:
        return json_response(queries.get_alert(conn, alert_id))

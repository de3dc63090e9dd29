"""Active responses over the API: list them with their decisions, approve or reject one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from casefold.access import Permission, Principal
from casefold.api.auth import require
from casefold.api.responses import json_response
from casefold.errors import InvalidInputError
from casefold.response.service import response_dict
from casefold.store.tables import responses

router = APIRouter(prefix="/api/v1")
STATES = (
    "awaiting_approval",
    "queued",
    "active",
    "done",
    "undone",
    "refused",
    "rejected",
    "expired",
    "dry_run",
)


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


@router.get("/responses", dependencies=[Depends(require(Permission.READ))])
def list_responses(
    request: Request,
    state: Annotated[str | None, Query()] = None,
    case: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Responses, newest first: action, target, the policy's decision and what became of it."""
    if state is not None and state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}", field="state")
    stmt = select(responses).order_by(responses.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(responses.c.state == state)
    if case is not None:
        stmt = stmt.where(responses.c.case_id == case)
    with request.app.state.runtime.engine.connect() as conn:
        items = [response_dict(r) for r in conn.execute(stmt)]
    return json_response({"items": items})


@router.get("/responses/{response_id}", dependencies=[Depends(require(Permission.READ))])
def get_response(request: Request, response_id: int) -> Response:
    runtime = request.app.state.runtime
    with runtime.engine.connect() as conn:
        return json_response(runtime.responses.get(conn, response_id))


@router.post("/responses/{response_id}/approve")
def approve(
    request: Request,
    response_id: int,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    """Approve a response that waits for an analyst (the policy is checked again)."""
    runtime = request.app.state.runtime
    result = runtime.writer.run(
        lambda conn: runtime.responses.approve(conn, response_id, principal.name)
    )
    runtime.sync.worker.wake()
    return json_response(result)


@router.post("/responses/{response_id}/reject")
def reject(
    request: Request,
    response_id: int,
    body: Rejection,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_CASES))],
) -> Response:
    runtime = request.app.state.runtime
    return json_response(
        runtime.writer.run(
            lambda conn: runtime.responses.reject(conn, response_id, principal.name, body.reason)
        )
    )

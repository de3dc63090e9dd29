"""The outbox over the API: effects waiting, done or dead; retrying one; Jira's webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from casefold.access import Permission
from casefold.api.auth import require
from casefold.api.responses import json_response
from casefold.connectors.jira import verify_signature
from casefold.errors import AuthError, ConflictError, InvalidInputError
from casefold.outbox import store
from casefold.store.db import dialect_insert
from casefold.store.tables import inbound_deliveries

router = APIRouter(prefix="/api/v1")
STATES = ("pending", "delivering", "done", "dead")


@router.get("/outbox", dependencies=[Depends(require(Permission.READ))])
def list_effects(
    request: Request,
    state: Annotated[str | None, Query()] = None,
    case: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Effects on other systems, newest first, with their state in words."""
    if state is not None and state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}", field="state")
    now = datetime.now(UTC)
    with request.app.state.runtime.engine.connect() as conn:
        items = store.list_effects(conn, now, state=state, case_id=case, limit=limit)
        totals = store.counts(conn)
    return json_response({"items": items, "counts": totals})


@router.post("/outbox/{effect_id}/retry", dependencies=[Depends(require(Permission.WRITE_CASES))])
def retry_effect(request: Request, effect_id: int) -> Response:
    """Queue a dead (or waiting) effect again now, with a fresh set of attempts."""
    runtime = request.app.state.runtime
    effect = runtime.writer.run(lambda conn: store.retry(conn, effect_id))
    runtime.sync.worker.wake()
    return json_response(effect, 202)


@router.post("/webhooks/jira")
async def jira_webhook(request: Request) -> Response:
    """Jira's admin webhook: signed with X-Hub-Signature (sha256) over the raw body; a delivery
    id seen before is acknowledged and changes nothing."""
    runtime = request.app.state.runtime
    sync = runtime.sync
    if not sync.webhook_secret:
        raise AuthError("Jira webhooks are refused: secret jira.WEBHOOK_SECRET is not configured")
    body = await request.body()
    if not verify_signature(sync.webhook_secret, body, request.headers.get("x-hub-signature")):
        raise AuthError("bad or missing X-Hub-Signature")
    if sync.jira is None:
        raise ConflictError("Jira sync is not configured")
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInputError("the body is not JSON", field="body") from None
    if not isinstance(event, dict):
        raise InvalidInputError("the body must be a JSON object", field="body")
    delivery = request.headers.get("x-atlassian-webhook-identifier")

    def job(conn: Any) -> dict[str, Any]:
        if delivery:
            stmt = dialect_insert(conn, inbound_deliveries).values(
                source="jira", delivery_id=delivery[:200], received_at=datetime.now(UTC)
            )
            fresh = conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["source", "delivery_id"]).returning(
                    inbound_deliveries.c.delivery_id
                )
            ).first()
            if fresh is None:
                return {"duplicate": True}
        return sync.jira.apply_event(conn, event)

    result = runtime.writer.run(job)
    return json_response(result, 200)

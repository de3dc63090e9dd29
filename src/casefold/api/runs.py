"""Playbook runs: every run of an alert with each step's input, result or error and duration."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from casefold.access import Permission
from casefold.api.auth import require
from casefold.api.responses import json_response
from casefold.playbooks.history import get_run, runs_for_alert

router = APIRouter(prefix="/api/v1")


@router.get("/alerts/{alert_id}/runs", dependencies=[Depends(require(Permission.READ))])
def alert_runs(request: Request, alert_id: int) -> Response:
    with request.app.state.runtime.engine.connect() as conn:
        return json_response({"items": runs_for_alert(conn, alert_id)})


@router.get("/runs/{run_id}", dependencies=[Depends(require(Permission.READ))])
def one_run(request: Request, run_id: int) -> Response:
    with request.app.state.runtime.engine.connect() as conn:
        return json_response(get_run(conn, run_id))


@router.post(
    "/runs/{run_id}/retry", status_code=202, dependencies=[Depends(require(Permission.WRITE_CASES))]
)
def retry_run(request: Request, run_id: int) -> Response:
    """Run it again: steps that succeeded are kept, failed and skipped ones run again."""
    runtime = request.app.state.runtime
    runtime.playbooks.retry(run_id)
    with runtime.engine.connect() as conn:
        return json_response(get_run(conn, run_id), 202)

"""Signed inbound webhooks that become alerts: GitHub security events and Standard Webhooks
senders. The signature is the authentication: a bad or missing one is a 401 and nothing is
stored. The delivery id is the alert's source id, so a redelivery is acknowledged as a duplicate
and stored once."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from casefold.api.alerts import handle_intake, read_body
from casefold.api.responses import json_response
from casefold.errors import AuthError, InvalidInputError
from casefold.intake.localfile import event_line, github_line
from casefold.signing import verify_github, verify_standard
from casefold.sources.github import parse_github_event, parse_standard_event

router = APIRouter(prefix="/api/v1")

GITHUB_SECRET = ("github", "WEBHOOK_SECRET")


def _secret(runtime: Any, name: str, key: str = "WEBHOOK_SECRET") -> str | None:
    return runtime.settings.secret_values().get(name, {}).get(key) or None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not JSON: {exc}", field="body") from None
    if not isinstance(doc, dict):
        raise InvalidInputError("the body must be a JSON object", field="body")
    return doc


def _write_line(runtime: Any, line: dict[str, Any]) -> None:
    writer = getattr(runtime, "events_file", None)
    if writer is not None:
        writer.write([line])


@router.post("/alerts/github", status_code=202, summary="GitHub security events (signed)")
async def post_github(request: Request) -> Response:
    runtime = request.app.state.runtime
    secret = _secret(runtime, *GITHUB_SECRET)
    if secret is None:
        raise AuthError("GitHub webhooks are refused: secret github.WEBHOOK_SECRET is not set")
    body = await read_body(request, runtime.settings.max_body_bytes)
    verify_github(secret, body, request.headers.get("x-hub-signature-256"))
    event = request.headers.get("x-github-event") or ""
    delivery = request.headers.get("x-github-delivery") or ""
    doc = _json_object(body)
    alert = parse_github_event(event, delivery, doc)
    if alert is None:
        # ping and events we do not turn into alerts: acknowledged, nothing stored
        return json_response({"accepted": 0, "ignored": event or "no X-GitHub-Event"}, 202)
    status, payload = await handle_intake(
        runtime, body, "application/json", lambda d: parse_github_event(event, delivery, d)
    )
    if status == 202 and payload.get("accepted"):
        _write_line(runtime, github_line(event, delivery, doc, alert))
    return json_response(payload, status)


@router.post("/alerts/webhook/{source}", status_code=202, summary="Standard Webhooks senders")
async def post_standard(request: Request, source: str) -> Response:
    runtime = request.app.state.runtime
    secret_name = runtime.settings.webhook_sources.get(source)
    secret = _secret(runtime, secret_name) if secret_name else None
    if secret is None:
        raise AuthError(f"no webhook source {source!r} with a WEBHOOK_SECRET is configured")
    body = await read_body(request, runtime.settings.max_body_bytes)
    msg_id = verify_standard(secret, request.headers, body, now=time.time())
    doc = _json_object(body)
    status, payload = await handle_intake(
        runtime, body, "application/json", lambda d: parse_standard_event(d, msg_id, source)
    )
    if status == 202 and payload.get("accepted"):
        event = str(doc.get("type") or "event")
        _write_line(runtime, event_line(source, event, msg_id, doc, None))
    return json_response(payload, status)

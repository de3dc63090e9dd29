"""webhook.post: post an event to any URL, signed as a Standard Webhook, through the outbox.

The post is queued in the transaction that records the step, and delivered (with retries,
back-off and a dead letter) by the outbox, so a run never waits on the receiver and a
receiver that is down loses nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.errors import InvalidInputError
from casefold.outbox import store
from casefold.outbox.store import Effect


@REGISTRY.action("webhook.post", kind="case", required=("url", "data"), optional=("type", "secret"))
def post_webhook(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Queue a signed webhook `{type, timestamp, data}` to `url` (delivered by the outbox)."""
    url = args.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise InvalidInputError("url must be an http(s) URL", field="url")
    if ctx.http_allow is not None:
        ctx.http_allow(url)  # the SSRF guard, now and again at delivery
    event_type = args.get("type") or "casefold.event"
    if not isinstance(event_type, str):
        raise InvalidInputError("type must be a string", field="type")
    secret = args.get("secret")
    if secret is not None and (not isinstance(secret, str) or secret not in ctx.secrets):
        raise InvalidInputError(f"secret {secret!r} is not configured", field="secret")
    msg_id = f"msg_{uuid.uuid4().hex}"
    body = {
        "type": event_type,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": args["data"],
    }
    effect = Effect(
        "webhook",
        "webhook.post",
        f"webhook:{url}",
        msg_id,
        {"url": url, "body": body, "msg_id": msg_id, "secret": secret},
        ctx.case_id,
    )

    def queue(conn: Connection) -> None:
        store.enqueue(conn, [effect])

    ctx.defer(f"post webhook {event_type} to {url}", queue)
    return {"queued": not ctx.dry_run, "msg_id": msg_id, "url": url, "type": event_type}

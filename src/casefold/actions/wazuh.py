"""wazuh.send_event: send an event back into Wazuh, where rules can raise an alert on it.

On the manager host the event goes to analysisd's queue socket, one datagram each; elsewhere
to the Wazuh API's POST /events (a JWT, at most 100 events a request). Either way the event
carries `integration` (rules match on it) and a back-reference to the alert it is about:
`alert_id` and `node`, as Wazuh's own integrations do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from casefold.actions.context import ActionContext
from casefold.actions.registry import REGISTRY
from casefold.config import Settings
from casefold.connectors.http import ProviderHTTP, RetryPolicy
from casefold.connectors.wazuh_events import QueueSender, WazuhAPI, frame_event
from casefold.errors import InvalidInputError

API_SECRET = ("wazuh_api", "WAZUH_API_USERNAME", "WAZUH_API_PASSWORD")
MAX_EVENTS = 1000  # per step: a playbook bug should not flood analysisd


class WazuhSender:
    """Delivers framed events through the queue socket, or through the API when one is set."""

    def __init__(self, queue: QueueSender | None, api: WazuhAPI | None) -> None:
        self.queue = queue
        self.api = api

    @property
    def via(self) -> str:
        return "api" if self.api is not None else "queue"

    def send(self, events: list[dict[str, Any]], frames: list[bytes]) -> dict[str, Any]:
        """Send the events: as framed datagrams to the queue, or as JSON to the API."""
        if self.api is not None:
            # The API frames events itself (1:API-Webhook:…); agent context cannot be given.
            answer = self.api.send_events([orjson.dumps(e).decode() for e in events])
            return {"via": "api", "sent": len(events), "api": answer}
        assert self.queue is not None
        self.queue.send(frames)
        return {"via": "queue", "sent": len(frames), "socket": str(self.queue.socket_path)}


def build_wazuh_api(
    settings: Settings, secrets: Mapping[str, Mapping[str, str]], client: httpx.Client
) -> WazuhAPI | None:
    """The Wazuh API client, when `wazuh.api_url` and the secret wazuh_api are set."""
    conf = settings.wazuh
    creds = secrets.get(API_SECRET[0], {})
    user, password = creds.get(API_SECRET[1]), creds.get(API_SECRET[2])
    if not conf.api_url or not user or not password:
        return None
    if not conf.api_verify_tls:
        client = httpx.Client(verify=False, timeout=conf.api_timeout)
    # One attempt: a POST that timed out may have been acted on; sending it again would raise
    # the alert (or run the response) twice. The caller's own retries decide.
    http = ProviderHTTP("wazuh", client, RetryPolicy(attempts=1, timeout=conf.api_timeout))
    return WazuhAPI(http, conf.api_url, user, password)


def build_wazuh_sender(
    settings: Settings, secrets: Mapping[str, Mapping[str, str]], client: httpx.Client
) -> WazuhSender:
    if not settings.wazuh.api_url:
        return WazuhSender(QueueSender(settings.wazuh.queue_socket), None)
    api = build_wazuh_api(settings, secrets, client)
    if api is None:
        # Reported when a playbook sends, so that start-up never fails for an unused action.
        return WazuhSender(None, _MissingAPI())  # type: ignore[arg-type]
    return WazuhSender(None, api)


class _MissingAPI:
    def send_events(self, events: list[str]) -> dict[str, Any]:
        raise InvalidInputError(
            f"wazuh.api_url is set but secret {API_SECRET[0]}.{API_SECRET[1]} / "
            f"{API_SECRET[2]} is not configured",
            field="event",
        )


def _agent(ctx: ActionContext, given: Any) -> dict[str, Any] | None:
    if given is not None:
        if not isinstance(given, dict):
            raise InvalidInputError("agent must be an object {id, name, ip}", field="agent")
        return given
    alert = ctx.alert or {}
    if alert.get("agent_id"):
        return {
            "id": alert["agent_id"],
            "name": alert.get("agent_name"),
            "ip": alert.get("agent_ip"),
        }
    return None


@REGISTRY.action(
    "wazuh.send_event",
    kind="network",
    optional=("event", "events", "integration", "location", "agent"),
)
def send_event(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Send one event (or a list) back to Wazuh, tagged with `integration` and the alert's id."""
    events = args.get("events")
    if args.get("event") is not None:
        events = [args["event"]]
    if events is None:
        raise InvalidInputError("give event or events", field="event")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise InvalidInputError("events must be a list of objects", field="events")
    if len(events) > MAX_EVENTS:
        raise InvalidInputError(f"at most {MAX_EVENTS} events per step", field="events")
    integration = args.get("integration") or "casefold"
    if not isinstance(integration, str):
        raise InvalidInputError("integration must be a string", field="integration")
    location = args.get("location") or integration
    if not isinstance(location, str) or "\n" in location:
        raise InvalidInputError("location must be a one-line string", field="location")
    alert = ctx.alert or {}
    stamped = [
        {
            "integration": integration,
            **event,
            **({"alert_id": alert["source_id"]} if alert.get("source_id") else {}),
            **({"node": alert["node"]} if alert.get("node") else {}),
        }
        for event in events
    ]
    agent = _agent(ctx, args.get("agent"))
    if not stamped:
        return {"sent": 0}
    if not ctx.makes_requests or ctx.wazuh is None:
        ctx.http_trace.append({"wazuh": "send_event", "events": len(stamped), "sent": False})
        return {"sent": 0, "would_send": stamped, "dry_run": True}
    try:
        # Framing checks every size before anything is sent.
        frames = [frame_event(e, location=location, agent=agent) for e in stamped]
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="event") from None
    ctx.called_out = True
    return ctx.wazuh.send(stamped, frames)

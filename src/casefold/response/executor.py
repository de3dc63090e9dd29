"""Carrying responses out: the outbox handlers that block, unblock and let approvals lapse.

Blocking on a firewall is idempotent (already blocked counts as done), so a delivery repeated
after a crash does no harm; an AR command sent through the Wazuh API is sent once per attempt
and reports, per agent, where it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from casefold.config import ResponseSettings
from casefold.connectors.firewall import FirewallAPI
from casefold.connectors.http import ProviderError, ProviderHTTP, RetryPolicy
from casefold.connectors.wazuh_events import WazuhAPI
from casefold.outbox.worker import Attempt, Delivered
from casefold.response.service import ResponseService
from casefold.store.tables import RESPONSE_ACTIVE, RESPONSE_QUEUED, responses


def build_firewall(
    conf: ResponseSettings, secrets: Mapping[str, Mapping[str, str]], client: httpx.Client
) -> FirewallAPI | None:
    """The firewall client, when `response.firewall_block_url` is set. Its credential: the
    secret `firewall` with AUTHORIZATION (the whole header value) or API_TOKEN (Bearer)."""
    if not conf.firewall_block_url:
        return None
    creds = secrets.get("firewall", {})
    auth = creds.get("AUTHORIZATION") or (
        f"Bearer {creds['API_TOKEN']}" if creds.get("API_TOKEN") else None
    )
    return FirewallAPI(
        # blocking and unblocking are idempotent: retrying them is safe
        ProviderHTTP("firewall", client, RetryPolicy(attempts=3, timeout=conf.timeout)),
        block_url=conf.firewall_block_url,
        unblock_url=conf.firewall_unblock_url or None,
        method=conf.firewall_method,
        unblock_method=conf.firewall_unblock_method,
        body_template=conf.firewall_body,
        auth_header=auth,
    )


class ResponseExecutor:
    def __init__(
        self,
        engine: Engine,
        service: ResponseService,
        *,
        wazuh: WazuhAPI | None,
        firewall: FirewallAPI | None,
    ) -> None:
        self.engine = engine
        self.service = service
        self.wazuh = wazuh
        self.firewall = firewall

    def handlers(self) -> dict[str, Any]:
        return {
            "response.execute": self.execute,
            "response.undo": self.undo,
            "response.expire": self.expire,
        }

    def _row(self, response_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(responses).where(responses.c.id == response_id)).first()

    def execute(self, attempt: Attempt) -> Delivered:
        response_id = int(attempt.payload["response_id"])
        row = self._row(response_id)
        if row is None or row.state != RESPONSE_QUEUED:
            return Delivered({"skipped": f"response is {row.state if row else 'gone'}"})
        params = row.params or {}
        if row.action == "firewall.block_ip":
            result = self._firewall().block(
                row.target, ttl=row.ttl_seconds or None, reason=str(params.get("reason") or "")
            )
        elif row.action == "firewall.unblock_ip":
            result = self._firewall().unblock(row.target)
        else:
            result = self._wazuh().active_response(
                str(params["command"]),
                agents=list(params.get("agents") or []),
                arguments=list(params.get("arguments") or []),
                alert=params.get("alert"),
            )
            if not result.get("affected"):
                raise ProviderError(
                    "wazuh", f"no agent took the command: {result.get('failed')}", retryable=True
                )
        now = datetime.now(UTC)

        def record(conn: Connection) -> None:
            self.service.executed(conn, response_id, result, now)

        return Delivered(result, record)

    def undo(self, attempt: Attempt) -> Delivered:
        response_id = int(attempt.payload["response_id"])
        row = self._row(response_id)
        if row is None or row.state != RESPONSE_ACTIVE:
            return Delivered({"skipped": f"response is {row.state if row else 'gone'}"})
        params = row.params or {}
        if row.action == "firewall.block_ip":
            result = self._firewall().unblock(row.target)
        else:
            result = self._wazuh().active_response(
                str(params["undo_command"]),
                agents=list(params.get("agents") or []),
                arguments=list(params.get("arguments") or []),
                alert=params.get("alert"),
            )
        now = datetime.now(UTC)

        def record(conn: Connection) -> None:
            self.service.undone(conn, response_id, result, now)

        return Delivered(result, record)

    def expire(self, attempt: Attempt) -> Delivered:
        response_id = int(attempt.payload["response_id"])

        def record(conn: Connection) -> None:
            self.service.expire(conn, response_id)  # a no-op once approved or rejected

        return Delivered({"response_id": response_id}, record)

    def _firewall(self) -> FirewallAPI:
        if self.firewall is None:
            raise ProviderError("firewall", "response.firewall_block_url is not configured")
        return self.firewall

    def _wazuh(self) -> WazuhAPI:
        if self.wazuh is None:
            raise ProviderError(
                "wazuh", "wazuh.api_url and the secret wazuh_api are not configured"
            )
        return self.wazuh

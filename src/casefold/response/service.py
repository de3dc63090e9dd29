"""Responses: asked for, decided by policy (or an analyst), executed and undone through the
outbox, every step on the case's timeline.

The execution and the undo are outbox effects, so they survive restarts: the undo is written
when the response executes, due at the end of its TTL, and a Casefold that was down then undoes
it when it comes back (unlike wazuh-execd's timers, which live in memory). An approval
deadline is an effect too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from casefold.cases import timeline
from casefold.config import ResponseSettings
from casefold.errors import ConflictError, NotFoundError
from casefold.outbox import store
from casefold.outbox.store import Effect
from casefold.response.policy import AWAIT, DRY_RUN, EXECUTE, REFUSE, ResponsePolicy
from casefold.store.tables import (
    RESPONSE_ACTIVE,
    RESPONSE_AWAITING,
    RESPONSE_DONE,
    RESPONSE_DRY_RUN,
    RESPONSE_EXPIRED,
    RESPONSE_QUEUED,
    RESPONSE_REFUSED,
    RESPONSE_REJECTED,
    RESPONSE_UNDONE,
    responses,
)

_STATE = {
    EXECUTE: RESPONSE_QUEUED,
    REFUSE: RESPONSE_REFUSED,
    AWAIT: RESPONSE_AWAITING,
    DRY_RUN: RESPONSE_DRY_RUN,
}
UNDOABLE = ("firewall.block_ip",)  # wazuh.active_response is undone when it names an undo


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def response_dict(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        value = _utc(value)
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "case_id": row.case_id,
        "alert_id": row.alert_id,
        "action": row.action,
        "target": row.target,
        "params": row.params,
        "state": row.state,
        "rule": row.rule,
        "reason": row.reason,
        "requested_by": row.requested_by,
        "decided_by": row.decided_by,
        "ttl_seconds": row.ttl_seconds,
        "created_at": iso(row.created_at),
        "decided_at": iso(row.decided_at),
        "executed_at": iso(row.executed_at),
        "expires_at": iso(row.expires_at),
        "undone_at": iso(row.undone_at),
        "result": row.result,
    }


class ResponseService:
    def __init__(self, conf: ResponseSettings, policy: ResponsePolicy) -> None:
        self.conf = conf
        self.policy = policy

    # -- asking --------------------------------------------------------------------------

    def request(
        self,
        conn: Connection,
        *,
        action: str,
        target: str,
        params: Mapping[str, Any],
        case_id: int | None,
        alert_id: int | None,
        actor: str,
        ttl: float | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Decide and record a response; queue what the decision calls for."""
        now = now or datetime.now(UTC)
        decision = self.policy.decide(conn, target, now)
        state = _STATE[decision.verdict]
        ttl_seconds = int(self.conf.default_ttl_seconds if ttl is None else ttl)
        response_id = conn.execute(
            insert(responses)
            .values(
                case_id=case_id,
                alert_id=alert_id,
                action=action,
                target=target,
                params=dict(params),
                state=state,
                rule=decision.rule,
                reason=decision.reason,
                requested_by=actor,
                decided_by="policy" if state != RESPONSE_AWAITING else None,
                decided_at=now if state != RESPONSE_AWAITING else None,
                ttl_seconds=ttl_seconds,
                created_at=now,
            )
            .returning(responses.c.id)
        ).scalar_one()
        self._event(
            conn,
            case_id,
            f"response_{state}",
            actor,
            response_id,
            action,
            target,
            {"rule": decision.rule, "reason": decision.reason},
            now,
        )
        if state == RESPONSE_QUEUED:
            self._queue_execution(conn, response_id, case_id, now)
        elif state == RESPONSE_AWAITING:
            store.enqueue(
                conn,
                [
                    Effect(
                        "response",
                        "response.expire",
                        f"response:{response_id}:deadline",
                        f"response:expire:{response_id}",
                        {"response_id": response_id},
                        case_id,
                        not_before=now + timedelta(seconds=self.conf.approval_timeout_seconds),
                    )
                ],
                now,
            )
        return self.get(conn, response_id)

    def _queue_execution(
        self, conn: Connection, response_id: int, case_id: int | None, now: datetime
    ) -> None:
        store.enqueue(
            conn,
            [
                Effect(
                    "response",
                    "response.execute",
                    f"response:{response_id}",
                    f"response:execute:{response_id}",
                    {"response_id": response_id},
                    case_id,
                )
            ],
            now,
        )

    # -- analysts ------------------------------------------------------------------------

    def approve(self, conn: Connection, response_id: int, actor: str) -> dict[str, Any]:
        row = self._awaiting(conn, response_id)
        now = datetime.now(UTC)
        # Policy again: the target may have been acted on, or the budget spent, meanwhile.
        decision = self.policy.decide(conn, row.target, now)
        if decision.verdict == REFUSE:
            self._set(
                conn,
                response_id,
                state=RESPONSE_REFUSED,
                rule=decision.rule,
                reason=decision.reason,
                decided_by=actor,
                decided_at=now,
            )
            self._event(
                conn,
                row.case_id,
                "response_refused",
                actor,
                response_id,
                row.action,
                row.target,
                {"rule": decision.rule, "reason": decision.reason},
                now,
            )
            return self.get(conn, response_id)
        self._set(
            conn,
            response_id,
            state=RESPONSE_QUEUED,
            decided_by=actor,
            decided_at=now,
            reason="approved",
        )
        self._event(
            conn,
            row.case_id,
            "response_approved",
            actor,
            response_id,
            row.action,
            row.target,
            {},
            now,
        )
        self._queue_execution(conn, response_id, row.case_id, now)
        return self.get(conn, response_id)

    def reject(
        self, conn: Connection, response_id: int, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        row = self._awaiting(conn, response_id)
        now = datetime.now(UTC)
        self._set(
            conn,
            response_id,
            state=RESPONSE_REJECTED,
            decided_by=actor,
            decided_at=now,
            reason=reason or "rejected",
        )
        self._event(
            conn,
            row.case_id,
            "response_rejected",
            actor,
            response_id,
            row.action,
            row.target,
            {"reason": reason},
            now,
        )
        return self.get(conn, response_id)

    def expire(self, conn: Connection, response_id: int) -> bool:
        row = self._row(conn, response_id)
        if row.state != RESPONSE_AWAITING:
            return False
        now = datetime.now(UTC)
        self._set(
            conn,
            response_id,
            state=RESPONSE_EXPIRED,
            decided_by="policy",
            decided_at=now,
            reason="nobody approved it in time",
        )
        self._event(
            conn,
            row.case_id,
            "response_expired",
            "casefold",
            response_id,
            row.action,
            row.target,
            {},
            now,
        )
        return True

    # -- the outbox's side ---------------------------------------------------------------

    def executed(self, conn: Connection, response_id: int, result: Any, now: datetime) -> None:
        row = self._row(conn, response_id)
        undo = row.action in UNDOABLE or bool((row.params or {}).get("undo_command"))
        ttl = row.ttl_seconds or 0
        active = undo and ttl > 0
        expires = now + timedelta(seconds=ttl) if active else None
        self._set(
            conn,
            response_id,
            state=RESPONSE_ACTIVE if active else RESPONSE_DONE,
            executed_at=now,
            expires_at=expires,
            result=result,
        )
        self._event(
            conn,
            row.case_id,
            "response_executed",
            "casefold",
            response_id,
            row.action,
            row.target,
            {"expires_at": expires.isoformat() if expires else None},
            now,
        )
        if active:
            store.enqueue(
                conn,
                [
                    Effect(
                        "response",
                        "response.undo",
                        f"response:{response_id}",
                        f"response:undo:{response_id}",
                        {"response_id": response_id},
                        row.case_id,
                        not_before=expires,
                    )
                ],
                now,
            )

    def undone(self, conn: Connection, response_id: int, result: Any, now: datetime) -> None:
        row = self._row(conn, response_id)
        self._set(
            conn,
            response_id,
            state=RESPONSE_UNDONE,
            undone_at=now,
            result={"execute": row.result, "undo": result},
        )
        self._event(
            conn,
            row.case_id,
            "response_undone",
            "casefold",
            response_id,
            row.action,
            row.target,
            {},
            now,
        )

    # -- reads ---------------------------------------------------------------------------

    def get(self, conn: Connection, response_id: int) -> dict[str, Any]:
        return response_dict(self._row(conn, response_id))

    def _row(self, conn: Connection, response_id: int) -> Any:
        row = conn.execute(select(responses).where(responses.c.id == response_id)).first()
        if row is None:
            raise NotFoundError(f"response {response_id} does not exist")
        return row

    def _awaiting(self, conn: Connection, response_id: int) -> Any:
        row = self._row(conn, response_id)
        if row.state != RESPONSE_AWAITING:
            raise ConflictError(f"response {response_id} is {row.state}, not awaiting approval")
        return row

    @staticmethod
    def _set(conn: Connection, response_id: int, **values: Any) -> None:
        conn.execute(update(responses).where(responses.c.id == response_id).values(**values))

    @staticmethod
    def _event(
        conn: Connection,
        case_id: int | None,
        kind: str,
        actor: str,
        response_id: int,
        action: str,
        target: str,
        extra: Mapping[str, Any],
        now: datetime,
    ) -> None:
        if case_id is None:
            return
        detail = {"response_id": response_id, "action": action, "target": target}
        detail.update({k: v for k, v in extra.items() if v is not None})
        timeline.record(
            conn, [timeline.event_row(case_id, kind, actor=actor, detail=detail, at=now)]
        )

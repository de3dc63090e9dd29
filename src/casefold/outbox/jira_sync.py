"""Cases and Jira issues in sync, both ways, exactly once.

Outbound, from the case timeline (planned in the transaction of each change):
- a case at or above `min_severity` (when opened, or when its severity rises) opens an issue;
- comments, status changes (through `status_to_jira`) and assignee changes follow it.
All effects of one case form one outbox chain, so they reach Jira in order.

Exactly once: the issue carries the label `casefold-case-<id>`; an attempt after one that may
have reached Jira (a timeout, a reset, a crash) first searches for that label, and a comment
carries a `[casefold-comment-<id>]` marker that is looked for the same way. Transitions and
assignments are idempotent by nature (moving to the state it is in is a no-op).

Inbound, from Jira's signed webhooks (and a periodic reconcile that catches missed ones): status
(through `status_from_jira`), assignee (`assignee_map` reversed) and comments come back to the
case, written with the actor `jira:<user>`. Changes by that actor are never sent back to Jira,
and events caused by Casefold's own Jira account (`account_id`) or carrying its comment marker
are ignored: no echo.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from casefold.cases.bulk import CaseOp, apply_ops
from casefold.cases.model import case_ref, severity_rank
from casefold.config import JiraSettings
from casefold.connectors.jira import Jira, adf_to_text, issue_url
from casefold.outbox import store
from casefold.outbox.extrahop_sync import linked_detections, update_effect
from casefold.outbox.store import Effect
from casefold.outbox.worker import Attempt, Delivered, RetryLater
from casefold.store.tables import case_comments, case_links, case_tags, cases, outbox

log = logging.getLogger("casefold.outbox")

TARGET = "jira"
ACTOR_PREFIX = "jira:"
_MARKER = re.compile(r"\[casefold-comment-(\d+)\]")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")


def case_label(case_id: int) -> str:
    return f"casefold-case-{case_id}"


def comment_marker(comment_id: int) -> str:
    return f"[casefold-comment-{comment_id}]"


def _label(text: str) -> str:
    """Jira labels take no spaces: keep what is safe of a tag."""
    return _LABEL_BAD.sub("-", text).strip("-")[:255]


class JiraPlanner:
    """Turns timeline rows into Jira effects, inside the transaction that writes them."""

    def __init__(self, conf: JiraSettings) -> None:
        self.conf = conf
        self.threshold = severity_rank(conf.min_severity)

    def plan(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Effect]:
        relevant = [r for r in rows if self._relevant(r)]
        if not relevant:
            return []
        ids = sorted({r["case_id"] for r in relevant})
        state = {
            r.id: r
            for r in conn.execute(
                select(cases.c.id, cases.c.severity, cases.c.source).where(cases.c.id.in_(ids))
            )
        }
        tracked = {
            r.case_id
            for r in conn.execute(
                select(outbox.c.case_id).where(
                    outbox.c.kind == "jira.create", outbox.c.case_id.in_(ids)
                )
            )
        }
        effects: list[Effect] = []
        for r in relevant:
            case_id = r["case_id"]
            case = state.get(case_id)
            if case is None:
                continue
            chain = f"{TARGET}:{case_id}"
            if case_id not in tracked and self._wants_issue(case):
                effects.append(
                    Effect(
                        TARGET,
                        "jira.create",
                        chain,
                        f"jira:create:{case_id}",
                        {"case_id": case_id},
                        case_id,
                        self.conf.max_attempts,
                    )
                )
                tracked.add(case_id)
                continue  # the issue is created from the case as it is then
            if case_id not in tracked:
                continue
            kind, field = r["kind"], r.get("field")
            if kind == "comment_created":
                comment_id = (r.get("detail") or {}).get("comment_id")
                if comment_id is not None:
                    effects.append(
                        Effect(
                            TARGET,
                            "jira.comment",
                            chain,
                            f"jira:comment:{comment_id}",
                            {"case_id": case_id, "comment_id": comment_id},
                            case_id,
                            self.conf.max_attempts,
                        )
                    )
            elif field == "status" and r.get("new") in self.conf.status_to_jira:
                effects.append(
                    Effect(
                        TARGET,
                        "jira.transition",
                        chain,
                        f"jira:status:{uuid.uuid4().hex}",
                        {"case_id": case_id, "status": r["new"]},
                        case_id,
                        self.conf.max_attempts,
                    )
                )
            elif field == "assignee":
                effects.append(
                    Effect(
                        TARGET,
                        "jira.assign",
                        chain,
                        f"jira:assign:{uuid.uuid4().hex}",
                        {"case_id": case_id, "assignee": r.get("new")},
                        case_id,
                        self.conf.max_attempts,
                    )
                )
        return effects

    @staticmethod
    def _relevant(r: Mapping[str, Any]) -> bool:
        if str(r.get("actor") or "").startswith(ACTOR_PREFIX):
            return False  # it came from Jira: sending it back would echo
        kind = r["kind"]
        if kind == "alert_added":
            reason = (r.get("detail") or {}).get("reason") or ""
            return reason.startswith("opened by")
        return kind in ("case_created", "comment_created") or r.get("field") in (
            "status",
            "assignee",
            "severity",
        )

    def _wants_issue(self, case: Any) -> bool:
        if severity_rank(case.severity) < self.threshold:
            return False
        return not self.conf.sources or case.source in self.conf.sources


class JiraSync:
    """The outbox handlers for Jira effects, and the inbound side (webhooks, reconcile)."""

    def __init__(self, conf: JiraSettings, client: Jira, engine: Engine) -> None:
        self.conf = conf
        self.jira = client
        self.engine = engine
        self.reverse_assignees = {v: k for k, v in conf.assignee_map.items()}

    # -- outbound ------------------------------------------------------------------------

    def handlers(self) -> dict[str, Any]:
        return {
            "jira.create": self.create,
            "jira.comment": self.comment,
            "jira.transition": self.transition,
            "jira.assign": self.assign,
        }

    def url_for(self, key: str) -> str:
        template = self.conf.issue_url or f"{self.conf.url.rstrip('/')}/browse/$ticket_id"
        return issue_url(template, key)

    def _link(self, conn: Connection, case_id: int) -> Any:
        return conn.execute(
            select(case_links).where(case_links.c.case_id == case_id, case_links.c.target == TARGET)
        ).first()

    def _issue_key(self, case_id: int) -> str:
        with self.engine.connect() as conn:
            link = self._link(conn, case_id)
        if link is None:
            # The chain delivers the create first; a missing link means it has not succeeded.
            raise RetryLater(f"{case_ref(case_id)} has no Jira issue yet")
        return str(link.remote_id)

    def create(self, attempt: Attempt) -> Delivered:
        case_id = int(attempt.payload["case_id"])
        with self.engine.connect() as conn:
            link = self._link(conn, case_id)
            if link is not None:
                return Delivered({"key": link.remote_id, "existing": True})
            case = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
            tags = [
                r.tag
                for r in conn.execute(select(case_tags.c.tag).where(case_tags.c.case_id == case_id))
            ]
        if case is None:
            return Delivered({"skipped": "the case no longer exists"})
        label = case_label(case_id)
        if attempt.attempt > 1:
            # An earlier attempt may have created it before its answer was lost.
            found = self.jira.find_by_label(self.conf.project, label)
            if found is not None:
                return self._linked(case_id, str(found["key"]), found_existing=True)
        fields = self.issue_fields(case, tags, label)
        created = self.jira.create_issue(fields)
        return self._linked(case_id, str(created["key"]), found_existing=False)

    def issue_fields(self, case: Mapping[str, Any], tags: list[str], label: str) -> dict[str, Any]:
        ref = case_ref(case["id"])
        labels = [*self.conf.labels, label, *(_label(t) for t in tags)]
        fields: dict[str, Any] = {
            "project": {"key": self.conf.project},
            "issuetype": {"name": self.conf.issue_type},
            "summary": " ".join(f"[{ref}] {case['summary']}".split())[:255],
            "description": (
                f"{case['description']}\n\nSeverity: {case['severity']}; priority: "
                f"{case['priority']}; {case['alert_count']} alert(s).\nCasefold case {ref}."
            ).strip(),
            "labels": [lab for lab in dict.fromkeys(labels) if lab],
        }
        priority = self.conf.priority_map.get(case["priority"]) or self.conf.priority_map.get(
            case["severity"]
        )
        if priority:
            fields["priority"] = {"name": priority}
        account = self.conf.assignee_map.get(case["assignee"] or "")
        if account:
            key = "accountId" if self.conf.api_version == 3 else "name"
            fields["assignee"] = {key: account}
        return fields

    def _linked(self, case_id: int, key: str, *, found_existing: bool) -> Delivered:
        url = self.url_for(key)
        now = datetime.now(UTC)

        def record(conn: Connection) -> None:
            store.link_case(conn, case_id, TARGET, key, url, now)
            apply_ops(
                conn,
                [
                    CaseOp(
                        "update",
                        case_id,
                        "casefold:jira",
                        fields={"jira_issue": key, "jira_url": url},
                    )
                ],
                now,
            )
            # The detections this case tracks now carry the issue key as their ticket id.
            follow = [
                update_effect(case_id, detection, self.conf.max_attempts)
                for detection in linked_detections(conn, [case_id]).get(case_id, [])
            ]
            store.enqueue(conn, follow, now)

        return Delivered({"key": key, "url": url, "existing": found_existing}, record)

    def comment(self, attempt: Attempt) -> Delivered:
        case_id = int(attempt.payload["case_id"])
        comment_id = int(attempt.payload["comment_id"])
        key = self._issue_key(case_id)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(case_comments).where(case_comments.c.id == comment_id)
            ).first()
        if row is None:
            return Delivered({"skipped": "the comment no longer exists"})
        marker = comment_marker(comment_id)
        if attempt.attempt > 1:
            for existing in self.jira.list_comments(key):
                if marker in str(existing.get("text") or ""):
                    return Delivered({"key": key, "comment": existing.get("id"), "existing": True})
        body = f"{row.content}\n\n— {row.author} in Casefold {case_ref(case_id)} {marker}"
        made = self.jira.add_comment(key, body)
        return Delivered({"key": key, "comment": made.get("id")})

    def transition(self, attempt: Attempt) -> Delivered:
        case_id = int(attempt.payload["case_id"])
        key = self._issue_key(case_id)
        wanted = self.conf.status_to_jira[attempt.payload["status"]]
        if wanted in ("new", "indeterminate", "done"):
            used = self.jira.transition_to(key, category=wanted)
        else:
            used = self.jira.transition_to(key, status=wanted)
        return Delivered({"key": key, "transition": used, "to": wanted})

    def assign(self, attempt: Attempt) -> Delivered:
        case_id = int(attempt.payload["case_id"])
        key = self._issue_key(case_id)
        assignee = attempt.payload.get("assignee")
        account = self.conf.assignee_map.get(assignee or "") if assignee else None
        if assignee and account is None:
            return Delivered({"key": key, "skipped": f"no Jira account mapped for {assignee!r}"})
        self.jira.assign(key, account)
        return Delivered({"key": key, "assignee": account})

    # -- inbound -------------------------------------------------------------------------

    def case_for_issue(self, conn: Connection, key: str) -> int | None:
        row = conn.execute(
            select(case_links.c.case_id).where(
                case_links.c.target == TARGET, case_links.c.remote_id == key
            )
        ).first()
        return int(row.case_id) if row else None

    def case_status_for(self, status: Mapping[str, Any] | None) -> str | None:
        if not status:
            return None
        name = status.get("name")
        category = (status.get("statusCategory") or {}).get("key")
        mapped = self.conf.status_from_jira
        return mapped.get(name) or mapped.get(str(name).lower()) or mapped.get(category)

    def apply_event(self, conn: Connection, event: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one Jira webhook event to its case (in the caller's transaction)."""
        issue = event.get("issue") or {}
        key = issue.get("key")
        user = event.get("user") or (event.get("comment") or {}).get("author") or {}
        if self.conf.account_id and user.get("accountId") == self.conf.account_id:
            return {"ignored": "made by Casefold's own Jira account"}
        case_id = self.case_for_issue(conn, str(key)) if key else None
        if case_id is None:
            return {"ignored": f"issue {key!r} is not linked to a case"}
        actor = f"{ACTOR_PREFIX}{user.get('displayName') or user.get('name') or 'unknown'}"
        ops: list[CaseOp] = []
        values: dict[str, Any] = {}
        fields = issue.get("fields") or {}
        webhook_event = event.get("webhookEvent") or ""
        if webhook_event == "jira:issue_updated":
            items = (event.get("changelog") or {}).get("items") or []
            changed = {i.get("field") for i in items}
            if "status" in changed:
                status = self.case_status_for(fields.get("status"))
                current = conn.execute(select(cases.c.status).where(cases.c.id == case_id)).scalar()
                if status and not self.same_status(str(current), fields.get("status")):
                    values["status"] = status
            if "assignee" in changed:
                values["assignee"] = self._assignee_from(fields.get("assignee"))
        if values:
            ops.append(CaseOp("update", case_id, actor, values=values))
        comment = event.get("comment")
        imported: list[str] = []
        if comment and webhook_event in ("comment_created", "jira:issue_updated"):
            text = self.comment_text(comment)
            comment_id = str(comment.get("id") or "")
            known = self._imported_comments(conn, case_id)
            # not our own comment coming back, and not one the reconcile already brought
            if text and not _MARKER.search(text) and comment_id not in known:
                ops.append(CaseOp("comment", case_id, actor, text=text))
                if comment_id:
                    imported.append(comment_id)
        if not ops:
            return {"case": case_ref(case_id), "changed": []}
        apply_ops(conn, ops, datetime.now(UTC))
        if imported:
            self._remember_comments(conn, case_id, imported)
        return {
            "case": case_ref(case_id),
            "changed": sorted(values)
            + (["comment"] if any(o.kind == "comment" for o in ops) else []),
        }

    def _assignee_from(self, assignee: Mapping[str, Any] | None) -> str | None:
        if not assignee:
            return None
        ident = assignee.get("accountId") or assignee.get("name")
        return self.reverse_assignees.get(str(ident)) or assignee.get("displayName") or ident

    def comment_text(self, comment: Mapping[str, Any]) -> str:
        body = comment.get("body")
        return (adf_to_text(body) if isinstance(body, dict) else str(body or "")).strip()

    def same_status(self, case_status: str, jira_status: Mapping[str, Any] | None) -> bool:
        """Whether the case's status already stands for the issue's (no change to make)."""
        wanted = self.conf.status_to_jira.get(case_status)
        if not jira_status or wanted is None:
            return False
        category = (jira_status.get("statusCategory") or {}).get("key")
        return wanted in (jira_status.get("name"), category)

    def _imported_comments(self, conn: Connection, case_id: int) -> set[str]:
        row = conn.execute(
            select(case_links.c.state).where(
                case_links.c.case_id == case_id, case_links.c.target == TARGET
            )
        ).first()
        return set(((row.state if row else None) or {}).get("comments") or [])

    def _remember_comments(self, conn: Connection, case_id: int, ids: Sequence[str]) -> None:
        """Jira comment ids already on the case, so neither path brings one twice."""
        known = self._imported_comments(conn, case_id)
        conn.execute(
            update(case_links)
            .where(case_links.c.case_id == case_id, case_links.c.target == TARGET)
            .values(state={"comments": sorted(known | set(ids))}, updated_at=datetime.now(UTC))
        )

    def reconcile(self, run: Callable[[Callable[[Connection], None]], None]) -> int:
        """Compare every linked case that is not closed with its issue, and apply what missed
        webhooks would have brought: status, assignee and comments. Returns how many cases
        changed."""
        with self.engine.connect() as conn:
            links = conn.execute(
                select(
                    case_links.c.case_id,
                    case_links.c.remote_id,
                    case_links.c.state,
                    cases.c.status,
                    cases.c.assignee,
                )
                .join(cases, cases.c.id == case_links.c.case_id)
                .where(case_links.c.target == TARGET, cases.c.status != "closed")
            ).all()
        changed = 0
        for link in links:
            case_id = int(link.case_id)
            fields = self.jira.get_issue(link.remote_id).get("fields") or {}
            values: dict[str, Any] = {}
            status = self.case_status_for(fields.get("status"))
            if status and not self.same_status(link.status, fields.get("status")):
                values["status"] = status
            if "assignee" in fields:
                assignee = self._assignee_from(fields.get("assignee"))
                if assignee != link.assignee:
                    values["assignee"] = assignee
            ops = []
            if values:
                ops.append(CaseOp("update", case_id, f"{ACTOR_PREFIX}reconcile", values=values))
            known = set((link.state or {}).get("comments") or [])
            new_ids: list[str] = []
            for comment in self.jira.list_comments(link.remote_id):
                text = str(comment.get("text") or "").strip()
                comment_id = str(comment.get("id") or "")
                if not text or _MARKER.search(text) or comment_id in known:
                    continue
                author = (comment.get("author") or {}).get("displayName") or "unknown"
                ops.append(CaseOp("comment", case_id, f"{ACTOR_PREFIX}{author}", text=text))
                new_ids.append(comment_id)
            if not ops:
                continue

            def job(
                conn: Connection, ops: list[CaseOp] = ops, ids: list[str] = new_ids, cid=case_id
            ) -> None:
                apply_ops(conn, ops, datetime.now(UTC))
                if ids:
                    self._remember_comments(conn, cid, ids)

            run(job)
            changed += 1
        return changed

"""One case: its fields (editable), timeline with the reasons alerts folded into it, alerts with
their raw JSON, observables with verdicts, comments, ticket links and outbox states, playbook runs
with step traces, and active responses waiting for approval. Plus the page of one alert.

Long lists are cut to their newest entries, with links to older ones, so that a case that folded
in tens of thousands of alerts opens as fast as a small one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.engine import Connection

from casefold.access import Permission
from casefold.cases import queries, service
from casefold.cases.model import PRIORITIES, SEVERITIES, STATUSES, case_ref, parse_case_ref
from casefold.outbox import store as outbox_store
from casefold.playbooks.history import runs_for_alert, runs_for_case
from casefold.response.service import response_dict
from casefold.store.tables import RESPONSE_AWAITING, alerts, responses
from casefold.web.deps import CaseChange, Reader, local_path, read_store, runtime_of, write_store
from casefold.web.queue import with_badges
from casefold.web.render import PageError, page, redirect

router = APIRouter(include_in_schema=False)

ALERTS_SHOWN = 50
EVENTS_SHOWN = 100
OBSERVABLES_SHOWN = 200
RUNS_SHOWN = 20
EFFECTS_SHOWN = 50
RESPONSES_SHOWN = 50


def _case_id(ref: str) -> int:
    case_id = parse_case_ref(ref)
    if case_id is None:
        raise PageError(404, "Not found", f"{ref!r} is not a case reference (CASE-N).")
    return case_id


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if not value:
        return None
    if not value.isdigit():
        raise PageError(400, "Bad request", f"{name} must be a number.")
    return int(value)


def _raw(text: str) -> str:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text  # stored verbatim; shown as it came


def _alerts_with_raw(conn: Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [a["id"] for a in items]
    raw = dict(conn.execute(select(alerts.c.id, alerts.c.raw).where(alerts.c.id.in_(ids))).all())
    return [{**a, "raw": _raw(raw.get(a["id"], ""))} for a in items]


def _event_text(e: dict[str, Any]) -> tuple[str, str]:
    """What happened and why, in words, for one timeline event."""
    kind, field, detail = e["kind"], e["field"], e["detail"] or {}
    why = str(detail.get("reason") or "")

    def show(value: Any) -> str:
        if value is None:
            return "nothing"
        return (
            str(value).replace("_", " ")
            if field in ("status", "priority", "severity")
            else str(value)
        )

    if kind == "case_created":
        return "Case opened", why
    if kind == "alert_added":
        return f"Alert {detail.get('alert_id', '')} folded in", why
    if kind == "comment_created":
        return "Comment added", why
    if kind in ("tag_added", "tag_removed"):
        return f"Tag {'added' if kind == 'tag_added' else 'removed'}: {e['new'] or e['old']}", why
    if kind == "fields_changed":
        return "Custom fields changed", why
    if kind == "fold_closed":
        return "Stopped taking new alerts", why
    if kind == "observable_enriched":
        providers = ", ".join(
            f"{name}: {v.get('verdict', 'unknown')}" for name, v in sorted(detail.items())
        )
        return f"{field} enriched: {e['new']}", providers
    if kind == "playbook_run":
        return f"Playbook run {detail.get('status', '')}", why
    if kind == "sla_breached":
        due = str(detail.get("due_at", ""))
        return (
            f"SLA breached: not {'acknowledged' if field == 'acknowledge' else 'resolved'} in time",
            (f"due {due}" if due else why),
        )
    if kind == "merged":
        cases = ", ".join(detail.get("cases", []))
        return f"Merged in {cases}", f"{detail.get('alerts', 0)} alert(s) moved here"
    if kind == "merged_into":
        return f"Merged into {detail.get('case', '')}", why
    if kind.startswith("response_"):
        what = " ".join(str(detail.get(k, "")) for k in ("action", "target")).strip()
        return f"Response {kind.removeprefix('response_').replace('_', ' ')}: {what}", why
    if field and kind.endswith(("_changed", "_closed", "_reopened")):
        return f"{field.capitalize()}: {show(e['old'])} → {show(e['new'])}", why
    return kind.replace("_", " ").capitalize(), why


@router.get("/cases/{ref}")
async def case_page(request: Request, ref: str, session: Reader) -> Response:
    case_id = _case_id(ref)
    before = _int_param(request, "before")
    alerts_after = request.query_params.get("alerts_after") or None
    now = datetime.now(UTC)

    def load(conn: Connection) -> dict[str, Any]:
        case = queries.case_header(conn, case_id)
        events, older = queries.recent_events(conn, case_id, before_id=before, limit=EVENTS_SHOWN)
        shown = queries.list_alerts(
            conn, case_id=case_id, sort="-id", limit=ALERTS_SHOWN, cursor=alerts_after
        )
        observables = queries.case_observables_list(conn, case_id, limit=OBSERVABLES_SHOWN)
        response_rows = conn.execute(
            select(responses)
            .where(responses.c.case_id == case_id)
            .order_by(responses.c.id.desc())
            .limit(RESPONSES_SHOWN)
        ).all()
        return {
            "case": case,
            "events": [{**e, "text": _event_text(e)} for e in events],
            "older_events": older,
            "alerts": _alerts_with_raw(conn, shown.items),
            "alerts_next": shown.next_cursor,
            "observables": observables,
            "observable_total": (
                queries.count_observables(conn, case_id)
                if len(observables) == OBSERVABLES_SHOWN
                else len(observables)
            ),
            "comments": queries.case_comments_list(conn, case_id),
            "links": outbox_store.links_for_case(conn, case_id),
            "effects": outbox_store.list_effects(conn, now, case_id=case_id, limit=EFFECTS_SHOWN),
            "runs": runs_for_case(conn, case_id, limit=RUNS_SHOWN),
            "responses": [response_dict(r) for r in response_rows],
        }

    found = await read_store(request, load)
    (found["case"],) = with_badges(request, [found["case"]], now)
    return page(
        request,
        "case.html",
        **found,
        ref=case_ref(case_id),
        statuses=STATUSES,
        priorities=PRIORITIES,
        severities=SEVERITIES,
        awaiting=RESPONSE_AWAITING,
        can_change=session.principal.can(Permission.WRITE_CASES),
        now=now,
    )


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.replace("\n", ",").split(",") if t.strip()]


@router.post("/cases/{ref}/edit")
async def edit_case(request: Request, ref: str, posted: CaseChange) -> Response:
    """Save the edit form: only what differs from the version the analyst saw is changed, and a
    change made meanwhile by someone else is refused (409) rather than overwritten."""
    session, form = posted
    case_id = _case_id(ref)
    version = form.get("version", "")
    if not version.isdigit():
        raise PageError(422, "Not accepted", "The form is missing the case version; reload it.")
    patch: dict[str, Any] = {}
    for name in ("summary", "description", "status", "priority", "severity"):
        if name in form:
            patch[name] = form[name].strip() if name != "description" else form[name]
    if "assignee" in form:
        patch["assignee"] = form["assignee"].strip() or None
    if "tags" in form:
        patch["tags"] = _tags(form["tags"])
    name, value = form.get("field_name", "").strip(), form.get("field_value", "")
    if name:
        patch["fields"] = {name: value if value != "" else None}

    def change(conn: Connection) -> None:
        current = queries.case_header(conn, case_id)
        wanted = {
            k: v
            for k, v in patch.items()
            if k == "fields" or (sorted(v) != current["tags"] if k == "tags" else v != current[k])
        }
        if wanted:
            service.update_case(
                conn, case_id, wanted, actor=session.principal.name, expected_version=int(version)
            )

    await write_store(request, change)
    return redirect(f"/cases/{case_ref(case_id)}", "Case saved.")


@router.post("/cases/{ref}/comments")
async def comment(request: Request, ref: str, posted: CaseChange) -> Response:
    session, form = posted
    case_id = _case_id(ref)
    content = form.get("content", "")
    await write_store(
        request,
        lambda conn: service.add_comment(conn, case_id, content, author=session.principal.name),
    )
    return redirect(f"/cases/{case_ref(case_id)}#comments", "Comment added.")


@router.post("/outbox/{effect_id}/retry")
async def retry_effect(request: Request, effect_id: int, posted: CaseChange) -> Response:
    _, form = posted
    effect = await write_store(request, lambda conn: outbox_store.retry(conn, effect_id))
    runtime_of(request).sync.worker.wake()
    # Some effects belong to no case (a webhook posted by a playbook without one).
    home = f"/cases/{case_ref(effect['case_id'])}#sync" if effect["case_id"] else "/"
    back = local_path(form.get("back"), home)
    return redirect(back, f"{effect['summary']}.")


@router.post("/responses/{response_id}/approve")
async def approve_response(request: Request, response_id: int, posted: CaseChange) -> Response:
    session, form = posted
    runtime = runtime_of(request)
    result = await write_store(
        request, lambda conn: runtime.responses.approve(conn, response_id, session.principal.name)
    )
    runtime.sync.worker.wake()
    back = local_path(form.get("back"), "/")
    return redirect(back, f"Response {response_id} approved: {result['state'].replace('_', ' ')}.")


@router.post("/responses/{response_id}/reject")
async def reject_response(request: Request, response_id: int, posted: CaseChange) -> Response:
    session, form = posted
    runtime = runtime_of(request)
    reason = form.get("reason", "")[:2000]
    await write_store(
        request,
        lambda conn: runtime.responses.reject(conn, response_id, session.principal.name, reason),
    )
    return redirect(local_path(form.get("back"), "/"), f"Response {response_id} rejected.")


@router.get("/alerts/{alert_id}")
async def alert_page(request: Request, alert_id: int, session: Reader) -> Response:
    def load(conn: Connection) -> dict[str, Any]:
        alert = queries.get_alert(conn, alert_id)
        return {"alert": alert, "runs": runs_for_alert(conn, alert_id)}

    found = await read_store(request, load)
    return page(request, "alert.html", **found)

"""Case vocabularies (the same values as Tracecat's, which follow OCSF) and their order."""

from __future__ import annotations

from casefold.store.tables import CASE_PRIORITIES, CASE_SEVERITIES, CASE_STATUSES, OPEN_STATUSES

STATUSES = CASE_STATUSES
PRIORITIES = CASE_PRIORITIES
SEVERITIES = CASE_SEVERITIES
OPEN = frozenset(OPEN_STATUSES)
DONE = frozenset(s for s in STATUSES if s not in OPEN)  # resolved, closed
# Until its status leaves these (or it gets an assignee) a case waits to be acknowledged.
UNACKNOWLEDGED = frozenset(("new", "unknown"))

# "unknown" and "other" say nothing about urgency, so they rank lowest.
_SEVERITY_RANK = {
    s: i
    for i, s in enumerate(
        ("unknown", "other", "informational", "low", "medium", "high", "critical", "fatal")
    )
}
_PRIORITY_RANK = {
    p: i for i, p in enumerate(("unknown", "other", "low", "medium", "high", "critical"))
}


def severity_rank(value: str) -> int:
    return _SEVERITY_RANK.get(value, 0)


def priority_rank(value: str) -> int:
    return _PRIORITY_RANK.get(value, 0)


def higher_severity(a: str, b: str) -> str:
    return a if severity_rank(a) >= severity_rank(b) else b


def severity_for_level(level: int) -> str:
    """Wazuh rule level (0–16) to case severity, following the thresholds of the user's article."""
    if level >= 16:
        return "fatal"
    if level >= 15:
        return "critical"
    if level >= 12:
        return "high"
    if level >= 7:
        return "medium"
    if level >= 4:
        return "low"
    return "informational"


def case_ref(case_id: int) -> str:
    return f"CASE-{case_id}"


def parse_case_ref(ref: str | int) -> int | None:
    """'CASE-12', 'case-12' or '12' → 12; anything else → None."""
    s = str(ref).strip()
    if s.upper().startswith("CASE-"):
        s = s[5:]
    return int(s) if s.isdigit() and len(s) < 19 else None

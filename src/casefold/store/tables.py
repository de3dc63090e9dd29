"""The tables, as SQLAlchemy Core metadata. Leaf module: it imports no domain code.

The schema itself is created by Alembic migrations (`casefold/store/migrations`); a test checks that
these definitions and the migrated database agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# BigInteger ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Alert processing states.
ALERT_PENDING = "pending"  # stored, not yet folded
ALERT_FOLDED = "folded"  # joined or opened a case
ALERT_UNMATCHED = "unmatched"  # no folding rule matched it

CASE_STATUSES = ("unknown", "new", "in_progress", "on_hold", "resolved", "closed", "other")
CASE_PRIORITIES = ("unknown", "low", "medium", "high", "critical", "other")
CASE_SEVERITIES = (
    "unknown",
    "informational",
    "low",
    "medium",
    "high",
    "critical",
    "fatal",
    "other",
)
OPEN_STATUSES = ("unknown", "new", "in_progress", "on_hold", "other")

# The predicates of the SLA watcher's partial indexes (its queries repeat them, so the planner
# can use the indexes).
SLA_ACK_WAITING = "acknowledged_at IS NULL AND sla_ack_breached_at IS NULL"
SLA_RESOLVE_WAITING = "resolved_at IS NULL AND sla_resolve_breached_at IS NULL"

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# People who sign in to the web UI. Passwords are stored as argon2id hashes only.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_login_at", DateTime(timezone=True)),
)

# Web UI sessions: the cookie holds a random id, the store only its SHA-256, so a leaked database
# cannot be replayed as cookies. A session belongs to a user, or to the API token signed in with.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE")),
    Column("token_id", Id, ForeignKey("api_tokens.id", ondelete="CASCADE")),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_web_sessions_user", "user_id"),
    Index("ix_web_sessions_token", "token_id"),
    Index("ix_web_sessions_expires", "expires_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(40), nullable=False),
    Column("node", String(255), nullable=False),
    Column("source_id", String(255), nullable=False),
    Column("dedup_key", String(600), nullable=False, unique=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("time_utc", DateTime(timezone=True), nullable=False),
    Column("time_original", String(64), nullable=False),
    Column("level", Integer, nullable=False),
    Column("rule_id", String(64)),
    Column("title", Text, nullable=False),
    Column("agent_id", String(64)),
    Column("agent_name", String(255)),
    Column("state", String(16), nullable=False),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="SET NULL")),
    Column("fold_rule", String(200)),
    # JSON null (not SQL NULL) while an alert from file intake waits for folding to normalise
    # it; readers then compute it from `raw` (sources/normalized.py).
    Column("normalized", JSON, nullable=False),
    Column("raw", Text, nullable=False),
    Index(
        "ix_alerts_pending",
        "id",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_alerts_case", "case_id", "id"),
    Index("ix_alerts_time", "time_utc"),
    Index("ix_alerts_rule", "rule_id"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("summary", String(500), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("assignee", String(200)),
    Column("fields", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("first_seen", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    Column("alert_count", Integer, nullable=False, server_default="0"),
    Column("source", String(40)),
    # Folding: while `fold_open` is true this case takes alerts for (fold_rule, fold_key). The
    # partial unique index below is what makes two racing workers produce one case.
    Column("fold_rule", String(200)),
    Column("fold_key", String(600)),
    Column("fold_open", Boolean, nullable=False, server_default=text("false")),
    Column("version", Integer, nullable=False, server_default="1"),
    # SLA: when the case was first acknowledged (left new/unknown or got an assignee) and
    # resolved (became resolved or closed; cleared on reopening), and when each deadline was
    # breached (the deadline itself, written once by the SLA watcher).
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("sla_ack_breached_at", DateTime(timezone=True)),
    Column("sla_resolve_breached_at", DateTime(timezone=True)),
    Index(
        "ux_cases_fold_open",
        "fold_rule",
        "fold_key",
        unique=True,
        sqlite_where=text("fold_open"),
        postgresql_where=text("fold_open"),
    ),
    Index("ix_cases_status_updated", "status", "updated_at"),
    Index("ix_cases_updated", "updated_at", "id"),
    Index("ix_cases_assignee_updated", "assignee", "updated_at", "id"),
    Index("ix_cases_status_severity", "status", "severity"),
    Index("ix_cases_created", "created_at", "id"),
    # SLA dashboard: per severity, the cases created since a time, read from the index alone
    # (one range per severity: no sort of every case in the window).
    Index(
        "ix_cases_sla_stats",
        "severity",
        "created_at",
        "acknowledged_at",
        "resolved_at",
        "sla_ack_breached_at",
        "sla_resolve_breached_at",
    ),
    # The SLA watcher: cases still waiting for a deadline, per severity by age. Partial, so
    # the years of cases that are done (or already breached) are not in them.
    Index(
        "ix_cases_sla_ack_waiting",
        "severity",
        "created_at",
        sqlite_where=text(SLA_ACK_WAITING),
        postgresql_where=text(SLA_ACK_WAITING),
    ),
    Index(
        "ix_cases_sla_resolve_waiting",
        "severity",
        "created_at",
        sqlite_where=text(SLA_RESOLVE_WAITING),
        postgresql_where=text(SLA_RESOLVE_WAITING),
    ),
    # Acknowledged or resolved lately: the watcher checks them for a deadline missed between
    # two of its passes. Without the waiting cases (NULL), which the indexes above serve.
    Index(
        "ix_cases_acknowledged",
        "acknowledged_at",
        sqlite_where=text("acknowledged_at IS NOT NULL"),
        postgresql_where=text("acknowledged_at IS NOT NULL"),
    ),
    Index(
        "ix_cases_resolved",
        "resolved_at",
        sqlite_where=text("resolved_at IS NOT NULL"),
        postgresql_where=text("resolved_at IS NOT NULL"),
    ),
)

case_tags = Table(
    "case_tags",
    metadata,
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index("ix_case_tags_tag", "tag", "case_id"),
)

case_observables = Table(
    "case_observables",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(20), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("kind", String(20)),
    Column("public", Boolean),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("alert_count", Integer, nullable=False, server_default="1"),
    # Automatic enrichment: provider → finding summary; the worst verdict; when it was done.
    Column("verdicts", JSON),
    Column("verdict", String(20)),
    Column("enriched_at", DateTime(timezone=True)),
    UniqueConstraint("case_id", "type", "value", name="uq_case_observable"),
    Index("ix_case_observables_enriched", "enriched_at", "id"),
)

case_comments = Table(
    "case_comments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("author", String(200), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_case_comments_case", "case_id", "id"),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("field", String(100)),
    Column("old", JSON),
    Column("new", JSON),
    Column("detail", JSON),
    Index("ix_case_events_case", "case_id", "id"),
)

# Playbook runs: one per (alert, playbook version) that matched. Claimed by runners with a lease,
# so a crashed runner's work is taken over; `not_before` holds delayed starts and retry backoff.
RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_SUCCEEDED = "succeeded"
RUN_FAILED = "failed"

playbook_runs = Table(
    "playbook_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="SET NULL")),
    Column("playbook", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    # Every step's record (ref, action, status, attempts, input, result, error, duration), in
    # playbook order: one document per run, rewritten as the run progresses.
    Column("steps", JSON, nullable=False),
    Column("case_opened", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("alert_id", "playbook", name="uq_run_alert_playbook"),
    Index("ix_runs_queue", "status", "not_before"),
    Index("ix_runs_alert", "alert_id"),
    Index("ix_runs_case", "case_id", "id"),
)

# Threat-intel answers, positive and negative, shared by every playbook and worker.
enrichment_cache = Table(
    "enrichment_cache",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("key", String(600), primary_key=True),
    Column("value", JSON),
    Column("negative", Boolean, nullable=False, server_default=text("false")),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Lookups spent per provider and budget window (minute, hour or day), so that a restart does not
# hand a provider's quota out a second time.
provider_budgets = Table(
    "provider_budgets",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("used", Integer, nullable=False),
)

# Outbox states.
OUTBOX_PENDING = "pending"  # waiting for its turn (next_attempt_at) or for its chain
OUTBOX_DELIVERING = "delivering"  # claimed by a worker until lease_until
OUTBOX_DONE = "done"
OUTBOX_DEAD = "dead"  # gave up after max_attempts, or refused for good; retry by hand

# Every effect on another system (open a ticket, comment, transition, PATCH a detection, post a
# webhook), written in the same transaction as the change that causes it, delivered later.
# Effects of one chain (one case on one target) are delivered in order.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target", String(40), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("chain", String(200), nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="SET NULL")),
    Column("payload", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("result", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_outbox_due", "state", "next_attempt_at"),
    Index("ix_outbox_chain", "chain", "id"),
    Index("ix_outbox_case", "case_id", "id"),
)

# A case's counterpart on another system: its Jira issue, its ExtraHop detection.
case_links = Table(
    "case_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(40), nullable=False),
    Column("remote_id", String(200), nullable=False),
    Column("url", String(2048)),
    Column("state", JSON),  # what we last saw of the remote side (status, assignee, …)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("case_id", "target", "remote_id", name="uq_case_link"),
    Index("ix_case_links_remote", "target", "remote_id"),
)

# Inbound deliveries already handled (Jira webhooks), so a redelivery changes nothing twice.
inbound_deliveries = Table(
    "inbound_deliveries",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("delivery_id", String(200), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Response states.
RESPONSE_AWAITING = "awaiting_approval"
RESPONSE_QUEUED = "queued"  # allowed (or approved): the outbox executes it
RESPONSE_ACTIVE = "active"  # executed; undone when its TTL ends
RESPONSE_DONE = "done"  # executed, nothing to undo
RESPONSE_UNDONE = "undone"
RESPONSE_REFUSED = "refused"  # by policy (rule says which)
RESPONSE_REJECTED = "rejected"  # by an analyst
RESPONSE_EXPIRED = "expired"  # nobody approved in time
RESPONSE_DRY_RUN = "dry_run"
RESPONSE_FAILED = "failed"

# Every active response asked for, with the policy's decision and what became of it.
responses = Table(
    "responses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="SET NULL")),
    Column("alert_id", Id),
    Column("action", String(60), nullable=False),  # firewall.block_ip, wazuh.active_response
    Column("target", String(200), nullable=False),  # the IP (or agent list) acted on
    Column("params", JSON, nullable=False),
    Column("state", String(20), nullable=False),
    Column("rule", String(60)),  # the policy rule that refused it
    Column("reason", Text),
    Column("requested_by", String(200), nullable=False),
    Column("decided_by", String(200)),
    Column("ttl_seconds", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("executed_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("undone_at", DateTime(timezone=True)),
    Column("result", JSON),
    Index("ix_responses_target", "target", "executed_at"),
    Index("ix_responses_executed", "executed_at"),
    Index("ix_responses_case", "case_id", "id"),
)

# Where each alerts.json tailer is: the file by (device, inode) and the offset after the last
# consumed line, committed in the same transaction as the alerts it covers.
tail_positions = Table(
    "tail_positions",
    metadata,
    Column("name", String(255), primary_key=True),  # "<host>:<followed path>"
    Column("path", Text, nullable=False),
    Column("archive", Text),  # the dated file holding this inode, relative to the alerts dir
    Column("device", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("file_size", BigInteger, nullable=False),  # size seen at the last commit (lag)
    Column("lines", BigInteger, nullable=False),  # lines consumed, all files
    Column("bad_lines", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Lines a tailer could not take (not JSON, not an alert), kept for an operator to look at.
tail_rejects = Table(
    "tail_rejects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("file", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False),  # where the line starts
    Column("length", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("excerpt", Text, nullable=False),  # the first 512 characters
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_tail_rejects_name", "name", "id"),
)

# Every running `casefold serve` / `casefold worker` process, by heartbeat.
workers = Table(
    "workers",
    metadata,
    Column("id", String(120), primary_key=True),  # "<host>:<pid>:<random>"
    Column("role", String(20), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

"""The database schema (SQLAlchemy Core). Changes here need an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("artifacts", JSON, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    # Share of traffic (0-100) a `canary` release decides; None for other stages.
    Column("canary_percent", Float, nullable=True),
    UniqueConstraint("task", "number", name="uq_releases_task_number"),
)

promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("previous", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=True),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("release", Integer, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("input", JSON, nullable=False),
    Column("redacted_input", JSON, nullable=False),
    Column("output", JSON, nullable=True),
    Column("alternatives", JSON, nullable=True),
    Column("confidence", Float, nullable=True),
    Column("route", String(16), nullable=True),
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("cost", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("submitted_by", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The review queue: a pending decision's priority, its claim (a lease) and escalation.
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("claimed_by", String(128), nullable=True),
    Column("claim_expires_at", DateTime(timezone=True), nullable=True),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
    # When the history roll-up counted the decision (None: not yet); see watch/history.py.
    Column("rolled_up_at", DateTime(timezone=True), nullable=True),
    # The decision whose answer this one reused from the cache (migration 0008).
    Column("cached_from", String(32), nullable=True),
    UniqueConstraint("task", "idempotency_key", name="uq_decisions_task_key"),
    Index("ix_decisions_task_status_created", "task", "status", "created_at"),
    # The review queue: pending items by priority, then age, without scanning every decision.
    Index("ix_decisions_status_priority_created", "status", "priority", "created_at"),
    # A release's newest decisions (drift's window) without sorting all of the task's. The
    # release first: led by the task, SQLite took it for the backlog's GROUP BY task, release
    # and walked every decision of the task.
    Index("ix_decisions_release_task_created", "release", "task", "created_at"),
    # The decisions the roll-up has still to count: only those are in this index.
    Index(
        "ix_decisions_not_rolled_up",
        "id",
        sqlite_where=text("rolled_up_at IS NULL"),
        postgresql_where=text("rolled_up_at IS NULL"),
    ),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False, index=True),
    Column("task", String(64), nullable=False),
    # approve, correct or reject.
    Column("verdict", String(16), nullable=False),
    Column("reviewer", String(128), nullable=False),
    # The output the reviewer accepted or wrote (None for reject).
    Column("output", JSON, nullable=True),
    Column("previous_output", JSON, nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    # When the history roll-up counted the verdict (None: not yet).
    Column("rolled_up_at", DateTime(timezone=True), nullable=True),
    Index("ix_reviews_task_at", "task", "at"),
    Index(
        "ix_reviews_not_rolled_up",
        "id",
        sqlite_where=text("rolled_up_at IS NULL"),
        postgresql_where=text("rolled_up_at IS NULL"),
    ),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=True),
    Column("endpoint", String(255), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error_class", String(64), nullable=True),
    Column("message", Text, nullable=True),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("repair", Boolean, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False, index=True),
    Column("sink", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("tries", Integer, nullable=False, default=0),
    Column("next_try_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Index("ix_outbox_status_next", "status", "next_try_at"),
    UniqueConstraint("decision_id", "sink", name="uq_outbox_decision_sink"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("task", String(64), nullable=True, index=True),
    # Indexed: retention and erasure find the review entries of given decisions by it.
    Column("subject", String(255), nullable=True, index=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("tasks", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Review-page sessions: the cookie holds a random id, this table only its sha256. A session
# ends at its expiry, on sign-out (revoked_at) or when its key is revoked, on every replica.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Free text of audit entries (reasons), outside the hash chain: an entry's details hold only
# `hash`, the sha256 of `salt` and `text`. Erasing sets salt and text to NULL (or deletes the
# row); the chain still verifies, and the salt gone, the hash confirms no guess of the text.
audit_texts = Table(
    "audit_texts",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("salt", String(32), nullable=True),
    Column("text", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("sealed", Boolean, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("source", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("task", "name", name="uq_datasets_task_name"),
)

dataset_rows = Table(
    "dataset_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("input", JSON, nullable=False),
    Column("expected", JSON, nullable=False),
    Column("input_hash", String(64), nullable=False, index=True),
    UniqueConstraint("dataset_id", "seq", name="uq_dataset_rows_dataset_id"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("release", Integer, nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("dataset_hash", String(64), nullable=False),
    Column("repeat", Integer, nullable=False),
    # The headline figures (n, accuracy, macro_f1, coverage, auto_accuracy, ...).
    Column("metrics", JSON, nullable=False),
    # Everything else: per-label figures, confusion matrix, curves, per-run spread.
    Column("report", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Index("ix_eval_runs_task_release", "task", "release"),
)

shadow_runs = Table(
    "shadow_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False),
    Column("task", String(64), nullable=False),
    Column("release", Integer, nullable=False),
    # pending (queued with the live decision), done, or failed.
    Column("status", String(16), nullable=False),
    Column("output", JSON, nullable=True),
    Column("confidence", Float, nullable=True),
    Column("route", String(16), nullable=True),
    Column("decision_status", String(32), nullable=True),
    Column("cost", Float, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("decision_id", "release", name="uq_shadow_runs_decision_id"),
    Index("ix_shadow_runs_task_release_status", "task", "release", "status"),
)

model_artifacts = Table(
    "model_artifacts",
    metadata,
    # A release pins each artifact by the sha256 of its bytes; the bytes are kept here too.
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ---- intake (issue 15): sources, quarantine, duplicates, content hashes, schema events

intake_sources = Table(
    "intake_sources",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("source", String(64), primary_key=True),
    # Where reading resumes: a file and row, an IMAP UID, an SQL cursor value.
    Column("cursor", JSON, nullable=False),
    # records, decided, duplicates, quarantined, discarded, unknown fields.
    Column("counts", JSON, nullable=False),
    # The fields seen so far: per field its types and how often it was missing.
    Column("schema", JSON, nullable=False),
    # active, held (schema drift: records quarantined), stopped (paused), failing.
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("retry_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The replica of `lockgate serve` that polls the source holds the lease
    # `intake:TASK:SOURCE` in `leases` (before migration 0013: columns here).
)

intake_quarantine = Table(
    "intake_quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("position", String(512), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    # held, replayed or discarded.
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("decision_key", String(255), nullable=True),
    UniqueConstraint("task", "source", "position", name="uq_intake_quarantine_task"),
    Index("ix_intake_quarantine_task_source_status", "task", "source", "status"),
)

intake_duplicates = Table(
    "intake_duplicates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("position", String(512), nullable=False),
    # The idempotency key of the decision this record duplicates.
    Column("first_key", String(255), nullable=False),
    Column("by", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_intake_duplicates_task_source", "task", "source"),
)

intake_seen = Table(
    "intake_seen",
    metadata,
    # A mapped input's content hash, and the key of the first decision made for it.
    Column("task", String(64), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

intake_schema_events = Table(
    "intake_schema_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("field", String(255), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_intake_schema_events_task_source", "task", "source"),
)

# ---- leases: one replica at a time runs a named background job (a roll-up, retention, ...)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
)

# ---- retention, erasure and backups (issue 14)

# Small facts about the project's database, by name: the salt of erased subjects' hashes
# (`erase.salt`), how far the retention sweep has gone.
project_state = Table(
    "project_state",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every backup made with `lockgate backup`, newest last (the readiness report reads it).
backups = Table(
    "backups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    # sqlite (the online backup API) or pg_dump.
    Column("kind", String(16), nullable=False),
    Column("location", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("schema", String(32), nullable=True),
    # The newest audit entry in the copy, and how many decisions it holds.
    Column("audit_head", Integer, nullable=True),
    Column("decisions", BigInteger, nullable=False),
)


# ---- live quality (issue 13): spot checks, feedback, drift reference profiles

# An automated decision also sent to a person after its delivery, to measure live accuracy.
# The decision itself is never changed: a verdict here only counts toward live accuracy.
spot_checks = Table(
    "spot_checks",
    metadata,
    Column("decision_id", String(32), ForeignKey("decisions.id"), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("release", Integer, nullable=False),
    # When the decision was made, and when the sweep queued it for a check.
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # approve, correct or reject; None while the check is open.
    Column("verdict", String(16), nullable=True),
    Column("output", JSON, nullable=True),
    Column("reviewer", String(128), nullable=True),
    Column("at", DateTime(timezone=True), nullable=True),
    # When the history roll-up counted the verdict (None: not yet, or no verdict yet).
    Column("rolled_up_at", DateTime(timezone=True), nullable=True),
    Index("ix_spot_checks_task_verdict", "task", "verdict", "created_at"),
    # Live accuracy per time bucket, and per release over all time, counted from an index
    # alone (a check's verdict and its time are set together).
    Index("ix_spot_checks_task_at", "task", "at", "release", "verdict"),
    Index("ix_spot_checks_task_release_verdict", "task", "release", "verdict"),
    Index(
        "ix_spot_checks_not_rolled_up",
        "decision_id",
        sqlite_where=text("rolled_up_at IS NULL"),
        postgresql_where=text("rolled_up_at IS NULL"),
    ),
)

# A downstream system's word on a delivered decision. `comment` is personal data: it is kept
# here only (never in the audit log, a log line or an error).
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(32), ForeignKey("decisions.id"), nullable=False, index=True),
    Column("task", String(64), nullable=False),
    Column("release", Integer, nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("output", JSON, nullable=True),
    Column("comment", Text, nullable=True),
    Column("actor", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_feedback_task_at", "task", "at"),
)

# What a release's inputs and outputs looked like when it was made: drift is measured
# against it.
release_profiles = Table(
    "release_profiles",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("release", Integer, primary_key=True),
    Column("profile", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# How far a background sweep (spot checks) has read the decisions, per task.
quality_cursors = Table(
    "quality_cursors",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# ---- costs: the budget ledger, the holds of calls in flight, and the decision cache (issue 14)

budget_ledger = Table(
    "budget_ledger",
    metadata,
    # A task's name, or "*" for all tasks together (the limits of lockgate.yaml).
    Column("scope", String(64), primary_key=True),
    # "2026-11-29" (a UTC day) or "2026-11" (a UTC month).
    Column("period", String(10), primary_key=True),
    # Amounts in billionths of a US dollar: sums and differences stay exact.
    Column("spent_nano", BigInteger, nullable=False),
    Column("spent_calls", Integer, nullable=False),
    Column("reserved_nano", BigInteger, nullable=False),
    Column("reserved_calls", Integer, nullable=False),
    # Holds that lapsed unsettled (a crash), booked as spent at their worst case.
    Column("lapsed_calls", Integer, nullable=False),
    # When the soft alert was raised for the USD and the calls limit of this period.
    Column("soft_usd_at", DateTime(timezone=True), nullable=True),
    Column("soft_calls_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

budget_holds = Table(
    "budget_holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("month", String(10), nullable=False),
    Column("nano", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_budget_holds_task_expires_at", "task", "expires_at"),
)

decision_cache = Table(
    "decision_cache",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("release_hash", String(64), primary_key=True),
    # The hash of the normalised input (`decide.decision.input_hash`).
    Column("input_hash", String(64), primary_key=True),
    Column("decision_id", String(32), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# ---- history and alerts (issue 13): roll-up cells, alert state, silences

# One number per task, release, step (`minute`, `hour`, `day`), bucket, metric and key:
# `route`/`auto`, `latency`/`le_250`, `label`/`billing` (watch/history.py). Each step is a
# complete count on its own (the roll-up adds a decision to its minute, hour and day at once);
# `history_levels` says from when a step's cells are all there.
history_cells = Table(
    "history_cells",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("release", Integer, primary_key=True),
    Column("step", String(8), primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("metric", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_history_cells_task_step_bucket_start", "task", "step", "bucket_start"),
    Index("ix_history_cells_step_bucket_start", "step", "bucket_start"),
)

# From when each level of `history_cells` (`minute`, `hour`) holds every count: older cells of
# the level were dropped, and the next coarser level holds them. No row: complete from the
# start. Days are never dropped.
history_levels = Table(
    "history_levels",
    metadata,
    Column("step", String(8), primary_key=True),
    Column("complete_from", DateTime(timezone=True), nullable=False),
)

# Where each alert rule stands for each task: firing or not, its episode, its last notice.
alert_state = Table(
    "alert_state",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("rule", String(64), primary_key=True),
    Column("firing", Boolean, nullable=False),
    Column("episode", Integer, nullable=False),
    Column("value", Float, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("last_sent_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# `lockgate alerts silence RULE --for 2h`: no notices for the rule (on one task or all).
alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("task", String(64), nullable=True),
    Column("until", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

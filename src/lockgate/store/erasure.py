"""Erasure: every stored trace of one data subject, in one transaction.

The subject is named by an input field and its value (`--where email=jane@example.com`). Its
decisions keep their rows (counts and roll-ups stay right) but lose their input, redacted input,
metadata, output and alternatives (`ERASED` in their place) and their input hash; their
attempts lose their text, their reviews their outputs and notes (and the notes' copies beside
the audit chain), their shadow runs their outputs, their spot checks and feedback their
outputs and comments, their outbox rows their payload (an undelivered one is stopped: it is
never sent blank); the decision cache and the intake forget them (cache entries, content
hashes, duplicate records). Then the value itself is searched in every column of the task's
rows that may hold text (outputs, reasons, raw responses, notes, payloads, quarantined raw
records, sources' errors, dataset rows, eval reports, feedback comments, drift reference
profiles, audit texts) and cut out where found.

The audit log gets one entry, `subject.erased`, holding the field, the counts and a salted
sha256 of the subject (never the value): the salt is kept in `project_state`, so the same
subject erased again has the same hash. The chain itself holds no values: free text in it is
referenced by hash (`store.audit`), so erasing leaves it verifying.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    Text,
    cast,
    delete,
    func,
    null,
    or_,
    select,
    update,
)

from lockgate.decide.decision import utcnow
from lockgate.store import audit
from lockgate.store.state import read_state, write_state
from lockgate.store.tables import (
    attempts,
    audit_log,
    audit_texts,
    dataset_rows,
    datasets,
    decision_cache,
    decisions,
    eval_runs,
    feedback,
    intake_duplicates,
    intake_quarantine,
    intake_schema_events,
    intake_seen,
    intake_sources,
    outbox,
    promotions,
    release_profiles,
    reviews,
    shadow_runs,
    spot_checks,
)

ERASED = {"_erased": "request"}
"""What an erased input, output or payload holds instead."""
CUT = "[erased]"
"""What replaces the value where it is found inside other text."""
_CHUNK = 500
_SALT = "erase.salt"
CHECKPOINT_WAIT_MS = 2000


@dataclass
class Erasure:
    """What an erasure changed (or would change, in a dry run), per table."""

    counts: dict[str, int] = field(default_factory=dict)
    subject_sha256: str = ""
    log_truncated: bool | None = None
    """SQLite: whether the write-ahead log, which still held the old pages, was checkpointed
    and truncated (False while another connection was reading; None on PostgreSQL)."""

    def count(self, name: str, n: int) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n


def scrub(value: Any, needle: str) -> Any:
    """`value` with every occurrence of `needle` in its strings (and keys) cut out."""
    if isinstance(value, str):
        return value.replace(needle, CUT) if needle in value else value
    if isinstance(value, Mapping):
        return {scrub(k, needle): scrub(v, needle) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, needle) for v in value]
    return value


def _forms(value: str) -> list[str]:
    """The value as it may be written in a column: as is, and JSON-escaped."""
    return list(
        dict.fromkeys([value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]])
    )


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def matching(conn: Connection, task: str, field_name: str, value: str, kind: str) -> list[str]:
    """Ids of the task's decisions whose input field equals the value (of the field's type)."""
    found = decisions.c.input[field_name]
    test: ColumnElement[bool]
    if kind in ("number", "integer"):
        test = found.as_float() == float(value)
    elif kind == "boolean":
        test = found.as_boolean() == (value.strip().lower() in ("true", "1", "yes"))
    else:
        test = found.as_string() == value
    query = select(decisions.c.id).where(decisions.c.task == task, test).order_by(decisions.c.id)
    return list(conn.execute(query).scalars())


def subject_hash(conn: Connection, task: str, field_name: str, value: str, *, keep: bool) -> str:
    """sha256 of the project's salt, the task, the field and the value; "" when the project
    has no salt yet and `keep` is false (a dry run before the first erasure)."""
    salt = read_state(conn, _SALT)
    if salt is None:
        if not keep:
            return ""
        salt = secrets.token_hex(16)
        write_state(conn, _SALT, salt)
    body = "\n".join((salt, task, field_name, value))
    return hashlib.sha256(body.encode()).hexdigest()


def erase(
    conn: Connection,
    task: str,
    field_name: str,
    value: str,
    kind: str,
    *,
    actor: str,
    dry_run: bool = False,
) -> Erasure:
    """Erase the subject inside the caller's transaction; in a dry run, only count."""
    done = Erasure()
    ids = matching(conn, task, field_name, value, kind)
    done.count("decisions", len(ids))
    keys: list[str] = []
    for chunk in _chunks(ids):
        keys.extend(_erase_decisions(conn, chunk, done, dry_run))
    for chunk in _chunks(keys):
        for table, column in (
            (intake_seen, intake_seen.c.idempotency_key),
            (intake_duplicates, intake_duplicates.c.first_key),
        ):
            where = [table.c.task == task, column.in_(chunk)]
            done.count(
                table.name, _count_or(conn, delete(table).where(*where), table, where, dry_run)
            )
    for table, columns, where in _searched(task):
        _cut_value(conn, table, columns, where, value, done, dry_run)
    done.subject_sha256 = subject_hash(conn, task, field_name, value, keep=not dry_run)
    if not dry_run:
        audit.append(
            conn,
            actor=actor,
            action="subject.erased",
            task=task,
            details={
                "field": field_name,
                "subject_sha256": done.subject_sha256,
                "counts": dict(sorted(done.counts.items())),
            },
        )
    return done


def _count_or(
    conn: Connection, statement: Any, table: Table, where: Sequence[Any], dry_run: bool
) -> int:
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    return int(conn.execute(statement).rowcount or 0)


def _erase_decisions(
    conn: Connection, ids: Sequence[str], done: Erasure, dry_run: bool
) -> list[str]:
    """Blank these decisions and everything attached to them; their idempotency keys."""
    rows = conn.execute(
        select(decisions.c.id, decisions.c.idempotency_key, decisions.c.output).where(
            decisions.c.id.in_(ids)
        )
    ).all()
    keys = [row.idempotency_key for row in rows]
    if not dry_run:
        for row in rows:
            conn.execute(
                update(decisions)
                .where(decisions.c.id == row.id)
                .values(
                    input=ERASED,
                    redacted_input=ERASED,
                    metadata=ERASED,
                    output=ERASED if row.output is not None else null(),
                    alternatives=null(),
                    input_hash=hashlib.sha256(f"erased:{row.id}".encode()).hexdigest(),
                )
            )
    a, r, s, o = attempts.c, reviews.c, shadow_runs.c, outbox.c
    for name, table, where, values in (
        ("attempts", attempts, [a.decision_id.in_(ids), a.message.is_not(None)], {"message": None}),
        (
            "reviews",
            reviews,
            [r.decision_id.in_(ids)],
            {"output": null(), "previous_output": null(), "reason": None},
        ),
        ("shadow_runs", shadow_runs, [s.decision_id.in_(ids)], {"output": null(), "error": None}),
        (
            "outbox (stopped, never sent)",
            outbox,
            [o.decision_id.in_(ids), o.status.not_in(("delivered", "dead"))],
            {"status": "dead", "last_error": "erased on request: not delivered"},
        ),
        ("outbox", outbox, [o.decision_id.in_(ids)], {"payload": ERASED}),
        (
            "shadow_runs (queued, dropped)",
            shadow_runs,
            [s.decision_id.in_(ids), s.status == "pending"],
            {"status": "failed", "error": "erased on request", "done_at": utcnow()},
        ),
        ("spot_checks", spot_checks, [spot_checks.c.decision_id.in_(ids)], {"output": null()}),
        (
            "feedback",
            feedback,
            [feedback.c.decision_id.in_(ids)],
            {"output": null(), "comment": None},
        ),
    ):
        done.count(
            name,
            _count_or(conn, update(table).where(*where).values(**values), table, where, dry_run),
        )
    open_checks = [spot_checks.c.decision_id.in_(ids), spot_checks.c.verdict.is_(None)]
    done.count(
        "spot_checks (open, withdrawn)",
        _count_or(conn, delete(spot_checks).where(*open_checks), spot_checks, open_checks, dry_run),
    )
    cached = [decision_cache.c.decision_id.in_(ids)]
    done.count(
        "decision_cache",
        _count_or(conn, delete(decision_cache).where(*cached), decision_cache, cached, dry_run),
    )
    entries = conn.execute(
        select(audit_log.c.details).where(
            audit_log.c.subject.in_(ids), audit_log.c.action.like("review.%")
        )
    ).scalars()
    refs = [ref for details in entries for ref in audit.text_refs(details)]
    if dry_run:
        done.count("review notes beside the audit chain", audit.texts_present(conn, refs))
    else:
        now = utcnow()
        done.count(
            "review notes beside the audit chain",
            sum(audit.erase_text(conn, ref, now) for ref in refs),
        )
    return keys


def _searched(task: str) -> list[tuple[Table, tuple[Column[Any], ...], list[ColumnElement[bool]]]]:
    """Where the value may still be written, after the subject's own rows were blanked."""
    of_task = select(decisions.c.id).where(decisions.c.task == task)
    task_datasets = select(datasets.c.id).where(datasets.c.task == task)
    d, q, src = decisions.c, intake_quarantine.c, intake_sources.c
    return [
        (
            decisions,
            (
                d.input,
                d.redacted_input,
                d.metadata,
                d.output,
                d.alternatives,
                d.reason,
                d.idempotency_key,
            ),
            [d.task == task],
        ),
        (attempts, (attempts.c.message,), [attempts.c.decision_id.in_(of_task)]),
        (
            reviews,
            (reviews.c.output, reviews.c.previous_output, reviews.c.reason),
            [reviews.c.task == task],
        ),
        (shadow_runs, (shadow_runs.c.output, shadow_runs.c.error), [shadow_runs.c.task == task]),
        (outbox, (outbox.c.payload, outbox.c.last_error), [outbox.c.decision_id.in_(of_task)]),
        (
            intake_quarantine,
            (q.raw, q.context, q.reason, q.position, q.decision_key),
            [q.task == task],
        ),
        (
            intake_duplicates,
            (intake_duplicates.c.position, intake_duplicates.c.first_key),
            [intake_duplicates.c.task == task],
        ),
        (intake_seen, (intake_seen.c.idempotency_key,), [intake_seen.c.task == task]),
        (
            intake_sources,
            (src.cursor, src.schema, src.last_error, src.status_reason),
            [src.task == task],
        ),
        (
            intake_schema_events,
            (intake_schema_events.c.detail,),
            [intake_schema_events.c.task == task],
        ),
        (
            dataset_rows,
            (dataset_rows.c.input, dataset_rows.c.expected),
            [dataset_rows.c.dataset_id.in_(task_datasets)],
        ),
        (eval_runs, (eval_runs.c.metrics, eval_runs.c.report), [eval_runs.c.task == task]),
        (promotions, (promotions.c.reason,), [promotions.c.task == task]),
        (spot_checks, (spot_checks.c.output,), [spot_checks.c.task == task]),
        (feedback, (feedback.c.output, feedback.c.comment), [feedback.c.task == task]),
        (release_profiles, (release_profiles.c.profile,), [release_profiles.c.task == task]),
        (audit_texts, (audit_texts.c.text,), []),
    ]


def _cut_value(
    conn: Connection,
    table: Table,
    columns: Sequence[Column[Any]],
    where: list[ColumnElement[bool]],
    value: str,
    done: Erasure,
    dry_run: bool,
) -> None:
    """Cut the value out of every row of `table` (matching `where`) whose columns hold it."""
    holds = [
        cast(column, Text).contains(form, autoescape=True)
        for column in columns
        for form in _forms(value)
    ]
    key = list(table.primary_key.columns)
    rows = conn.execute(select(*key, *columns).where(*where, or_(*holds))).mappings().all()
    changed = 0
    for row in rows:
        values = {c.name: scrub(row[c.name], value) for c in columns if row[c.name] is not None}
        values = {name: v for name, v in values.items() if v != row[name]}
        if not values:
            continue
        changed += 1
        if dry_run:
            continue
        match = [k == row[k.name] for k in key]
        if table is audit_texts:
            audit.erase_text(conn, row["hash"], utcnow())
        else:
            conn.execute(update(table).where(*match).values(**values))
    done.count(f"{table.name} (value cut from text)", changed)


class ErasureRepository:
    """Erasing a data subject over one engine (`Store.erasure`): one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def erase(
        self,
        task: str,
        field_name: str,
        value: str,
        kind: str,
        *,
        actor: str,
        dry_run: bool = False,
    ) -> Erasure:
        if dry_run or self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                return erase(conn, task, field_name, value, kind, actor=actor, dry_run=dry_run)
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            # Deleted and overwritten content is zeroed in the file, not only unlinked.
            before = raw.execute("PRAGMA secure_delete").fetchone()[0]
            raw.execute("PRAGMA secure_delete=ON")
            try:
                with conn.begin():
                    done = erase(conn, task, field_name, value, kind, actor=actor)
                # The old pages in the write-ahead log go too: copied back, then truncated.
                # It waits for readers to move on, briefly: a reader that stays (a long
                # request) is reported rather than waited for.
                waits = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
                try:
                    busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={int(waits)}")
                done.log_truncated = not (busy and busy[0])
            finally:
                raw.execute(f"PRAGMA secure_delete={int(before)}")
        return done

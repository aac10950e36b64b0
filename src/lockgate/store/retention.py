"""Retention: blank or delete what a task keeps past its `retention:` durations.

The sweep walks a task's decisions in id order (ids are time-ordered), one page of `batch`
decisions per transaction, so a long sweep never holds the write lock for long. Per kind:

- `inputs`: a decision's input, redacted input and metadata become `BLANK` (the row stays, for
  counts and roll-ups); resolved quarantine records (replayed or discarded), intake content
  hashes and duplicate records past the cutoff are deleted.
- `outputs`: a decision's output becomes `BLANK` and its alternatives are dropped; its reviews
  lose their outputs and notes (also the notes' copies beside the audit chain, which still
  verifies), its shadow runs their outputs and errors, its spot checks and feedback their
  outputs and comments, its delivered outbox rows their payload; the decision cache forgets
  it (a cached answer is served from its decision's output).
- `attempts`: the text of each attempt (raw responses, error messages) is dropped; latency,
  tokens and cost stay.

Never blanked: a decision still pending review (a person must see it), one with a queued
shadow run or an open spot check (they read it later), and the output of a decision with an
outbox row not delivered (pending, retrying or dead: a dead letter may be
replayed, so its payload is kept until it is delivered). These are counted as `kept`. How far
the sweep has gone is kept per task and kind (`project_state`), up to the first decision held
back, so the next sweep starts there instead of at the beginning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    delete,
    func,
    null,
    or_,
    select,
    update,
)

from lockgate.decide.decision import utcnow
from lockgate.store import audit
from lockgate.store.database import aware
from lockgate.store.state import read_state, write_state
from lockgate.store.tables import (
    attempts,
    audit_log,
    decision_cache,
    decisions,
    feedback,
    intake_duplicates,
    intake_quarantine,
    intake_seen,
    outbox,
    reviews,
    shadow_runs,
    spot_checks,
)

BLANK = {"_erased": "retention"}
"""What a blanked input, output or payload holds instead."""
KINDS = ("inputs", "outputs", "attempts")
BATCH = 500


@dataclass
class Swept:
    """What one sweep blanked or deleted (or would, in a dry run), per table and column."""

    done: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    def add(self, other: Swept) -> None:
        for mine, theirs in ((self.done, other.done), (self.kept, other.kept)):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count

    def count(self, name: str, n: int, *, kept: bool = False) -> None:
        if n:
            target = self.kept if kept else self.done
            target[name] = target.get(name, 0) + n


@dataclass
class Cursor:
    """Where a sweep of one task and kind is: the last decision id read, and whether every
    decision before it was handled (then the position is saved for the next sweep)."""

    after: str
    clean: bool = True
    finished: bool = False


def _change(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
    dry_run: bool,
) -> int:
    """Update the rows matching `where` (or count them in a dry run); how many."""
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    return int(conn.execute(update(table).where(*where).values(**values)).rowcount or 0)


def _position_name(task: str, kind: str) -> str:
    return f"retention:{task}:{kind}"


def start(conn: Connection, task: str, kind: str) -> Cursor:
    """The cursor a new sweep of `task` and `kind` starts from."""
    return Cursor(read_state(conn, _position_name(task, kind)) or "")


def step(
    conn: Connection,
    task: str,
    kind: str,
    cutoff: datetime,
    cursor: Cursor,
    *,
    batch: int = BATCH,
    dry_run: bool = False,
) -> Swept:
    """Handle the next page of the task's decisions made before `cutoff`; moves `cursor`."""
    c = decisions.c
    # Ids begin with their time, taken when the decision started; `created_at` is when it was
    # made. A decision started before the cutoff but made after it is read too, and holds the
    # saved position back until it is due, so no decision is ever passed over.
    started_before = f"{int(cutoff.timestamp() * 1000):012x}"
    page = conn.execute(
        select(c.id, c.status, c.input, c.output, c.created_at)
        .where(
            c.task == task,
            c.id > cursor.after,
            or_(c.created_at < cutoff, c.id < started_before),
        )
        .order_by(c.id)
        .limit(batch)
    ).all()
    swept = Swept()
    if len(page) < batch:
        cursor.finished = True
    if not page:
        return swept
    ids = [row.id for row in page]
    not_yet = {row.id for row in page if aware(row.created_at) >= cutoff}
    held = {row.id for row in page if row.status == "pending_review"} - not_yet
    swept.count("decisions pending review", len(held), kept=True)
    if kind in ("inputs", "outputs"):
        # A queued shadow run decides the input later; an open spot check shows a person
        # the input and output: both need them until done.
        waiting = set(
            conn.execute(
                select(shadow_runs.c.decision_id).where(
                    shadow_runs.c.decision_id.in_(ids), shadow_runs.c.status == "pending"
                )
            ).scalars()
        ) | set(
            conn.execute(
                select(spot_checks.c.decision_id).where(
                    spot_checks.c.decision_id.in_(ids), spot_checks.c.verdict.is_(None)
                )
            ).scalars()
        )
        waiting -= held | not_yet
        swept.count(
            "decisions with a queued shadow run or an open spot check", len(waiting), kept=True
        )
        held |= waiting
    if kind == "outputs":
        undelivered = set(
            conn.execute(
                select(outbox.c.decision_id)
                .where(outbox.c.decision_id.in_(ids), outbox.c.status != "delivered")
                .distinct()
            ).scalars()
        )
        undelivered -= not_yet
        swept.count("decisions with an undelivered outbox row", len(undelivered - held), kept=True)
        held |= undelivered
    due = [row for row in page if row.id not in held and row.id not in not_yet]
    due_ids = [row.id for row in due]
    if kind == "inputs":
        _inputs(conn, due, swept, dry_run)
    elif kind == "outputs":
        _outputs(conn, due, swept, dry_run)
    else:
        swept.count(
            "attempts.message",
            _change(
                conn,
                attempts,
                [attempts.c.decision_id.in_(due_ids), attempts.c.message.is_not(None)],
                {"message": None},
                dry_run,
            ),
        )
    if held or not_yet:
        cursor.clean = False
    cursor.after = ids[-1]
    if cursor.clean and not dry_run:
        write_state(conn, _position_name(task, kind), cursor.after)
    return swept


def _inputs(conn: Connection, due: Sequence[Any], swept: Swept, dry_run: bool) -> None:
    fresh = [row.id for row in due if row.input != BLANK]
    if fresh and not dry_run:
        conn.execute(
            update(decisions)
            .where(decisions.c.id.in_(fresh))
            .values(input=BLANK, redacted_input=BLANK, metadata=BLANK)
        )
    swept.count("decisions.input", len(fresh))


def _outputs(conn: Connection, due: Sequence[Any], swept: Swept, dry_run: bool) -> None:
    ids = [row.id for row in due]
    fresh = [row.id for row in due if row.output is not None and row.output != BLANK]
    if fresh and not dry_run:
        conn.execute(
            update(decisions)
            .where(decisions.c.id.in_(fresh))
            .values(output=BLANK, alternatives=null())
        )
    swept.count("decisions.output", len(fresh))
    if not ids:
        return
    r = reviews.c
    swept.count(
        "reviews (outputs and notes)",
        _change(
            conn,
            reviews,
            [r.decision_id.in_(ids), or_(r.reason.is_not(None), r.output.is_not(None))],
            {"output": null(), "previous_output": null(), "reason": None},
            dry_run,
        ),
    )
    swept.count("review notes beside the audit chain", _review_notes(conn, ids, dry_run))
    s = shadow_runs.c
    swept.count(
        "shadow_runs (output and error)",
        _change(
            conn,
            shadow_runs,
            [s.decision_id.in_(ids), s.status != "pending", s.output.is_not(None)],
            {"output": null(), "error": None},
            dry_run,
        ),
    )
    k, f = spot_checks.c, feedback.c
    swept.count(
        "spot_checks.output",
        _change(
            conn,
            spot_checks,
            [k.decision_id.in_(ids), k.output.is_not(None)],
            {"output": null()},
            dry_run,
        ),
    )
    swept.count(
        "feedback (output and comment)",
        _change(
            conn,
            feedback,
            [f.decision_id.in_(ids), or_(f.comment.is_not(None), f.output.is_not(None))],
            {"output": null(), "comment": None},
            dry_run,
        ),
    )
    # A cached answer is served from its decision's output: never from a blanked one.
    cached = [decision_cache.c.decision_id.in_(ids)]
    if dry_run:
        count = select(func.count()).select_from(decision_cache).where(*cached)
        swept.count("decision_cache", int(conn.execute(count).scalar_one()))
    else:
        gone = conn.execute(delete(decision_cache).where(*cached)).rowcount
        swept.count("decision_cache", int(gone or 0))
    o = outbox.c
    delivered = [o.decision_id.in_(ids), o.status == "delivered"]
    payloads = conn.execute(select(o.id, o.payload).where(*delivered)).all()
    blanked = [row.id for row in payloads if row.payload != BLANK]
    if blanked and not dry_run:
        conn.execute(update(outbox).where(o.id.in_(blanked)).values(payload=BLANK))
    swept.count("outbox.payload (delivered)", len(blanked))


def _review_notes(conn: Connection, decision_ids: Sequence[str], dry_run: bool) -> int:
    """Erase the texts of the review entries about these decisions (the chain keeps their
    hashes only, so it still verifies)."""
    entries = conn.execute(
        select(audit_log.c.details).where(
            audit_log.c.subject.in_(decision_ids), audit_log.c.action.like("review.%")
        )
    ).scalars()
    refs = [ref for details in entries for ref in audit.text_refs(details)]
    if dry_run:
        return audit.texts_present(conn, refs)
    now = utcnow()
    return sum(audit.erase_text(conn, ref, now) for ref in refs)


# ---- intake tables, which hold inputs but no decision id


def intake_step(
    conn: Connection, task: str, cutoff: datetime, *, batch: int = BATCH, dry_run: bool = False
) -> tuple[Swept, bool]:
    """Delete one batch of the task's intake rows holding inputs past the cutoff: resolved
    quarantine records, content hashes, duplicate records. (swept, whether all are done)."""
    swept = Swept()
    q = intake_quarantine.c
    resolved = [q.task == task, q.created_at < cutoff, q.status.in_(("replayed", "discarded"))]
    finished = True
    for name, table, key, where in (
        ("intake_quarantine (resolved)", intake_quarantine, q.id, resolved),
        (
            "intake_seen",
            intake_seen,
            intake_seen.c.content_hash,
            [intake_seen.c.task == task, intake_seen.c.seen_at < cutoff],
        ),
        (
            "intake_duplicates",
            intake_duplicates,
            intake_duplicates.c.id,
            [intake_duplicates.c.task == task, intake_duplicates.c.at < cutoff],
        ),
    ):
        if dry_run:
            count = conn.execute(select(func.count()).select_from(table).where(*where))
            swept.count(name, int(count.scalar_one()))
            continue
        keys = list(conn.execute(select(key).where(*where).limit(batch)).scalars())
        if keys:
            conn.execute(delete(table).where(*where, key.in_(keys)))
        swept.count(name, len(keys))
        finished = finished and len(keys) < batch
    return swept, finished


def held_quarantine(conn: Connection, task: str, cutoff: datetime) -> int:
    """Quarantined records past the cutoff still held: kept until replayed or discarded."""
    q = intake_quarantine.c
    held = select(func.count()).where(q.task == task, q.created_at < cutoff, q.status == "held")
    return int(conn.execute(held).scalar_one())


@contextmanager
def _zeroing(conn: Connection) -> Iterator[None]:
    """On SQLite, blanked and deleted content is zeroed in the file (`secure_delete`), not only
    unlinked; the write-ahead log's old frames are overwritten as it is checkpointed."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA secure_delete").scalar_one()
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA secure_delete={int(before)}")


class RetentionRepository:
    """The retention sweep over one engine (`Store.retention`): each step is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, task: str, kind: str) -> Cursor:
        with self.engine.connect() as conn:
            return start(conn, task, kind)

    def step(
        self,
        task: str,
        kind: str,
        cutoff: datetime,
        cursor: Cursor,
        *,
        batch: int = BATCH,
        dry_run: bool = False,
    ) -> Swept:
        with self.engine.begin() as conn, _zeroing(conn):
            return step(conn, task, kind, cutoff, cursor, batch=batch, dry_run=dry_run)

    def intake_step(
        self, task: str, cutoff: datetime, *, batch: int = BATCH, dry_run: bool = False
    ) -> tuple[Swept, bool]:
        with self.engine.begin() as conn, _zeroing(conn):
            return intake_step(conn, task, cutoff, batch=batch, dry_run=dry_run)

    def sweep(
        self,
        task: str,
        cutoffs: Mapping[str, datetime],
        *,
        batch: int = BATCH,
        dry_run: bool = False,
        progress: Callable[[Swept], None] | None = None,
    ) -> Swept:
        """Every due batch of one task, each kind in turn (`cutoffs`: kind -> cutoff)."""
        total = Swept()
        for kind in KINDS:
            if kind not in cutoffs:
                continue
            cursor = self.start(task, kind)
            of_kind = Swept()
            while not cursor.finished:
                swept = self.step(task, kind, cutoffs[kind], cursor, batch=batch, dry_run=dry_run)
                of_kind.add(swept)
                if progress is not None:
                    progress(swept)
            total.add(Swept(done=of_kind.done))
            for why, count in of_kind.kept.items():  # the same decision, held for each kind
                total.kept[why] = max(total.kept.get(why, 0), count)
        if "inputs" in cutoffs:
            with self.engine.connect() as conn:
                held = held_quarantine(conn, task, cutoffs["inputs"])
            total.count("held quarantine records", held, kept=True)
            finished = False
            while not finished:
                swept, finished = self.intake_step(
                    task, cutoffs["inputs"], batch=batch, dry_run=dry_run
                )
                total.add(swept)
                finished = finished or dry_run
        return total

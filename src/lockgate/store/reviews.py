"""Review queries: the queue, claims (leases) and verdicts, each checked by a conditional UPDATE.

A claim or a verdict changes a decision only when its row still is in the state the caller
saw (`WHERE status='pending_review' AND ...`), and the caller checks the row count. On
PostgreSQL the UPDATE waits for a competing one and re-checks the condition after it commits;
on SQLite every writer holds the database lock from BEGIN IMMEDIATE. Either way exactly one of
two competing reviewers wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Text,
    and_,
    cast,
    func,
    or_,
    select,
    update,
)

from lockgate.decide.decision import Decision
from lockgate.review.types import (
    PENDING,
    VERDICT_STATUSES,
    Escalation,
    QueueQuery,
    ReviewState,
    Ruling,
    Verdict,
    VerdictKind,
)
from lockgate.store import audit, database, outbox
from lockgate.store import decisions as decision_queries
from lockgate.store.database import aware
from lockgate.store.tables import decisions, reviews


def _verdict(row: RowMapping) -> Verdict:
    return Verdict(
        id=row["id"],
        decision_id=row["decision_id"],
        task=row["task"],
        verdict=row["verdict"],
        reviewer=row["reviewer"],
        output=row["output"],
        previous_output=row["previous_output"],
        reason=row["reason"],
        at=aware(row["at"]),
    )


def _verdicts(conn: Connection, ids: Sequence[str]) -> dict[str, list[Verdict]]:
    found: dict[str, list[Verdict]] = {i: [] for i in ids}
    if ids:
        rows = conn.execute(
            select(reviews).where(reviews.c.decision_id.in_(ids)).order_by(reviews.c.id)
        ).mappings()
        for row in rows:
            found[row["decision_id"]].append(_verdict(row))
    return found


def _state(row: RowMapping, decision: Decision, verdicts: Sequence[Verdict]) -> ReviewState:
    expires = row["claim_expires_at"]
    escalated = row["escalated_at"]
    return ReviewState(
        decision=decision,
        claimed_by=row["claimed_by"],
        claim_expires_at=aware(expires) if expires is not None else None,
        escalated_at=aware(escalated) if escalated is not None else None,
        verdicts=tuple(verdicts),
    )


def state(conn: Connection, decision_id: str) -> ReviewState | None:
    row = conn.execute(select(decisions).where(decisions.c.id == decision_id)).mappings().first()
    if row is None:
        return None
    decision = decision_queries.from_row(row, decision_queries.attempts_of(conn, decision_id))
    return _state(row, decision, _verdicts(conn, [decision_id])[decision_id])


def queue(conn: Connection, query: QueueQuery) -> list[ReviewState]:
    """Decisions in `query.status`, highest priority first, then oldest first."""
    c = decisions.c
    statement = select(decisions).where(c.status == query.status)
    if query.task is not None:
        statement = statement.where(c.task == query.task)
    if query.tasks:
        statement = statement.where(c.task.in_(query.tasks))
    if query.claimed_by is not None:
        statement = statement.where(c.claimed_by == query.claimed_by)
    if query.search:
        needle = query.search.strip().lower()
        statement = statement.where(
            or_(
                c.id == needle,
                c.id.endswith(needle, autoescape=True),
                func.lower(cast(c.redacted_input, Text)).contains(needle, autoescape=True),
            )
        )
    if query.by_reviewer is not None:
        verdict = select(reviews.c.id).where(reviews.c.decision_id == c.id).exists()
        statement = statement.where(verdict if query.by_reviewer else ~verdict)
    if query.after is not None:
        last = conn.execute(select(c.priority, c.created_at).where(c.id == query.after)).first()
        if last is not None:
            priority, created = last
            statement = statement.where(
                or_(
                    c.priority < priority,
                    and_(c.priority == priority, c.created_at > created),
                    and_(c.priority == priority, c.created_at == created, c.id > query.after),
                )
            )
    statement = statement.order_by(c.priority.desc(), c.created_at, c.id).limit(query.limit)
    rows = list(conn.execute(statement).mappings())
    verdicts = _verdicts(conn, [r["id"] for r in rows])
    # The row mapping is the store's own (store.decisions); attempts are left out of a listing.
    return [_state(r, decision_queries.from_row(r), verdicts[r["id"]]) for r in rows]


def pending_counts(conn: Connection, tasks: Sequence[str]) -> dict[str, int]:
    """Pending decisions per task (only `tasks`, when given)."""
    c = decisions.c
    statement = select(c.task, func.count()).where(c.status == PENDING).group_by(c.task)
    if tasks:
        statement = statement.where(c.task.in_(tasks))
    return {task: int(count) for task, count in conn.execute(statement)}


def release_claim(conn: Connection, decision_id: str, reviewer: str) -> bool:
    """Give up `reviewer`'s claim on a pending decision; False when they hold none."""
    c = decisions.c
    result = conn.execute(
        update(decisions)
        .where(c.id == decision_id, c.status == PENDING, c.claimed_by == reviewer)
        .values(claimed_by=None, claim_expires_at=None)
    )
    return result.rowcount == 1


def claim(
    conn: Connection, decision_id: str, reviewer: str, now: datetime, until: datetime
) -> bool:
    """Lease a pending decision to `reviewer` unless another live lease holds it; renewing
    one's own lease is allowed. True when this call holds the lease."""
    c = decisions.c
    result = conn.execute(
        update(decisions)
        .where(
            c.id == decision_id,
            c.status == PENDING,
            or_(c.claimed_by.is_(None), c.claim_expires_at < now, c.claimed_by == reviewer),
        )
        .values(claimed_by=reviewer, claim_expires_at=until)
    )
    return result.rowcount == 1


def take_claim(conn: Connection, decision_id: str, reviewer: str, now: datetime) -> bool:
    """End `reviewer`'s live lease to record a verdict. False when the decision is no longer
    pending, is claimed by someone else, or the lease has expired."""
    c = decisions.c
    result = conn.execute(
        update(decisions)
        .where(
            c.id == decision_id,
            c.status == PENDING,
            c.claimed_by == reviewer,
            c.claim_expires_at >= now,
        )
        .values(claimed_by=None, claim_expires_at=None, updated_at=now)
    )
    return result.rowcount == 1


def finish(
    conn: Connection,
    decision: Decision,
    status: str,
    output: Mapping[str, Any] | None,
    now: datetime,
    sinks: Sequence[str],
) -> Decision:
    """Make a decision final (its claim was just taken in this transaction); an approved or
    corrected one goes to the outbox in the same transaction, a rejected one never does."""
    conn.execute(
        update(decisions)
        .where(decisions.c.id == decision.id)
        .values(status=status, output=dict(output) if output is not None else None, updated_at=now)
    )
    final = replace(decision, status=status, output=output)  # type: ignore[arg-type]
    if status in ("approved", "corrected"):
        outbox.enqueue(conn, [final], sinks)
    return final


def add_verdict(
    conn: Connection,
    decision: Decision,
    kind: VerdictKind,
    reviewer: str,
    output: Mapping[str, Any] | None,
    reason: str | None,
    now: datetime,
    details: Mapping[str, Any],
) -> None:
    """Store the verdict and its audit entry (`review.<kind>`) in the caller's transaction."""
    conn.execute(
        reviews.insert().values(
            decision_id=decision.id,
            task=decision.task,
            verdict=kind,
            reviewer=reviewer,
            output=dict(output) if output is not None else None,
            previous_output=dict(decision.output) if decision.output is not None else None,
            reason=reason,
            at=now,
        )
    )
    audit.append(
        conn,
        actor=reviewer,
        action=f"review.{kind}",
        task=decision.task,
        subject=decision.id,
        details=details,
    )


def overdue_releases(conn: Connection) -> list[tuple[str, int]]:
    """(task, release) pairs that have pending decisions not yet escalated."""
    c = decisions.c
    rows = conn.execute(
        select(c.task, c.release)
        .where(c.status == PENDING, c.escalated_at.is_(None))
        .group_by(c.task, c.release)
    )
    return [(row[0], row[1]) for row in rows]


def escalate(
    conn: Connection, task: str, release: int, cutoff: datetime, now: datetime, boost: int
) -> list[Escalation]:
    """Raise the priority of this release's pending decisions created before `cutoff` and not
    yet escalated; return them, by id."""
    c = decisions.c
    condition = and_(
        c.task == task,
        c.release == release,
        c.status == PENDING,
        c.escalated_at.is_(None),
        c.created_at < cutoff,
    )
    # RETURNING names exactly the rows this statement changed: a replica escalating at the same
    # moment waits for this one and then finds them already escalated.
    changed = conn.execute(
        update(decisions)
        .where(condition)
        .values(priority=c.priority + boost, escalated_at=now)
        .returning(c.id, c.priority)
    )
    return [Escalation(task, row[0], row[1]) for row in sorted(changed)]


def verdict_count(conn: Connection, reviewer: str, since: datetime) -> int:
    statement = select(func.count()).where(reviews.c.reviewer == reviewer, reviews.c.at >= since)
    return int(conn.execute(statement).scalar_one())


def recent_decided(conn: Connection, task: str, exclude: str, limit: int) -> list[Decision]:
    """The task's newest final decisions with an output (automated or reviewed)."""
    c = decisions.c
    rows = conn.execute(
        select(decisions)
        .where(
            c.task == task,
            c.id != exclude,
            c.status.in_(("decided", "approved", "corrected")),
        )
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    ).mappings()
    return [decision_queries.from_row(r) for r in rows]


def reviewed(conn: Connection, task: str) -> list[ReviewState]:
    """Every decision of the task with a human verdict that made it final, oldest first."""
    c = decisions.c
    rows = list(
        conn.execute(
            select(decisions)
            .where(c.task == task, c.status.in_(VERDICT_STATUSES))
            .where(c.id.in_(select(reviews.c.decision_id).where(reviews.c.task == task)))
            .order_by(c.created_at, c.id)
        ).mappings()
    )
    found: dict[str, list[Verdict]] = {r["id"]: [] for r in rows}
    for row in conn.execute(
        select(reviews).where(reviews.c.task == task).order_by(reviews.c.id)
    ).mappings():
        if row["decision_id"] in found:
            found[row["decision_id"]].append(_verdict(row))
    return [_state(r, decision_queries.from_row(r), found[r["id"]]) for r in rows]


class ReviewRepository:
    """Transactions of the review queue over one engine (`Store.reviews`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def state(self, decision_id: str) -> ReviewState | None:
        with database.read(self.engine) as conn:
            return state(conn, decision_id)

    def queue(self, query: QueueQuery) -> list[ReviewState]:
        with database.read(self.engine) as conn:
            return queue(conn, query)

    def claim(self, decision_id: str, reviewer: str, now: datetime, until: datetime) -> bool:
        with self.engine.begin() as conn:
            return claim(conn, decision_id, reviewer, now, until)

    def release_claim(self, decision_id: str, reviewer: str) -> bool:
        with self.engine.begin() as conn:
            return release_claim(conn, decision_id, reviewer)

    def pending_counts(self, tasks: Sequence[str]) -> dict[str, int]:
        with database.read(self.engine) as conn:
            return pending_counts(conn, tasks)

    def record(
        self,
        decision_id: str,
        reviewer: str,
        now: datetime,
        judge: Callable[[ReviewState], Ruling],
    ) -> ReviewState | None:
        """In one transaction: end `reviewer`'s live lease, let `judge` rule on the decision as
        it now is (it may raise to refuse: nothing is kept), store the verdict, its audit entry
        and, for a final approval or correction, the outbox rows. None when the lease was not
        held (the decision is not pending, someone else holds it, or it expired)."""
        with self.engine.begin() as conn:
            if not take_claim(conn, decision_id, reviewer, now):
                return None
            current = state(conn, decision_id)
            assert current is not None
            ruling = judge(current)
            decision = current.decision
            add_verdict(
                conn, decision, ruling.kind, reviewer, ruling.output, ruling.reason, now,
                ruling.details,
            )  # fmt: skip
            if ruling.final_status is not None:
                finish(conn, decision, ruling.final_status, ruling.final_output, now, ruling.sinks)
            after = state(conn, decision_id)
            assert after is not None
            return after

    def escalate_overdue(
        self, now: datetime, cutoff_for: Callable[[str, int], datetime | None], boost: int
    ) -> list[Escalation]:
        """Escalate every pending decision older than its release's cutoff (None: no SLA)."""
        escalated: list[Escalation] = []
        with self.engine.begin() as conn:
            for task, release in overdue_releases(conn):
                cutoff = cutoff_for(task, release)
                if cutoff is not None:
                    escalated.extend(escalate(conn, task, release, cutoff, now, boost))
        return escalated

    def verdict_count(self, reviewer: str, since: datetime) -> int:
        with database.read(self.engine) as conn:
            return verdict_count(conn, reviewer, since)

    def recent_decided(self, task: str, exclude: str, limit: int) -> list[Decision]:
        with database.read(self.engine) as conn:
            return recent_decided(conn, task, exclude, limit)

    def reviewed(self, task: str) -> list[ReviewState]:
        with database.read(self.engine) as conn:
            return reviewed(conn, task)

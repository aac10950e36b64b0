"""Shadow-run queries: queued with live decisions, finished by the shadow worker, compared
with the live decisions (and their human labels) for the shadow report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from lockgate.decide.decision import Decision, utcnow
from lockgate.rollout.types import DROPPED, ShadowJob, ShadowOutcome, ShadowPair
from lockgate.store import audit
from lockgate.store.driver import Driver, driver_rows, insert, placeholder
from lockgate.store.tables import decisions, outbox, reviews
from lockgate.store.tables import shadow_runs as runs

_CHUNK = 500


def queue_shadow_runs(conn: Connection | Driver, inserted: Sequence[Decision]) -> int:
    """One pending shadow run per (new decision, shadow release of its task); called in the
    transaction that stores the decisions, so a decision is never without its queued runs."""
    if not inserted:
        return 0
    by_task: dict[str, list[Decision]] = {}
    for d in inserted:
        by_task.setdefault(d.task, []).append(d)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    # On the driver: it runs in every commit of decisions, where SQLAlchemy's work on even a
    # cached select cost more than SQLite's.
    shadows = f"SELECT number FROM releases WHERE task = {placeholder(conn)} AND stage = 'shadow'"
    for task, group in by_task.items():
        numbers = [number for (number,) in driver_rows(conn, shadows, (task,))]
        rows.extend(
            {
                "decision_id": d.id,
                "task": task,
                "release": n,
                "status": "pending",
                "created_at": now,
            }
            for n in numbers
            for d in group
            if d.release != n
        )
    insert(conn, runs, rows)
    return len(rows)


def pending(conn: Connection, task: str, number: int, limit: int) -> list[ShadowJob]:
    query = (
        select(runs.c.id, runs.c.decision_id, decisions.c.idempotency_key, decisions.c.input)
        .join(decisions, decisions.c.id == runs.c.decision_id)
        .where(runs.c.task == task, runs.c.release == number, runs.c.status == "pending")
        .order_by(runs.c.id)
        .limit(limit)
    )
    return [ShadowJob(r.id, r.decision_id, r.idempotency_key, r.input) for r in conn.execute(query)]


def finish_shadow(conn: Connection, outcomes: Sequence[ShadowOutcome]) -> int:
    """Write results into still-pending rows (a row another worker finished stays as it is)."""
    if not outcomes:
        return 0
    now = utcnow()
    statement = (
        update(runs)
        .where(runs.c.id == bindparam("row_id"), runs.c.status == "pending")
        .values(
            status=bindparam("new_status"),
            output=bindparam("output"),
            confidence=bindparam("confidence"),
            route=bindparam("route"),
            decision_status=bindparam("decision_status"),
            cost=bindparam("cost"),
            latency_ms=bindparam("latency_ms"),
            error=bindparam("error"),
            done_at=now,
        )
    )
    params = [
        {
            "row_id": o.id,
            "new_status": o.status,
            "output": dict(o.output) if o.output is not None else None,
            "confidence": o.confidence,
            "route": o.route,
            "decision_status": o.decision_status,
            "cost": o.cost,
            "latency_ms": o.latency_ms,
            "error": o.error,
        }
        for o in outcomes
    ]
    result = conn.execute(statement, params)
    return int(result.rowcount or 0)


def shadow_counts(conn: Connection, task: str, number: int) -> dict[str, int]:
    rows = conn.execute(
        select(runs.c.status, func.count())
        .where(runs.c.task == task, runs.c.release == number)
        .group_by(runs.c.status)
    )
    return {status: int(n) for status, n in rows}


def shadowed_releases(conn: Connection, task: str) -> list[int]:
    """Releases that have shadow runs, oldest first."""
    return list(
        conn.execute(
            select(runs.c.release).where(runs.c.task == task).distinct().order_by(runs.c.release)
        ).scalars()
    )


def labels(conn: Connection, decision_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """The human label per decision, from its latest approve or correct verdict."""
    ids = list(decision_ids)
    found: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(reviews.c.decision_id, reviews.c.verdict, reviews.c.output)
            .where(reviews.c.decision_id.in_(ids[start : start + _CHUNK]))
            .order_by(reviews.c.id)
        )
        for decision_id, verdict, output in rows:
            if verdict in ("approve", "correct") and output is not None:
                found[decision_id] = output
            else:
                found.pop(decision_id, None)
    return found


def shadow_pairs(conn: Connection, task: str, number: int) -> list[ShadowPair]:
    d, r = decisions.c, runs.c
    rows = conn.execute(
        select(
            r.decision_id,
            d.release,
            d.output,
            d.status,
            d.cost,
            d.latency_ms,
            r.status,
            r.output,
            r.cost,
            r.latency_ms,
            d["metadata"],
        )
        .join(decisions, d.id == r.decision_id)
        .where(r.task == task, r.release == number, r.status != "pending")
        .where(or_(r.error.is_(None), r.error != DROPPED))
        .order_by(r.id)
    ).all()
    truth = labels(conn, [row[0] for row in rows])
    return [
        ShadowPair(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            truth.get(row[0]),
            live_in_batch=isinstance(row[10], dict) and "run" in row[10],
        )
        for row in rows
    ]


def recall_for_review(conn: Connection, decision_id: str, actor: str, why: str) -> bool:
    """Put an automated decision into the review queue if nothing has acted on it yet: it is
    still `decided` and each of its outbox rows is pending and unclaimed (those rows are
    removed; the verdict enqueues the final outcome again). False, changing nothing, when
    delivery has started or the decision is no longer `decided`."""
    with conn.begin_nested() as savepoint:
        moved = conn.execute(
            update(decisions)
            .where(decisions.c.id == decision_id, decisions.c.status == "decided")
            .values(status="pending_review", route="review", updated_at=utcnow())
        ).rowcount
        if not moved:
            savepoint.rollback()
            return False
        queued = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.decision_id == decision_id)
        ).scalar_one()
        removed = conn.execute(
            outbox.delete().where(
                outbox.c.decision_id == decision_id,
                outbox.c.status == "pending",
                outbox.c.claimed_by.is_(None),
                outbox.c.tries == 0,
            )
        ).rowcount
        if removed != queued:
            savepoint.rollback()
            return False
        task = conn.execute(
            select(decisions.c.task).where(decisions.c.id == decision_id)
        ).scalar_one()
        audit.append(
            conn,
            actor=actor,
            action="decision.sampled_for_review",
            task=task,
            subject=decision_id,
            details={"why": why},
        )
    return True


def drop_pending(conn: Connection, task: str, number: int) -> int:
    """Mark a release's queued runs failed (its shadow stopped); returns how many."""
    result = conn.execute(
        update(runs)
        .where(runs.c.task == task, runs.c.release == number, runs.c.status == "pending")
        .values(status="failed", error=DROPPED, done_at=utcnow())
    )
    return int(result.rowcount or 0)

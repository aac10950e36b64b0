"""Live-quality queries: spot checks, feedback, the decisions drift reads, reference profiles.

A spot check is a row of its own beside an automated decision: the decision, its status and
its outbox rows are never touched by it. A verdict on a spot check is a conditional UPDATE
(`WHERE verdict IS NULL`), so of two reviewers exactly one's verdict counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, RowMapping, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.decide.decision import Decision
from lockgate.store import audit, database
from lockgate.store import decisions as decision_queries
from lockgate.store.database import aware
from lockgate.store.tables import (
    decisions,
    feedback,
    quality_cursors,
    release_profiles,
    spot_checks,
)
from lockgate.watch.types import Feedback, Judged, Observed, SpotCheck, SpotVerdict

#: Automated decisions that were stored: a spot check is taken among them.
AUTOMATED_STATUSES = ("decided", "delivered")


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _spot(row: Mapping[str, Any] | RowMapping) -> SpotCheck:
    at = row["at"]
    return SpotCheck(
        decision_id=row["decision_id"],
        task=row["task"],
        release=row["release"],
        decided_at=aware(row["decided_at"]),
        created_at=aware(row["created_at"]),
        verdict=row["verdict"],
        output=row["output"],
        reviewer=row["reviewer"],
        at=aware(at) if at is not None else None,
    )


def _feedback(row: RowMapping) -> Feedback:
    return Feedback(
        id=row["id"],
        decision_id=row["decision_id"],
        task=row["task"],
        release=row["release"],
        correct=bool(row["correct"]),
        output=row["output"],
        comment=row["comment"],
        actor=row["actor"],
        at=aware(row["at"]),
    )


def _judged(row: RowMapping, agrees: bool, source: Literal["spot_check", "feedback"]) -> Judged:
    model = row["model_output"]
    return Judged(
        decision_id=row["decision_id"],
        task=row["task"],
        release=row["release"],
        route=row["route"],
        model_output=model,
        agrees=agrees,
        true_output=model if agrees else row["output"],
        source=source,
        at=aware(row["at"]),
        input=row["input"],
    )


class QualityRepository:
    """Spot checks, feedback, drift's window of decisions and reference profiles
    (`Store.quality`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- spot checks

    def cursor(self, name: str) -> datetime | None:
        with database.read(self.engine) as conn:
            found = conn.execute(
                select(quality_cursors.c.at).where(quality_cursors.c.name == name)
            ).scalar_one_or_none()
        return aware(found) if found is not None else None

    def automated_since(
        self, since: datetime | None, until: datetime, limit: int
    ) -> list[tuple[str, str, int, datetime]]:
        """(id, task, release, created_at) of automated decisions created after `since` (all,
        when None) and at or before `until` that have no spot check yet, oldest first."""
        c = decisions.c
        statement = (
            select(c.id, c.task, c.release, c.created_at)
            .where(c.route == "auto", c.status.in_(AUTOMATED_STATUSES), c.created_at <= until)
            .where(
                ~select(spot_checks.c.decision_id).where(spot_checks.c.decision_id == c.id).exists()
            )
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        if since is not None:
            statement = statement.where(c.created_at > since)
        with database.read(self.engine) as conn:
            rows = conn.execute(statement).all()
        return [(r[0], r[1], r[2], aware(r[3])) for r in rows]

    def add_spot_checks(
        self,
        chosen: Sequence[tuple[str, str, int, datetime]],
        now: datetime,
        cursor_name: str,
        cursor_at: datetime,
    ) -> int:
        """Queue spot checks for `chosen` decisions (a decision already queued is left as it
        is) and move the sweep's cursor, in one transaction. Returns how many were new."""
        added = 0
        with self.engine.begin() as conn:
            if chosen:
                statement = (
                    _insert(conn, spot_checks)
                    .values(
                        [
                            {
                                "decision_id": decision_id,
                                "task": task,
                                "release": release,
                                "decided_at": decided_at,
                                "created_at": now,
                            }
                            for decision_id, task, release, decided_at in chosen
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["decision_id"])
                    .returning(spot_checks.c.decision_id)
                )
                added = len(conn.execute(statement).all())
            upsert = _insert(conn, quality_cursors).values(name=cursor_name, at=cursor_at)
            conn.execute(
                upsert.on_conflict_do_update(index_elements=["name"], set_={"at": cursor_at})
            )
        return added

    def spot_check(self, decision_id: str) -> SpotCheck | None:
        with database.read(self.engine) as conn:
            row = (
                conn.execute(select(spot_checks).where(spot_checks.c.decision_id == decision_id))
                .mappings()
                .first()
            )
        return _spot(row) if row is not None else None

    def open_spot_checks(
        self, tasks: Sequence[str], task: str | None, limit: int
    ) -> list[tuple[SpotCheck, Decision]]:
        """Spot checks without a verdict, oldest first, with their decisions."""
        checked = [c.label(f"spot_{c.name}") for c in spot_checks.c]
        statement = (
            select(decisions, *checked)
            .join(spot_checks, decisions.c.id == spot_checks.c.decision_id)
            .where(spot_checks.c.verdict.is_(None))
            .order_by(spot_checks.c.created_at, spot_checks.c.decision_id)
            .limit(limit)
        )
        if task is not None:
            statement = statement.where(spot_checks.c.task == task)
        if tasks:
            statement = statement.where(spot_checks.c.task.in_(tasks))
        with database.read(self.engine) as conn:
            rows = list(conn.execute(statement).mappings())
        return [
            (
                _spot({c.name: row[f"spot_{c.name}"] for c in spot_checks.c}),
                decision_queries.from_row(row),
            )
            for row in rows
        ]

    def open_counts(self, tasks: Sequence[str]) -> dict[str, int]:
        from sqlalchemy import func

        c = spot_checks.c
        statement = select(c.task, func.count()).where(c.verdict.is_(None)).group_by(c.task)
        if tasks:
            statement = statement.where(c.task.in_(tasks))
        with database.read(self.engine) as conn:
            return {task: int(n) for task, n in conn.execute(statement)}

    def judge_spot_check(
        self,
        decision_id: str,
        reviewer: str,
        kind: SpotVerdict,
        output: Mapping[str, Any] | None,
        now: datetime,
        details: Mapping[str, Any],
        check: Callable[[Decision], None],
    ) -> SpotCheck | None:
        """Record a verdict on an open spot check and its audit entry (`spot_check.<kind>`),
        after `check` (the duty rules) passed on the decision, in one transaction. None when
        the check was already judged (or there is none)."""
        with self.engine.begin() as conn:
            decision = decision_queries.get(conn, decision_id)
            if decision is None:
                return None
            check(decision)
            c = spot_checks.c
            changed = conn.execute(
                update(spot_checks)
                .where(c.decision_id == decision_id, c.verdict.is_(None))
                .values(
                    verdict=kind,
                    output=dict(output) if output is not None else None,
                    reviewer=reviewer,
                    at=now,
                )
            ).rowcount
            if changed != 1:
                return None
            audit.append(
                conn,
                actor=reviewer,
                action=f"spot_check.{kind}",
                task=decision.task,
                subject=decision_id,
                details=details,
            )
            row = (
                conn.execute(select(spot_checks).where(c.decision_id == decision_id))
                .mappings()
                .one()
            )
            return _spot(row)

    # ---- feedback

    def add_feedback(
        self,
        decision: Decision,
        actor: str,
        correct: bool,
        output: Mapping[str, Any] | None,
        comment: str | None,
        now: datetime,
    ) -> Feedback:
        """Store feedback on a decision and its audit entry (`decision.feedback`: whether it
        was correct and which fields the given output names; never the comment's text)."""
        with self.engine.begin() as conn:
            new_id = conn.execute(
                feedback.insert()
                .values(
                    decision_id=decision.id,
                    task=decision.task,
                    release=decision.release,
                    correct=correct,
                    output=dict(output) if output is not None else None,
                    comment=comment,
                    actor=actor,
                    at=now,
                )
                .returning(feedback.c.id)
            ).scalar_one()
            audit.append(
                conn,
                actor=actor,
                action="decision.feedback",
                task=decision.task,
                subject=decision.id,
                details={
                    "correct": correct,
                    "output_fields": sorted(output) if output is not None else [],
                    "comment": comment is not None,
                },
            )
            row = conn.execute(select(feedback).where(feedback.c.id == new_id)).mappings().one()
            return _feedback(row)

    def feedback_of(self, decision_id: str) -> list[Feedback]:
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(feedback)
                .where(feedback.c.decision_id == decision_id)
                .order_by(feedback.c.id)
            ).mappings()
            return [_feedback(r) for r in rows]

    def record(
        self,
        actor: str,
        action: str,
        task: str,
        subject: str,
        details: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """An audit entry of its own (a retraining run and its figures)."""
        with self.engine.begin() as conn:
            audit.append(
                conn, actor=actor, action=action, task=task, subject=subject, details=details
            )

    # ---- judgments (live accuracy, retraining)

    def judged(
        self, task: str, *, since: datetime | None = None, release: int | None = None
    ) -> list[Judged]:
        """Every judgment of the task's decisions (spot-check verdicts, then feedback, each
        oldest first): the model's output, whether the judgment agrees with it, the output
        judged right where known."""
        found: list[Judged] = []
        d = decisions.c
        spot = (
            select(spot_checks, d.route, d.output.label("model_output"), d.input)
            .join(decisions, d.id == spot_checks.c.decision_id)
            .where(spot_checks.c.task == task, spot_checks.c.verdict.is_not(None))
            .order_by(spot_checks.c.at, spot_checks.c.decision_id)
        )
        given = (
            select(feedback, d.route, d.output.label("model_output"), d.status, d.input)
            .join(decisions, d.id == feedback.c.decision_id)
            .where(feedback.c.task == task)
            .order_by(feedback.c.id)
        )
        if since is not None:
            spot = spot.where(spot_checks.c.at >= since)
            given = given.where(feedback.c.at >= since)
        if release is not None:
            spot = spot.where(spot_checks.c.release == release)
            given = given.where(feedback.c.release == release)
        with database.read(self.engine) as conn:
            for row in conn.execute(spot).mappings():
                found.append(_judged(row, row["verdict"] == "approve", "spot_check"))
            for row in conn.execute(given).mappings():
                found.append(_judged(row, bool(row["correct"]), "feedback"))
        return found

    # ---- drift

    def observed(
        self, task: str, release: int, since: datetime | None, limit: int
    ) -> list[Observed]:
        """The release's newest decisions (at most `limit`, none older than `since`), newest
        first."""
        c = decisions.c
        statement = (
            select(c.id, c.release, c.input, c.output, c.confidence, c.route, c.created_at)
            .where(c.task == task, c.release == release)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
        )
        if since is not None:
            statement = statement.where(c.created_at >= since)
        with database.read(self.engine) as conn:
            rows = conn.execute(statement).all()
        return [Observed(r[0], r[1], r[2], r[3], r[4], r[5], aware(r[6])) for r in rows]

    def save_profile(
        self, task: str, release: int, profile: Mapping[str, Any], now: datetime
    ) -> None:
        """Keep the release's reference profile (replacing an earlier one)."""
        with self.engine.begin() as conn:
            statement = _insert(conn, release_profiles).values(
                task=task, release=release, profile=dict(profile), created_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["task", "release"],
                    set_={"profile": dict(profile), "created_at": now},
                )
            )

    def profile(self, task: str, release: int) -> Mapping[str, Any] | None:
        c = release_profiles.c
        with database.read(self.engine) as conn:
            return conn.execute(
                select(c.profile).where(c.task == task, c.release == release)
            ).scalar_one_or_none()

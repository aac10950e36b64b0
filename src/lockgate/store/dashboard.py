"""The reads of the dashboard (`/ui/tasks/{task}`): roll-up cells merged into time buckets in
SQL, per-release totals, release changes from the audit log and how long each release was live.

Reads only; each method is one read transaction. The cells are summed in the database, so a
chart over seven days of minute cells moves one row per bucket, metric and key to Python, not
one per minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Integer, and_, case, cast, func, literal, select

from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.tables import (
    audit_log,
    decisions,
    eval_runs,
    feedback,
    history_cells,
    promotions,
    spot_checks,
)
from lockgate.watch.types import GAUGE_METRICS

RELEASE_ACTIONS = (
    "release.promote",
    "release.rollback",
    "release.canary_started",
    "release.canary_changed",
    "release.canary_stopped",
    "release.canary_rollback",
    "release.shadow_started",
    "release.shadow_stopped",
)
"""Audit actions that change what serves a task: marked on the dashboard's time axis."""


@dataclass(frozen=True)
class Merged:
    """One bucket's value of one metric and key, every release merged (a gauge: the largest)."""

    start: datetime
    metric: str
    key: str
    value: float


@dataclass(frozen=True)
class JudgmentCount:
    """Judgments of automated decisions of one release (in one time bucket, or all: None)
    from one source: how many, and how many agree with the model."""

    release: int
    bucket: datetime | None
    source: str
    n: int
    agree: int


@dataclass(frozen=True)
class ReleaseEvent:
    at: datetime
    action: str
    subject: str | None
    actor: str


@dataclass(frozen=True)
class LivePeriod:
    """A release made live (`promote` or `rollback` to it) at `start`, until `end` (None: still)."""

    release: int
    start: datetime
    end: datetime | None


def _bucket(conn: Connection, column: Any, step_seconds: int | None) -> Any:
    """The start (epoch seconds) of the bucket of `step_seconds` holding `column`, or NULL."""
    if step_seconds is None:
        return literal(None).label("bucket")
    epoch = _epoch(conn, column)
    return (epoch - epoch % step_seconds).label("bucket")


def _epoch(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    return cast(func.strftime("%s", column), Integer)


class DashboardRepository:
    """The dashboard's reads over one engine, and the audit entries of its buttons."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def series(
        self,
        task: str,
        start: datetime,
        end: datetime,
        step_seconds: int,
        metrics: Sequence[str],
    ) -> list[Merged]:
        """The task's cells in [start, end) of `metrics`, summed per bucket of `step_seconds`
        (aligned to the epoch), metric and key; a gauge keeps its largest sample."""
        h = history_cells.c
        with database.read(self.engine) as conn:
            epoch = _epoch(conn, h.bucket_start)
            bucket = (epoch - epoch % step_seconds).label("bucket")
            where = and_(h.task == task, h.bucket_start >= start, h.bucket_start < end)
            found: list[Merged] = []
            added = [m for m in metrics if m not in GAUGE_METRICS]
            gauges = [m for m in metrics if m in GAUGE_METRICS]
            for names, total in ((added, func.sum(h.value)), (gauges, func.max(h.value))):
                if not names:
                    continue
                rows = conn.execute(
                    select(bucket, h.metric, h.key, total)
                    .where(where, h.metric.in_(names))
                    .group_by(bucket, h.metric, h.key)
                )
                found.extend(
                    Merged(datetime.fromtimestamp(int(b), UTC), m, k, float(v or 0.0))
                    for b, m, k, v in rows
                )
        return found

    def release_totals(
        self, task: str, metrics: Sequence[str]
    ) -> dict[int, dict[str, dict[str, float]]]:
        """Every release's cells of `metrics` over all time: release -> metric -> key -> sum."""
        h = history_cells.c
        totals: dict[int, dict[str, dict[str, float]]] = {}
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(h.release, h.metric, h.key, func.sum(h.value))
                .where(h.task == task, h.metric.in_([m for m in metrics if m not in GAUGE_METRICS]))
                .group_by(h.release, h.metric, h.key)
            )
            for release, metric, key, value in rows:
                totals.setdefault(release, {}).setdefault(metric, {})[key] = float(value or 0.0)
        return totals

    def judgment_counts(
        self, task: str, since: datetime | None = None, step_seconds: int | None = None
    ) -> list[JudgmentCount]:
        """Judgments of the task's automated decisions counted in SQL, one per decision as
        `watch.quality.one_per_decision` picks it (its spot-check verdict, else its latest
        feedback), per release, source and (with `step_seconds`) bucket of the judgment's
        time; none before `since`. Spot checks are only ever queued for automated decisions
        (`QualityRepository.automated_since`), so they are counted without a join; feedback
        is joined to its decision for the route."""
        s, f, d = spot_checks.c, feedback.c, decisions.c
        found: list[JudgmentCount] = []
        with database.read(self.engine) as conn:
            spot_bucket = _bucket(conn, s.at, step_seconds)
            spot = (
                select(
                    s.release,
                    spot_bucket,
                    func.count(),
                    func.sum(case((s.verdict == "approve", 1), else_=0)),
                )
                .where(s.task == task, s.verdict.is_not(None))
                .group_by(s.release, spot_bucket)
            )
            later = feedback.alias("later")
            judged = spot_checks.alias("judged")
            given_bucket = _bucket(conn, f.at, step_seconds)
            given = (
                select(
                    f.release, given_bucket, func.count(), func.sum(case((f.correct, 1), else_=0))
                )
                .join(decisions, d.id == f.decision_id)
                .where(
                    f.task == task,
                    d.route == "auto",
                    ~select(later.c.id)
                    .where(later.c.decision_id == f.decision_id, later.c.id > f.id)
                    .exists(),
                    ~select(judged.c.decision_id)
                    .where(judged.c.decision_id == f.decision_id, judged.c.verdict.is_not(None))
                    .exists(),
                )
                .group_by(f.release, given_bucket)
            )
            if since is not None:
                spot = spot.where(s.at >= since)
                given = given.where(f.at >= since)
            for source, statement in (("spot_check", spot), ("feedback", given)):
                for release, bucket, n, agree in conn.execute(statement):
                    at = None if bucket is None else datetime.fromtimestamp(int(bucket), UTC)
                    found.append(JudgmentCount(release, at, source, int(n), int(agree or 0)))
        return found

    def release_events(self, task: str, start: datetime, end: datetime) -> list[ReleaseEvent]:
        """Audited changes of what serves the task between `start` and `end`, oldest first."""
        a = audit_log.c
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(a.at, a.action, a.subject, a.actor)
                .where(
                    a.task == task,
                    a.action.in_(RELEASE_ACTIONS),
                    a.at >= start,
                    a.at < end,
                )
                .order_by(a.id)
            )
            return [ReleaseEvent(aware(r[0]), r[1], r[2], r[3]) for r in rows]

    def live_periods(self, task: str) -> list[LivePeriod]:
        """When each release was made live and until when, oldest first."""
        p = promotions.c
        with database.read(self.engine) as conn:
            rows = conn.execute(select(p.number, p.at).where(p.task == task).order_by(p.id)).all()
        periods: list[LivePeriod] = []
        for index, (number, at) in enumerate(rows):
            end = aware(rows[index + 1][1]) if index + 1 < len(rows) else None
            periods.append(LivePeriod(number, aware(at), end))
        return periods

    def eval_figures(self, task: str) -> dict[int, dict[str, Any]]:
        """Each release's latest eval run: its dataset and metrics."""
        e = eval_runs.c
        found: dict[int, dict[str, Any]] = {}
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(e.release, e.dataset, e.metrics, e.created_at)
                .where(e.task == task)
                .order_by(e.created_at)
            )
            for release, dataset, metrics, _ in rows:
                found[release] = {"dataset": dataset, **dict(metrics or {})}
        return found

    def audit_latest(self, task: str, actions: Sequence[str]) -> dict[str, Any] | None:
        """The newest audit entry of the task with one of `actions`: at, action, actor and
        details (the details as stored: counts and figures, no free text is read back)."""
        a = audit_log.c
        with database.read(self.engine) as conn:
            row = conn.execute(
                select(a.at, a.action, a.actor, a.subject, a.details)
                .where(a.task == task, a.action.in_(list(actions)))
                .order_by(a.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return {
            "at": aware(row[0]),
            "action": row[1],
            "actor": row[2],
            "subject": row[3],
            "details": dict(row[4] or {}),
        }

    def record(self, actor: str, action: str, task: str, details: Mapping[str, Any]) -> None:
        """An audit entry of a dashboard button (a retraining asked for, or its failure)."""
        with self.engine.begin() as conn:
            audit.append(
                conn, actor=actor, action=action, task=task, subject=task, details=dict(details)
            )

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

from sqlalchemy import Connection, Engine, Integer, and_, cast, func, select

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
class Judgment:
    """One automated decision's judgment as live accuracy counts it, without its input or
    output: the release, when it was judged, whether it agrees, and where it came from."""

    decision_id: str
    release: int
    at: datetime
    agrees: bool
    source: str


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

    def judgments(self, task: str) -> list[Judgment]:
        """The judgments of the task's automated decisions, one per decision as
        `watch.quality.one_per_decision` picks it (its spot-check verdict, else its latest
        feedback), reading no input or output."""
        d, s, f = decisions.c, spot_checks.c, feedback.c
        with database.read(self.engine) as conn:
            spot = conn.execute(
                select(s.decision_id, s.release, s.at, s.verdict)
                .join(decisions, d.id == s.decision_id)
                .where(s.task == task, s.verdict.is_not(None), d.route == "auto")
            ).all()
            given = conn.execute(
                select(f.decision_id, f.release, f.at, f.correct)
                .join(decisions, d.id == f.decision_id)
                .where(f.task == task, d.route == "auto")
                .order_by(f.at, f.id)
            ).all()
        found = {
            row[0]: Judgment(row[0], row[1], aware(row[2]), row[3] == "approve", "spot_check")
            for row in spot
        }
        latest: dict[str, Judgment] = {}
        for row in given:
            if row[0] not in found:
                latest[row[0]] = Judgment(row[0], row[1], aware(row[2]), bool(row[3]), "feedback")
        return [*found.values(), *latest.values()]

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

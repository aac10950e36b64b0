"""The reads of the dashboard (`/ui/tasks/{task}`): roll-up cells merged into time buckets in
SQL, per-release totals, release changes from the audit log and how long each release was live.

Reads only; each method is one read transaction. The cells are summed in the database, from
the coarsest level that fits the chart's step (`store.history.spans`): a chart in steps of a
day sums day cells, in steps of two hours hour cells, and only a chart by the minute reads
minutes. Each chart moves one row per bucket, metric and key to Python.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, Select, bindparam, cast, func, literal_column, null, select

from lockgate.store import audit, database
from lockgate.store import history as levels
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


def _bucket(dialect: str, column: Any, step_seconds: int | None) -> Any:
    """The start (epoch seconds) of the bucket of `step_seconds` holding `column`, or NULL.
    Numbers written into the SQL: as parameters, the GROUP BY's copy of the expression is not
    the SELECT's to SQLite, which then computes it twice a row."""
    if step_seconds is None:
        return null().label("bucket")
    step = literal_column(str(int(step_seconds)), Integer)
    return ((_epoch(dialect, column) // step) * step).label("bucket")


def _epoch(dialect: str, column: Any) -> Any:
    """`column`'s time in whole seconds since the epoch. On SQLite from `julianday`, about
    three times faster than `strftime('%s')` and the same number: SQLite keeps a time in whole
    milliseconds, and half of one absorbs the rounding of the day fraction."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    days = func.julianday(column) - literal_column("2440587.5")
    return cast(days * literal_column("86400") + literal_column("0.0005"), Integer)


def _series(dialect: str, step: str, step_seconds: int, names: tuple[str, ...]) -> Select[Any]:
    """Cells of one level and `names` in [:lower, :upper) of task :task, summed (a gauge: the
    largest) per bucket, metric and key."""
    h = history_cells.c
    bucket = _bucket(dialect, h.bucket_start, step_seconds)
    total = func.max(h.value) if names[0] in GAUGE_METRICS else func.sum(h.value)
    return (
        select(bucket, h.metric, h.key, total)
        .where(
            h.task == bindparam("task"),
            h.step == step,
            h.bucket_start >= bindparam("lower"),
            h.bucket_start < bindparam("upper"),
            h.metric.in_(names),
        )
        .group_by(bucket, h.metric, h.key)
    )


def _judgments(
    dialect: str, step_seconds: int | None, since: bool
) -> tuple[Select[Any], Select[Any]]:
    """The spot checks and the feedback of task :task counted per release, bucket (with
    `step_seconds`) and verdict; since :since when asked."""
    s, f, d = spot_checks.c, feedback.c, decisions.c
    spot_bucket = _bucket(dialect, s.at, step_seconds)
    given_bucket = _bucket(dialect, f.at, step_seconds)
    # Not grouped by a NULL bucket: bound as a parameter, it made SQLite sort every row it
    # counted (ten times slower).
    spot_per = (spot_bucket,) if step_seconds is not None else ()
    given_per = (given_bucket,) if step_seconds is not None else ()
    # From an index alone: (task, at, release, verdict) over a range of time, (task, release,
    # verdict) over all of it. Judged checks only: a verdict and its time are set together.
    spot = (
        select(s.release, spot_bucket, s.verdict, func.count())
        .where(
            s.task == bindparam("task"),
            s.at >= bindparam("since") if since else s.verdict.is_not(None),
        )
        .group_by(s.release, *spot_per, s.verdict)
    )
    later = feedback.alias("later")
    judged = spot_checks.alias("judged")
    given = (
        select(f.release, given_bucket, f.correct, func.count())
        .join(decisions, d.id == f.decision_id)
        .where(
            f.task == bindparam("task"),
            d.route == "auto",
            ~select(later.c.id)
            .where(later.c.decision_id == f.decision_id, later.c.id > f.id)
            .exists(),
            ~select(judged.c.decision_id)
            .where(judged.c.decision_id == f.decision_id, judged.c.verdict.is_not(None))
            .exists(),
        )
        .group_by(f.release, *given_per, f.correct)
    )
    if since:
        given = given.where(f.at >= bindparam("since"))
    return spot, given


class DashboardRepository:
    """The dashboard's reads over one engine (`Store.dashboard`), and the audit entries of its
    buttons."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statements: dict[tuple[Any, ...], Any] = {}
        """The statements of the series and judgment counts, built once per shape with their
        values bound at each run: building one (and its cache key) cost more than running it."""

    def _built(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = build()
        return found

    def series(
        self,
        task: str,
        start: datetime,
        end: datetime,
        step_seconds: int,
        metrics: Sequence[str],
    ) -> list[Merged]:
        """The task's cells in [start, end) of `metrics`, summed per bucket of `step_seconds`
        (aligned to the epoch), metric and key; a gauge keeps its largest sample. Read from
        the coarsest level whose cells fit in the step, where it is kept."""
        dialect = self.engine.dialect.name
        added = tuple(m for m in metrics if m not in GAUGE_METRICS)
        gauges = tuple(m for m in metrics if m in GAUGE_METRICS)
        found: list[Merged] = []
        with database.snapshot(self.engine) as conn:  # the levels' starts and cells agree
            level = levels.level_of(step_seconds)
            for step, lower, upper in levels.spans(levels.complete_from(conn), level, start, end):
                for names in (added, gauges):
                    if not names:
                        continue
                    statement = self._built(
                        ("series", dialect, step, step_seconds, names),
                        functools.partial(_series, dialect, step, step_seconds, names),
                    )
                    rows = conn.execute(statement, {"task": task, "lower": lower, "upper": upper})
                    found.extend(
                        Merged(datetime.fromtimestamp(int(b), UTC), m, k, float(v or 0.0))
                        for b, m, k, v in rows
                    )
        return found

    def release_totals(
        self, task: str, metrics: Sequence[str]
    ) -> dict[int, dict[str, dict[str, float]]]:
        """Every release's cells of `metrics` over all time: release -> metric -> key -> sum
        (from the day cells, which are never dropped)."""
        h = history_cells.c
        totals: dict[int, dict[str, dict[str, float]]] = {}
        with database.read(self.engine) as conn:
            rows = conn.execute(
                select(h.release, h.metric, h.key, func.sum(h.value))
                .where(
                    h.task == task,
                    h.step == "day",
                    h.metric.in_([m for m in metrics if m not in GAUGE_METRICS]),
                )
                # Grouped by release last: grouped by it first, SQLite walks the primary key
                # (task, release, ...) through every level instead of the day cells' index.
                .group_by(h.metric, h.key, h.release)
            )
            for release, metric, key, value in rows:
                totals.setdefault(release, {}).setdefault(metric, {})[key] = float(value or 0.0)
        return totals

    def judgment_counts(
        self,
        task: str,
        since: datetime | None = None,
        step_seconds: int | None = None,
        *,
        spot_checks: bool = True,
    ) -> list[JudgmentCount]:
        """Judgments of the task's automated decisions counted in SQL, one per decision as
        `watch.quality.one_per_decision` picks it (its spot-check verdict, else its latest
        feedback), per release, source and (with `step_seconds`) bucket of the judgment's
        time; none before `since`; feedback only without `spot_checks` (the dashboard reads
        the verdicts of spot checks per bucket from the history). Spot checks are only ever
        queued for automated decisions (`QualityRepository.automated_since`), so they are
        counted without a join, from an index alone; feedback is joined to its decision for
        the route."""
        dialect = self.engine.dialect.name
        spot, given = self._built(
            ("judgments", dialect, step_seconds, since is not None),
            lambda: _judgments(dialect, step_seconds, since is not None),
        )
        values = {"task": task, "since": since}
        tallies: dict[tuple[int, int | None, str], list[int]] = {}
        with database.read(self.engine) as conn:
            read = (("spot_check", spot),) if spot_checks else ()
            for source, statement in (*read, ("feedback", given)):
                for number, bucket, verdict, n in conn.execute(statement, values):
                    agrees = verdict == "approve" if source == "spot_check" else bool(verdict)
                    tally = tallies.setdefault((number, bucket, source), [0, 0])
                    tally[0] += int(n)
                    tally[1] += int(n) if agrees else 0
        return [
            JudgmentCount(
                number,
                None if bucket is None else datetime.fromtimestamp(int(bucket), UTC),
                source,
                n,
                agree,
            )
            for (number, bucket, source), (n, agree) in tallies.items()
        ]

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

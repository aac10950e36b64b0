"""The dashboard's data: one task's overview over a time range, read from the roll-up history
(`watch.history`), live accuracy (`watch.quality`), drift (`watch.reference`), alert state
(`watch.alerts`) and the release and audit tables. Blocking: the page runs it in a thread.

Only counts, rates, costs and times reach the page: never an input or an output.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from lockgate.decide.decision import utcnow
from lockgate.decide.task import TaskSpec
from lockgate.errors import LockgateError
from lockgate.rollout.release import Release
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.ui import charts
from lockgate.server.ui.charts import Mark, Point
from lockgate.store.dashboard import DashboardRepository, JudgmentCount, Merged
from lockgate.watch import history
from lockgate.watch.drift import DriftReport
from lockgate.watch.quality import Accuracy

log = logging.getLogger("lockgate.ui")


@dataclass(frozen=True)
class Range:
    name: str
    seconds: int
    step: int
    time_format: str


RANGES: Mapping[str, Range] = {
    r.name: r
    for r in (
        Range("1h", 3600, 60, "%H:%M"),
        Range("24h", 86400, 3600, "%H:%M"),
        Range("7d", 7 * 86400, 21600, "%d %b"),
        Range("30d", 30 * 86400, 86400, "%d %b"),
    )
}
DEFAULT_RANGE = "24h"
METRICS = ("decisions", "route", "failed", "cost", "latency", "backlog", "spot_check")
SLOW_SECONDS = 300.0
"""How long a drift report is shown before it is computed again (behind the page, which shows
the kept one meanwhile, with its time): drift reads and embeds up to `drift_window_decisions`
decisions."""
RETRAIN_ACTIONS = ("release.retrain_requested", "release.retrain", "release.retrain_failed")
"""Audit actions of a retraining: asked for on the dashboard, done (`lockgate retrain`), failed."""
RETRAIN_CONDITIONS = ("drift", "accuracy")
"""A firing alert whose condition names one of these offers the retrain button."""


@dataclass(frozen=True)
class Figure:
    """One headline figure and its chart."""

    key: str
    title: str
    value: str
    note: str
    chart: Markup
    rows: tuple[tuple[str, str], ...]
    """The chart's numbers as table rows: bucket start, value."""


@dataclass(frozen=True)
class ReleaseRow:
    ref: str
    number: int
    stage: str
    created_at: datetime
    eval: Mapping[str, Any]
    live_accuracy: Accuracy | None
    decisions: int
    automation: float | None
    cost_per_decision: float | None
    latency_p95_ms: float | None
    live_for: timedelta
    live_now: bool


@dataclass(frozen=True)
class FiringAlert:
    rule: str
    condition: str
    severity: str
    value: float | None
    threshold: float | None
    comparison: str
    since: datetime | None
    offers_retrain: bool


@dataclass(frozen=True)
class Overview:
    task: str
    range: Range
    start: datetime
    end: datetime
    live: Release | None
    figures: tuple[Figure, ...]
    marks: tuple[Mark, ...]
    releases: tuple[ReleaseRow, ...]
    releases_at: datetime
    """When the release table was computed."""
    alerts: tuple[FiringAlert, ...]
    alerts_note: str | None
    drift: DriftReport | None
    drift_note: str | None
    drift_at: datetime | None
    retrain: Mapping[str, Any] | None
    """The newest retraining run of the task (audit `release.retrain`), or None."""


@dataclass
class Kept:
    """Computed values kept per key for `seconds` (0: never kept), shared by the threads that
    render pages; a failed computation (a `LockgateError`) is kept as its message, or raised
    (`keep_errors=False`)."""

    seconds: float
    keep_errors: bool = True
    """False: a failed computation raises, and nothing is kept."""
    refresh_behind: bool = False
    """True: a value older than `seconds` is still given (with the time it was computed, which
    the page shows), and computed again in a thread of its own, one at a time per key; only a
    key never computed is computed by the caller."""
    clock: Callable[[], float] = time.monotonic
    _kept: dict[Any, tuple[float, datetime, Any, str | None]] = field(default_factory=dict)
    _refreshing: set[Any] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any, compute: Callable[[], Any]) -> tuple[Any, str | None, datetime]:
        """The value (None when it failed), the failure's message, and when it was computed."""
        with self._lock:
            kept = self._kept.get(key)
            stale = kept is not None and self.clock() - kept[0] >= self.seconds
            behind = stale and self.refresh_behind and key not in self._refreshing
            if behind:
                self._refreshing.add(key)
        if kept is not None and (not stale or self.refresh_behind):
            if behind:
                threading.Thread(
                    target=self._refresh, args=(key, compute), name="dashboard-refresh", daemon=True
                ).start()
            return kept[2], kept[3], kept[1]
        return self._compute(key, compute)

    def _compute(self, key: Any, compute: Callable[[], Any]) -> tuple[Any, str | None, datetime]:
        value: Any = None
        note: str | None = None
        try:
            value = compute()
        except LockgateError as exc:
            if not self.keep_errors:
                raise
            note = exc.message + (f"; {exc.hint}" if exc.hint else "")
        at = utcnow()
        if self.seconds > 0:
            with self._lock:
                self._kept[key] = (self.clock(), at, value, note)
        return value, note, at

    def _refresh(self, key: Any, compute: Callable[[], Any]) -> None:
        try:
            self._compute(key, compute)
        except Exception:  # a thread of its own: the stale value stays, the next get tries again
            log.exception("ui.dashboard_refresh_failed")
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def forget(self, task: str) -> None:
        with self._lock:
            for key in [k for k in self._kept if k[0] == task]:
                del self._kept[key]


# ---- formatting

NONE = "\u2013"
"""What a figure with no value shows (an en dash)."""


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def per_minute(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 1:
        return f"{value:.2f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def ms(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f} ms"


def count(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def plural(n: float, word: str) -> str:
    return word if n == 1 else word + "s"


def axis(value: float) -> str:
    """A y-axis label: short, no trailing zeros."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def duration(value: timedelta) -> str:
    return age(value.total_seconds()) if value.total_seconds() > 0 else "never"


# ---- assembly


def _buckets(
    merged: Sequence[Merged],
) -> dict[datetime, dict[str, dict[str, float]]]:
    found: dict[datetime, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float))
    )
    for m in merged:
        found[m.start][m.metric][m.key] += m.value
    return found


def _total(cells: Mapping[str, Mapping[str, float]], metric: str, key: str = "") -> float:
    return float(cells.get(metric, {}).get(key, 0.0))


@dataclass(frozen=True)
class Judged:
    """Live accuracy of one release: its judgments, and how many came from each source."""

    overall: Accuracy
    spot_checks: int
    feedback: int


def live_accuracy(counts: Sequence[JudgmentCount]) -> dict[int, Judged]:
    """Per release, the agreement of the judgments of its automated decisions (as
    `watch.quality.live_accuracy_of` counts it, without the per-label split)."""
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for c in counts:
        t = tallies[c.release]
        t[0] += c.n
        t[1] += c.agree
        t[2] += c.n if c.source == "spot_check" else 0
        t[3] += c.n if c.source == "feedback" else 0
    return {r: Judged(Accuracy(t[0], t[1]), t[2], t[3]) for r, t in tallies.items()}


def overview(
    runtime: Runtime,
    principal: Principal,
    task: str,
    range_name: str,
    slow: Kept,
    tasks: Mapping[str, TaskSpec] | None = None,
    now: datetime | None = None,
) -> Overview:
    """The task's overview over the range `range_name` (`RANGES`); `tasks` are the task files
    when the caller has read them already. `slow` keeps the drift report for a while
    (`SLOW_SECONDS`)."""
    principal.require("read_tasks", task)
    # runtime.task: a 404 for a task not in the project
    spec = tasks[task] if tasks is not None and task in tasks else runtime.task(task)
    chosen = RANGES[range_name]
    now = now or utcnow()
    start = history.bucket_start(now - timedelta(seconds=chosen.seconds), chosen.step)
    reads = runtime.store.dashboard
    per_bucket = _buckets(reads.series(task, start, now, chosen.step, METRICS))
    starts: list[datetime] = []
    at = start
    while at < now:
        starts.append(at)
        at += timedelta(seconds=chosen.step)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for cells in per_bucket.values():
        for metric, keys in cells.items():
            if metric == "backlog":
                continue
            for key, value in keys.items():
                totals[metric][key] += value

    live = runtime.store.releases.live(task)
    # Every release's live accuracy: the live one's figure and the release table's column.
    accuracy = live_accuracy(reads.judgment_counts(task))
    events = reads.release_events(task, start, now)
    marks = tuple(
        Mark(
            e.at,
            charts.MARKS.get(e.action, ("•", e.action))[0],
            f"{e.at:%Y-%m-%d %H:%M} UTC: {charts.MARKS.get(e.action, ('', e.action))[1]} "
            f"{e.subject or ''} by {e.actor}".strip(),
        )
        for e in events
    )

    def chart(
        key: str,
        title: str,
        value: str,
        note: str,
        values: Sequence[float | None],
        shown: Callable[[float], str],
        top: float | None = None,
    ) -> Figure:
        points = [Point(s, v) for s, v in zip(starts, values, strict=True)]
        known = [v for v in values if v is not None]
        summary = (
            f"{title} over the last {chosen.name} in steps of "
            f"{history.step_name(chosen.step)}: "
            + (
                f"lowest {shown(min(known))}, highest {shown(max(known))}, latest "
                f"{shown(known[-1])}"
                if known
                else "no data"
            )
            + (f"; {len(marks)} release change(s) marked" if marks else "")
        )
        svg = charts.svg(
            f"chart-{key}",
            title,
            summary,
            points,
            start,
            now,
            marks,
            shown,
            top=top,
            time_format=chosen.time_format,
        )
        rows = tuple(
            (f"{p.start:%Y-%m-%d %H:%M}", shown(p.value))
            for p in points
            if p.value is not None and (p.start in per_bucket or p.start in judged_per)
        )
        return Figure(key, title, value, note, svg, rows)

    def cells_of(s: datetime) -> Mapping[str, Mapping[str, float]]:
        return per_bucket.get(s, {})

    step_minutes = chosen.step / 60
    decisions = [_total(cells_of(s), "decisions") for s in starts]
    total_decisions = _total(totals, "decisions")
    auto_total = _total(totals, "route", "auto")
    failed_total = _total(totals, "failed")
    cost_total = _total(totals, "cost")
    days = chosen.seconds / 86400

    def rate(metric: str, key: str) -> list[float | None]:
        return [
            _total(cells_of(s), metric, key) / d if d else None
            for s, d in zip(starts, decisions, strict=True)
        ]

    backlog_now = runtime.store.history.backlog(task)
    waiting = sum(b.count for b in backlog_now)
    oldest_at = min((b.oldest_at for b in backlog_now if b.oldest_at), default=None)
    oldest = (now - oldest_at).total_seconds() if oldest_at else None
    backlog_values: list[float | None] = [
        cells_of(s).get("backlog", {}).get("count") for s in starts
    ]

    # Judged per bucket: the spot checks' verdicts from the history (rolled up like the
    # decisions), the feedback counted now (a later word on a decision replaces an earlier).
    judged_per: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for bucket, cells in per_bucket.items():
        checks = cells.get("spot_check", {})
        if sum(checks.values()):
            judged_per[bucket][0] += int(sum(checks.values()))
            judged_per[bucket][1] += int(checks.get("approve", 0))
    for c in reads.judgment_counts(task, start, chosen.step, spot_checks=False):
        if c.bucket is not None:
            judged_per[c.bucket][0] += c.n
            judged_per[c.bucket][1] += c.agree
    now_judged = accuracy.get(live.number) if live is not None else None
    if now_judged is not None and now_judged.overall.n:
        low, high = now_judged.overall.interval
        acc_value = pct(now_judged.overall.rate)
        acc_note = (
            f"95% interval {pct(low)} to {pct(high)}, {now_judged.overall.n} judged "
            f"({now_judged.spot_checks} spot checks, {now_judged.feedback} feedback) "
            f"of {live.ref if live else task}"
        )
    else:
        acc_value = NONE
        acc_note = "no spot check or feedback on the live release's automated decisions yet"

    figures = (
        chart(
            "decisions",
            "Decisions per minute",
            per_minute(total_decisions / (chosen.seconds / 60)),
            f"{count(total_decisions)} {plural(total_decisions, 'decision')} in the last "
            f"{chosen.name}",
            [d / step_minutes for d in decisions],
            axis,
        ),
        chart(
            "automation",
            "Automation rate",
            pct(auto_total / total_decisions if total_decisions else None),
            f"{count(auto_total)} decided without a person",
            rate("route", "auto"),
            lambda v: f"{v * 100:.0f}%",
            top=1.0,
        ),
        chart(
            "backlog",
            "Review backlog",
            count(waiting),
            f"oldest waiting {age(oldest)}" if waiting else "nothing waiting",
            backlog_values,
            axis,
        ),
        chart(
            "accuracy",
            "Live accuracy",
            acc_value,
            acc_note,
            [judged_per[s][1] / judged_per[s][0] if s in judged_per else None for s in starts],
            lambda v: f"{v * 100:.0f}%",
            top=1.0,
        ),
        chart(
            "failures",
            "Failure rate",
            pct(failed_total / total_decisions if total_decisions else None),
            f"{count(failed_total)} failed",
            [
                (_total(cells_of(s), "failed") / d) if d else None
                for s, d in zip(starts, decisions, strict=True)
            ],
            lambda v: f"{v * 100:.1f}%",
        ),
        chart(
            "cost",
            "Cost per day",
            usd(cost_total / days),
            f"{usd(cost_total / total_decisions if total_decisions else None)} per decision",
            [_total(cells_of(s), "cost") * 86400 / chosen.step for s in starts],
            lambda v: "$" + axis(v),
        ),
        chart(
            "latency",
            "Latency p95",
            ms(history.quantile(totals.get("latency", {}), 0.95)),
            f"p50 {ms(history.quantile(totals.get('latency', {}), 0.5))}",
            [history.quantile(cells_of(s).get("latency", {}), 0.95) for s in starts],
            axis,
        ),
    )

    # Every render: the day cells and one index of the spot checks make it a few reads.
    releases_at = utcnow()
    releases = release_rows(runtime, reads, task, accuracy, releases_at)
    alerts, alerts_note = firing_alerts(runtime, task, spec)
    drift: DriftReport | None = None
    drift_note: str | None = "no live release"
    drift_at: datetime | None = None
    if live is not None:
        settings = runtime.settings

        def compute() -> DriftReport:
            from lockgate.watch.reference import check_drift

            loaded = runtime.release_runtime(task, live.number)
            return check_drift(
                runtime.store.quality,
                loaded,
                now=utcnow(),
                hours=settings.drift_window_hours,
                decisions=settings.drift_window_decisions,
            )

        drift, drift_note, drift_at = slow.get((task, "drift", live.number), compute)
    retrain = reads.audit_latest(task, RETRAIN_ACTIONS)
    return Overview(
        task=task,
        range=chosen,
        start=start,
        end=now,
        live=live,
        figures=figures,
        marks=marks,
        releases=releases,
        releases_at=releases_at,
        alerts=alerts,
        alerts_note=alerts_note,
        drift=drift,
        drift_note=drift_note,
        drift_at=drift_at,
        retrain=retrain,
    )


def release_rows(
    runtime: Runtime,
    reads: DashboardRepository,
    task: str,
    accuracy: Mapping[int, Judged],
    now: datetime,
) -> tuple[ReleaseRow, ...]:
    """One row per release, newest first."""
    totals = reads.release_totals(task, ("decisions", "route", "cost", "latency"))
    evals = reads.eval_figures(task)
    live_for: dict[int, timedelta] = defaultdict(timedelta)
    for period in reads.live_periods(task):
        live_for[period.release] += (period.end or now) - period.start
    rows = []
    for release in sorted(runtime.store.releases.list_for(task), key=lambda r: -r.number):
        cells = totals.get(release.number, {})
        n = _total(cells, "decisions")
        judged = accuracy.get(release.number)
        rows.append(
            ReleaseRow(
                ref=release.ref,
                number=release.number,
                stage=release.stage,
                created_at=release.created_at,
                eval=evals.get(release.number, {}),
                live_accuracy=judged.overall if judged is not None else None,
                decisions=int(n),
                automation=_total(cells, "route", "auto") / n if n else None,
                cost_per_decision=_total(cells, "cost") / n if n else None,
                latency_p95_ms=history.quantile(cells.get("latency", {}), 0.95),
                live_for=live_for.get(release.number, timedelta()),
                live_now=release.stage == "live",
            )
        )
    return tuple(rows)


def firing_alerts(
    runtime: Runtime, task: str, spec: TaskSpec
) -> tuple[tuple[FiringAlert, ...], str | None]:
    """The task's rules firing now, with their severity and threshold; a note when the rules
    cannot be read (the state is still shown)."""
    from lockgate.server.history import alert_rules

    states = [s for s in runtime.store.alerts.states().values() if s.task == task and s.firing]
    note = None
    rules: dict[str, Any] = {}
    try:
        rules = {r.name: r for r in alert_rules(runtime, {task: spec})}
    except LockgateError as exc:
        note = f"the alert rules cannot be read: {exc.message}"
    found = []
    for state in sorted(states, key=lambda s: (s.started_at is None, s.started_at, s.rule)):
        rule = rules.get(state.rule)
        condition = rule.condition.name if rule is not None else state.rule
        found.append(
            FiringAlert(
                rule=state.rule,
                condition=condition,
                severity=rule.severity if rule is not None else NONE,
                value=state.value,
                threshold=rule.threshold if rule is not None else None,
                comparison=rule.condition.comparison if rule is not None else "",
                since=state.started_at,
                offers_retrain=any(word in condition for word in RETRAIN_CONDITIONS),
            )
        )
    return tuple(found), note

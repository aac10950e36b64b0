"""Alert conditions on live quality: `live_accuracy` and `drift` (registered in
`watch.alerts.CONDITIONS`).

Both read the store through `ctx.extra`, which the edge fills in (`server/history.py`):
`quality` (`Store.quality`: judgments, decisions, profiles) and `releases` (`Store.releases`:
the live release). Without them, or without enough to judge, a measure returns None and the
rule neither fires nor resolves.

- `live_accuracy`: the lower bound of the 95% Wilson interval of live accuracy (spot checks
  and feedback on automated decisions judged in the window) minus the task's target: the
  gate's `min_auto_accuracy`, else its `min_accuracy`, else 0.9. It fires below 0: the
  automated share may be worse than the target. At least `MIN_JUDGED` (50) judgments: fewer
  cannot show a target of 0.9 even when every one agrees (30 of 30 has a lower bound of 0.89).
- `drift`: the verdict of `lockgate drift` on the live release's decisions of the window as a
  number (0 ok, 1 warn, 2 drift); it fires above 1.5, on `drift`. The feature-space
  similarity is left out here (it needs the model loaded); the other signals are the same.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lockgate.stats import wilson_interval
from lockgate.watch.conditions import AlertContext, Condition
from lockgate.watch.drift import VERDICTS, drift_report
from lockgate.watch.quality import one_per_decision

if TYPE_CHECKING:
    from lockgate.decide.task import TaskSpec

MIN_JUDGED = 50
DEFAULT_TARGET = 0.9
DRIFT_DECISIONS = 1000


def target_accuracy(spec: TaskSpec) -> float:
    """The accuracy the task's automated share must reach: its gate's, else 0.9."""
    gate = spec.evaluation.gate
    if gate is not None and gate.min_auto_accuracy is not None:
        return gate.min_auto_accuracy
    if gate is not None and gate.min_accuracy is not None:
        return gate.min_accuracy
    return DEFAULT_TARGET


def live_accuracy(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    quality: Any = ctx.extra.get("quality")
    spec = ctx.tasks.get(task)
    if quality is None or spec is None:
        return None
    judged = [
        j
        for j in one_per_decision(quality.judged(task, since=ctx.now - window))
        if j.route == "auto"
    ]
    if len(judged) < MIN_JUDGED:
        return None
    low, _ = wilson_interval(sum(j.agrees for j in judged), len(judged))
    return low - target_accuracy(spec)


def drift_level(ctx: AlertContext, task: str, window: timedelta) -> float | None:
    quality: Any = ctx.extra.get("quality")
    releases: Any = ctx.extra.get("releases")
    spec = ctx.tasks.get(task)
    if quality is None or releases is None or spec is None:
        return None
    live = releases.live(task)
    if live is None:
        return None
    profile = quality.profile(task, live.number)
    if profile is None:
        return None
    observed = quality.observed(task, live.number, ctx.now - window, DRIFT_DECISIONS)
    report = drift_report(
        live.task_spec(),
        profile,
        observed,
        release=live.number,
        window_info={"n": len(observed)},
    )
    if report.note is not None:  # too few decisions to judge
        return None
    return float(VERDICTS.index(report.verdict))


LIVE_QUALITY: tuple[Condition, ...] = (
    Condition(
        "live_accuracy",
        live_accuracy,
        "lower bound of live accuracy (spot checks and feedback, 95% Wilson) minus the "
        "task's target accuracy (at least 50 judged automated decisions in the window)",
        comparison="below",
        threshold=0.0,
        window=timedelta(days=7),
        unit="share",
    ),
    Condition(
        "drift",
        drift_level,
        "the drift verdict of the live release's decisions in the window (0 ok, 1 warn, "
        "2 drift; at least 50 decisions)",
        threshold=1.5,
        window=timedelta(hours=24),
    ),
)

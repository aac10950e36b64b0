"""The suggest-mode report: may this task be automated yet, and for which labels?

In suggest mode every decision waits for a person and carries the model's suggestion (its
output and confidence) and the route gated automation would have taken. This report compares
the suggestions with the human verdicts:

- a decision counts when it was made in suggest mode (`metadata["suggested_route"]` is set),
  has a model output, and a human verdict made it final;
- approve (the suggestion stands) is agreement; a correction to a different output and a
  reject are disagreement;
- the label of a decision is the suggested value of the task's first output field;
- "would have been automated" re-applies the current live release's policy (threshold and
  rules, in gated mode) to the suggestion, its confidence and the input;
- a label is **ready** when at least `MIN_REVIEWED` of its decisions were reviewed and the
  one-sided 95% Wilson lower bound of their agreement is at least the target (default 0.95);
  otherwise **not yet**, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockgate.decide.policy import gated_route
from lockgate.review.types import ReviewState
from lockgate.rollout.release import Release

MIN_REVIEWED = 50
DEFAULT_TARGET = 0.95
_Z = 1.6448536269514722  # one-sided 95%


def wilson_lower(agree: int, n: int, z: float = _Z) -> float:
    """The Wilson score lower bound of a proportion (0 for no observations)."""
    if n == 0:
        return 0.0
    p = agree / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


@dataclass(frozen=True)
class Agreement:
    n: int
    agree: int
    automated: int
    """Of these, how many the current policy would have automated."""
    automated_agree: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.n if self.n else None

    @property
    def lower_bound(self) -> float:
        return wilson_lower(self.agree, self.n)

    @property
    def automated_share(self) -> float | None:
        return self.automated / self.n if self.n else None

    @property
    def automated_accuracy(self) -> float | None:
        return self.automated_agree / self.automated if self.automated else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviewed": self.n,
            "agree": self.agree,
            "agreement": _round(self.rate),
            "agreement_lower_bound": round(self.lower_bound, 4),
            "would_automate": self.automated,
            "would_automate_share": _round(self.automated_share),
            "would_automate_accuracy": _round(self.automated_accuracy),
        }


@dataclass(frozen=True)
class LabelReadiness:
    label: str
    figures: Agreement
    ready: bool
    why: str


@dataclass(frozen=True)
class SuggestReport:
    task: str
    target: float
    overall: Agreement
    labels: tuple[LabelReadiness, ...] = field(default=())
    threshold: float | None = None
    """The live release's auto_min_confidence used for "would have been automated"."""

    @property
    def ready_labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.labels if r.ready)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "target": self.target,
            "threshold": self.threshold,
            "rule": f"a label is ready when at least {MIN_REVIEWED} of its decisions were "
            "reviewed and the one-sided 95% Wilson lower bound of the agreement between "
            "suggestion and verdict is at least the target",
            "overall": self.overall.as_dict(),
            "labels": {
                r.label: {
                    **r.figures.as_dict(),
                    "verdict": "ready" if r.ready else "not yet",
                    "why": r.why,
                }
                for r in self.labels
            },
            "ready_labels": list(self.ready_labels),
        }


@dataclass
class _Tally:
    n: int = 0
    agree: int = 0
    automated: int = 0
    automated_agree: int = 0

    def add(self, agrees: bool, automated: bool) -> None:
        self.n += 1
        self.agree += agrees
        self.automated += automated
        self.automated_agree += agrees and automated

    def frozen(self) -> Agreement:
        return Agreement(self.n, self.agree, self.automated, self.automated_agree)


def build_report(
    task: str,
    reviewed: Sequence[ReviewState],
    live: Release | None,
    *,
    target: float = DEFAULT_TARGET,
) -> SuggestReport:
    """Agreement figures over the task's reviewed suggest-mode decisions."""
    policy = live.task_spec().policy if live is not None else None
    overall = _Tally()
    by_label: dict[str, _Tally] = {}
    for state in reviewed:
        decision = state.decision
        route = decision.metadata.get("suggested_route")
        suggestion = _suggestion(state)
        if route is None or suggestion is None or not state.verdicts:
            continue
        agrees = decision.status != "rejected" and dict(decision.output or {}) == suggestion
        if policy is not None:
            route = gated_route(policy, suggestion, decision.confidence, decision.input).route
        automated = route == "auto"
        overall.add(agrees, automated)
        label = str(next(iter(suggestion.values()))) if suggestion else "?"
        by_label.setdefault(label, _Tally()).add(agrees, automated)
    labels = tuple(
        _readiness(label, tally.frozen(), target) for label, tally in sorted(by_label.items())
    )
    return SuggestReport(
        task=task,
        target=target,
        overall=overall.frozen(),
        labels=labels,
        threshold=policy.auto_min_confidence if policy is not None else None,
    )


def _suggestion(state: ReviewState) -> dict[str, Any] | None:
    """The model's output: what the decision held before the first verdict."""
    before: Mapping[str, Any] | None = state.verdicts[0].previous_output if state.verdicts else None
    return dict(before) if before is not None else None


def _readiness(label: str, figures: Agreement, target: float) -> LabelReadiness:
    if figures.n < MIN_REVIEWED:
        return LabelReadiness(
            label, figures, False, f"{figures.n} reviewed; at least {MIN_REVIEWED} are needed"
        )
    if figures.lower_bound < target:
        return LabelReadiness(
            label,
            figures,
            False,
            f"agreement lower bound {figures.lower_bound:.3f} is below the target {target:.3f}",
        )
    return LabelReadiness(
        label,
        figures,
        True,
        f"agreement lower bound {figures.lower_bound:.3f} >= target {target:.3f} "
        f"over {figures.n} reviewed",
    )


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None

"""Deterministic scorers: from scored items (expected vs. decided) to figures.

A scorer is a function `(items, context) -> Score`. Scorers register through the entry-point
group `lockgate.scorers`, the built-ins below exactly like a third-party package's:

    [project.entry-points."lockgate.scorers"]
    my_scorer = "my_package.scoring:my_scorer"

Every registered scorer runs on every eval; its `metrics` join the headline figures, its
`report` the detailed report. `better` says, per metric, whether a higher ("max") or a lower
("min") value is better: across repeats the worst value is kept.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, cast

import numpy as np

from lockgate.decide.task import OUT_OF_SCOPE, TaskSpec
from lockgate.errors import ConfigError
from lockgate.stats import percentile

GROUP = "lockgate.scorers"
Better = Literal["max", "min"]


@dataclass(frozen=True)
class Scored:
    """One dataset row as the release decided it."""

    expected: Mapping[str, Any]
    output: Mapping[str, Any] | None
    confidence: float | None
    route: str | None
    status: str
    eligible: bool
    """True when only the confidence threshold stood between this decision and `auto`: it has
    a valid output, the model did not judge the input out of scope, and no policy rule sent it
    to review or reject."""
    out_of_scope: bool = False
    """The model judged the input out of scope (`in_scope_pass`): review or reject at any
    threshold."""
    cost: float = 0.0
    latency_ms: float = 0.0
    valid_answers: int = 0
    invalid_answers: int = 0
    row: int = 0
    """The dataset row it came from (`DatasetRow.seq`: the Nth record of the file)."""

    def automated_at(self, threshold: float) -> bool:
        """Would a confidence threshold of `threshold` automate it?"""
        return self.eligible and self.confidence is not None and self.confidence >= threshold


@dataclass(frozen=True)
class ScoringContext:
    task: TaskSpec
    field: str
    """The output field that accuracy, F1, per-label figures and the curves are about."""
    tolerance: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def matches(self, name: str, expected: Any, predicted: Any) -> bool:
        if predicted is None:
            return False
        if self.task.output[name].type == "number":
            if isinstance(predicted, bool) or not isinstance(predicted, int | float):
                return False
            return abs(float(predicted) - float(expected)) <= self.tolerance.get(name, 0.0) + 1e-12
        return bool(predicted == expected)

    def correct(self, item: Scored) -> bool:
        if item.output is None:
            return False
        return self.matches(self.field, item.expected.get(self.field), item.output.get(self.field))

    @property
    def is_categorical(self) -> bool:
        return self.task.output[self.field].type != "number"

    def out_of_scope(self, item: Scored) -> bool:
        """Is the row's expected answer the reserved `__out_of_scope__` label? No output is
        right for it: automated, it is an error; sent to review or rejected, it is caught."""
        return item.expected.get(self.field) == OUT_OF_SCOPE


@dataclass(frozen=True)
class Score:
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    report: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    better: Mapping[str, Better] = dataclasses.field(default_factory=dict)


Scorer = Callable[[Sequence[Scored], ScoringContext], Score]


class ScorerRegistry:
    """Scorers by name, from entry points (or from a mapping, e.g. in tests)."""

    def __init__(self, scorers: Mapping[str, Scorer | EntryPoint]) -> None:
        self._entries = dict(scorers)

    @classmethod
    def discover(cls) -> ScorerRegistry:
        return cls({ep.name: ep for ep in entry_points(group=GROUP)})

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Scorer:
        entry = self._entries[name]
        if not isinstance(entry, EntryPoint):
            return entry
        try:
            loaded = cast(Scorer, entry.load())
        except Exception as exc:
            raise ConfigError(
                f"scorer plugin {name!r} ({entry.value}) failed to load: {type(exc).__name__}",
                hint="reinstall the package that provides it, or uninstall it",
            ) from None
        self._entries[name] = loaded
        return loaded

    def score(self, items: Sequence[Scored], context: ScoringContext) -> Score:
        """Run every scorer; a metric or report key claimed by two scorers is an error."""
        metrics: dict[str, Any] = {"n": len(items)}
        report: dict[str, Any] = {}
        better: dict[str, Better] = {}
        owner = {"n": "lockgate"}
        for name in self.names():
            score = self.get(name)(items, context)
            for source, target in ((score.metrics, metrics), (score.report, report)):
                for key, value in source.items():
                    if key in owner:
                        raise ConfigError(
                            f"scorers {owner[key]!r} and {name!r} both report {key!r}",
                            hint="uninstall one of the two scorer plugins",
                        )
                    owner[key] = name
                    target[key] = value
            better.update(score.better)
        return Score(metrics, report, better)


# ---------------------------------------------------------------- built-in scorers


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def classification(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Accuracy on the scored field; for categorical fields also macro-F1, per-label precision,
    recall, F1 and support, and the confusion matrix (rows: expected, columns: decided).

    Out-of-scope rows (expected `__out_of_scope__`) are left out of all of these: no answer is
    right for them, and the `out_of_scope` scorer measures how many were kept from automation.
    """
    items = [i for i in items if not context.out_of_scope(i)]
    n = len(items)
    hits = sum(context.correct(i) for i in items)
    metrics: dict[str, Any] = {"accuracy": _share(hits, n)}
    better: dict[str, Better] = {"accuracy": "max"}
    if not context.is_categorical:
        return Score({**metrics, "macro_f1": None, "per_label": {}}, {}, better)
    name = context.field
    truth = [_label(i.expected.get(name)) for i in items]
    decided = [_label(i.output.get(name)) if i.output is not None else None for i in items]
    order = {v: k for k, v in enumerate(context.task.output[name].values or ())}
    labels = sorted(
        {*truth, *(d for d in decided if d is not None)},
        key=lambda v: (order.get(v, len(order)), v),
    )
    pairs = Counter(zip(truth, decided, strict=True))
    per_label: dict[str, dict[str, Any]] = {}
    for label in labels:
        tp = pairs[(label, label)]
        support = sum(c for (t, _), c in pairs.items() if t == label)
        predicted = sum(c for (_, d), c in pairs.items() if d == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    macro = float(np.mean([p["f1"] for p in per_label.values()])) if per_label else None
    confusion = {
        "labels": labels,
        "matrix": [[pairs[(t, d)] for d in labels] for t in labels],
        "no_output": [pairs[(t, None)] for t in labels],
    }
    better["macro_f1"] = "max"
    return Score(
        {**metrics, "macro_f1": macro, "per_label": per_label}, {"confusion": confusion}, better
    )


def exact_match(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Per output field, the share of rows decided exactly as labeled (numbers within the
    task's `evaluation.tolerance`), and the share with every field right."""
    n = len(items)
    per_field = {
        name: _share(
            sum(
                i.output is not None
                and context.matches(name, i.expected.get(name), i.output.get(name))
                for i in items
            ),
            n,
        )
        for name in context.task.output
    }
    every = sum(
        i.output is not None
        and all(context.matches(k, i.expected.get(k), i.output.get(k)) for k in context.task.output)
        for i in items
    )
    return Score(
        {"exact_match": per_field, "exact_match_all": _share(every, n)},
        better={"exact_match_all": "max"},
    )


def routing(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Where decisions went (coverage = share routed `auto`), accuracy on the automated share,
    failures, and the coverage-versus-accuracy curve over thresholds 0.00 to 1.00."""
    n = len(items)
    auto = [i for i in items if i.route == "auto"]
    failed = sum(i.status == "failed" for i in items)
    curve = []
    for threshold in np.linspace(0.0, 1.0, 51):
        t = round(float(threshold), 2)
        chosen = [i for i in items if i.automated_at(t)]
        curve.append(
            (t, _share(len(chosen), n), _share(sum(map(context.correct, chosen)), len(chosen)))
        )
    return Score(
        {
            "coverage": _share(len(auto), n),
            "auto_accuracy": _share(sum(map(context.correct, auto)), len(auto)),
            "review_share": _share(sum(i.route == "review" for i in items), n),
            "reject_share": _share(sum(i.route == "reject" for i in items), n),
            "failed": failed,
            "failure_rate": _share(failed, n),
        },
        {"coverage_curve": curve},
        {
            "coverage": "max",
            "auto_accuracy": "max",
            "review_share": "min",
            "reject_share": "min",
            "failed": "min",
            "failure_rate": "min",
        },
    )


def out_of_scope(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Rows whose expected answer is `__out_of_scope__`: how many (`oos_n`) and the share of
    them not automated (`oos_caught`; None without such rows). An automated one also counts as
    an error in `auto_accuracy` (no output matches the reserved label)."""
    outside = [i for i in items if context.out_of_scope(i)]
    caught = sum(i.route != "auto" for i in outside)
    inside = [i for i in items if not context.out_of_scope(i)]
    return Score(
        {
            "oos_n": len(outside),
            "oos_caught": _share(caught, len(outside)),
            "in_scope_coverage": _share(sum(i.route == "auto" for i in inside), len(inside)),
        },
        better={"oos_caught": "max", "in_scope_coverage": "max"},
    )


def reliability(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Confidence against accuracy in ten bins (the reliability diagram), and the expected
    calibration error: the count-weighted mean gap between the two."""
    known = [i for i in items if i.output is not None and i.confidence is not None]
    bins = []
    gap = 0.0
    for k in range(10):
        low, high = k / 10, (k + 1) / 10
        inside = [
            i
            for i in known
            if low <= (i.confidence or 0.0) < high or (k == 9 and i.confidence == 1.0)
        ]
        confidence = float(np.mean([i.confidence for i in inside])) if inside else None
        accuracy = _share(sum(map(context.correct, inside)), len(inside))
        if confidence is not None and accuracy is not None:
            gap += len(inside) * abs(accuracy - confidence)
        bins.append(
            {
                "lower": low,
                "upper": high,
                "count": len(inside),
                "confidence": confidence,
                "accuracy": accuracy,
            }
        )
    return Score(
        {"calibration_error": gap / len(known) if known else None},
        {"reliability": bins},
        {"calibration_error": "min"},
    )


def schema_validity(items: Sequence[Scored], context: ScoringContext) -> Score:
    """The share of model answers that satisfied the output schema (before any repair)."""
    valid = sum(i.valid_answers for i in items)
    answers = valid + sum(i.invalid_answers for i in items)
    return Score({"schema_validity": _share(valid, answers)}, better={"schema_validity": "max"})


def cost_latency(items: Sequence[Scored], context: ScoringContext) -> Score:
    """Total cost, cost per decision, and p50/p95 latency of one decision in milliseconds."""
    n = len(items)
    cost = float(sum(i.cost for i in items))
    latencies = [i.latency_ms for i in items]
    return Score(
        {
            "cost": cost,
            "cost_per_decision": cost / n if n else None,
            "latency_p50_ms": percentile(latencies, 0.5),
            "latency_p95_ms": percentile(latencies, 0.95),
        },
        better={
            "cost": "min",
            "cost_per_decision": "min",
            "latency_p50_ms": "min",
            "latency_p95_ms": "min",
        },
    )


def _label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)

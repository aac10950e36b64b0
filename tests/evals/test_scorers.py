"""Scorers on small cases computed by hand."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from lockgate.decide.task import parse_task
from lockgate.errors import ConfigError
from lockgate.evals import scorers
from lockgate.evals.runner import scoring_context
from lockgate.evals.scorers import Score, Scored, ScorerRegistry, ScoringContext

TASK = parse_task(
    {
        "name": "t",
        "input": {"text": {"type": "string"}},
        "output": {
            "label": {"type": "enum", "values": ["a", "b", "c"]},
            "amount": {"type": "number"},
        },
        "models": [{"provider": "deterministic"}],
    },
    "tasks/t.yaml",
)
LABELS = ScoringContext(TASK, "label", {"amount": 0.01})


def item(expected: str, decided: str | None, **kw: Any) -> Scored:
    return Scored(
        expected={"label": expected, "amount": 1.0},
        output=None if decided is None else {"label": decided, "amount": 1.0},
        confidence=kw.pop("confidence", 0.9),
        route=kw.pop("route", "auto" if decided is not None else None),
        status=kw.pop("status", "decided" if decided is not None else "failed"),
        eligible=kw.pop("eligible", decided is not None),
        **kw,
    )


# expected a a b b c c / decided a b b b c a
SIX = [item("a", "a"), item("a", "b"), item("b", "b"), item("b", "b"), item("c", "c"),
       item("c", "a")]  # fmt: skip


def test_accuracy_macro_f1_and_per_label_figures_match_a_hand_count() -> None:
    score = scorers.classification(SIX, LABELS)
    assert score.metrics["accuracy"] == pytest.approx(4 / 6)
    per_label = score.metrics["per_label"]
    assert per_label["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert per_label["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert per_label["c"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert score.metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_the_confusion_matrix_has_expected_rows_and_decided_columns() -> None:
    score = scorers.classification([*SIX, item("c", None)], LABELS)
    confusion = score.report["confusion"]
    assert confusion["labels"] == ["a", "b", "c"]
    assert confusion["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert confusion["no_output"] == [0, 0, 1]


def test_a_decision_without_output_counts_as_wrong_and_lowers_recall() -> None:
    score = scorers.classification([*SIX, item("c", None)], LABELS)
    assert score.metrics["accuracy"] == pytest.approx(4 / 7)
    assert score.metrics["per_label"]["c"]["recall"] == pytest.approx(1 / 3)
    assert score.metrics["per_label"]["c"]["support"] == 3


def test_numbers_match_within_the_task_tolerance_and_not_beyond() -> None:
    def amount(expected: float, decided: float) -> Scored:
        return Scored(
            expected={"label": "a", "amount": expected},
            output={"label": "a", "amount": decided},
            confidence=0.9, route="auto", status="decided", eligible=True,
        )  # fmt: skip

    items = [amount(10.0, 10.005), amount(10.0, 10.02), amount(10.0, 9.99)]
    within = scorers.exact_match(items, LABELS)
    assert within.metrics["exact_match"] == {"label": 1.0, "amount": pytest.approx(2 / 3)}
    exact = scorers.exact_match(items, ScoringContext(TASK, "label"))
    assert exact.metrics["exact_match"]["amount"] == 0.0
    on_amount = scorers.classification(items, ScoringContext(TASK, "amount", {"amount": 0.01}))
    assert on_amount.metrics["accuracy"] == pytest.approx(2 / 3)
    assert on_amount.metrics["macro_f1"] is None  # no labels to average over for a number


def test_routing_figures_count_auto_review_and_failed_decisions() -> None:
    items = [
        item("a", "a", route="auto"),
        item("a", "b", route="auto"),
        item("b", "b", route="review", status="pending_review"),
        item("c", None),
    ]
    metrics = scorers.routing(items, LABELS).metrics
    assert metrics["coverage"] == 0.5
    assert metrics["auto_accuracy"] == 0.5
    assert metrics["review_share"] == 0.25
    assert metrics["failed"] == 1


def test_auto_accuracy_is_null_when_nothing_is_automated() -> None:
    metrics = scorers.routing([item("a", "a", route="review")], LABELS).metrics
    assert metrics["coverage"] == 0.0
    assert metrics["auto_accuracy"] is None


def test_the_coverage_curve_counts_eligible_items_at_or_above_each_threshold() -> None:
    items = [
        item("a", "a", confidence=0.95),
        item("a", "b", confidence=0.85),
        item("b", "b", confidence=0.5),
        item("c", "c", confidence=0.99, eligible=False),  # a rule sends it to review
    ]
    curve = {t: (c, a) for t, c, a in scorers.routing(items, LABELS).report["coverage_curve"]}
    assert curve[0.9] == (0.25, 1.0)
    assert curve[0.8] == (0.5, 0.5)
    assert curve[0.5] == (0.75, pytest.approx(2 / 3))
    assert curve[1.0] == (0.0, None)


def test_the_reliability_diagram_bins_confidence_against_accuracy() -> None:
    items = [item("a", "a", confidence=0.92), item("a", "b", confidence=0.97),
             item("b", "b", confidence=0.31)]  # fmt: skip
    score = scorers.reliability(items, LABELS)
    bins = score.report["reliability"]
    assert bins[9] == {"lower": 0.9, "upper": 1.0, "count": 2,
                       "confidence": pytest.approx(0.945), "accuracy": 0.5}  # fmt: skip
    assert bins[3]["count"] == 1 and bins[3]["accuracy"] == 1.0
    assert score.metrics["calibration_error"] == pytest.approx((2 * 0.445 + 0.69) / 3)


def test_schema_validity_is_the_share_of_model_answers_that_were_valid() -> None:
    items = [item("a", "a", valid_answers=1, invalid_answers=1), item("b", "b", valid_answers=1)]
    assert scorers.schema_validity(items, LABELS).metrics["schema_validity"] == pytest.approx(2 / 3)


def test_latency_percentiles_and_cost_per_decision() -> None:
    items = [item("a", "a", latency_ms=float(ms), cost=0.01) for ms in range(1, 101)]
    metrics = scorers.cost_latency(items, LABELS).metrics
    assert metrics["cost"] == pytest.approx(1.0)
    assert metrics["cost_per_decision"] == pytest.approx(0.01)
    assert metrics["latency_p50_ms"] == pytest.approx(50.5)
    assert metrics["latency_p95_ms"] == pytest.approx(95.05)


def test_the_built_in_scorers_are_registered_through_entry_points() -> None:
    names = ScorerRegistry.discover().names()
    for builtin in ("classification", "exact_match", "routing", "reliability", "schema_validity",
                    "cost_latency"):  # fmt: skip
        assert builtin in names


def _low_confidence_share(items: Sequence[Scored], context: ScoringContext) -> Score:
    low = sum(i.confidence is not None and i.confidence < 0.5 for i in items)
    return Score({"low_confidence_share": low / len(items)}, better={"low_confidence_share": "min"})


def test_a_custom_scorer_adds_its_figures_beside_the_built_in_ones() -> None:
    registry = ScorerRegistry(
        {"classification": scorers.classification, "low": _low_confidence_share}
    )
    score = registry.score([item("a", "a", confidence=0.2), item("b", "b")], LABELS)
    assert score.metrics["low_confidence_share"] == 0.5
    assert score.metrics["accuracy"] == 1.0
    assert score.metrics["n"] == 2
    assert score.better["low_confidence_share"] == "min"


def test_two_scorers_reporting_the_same_figure_is_an_error() -> None:
    def clash(items: Sequence[Scored], context: ScoringContext) -> Score:
        return Score({"accuracy": 1.0})

    registry = ScorerRegistry({"classification": scorers.classification, "clash": clash})
    with pytest.raises(ConfigError, match="'clash' and 'classification' both report 'accuracy'"):
        registry.score(SIX, LABELS)


def _task(evaluation: dict[str, Any]) -> Any:
    return parse_task(
        {
            "name": "t",
            "input": {"text": {"type": "string"}},
            "output": {
                "label": {"type": "enum", "values": ["a", "b"]},
                "amount": {"type": "number"},
            },
            "models": [{"provider": "deterministic"}],
            "evaluation": evaluation,
        },
        "tasks/t.yaml",
    )


def test_the_scored_field_and_tolerances_come_from_the_task_file() -> None:
    context = scoring_context(_task({"field": "amount", "tolerance": {"amount": 0.01}}))
    assert context.field == "amount"
    assert context.matches("amount", 10.0, 10.01)
    assert not context.matches("amount", 10.0, 10.02)
    assert scoring_context(_task({})).field == "label"


@pytest.mark.parametrize(
    ("evaluation", "problem"),
    [
        ({"field": "amout"}, "evaluation.field: 'amout' is not an output field"),
        ({"tolerance": {"label": 0.5}}, "tolerances apply to number output fields only"),
        ({"tolerance": {"amount": -1}}, "evaluation.tolerance.amount: must be 0 or more"),
    ],
)
def test_a_wrong_evaluation_setting_is_named(evaluation: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        scoring_context(_task(evaluation))

"""The combined provider: the local classifier and the embedding classifier (real MiniLM)
averaged or required to agree, calibrated by `lockgate train`, and surviving a failing member."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")

from lockgate.decide.policy import route
from lockgate.decide.task import TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    BatchProvider,
    Candidate,
    PreparedRequest,
    ProviderContext,
    ProviderError,
)
from lockgate.providers.classifier_training import HeldOut
from lockgate.providers.combined import (
    Calibration,
    CombinedBatchProvider,
    CombinedProvider,
    MemberAnswers,
    combine,
    fit_calibration,
    train_combined,
)
from lockgate.settings import Settings
from tests.providers.model_texts import OFF_TOPIC, task_data, write_training_csv

pytestmark = pytest.mark.slow

MEMBERS = [{"provider": "local-classifier"}, {"provider": "embedding-classifier", "threads": 1}]


def combined_task(method: str, members: list[dict[str, object]] | None = None, **kw: object):
    combine_spec: dict[str, object] = {"method": method, "models": members or MEMBERS, **kw}
    return parse_task(
        task_data([{"provider": "combined", "combine": combine_spec}]), "tasks/banking.yaml"
    )


def built(task: TaskSpec) -> CombinedProvider:
    """The task's combined model built without a project (its checks run before any file)."""
    settings = Settings(project_dir=Path("."), database_url="sqlite://")
    return CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))


@pytest.fixture(scope="module")
def mean_task() -> TaskSpec:
    return combined_task("mean")


@pytest.fixture(scope="module")
def mean_provider(mean_task: TaskSpec, settings: Settings, data: Path) -> CombinedProvider:
    report = train_combined(mean_task, mean_task.models[0], data, settings)
    assert report.sha256 is not None
    assert report.calibration.kind == "temperature"
    return CombinedProvider.from_spec(mean_task.models[0], ProviderContext(mean_task, settings))


def ask(provider: CombinedProvider, task: TaskSpec, texts: list[str]) -> list:
    assert isinstance(provider, BatchProvider)
    return list(provider.complete_batch([PreparedRequest(task, {"text": t}) for t in texts]))


def test_mean_pins_every_artifact_and_answers_in_batches(
    mean_provider: CombinedProvider, mean_task: TaskSpec, settings: Settings
) -> None:
    assert isinstance(mean_provider, CombinedBatchProvider)
    pinned = CombinedProvider.pinned_artifacts(
        mean_task.models[0], ProviderContext(mean_task, settings)
    )
    assert set(pinned) == {
        "models.0.local-classifier",
        "models.1.embedding-classifier",
        "combined",
    }
    answers = ask(mean_provider, mean_task, ["Someone stole my card on the bus"])
    assert answers[0].output == {"intent": "lost_or_stolen_card"}
    assert 0.0 < answers[0].confidence <= 1.0
    assert answers[0].note is None


def test_the_pinned_artifacts_are_used_not_the_latest(
    mean_task: TaskSpec, settings: Settings
) -> None:
    pinned = CombinedProvider.pinned_artifacts(
        mean_task.models[0], ProviderContext(mean_task, settings)
    )
    broken = {**pinned, "combined": "0" * 64}
    with pytest.raises(ConfigError, match="no combined calibration 000000000000"):
        CombinedProvider.from_spec(
            mean_task.models[0], ProviderContext(mean_task, settings, artifacts=broken)
        )


def test_an_off_topic_input_is_out_of_scope_through_the_combination(
    mean_provider: CombinedProvider, mean_task: TaskSpec
) -> None:
    answers = ask(mean_provider, mean_task, OFF_TOPIC[:4])
    assert sum(a.out_of_scope is not None for a in answers) >= 3
    assert all(a.confidence == 0.0 for a in answers if a.out_of_scope)


def test_a_failing_member_leaves_the_other_answer_with_its_own_confidence(
    settings: Settings, data: Path
) -> None:
    members = [
        {"provider": "embedding-classifier", "threads": 1},
        {
            "provider": "rules",
            "rules": [
                {
                    "if_matches": "(?i)stolen",
                    "then": {"intent": "lost_or_stolen_card"},
                    "confidence": 0.9,
                }
            ],
        },
    ]
    task = combined_task("mean", members, calibration="none")
    train_combined(task, task.models[0], data, settings)
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    alone = ask(provider, task, ["My new card still has not arrived after a week"])[0]
    assert alone.output == {"intent": "card_arrival"}
    assert alone.note == (
        "rules failed (no_rule_matched): the answer of embedding-classifier alone"
    )
    routing = route(task.policy, alone.output, alone.confidence, {}, note=alone.note)
    assert routing.reason.endswith(
        "(rules failed (no_rule_matched): the answer of embedding-classifier alone)"
    )
    both = ask(provider, task, ["My card was stolen yesterday"])[0]
    assert both.output == {"intent": "lost_or_stolen_card"}
    assert both.note is None


def test_agreement_sends_a_disagreement_to_review(settings: Settings, data: Path) -> None:
    members = [
        {"provider": "embedding-classifier", "threads": 1},
        {
            "provider": "rules",
            "rules": [{"if_matches": ".", "then": {"intent": "exchange_rate"}, "confidence": 0.99}],
        },
    ]
    task = combined_task("agreement", members, calibration="none")
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    agree, differ = ask(
        provider, task, ["What exchange rate will I get today?", "Someone stole my card"]
    )
    assert agree.output == {"intent": "exchange_rate"}
    assert agree.confidence > 0.99  # two confident members that agree: 1 - (1-p1)(1-p2)
    assert differ.confidence == 0.0
    assert "the models disagree on intent" in (differ.note or "")
    assert route(task.policy, differ.output, differ.confidence, {}).route == "review"


def test_every_member_failing_is_an_error_for_that_input() -> None:
    values = {"intent": ("a", "b")}
    dead = MemberAnswers("x", {"intent": [None]}, [None], ["timeout"])
    also = MemberAnswers("y", {"intent": [None]}, [None], ["provider_crash"])
    (result,) = combine("mean", Calibration("mean", "none", ()), values, [dead, also])
    assert isinstance(result, ProviderError)
    assert "x failed (timeout)" in str(result)


def test_the_async_path_combines_members_that_answer_one_at_a_time(
    settings: Settings, data: Path
) -> None:
    task = combined_task("mean", calibration="none")
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    answer = asyncio.run(
        CombinedProvider.complete(provider, PreparedRequest(task, {"text": "My card was stolen"}))
    )
    assert answer.output == {"intent": "lost_or_stolen_card"}


def test_temperature_calibration_cools_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 4
    truth = rng.integers(0, k, n)
    correct = rng.random(n) < 0.7  # right 70% of the time, but always 99% sure
    chosen = np.where(correct, truth, (truth + 1) % k)
    probs = np.full((n, k), 0.01 / (k - 1))
    probs[np.arange(n), chosen] = 0.99
    cal = fit_calibration("mean", "temperature", ["m1", "m2"], [probs, probs], truth)
    assert all(t > 1.5 for t in cal.member_temperatures)
    members = [MemberAnswers(m, {"label": list(probs)}, [None] * n, [None] * n) for m in "xy"]
    answers = combine("mean", cal, {"label": tuple("abcd")}, members)
    confidence = np.asarray([a.confidence for a in answers])  # type: ignore[union-attr]
    assert abs(confidence.mean() - 0.7) < 0.05


@pytest.mark.parametrize("method", ["mean", "geometric"])
def test_each_row_of_a_batch_is_answered_as_if_it_were_alone(method: str) -> None:
    """Rows every member answered are combined together, a row with a failed member on its
    own: the answers must not depend on the batch (or on a neighbour's failure)."""
    rng = np.random.default_rng(2)
    n, k = 6, 5
    first, second = rng.dirichlet(np.ones(k), n), rng.dirichlet(np.ones(k), n)
    cal = Calibration(
        method,  # type: ignore[arg-type]
        "isotonic",
        ("x", "y"),
        iso_x=(0.0, 0.5, 1.0),
        iso_y=(0.1, 0.4, 0.95),
        member_temperatures=(1.5, 0.8) if method == "mean" else (),
        member_weights=(0.7, 0.4) if method == "geometric" else (),
    )
    values = {"label": tuple("abcde")}
    failures = [None, None, "timeout", None, None, None]

    def members(rows: list[int]) -> list[MemberAnswers]:
        return [
            MemberAnswers("x", {"label": [first[i] for i in rows]}, [None] * len(rows),
                          [None] * len(rows)),
            MemberAnswers("y", {"label": [None if failures[i] else second[i] for i in rows]},
                          [None] * len(rows), [failures[i] for i in rows]),
        ]  # fmt: skip

    together = combine(method, cal, values, members(list(range(n))))  # type: ignore[arg-type]
    alone = [combine(method, cal, values, members([i]))[0] for i in range(n)]  # type: ignore[arg-type]
    assert together == alone
    # Independently, for the rows both members answered: each member at its temperature then
    # averaged (mean), or the members' logs weighted and renormalised (geometric); the
    # confidence through the isotonic map.
    if method == "mean":
        pooled = (softmax(np.log(first) / 1.5, axis=1) + softmax(np.log(second) / 0.8, axis=1)) / 2
    else:
        pooled = softmax(0.7 * np.log(first) + 0.4 * np.log(second), axis=1)
    for i in (0, 1, 3, 4, 5):
        answer = together[i]
        assert isinstance(answer, Candidate)
        best = int(np.argmax(pooled[i]))
        assert answer.output == {"label": "abcde"[best]}
        assert answer.confidence == pytest.approx(np.interp(pooled[i, best], cal.iso_x, cal.iso_y))
        assert answer.alternatives["label"][0][1] == pytest.approx(pooled[i, best])
    assert together[2].note == "y failed (timeout): the answer of x alone"  # type: ignore[union-attr]
    assert together[0].confidence != together[2].confidence  # type: ignore[union-attr]


def test_isotonic_calibration_maps_confidence_to_accuracy() -> None:
    rng = np.random.default_rng(1)
    n, k = 600, 3
    truth = rng.integers(0, k, n)
    sure = rng.random(n)
    correct = rng.random(n) < 0.5 + 0.5 * sure
    chosen = np.where(correct, truth, (truth + 1) % k)
    probs = np.full((n, k), 0.0)
    probs[np.arange(n), chosen] = 0.98
    probs[probs == 0] = 0.01
    cal = fit_calibration("mean", "isotonic", ["a", "b"], [probs, probs], truth)
    assert cal.kind == "isotonic"
    assert abs(float(cal.confidence(np.asarray([0.98]))[0]) - correct.mean()) < 0.05


def test_a_combination_needs_two_models() -> None:
    task = combined_task("mean", [{"provider": "local-classifier"}])
    with pytest.raises(ConfigError, match="list at least two models"):
        CombinedProvider.from_spec(
            task.models[0],
            ProviderContext(task, Settings(project_dir=Path("."), database_url="sqlite://")),
        )


def test_lockgate_train_fits_the_chain_and_a_release_pins_every_artifact(
    tmp_path: Path, database_url: str
) -> None:
    import yaml

    from tests.cli.kit import lockgate

    (tmp_path / "tasks").mkdir()
    spec = combined_task("mean").model_dump(mode="json", by_alias=True, exclude_none=True)
    (tmp_path / "tasks" / "banking.yaml").write_text(yaml.safe_dump(spec))
    write_training_csv(tmp_path / "train.csv")
    trained = lockgate("train", "banking", "--data", "train.csv", cwd=tmp_path,
                       database=database_url)  # fmt: skip
    assert "models.0 calibration (temperature" in trained.stdout
    lockgate("release", "create", "banking", cwd=tmp_path, database=database_url)
    shown = yaml.safe_load(
        lockgate("release", "show", "banking@1", cwd=tmp_path, database=database_url).stdout
    )
    assert set(shown["artifacts"]) == {
        "models.0.models.0.local-classifier",
        "models.0.models.1.embedding-classifier",
        "models.0.combined",
    }
    decided = lockgate("decide", "banking", "--release", "1", "--input",
                       '{"text": "Someone stole my card at the station"}', cwd=tmp_path,
                       database=database_url, check=False)  # fmt: skip
    assert "lost_or_stolen_card" in decided.stdout


def test_geometric_keeps_a_value_one_member_rules_out_unlikely() -> None:
    values = {"intent": ("a", "b", "c")}
    first = np.asarray([0.70, 0.29, 0.01])
    second = np.asarray([0.01, 0.40, 0.59])
    members = [
        MemberAnswers("x", {"intent": [first]}, [None], [None]),
        MemberAnswers("y", {"intent": [second]}, [None], [None]),
    ]
    (mean,) = combine("mean", Calibration("mean", "none", ()), values, members)
    (geometric,) = combine("geometric", Calibration("geometric", "none", ()), values, members)
    assert not isinstance(mean, ProviderError) and not isinstance(geometric, ProviderError)
    # The plain mean follows the member that is sure of "a"; the geometric mean picks "b",
    # the one value neither member rules out.
    assert mean.output == {"intent": "a"}
    assert geometric.output == {"intent": "b"}
    by_hand = np.sqrt(first * second)
    assert geometric.confidence == pytest.approx(by_hand[1] / by_hand.sum())


def test_an_unknown_method_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="must be mean, geometric or agreement, not 'median'"):
        built(combined_task("median"))


def routes_banking_and_flags_off_topic(provider: CombinedProvider, task: TaskSpec) -> None:
    """The trained chain routes two unseen banking texts and flags most off-topic ones."""
    stolen, rate, *off = ask(
        provider,
        task,
        ["My card was stolen on the bus", "What rate do you give for yen?", *OFF_TOPIC[:4]],
    )
    assert stolen.output == {"intent": "lost_or_stolen_card"}
    assert rate.output == {"intent": "exchange_rate"}
    assert 0.0 < stolen.confidence <= 1.0
    assert sum(a.out_of_scope is not None for a in off) >= 3


def test_geometric_is_trained_and_calibrated_with_one_temperature(
    mean_provider: CombinedProvider, settings: Settings, data: Path
) -> None:
    # The members are the ones the mean fixture trained; only the calibration is fitted here.
    task = combined_task("geometric")
    report = train_combined(task, task.models[0], data, settings, train_members=False)
    assert report.calibration.method == "geometric"
    assert report.calibration.kind == "temperature"
    assert report.calibration.member_temperatures == ()
    assert 0.2 <= report.calibration.temperature <= 20.0
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    routes_banking_and_flags_off_topic(provider, task)


def test_fitted_weights_favour_the_member_that_is_right_more_often() -> None:
    rng = np.random.default_rng(2)
    n, k = 500, 4
    truth = rng.integers(0, k, n)

    def member(right_share: float) -> np.ndarray:
        chosen = np.where(rng.random(n) < right_share, truth, rng.integers(0, k, n))
        probs = np.full((n, k), 0.1 / (k - 1))
        probs[np.arange(n), chosen] = 0.9
        return probs

    good, poor = member(0.95), member(0.4)
    cal = fit_calibration("geometric", "weights", ["good", "poor"], [good, poor], truth)
    assert cal.kind == "weights"
    w_good, w_poor = cal.member_weights
    assert w_good > 2 * w_poor >= 0.0
    # Where the two disagree, the weighted product follows the good member, at the
    # confidence computed by hand.
    values = {"label": tuple("abcd")}
    first, second = good[0], np.roll(good[0], 1)
    members = [
        MemberAnswers("good", {"label": [first]}, [None], [None]),
        MemberAnswers("poor", {"label": [second]}, [None], [None]),
    ]
    (answer,) = combine("geometric", cal, values, members)
    assert not isinstance(answer, ProviderError)
    by_hand = first**w_good * second**w_poor
    by_hand /= by_hand.sum()
    assert answer.output == {"label": "abcd"[int(first.argmax())]}
    assert answer.confidence == pytest.approx(by_hand.max())


def test_weights_are_fitted_for_the_geometric_method_only() -> None:
    with pytest.raises(ConfigError, match="weights are fitted for method geometric, not mean"):
        built(combined_task("mean", calibration="weights"))


def test_geometric_with_fitted_weights_is_trained_pinned_and_answers(
    mean_provider: CombinedProvider, settings: Settings, data: Path
) -> None:
    task = combined_task("geometric", calibration="weights")
    report = train_combined(task, task.models[0], data, settings, train_members=False)
    assert report.calibration.kind == "weights"
    assert len(report.calibration.member_weights) == 2
    assert all(0.0 <= w <= 20.0 for w in report.calibration.member_weights)
    assert sum(report.calibration.member_weights) > 0.0
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    assert provider.calibration.member_weights == report.calibration.member_weights
    routes_banking_and_flags_off_topic(provider, task)


def test_members_trained_for_the_combination_calibrate_it_with_their_held_out_answers(
    mean_provider: CombinedProvider, settings: Settings, data: Path
) -> None:
    # Training a member already fits it without the held-out rows and asks it about them:
    # the combination's calibration uses those answers instead of fitting each member again,
    # and comes out exactly as when it fits them again itself.
    task = combined_task("geometric", calibration="weights")
    said: list[str] = []
    reused = train_combined(task, task.models[0], data, settings, progress=said.append)
    calibrating = [m for m in said if "held-out rows" in m or "to calibrate" in m]
    assert [m.split(":")[0] for m in calibrating] == ["local-classifier", "embedding-classifier"]
    assert all(
        re.fullmatch(r"[a-z-]+: calibrating with its answers on the \d+ held-out rows", m)
        for m in calibrating
    ), calibrating
    refitted = train_combined(task, task.models[0], data, settings, train_members=False)
    assert reused.calibration.member_weights == pytest.approx(
        refitted.calibration.member_weights, abs=1e-9
    )
    assert reused.holdout_accuracy == refitted.holdout_accuracy


def test_held_out_answers_serve_only_the_same_rows_of_the_same_data() -> None:
    rows = np.asarray([3, 7, 9])
    answers = HeldOut("a" * 64, rows, {"intent": np.eye(3)})
    assert answers.for_split("a" * 64, np.asarray([3, 7, 9])) is answers.probabilities
    assert answers.for_split("b" * 64, rows) is None  # other data
    assert answers.for_split("a" * 64, np.asarray([3, 7, 8])) is None  # another split


# ---------------------------------------------------------------- escalate

STOLEN_RULE = {
    "provider": "rules",
    "rules": [
        {"if_matches": "(?i)stolen", "then": {"intent": "lost_or_stolen_card"}, "confidence": 0.99}
    ],
}


def escalating(below: float, first: list[dict[str, object]], extra: list[dict[str, object]]):
    return combined_task(
        "geometric", first, calibration="none", escalate={"below": below, "models": extra}
    )


def test_escalate_members_answer_only_the_inputs_the_first_are_unsure_of(
    settings: Settings, data: Path
) -> None:
    task = escalating(1.0, [{"provider": "local-classifier"}], [STOLEN_RULE])
    train_combined(task, task.models[0], data, settings)
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    assert provider.labels == ["local-classifier", "rules"]
    stolen, late = ask(provider, task, ["My card was stolen", "My card has still not arrived"])
    # below 1.0: every input is unsure; the rule answers the first, fails on the second
    assert stolen.output == {"intent": "lost_or_stolen_card"}
    assert stolen.note is not None and stolen.note.startswith("escalated (confidence 0.")
    assert stolen.note.endswith("below 1): rules consulted")
    assert late.output == {"intent": "card_arrival"}
    assert late.note is not None and late.note.endswith(
        "rules failed (no_rule_matched): the first answer kept"
    )
    alone = CombinedProvider.from_spec(
        escalating(0.01, [{"provider": "local-classifier"}], [STOLEN_RULE]).models[0],
        ProviderContext(task, settings),
    )
    sure = ask(alone, task, ["My card was stolen", "My card has still not arrived"])
    assert [a.note for a in sure] == [None, None]  # nobody below 0.01: the rule never asked
    assert [a.output for a in sure] == [stolen.output, late.output]
    # the one-at-a-time path escalates the same way
    one = asyncio.run(
        CombinedProvider.complete(provider, PreparedRequest(task, {"text": "My card was stolen"}))
    )
    assert (one.output, one.note) == (stolen.output, stolen.note)


def test_an_out_of_scope_input_is_not_escalated(settings: Settings, data: Path) -> None:
    task = escalating(1.0, [{"provider": "embedding-classifier", "threads": 1}], [STOLEN_RULE])
    train_combined(task, task.models[0], data, settings)
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    (off,) = ask(provider, task, [OFF_TOPIC[0]])
    assert off.out_of_scope is not None and off.confidence == 0.0
    assert "escalated" not in (off.note or "")


def test_training_fits_a_calibration_for_the_first_members_and_one_for_all(
    settings: Settings, data: Path
) -> None:
    first = [{"provider": "local-classifier"}]
    extra = [{"provider": "embedding-classifier", "threads": 1}]
    task = combined_task("geometric", first, escalate={"below": 0.9, "models": extra})
    report = train_combined(task, task.models[0], data, settings)
    assert report.calibration.members == ("local-classifier", "embedding-classifier")
    assert report.calibration.first is not None
    assert report.calibration.first.members == ("local-classifier",)
    assert report.calibration.first.temperature != report.calibration.temperature
    meta = json.loads(report.path.with_suffix(".json").read_text()) if report.path else {}
    assert meta["escalate"]["below"] == 0.9
    assert 0.0 <= meta["escalate"]["holdout_share_escalated"] <= 1.0
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    pinned = CombinedProvider.pinned_artifacts(task.models[0], ProviderContext(task, settings))
    assert set(pinned) == {
        "models.0.local-classifier",
        "models.1.embedding-classifier",
        "combined",
    }
    answers = ask(provider, task, ["My card was stolen on the train", "Is my card on its way?"])
    assert [a.output["intent"] for a in answers] == ["lost_or_stolen_card", "card_arrival"]


@pytest.mark.parametrize(
    ("escalate", "says"),
    [
        ({"below": 0.5}, "combine.escalate: needs `below:` (a confidence) and `models:` (a list)"),
        ({"below": 1.5, "models": [STOLEN_RULE]}, "combine.escalate.below: must be above 0"),
        ({"below": 0.5, "models": []}, "combine.escalate.models: list at least one model"),
        ({"below": 0.5, "models": [{"model": "x"}]}, "combine.escalate.models.0: needs a"),
    ],
)
def test_a_malformed_escalate_is_named(escalate: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        built(combined_task("geometric", [{"provider": "local-classifier"}], escalate=escalate))

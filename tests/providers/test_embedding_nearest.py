"""`nearest: K` on the embedding classifier (real all-MiniLM-L6-v2): a second head that scores
each value by the input's K most similar training texts, joined to the logistic head by
exponents that `lockgate train` fits on held-out rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")

from scipy.special import log_softmax, softmax

from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest, ProviderContext
from lockgate.providers.combined import CombinedProvider, train_combined
from lockgate.providers.embedding_classifier import (
    KIND,
    NEAREST_SCALE,
    EmbeddingClassifierProvider,
    EmbeddingTrainReport,
    fit_nearest,
    nearest_option,
    read_labeled,
)
from lockgate.settings import Settings
from tests.providers.model_texts import OFF_TOPIC, task_data

pytestmark = pytest.mark.slow

MEMBER = {"provider": KIND, "threads": 1, "nearest": 3}


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(task_data([MEMBER]), "tasks/banking.yaml")


def test_each_value_scores_the_mean_of_its_k_most_similar_texts() -> None:
    head = fit_nearest(["b", "a", "b", "a", "b"], ("a", "b"), k=2)
    similarity = np.asarray([[0.9, 0.1, 0.5, 0.3, 0.7]])  # texts: b a b a b
    expected = log_softmax(np.asarray([[0.2, 0.8]]) * NEAREST_SCALE, axis=1)
    assert np.allclose(head.log_scores(similarity), expected)
    # A value with fewer texts than k uses those it has.
    lone = fit_nearest(["a", "b", "b"], ("a", "b"), k=2)
    got = lone.log_scores(np.asarray([[0.4, 0.6, 0.2]]))
    assert np.allclose(got, log_softmax(np.asarray([[0.4, 0.4]]) * NEAREST_SCALE, axis=1))


def test_the_option_is_a_small_whole_number() -> None:
    assert nearest_option(ModelSpec(provider=KIND)) is None
    assert nearest_option(ModelSpec.model_validate({"provider": KIND, "nearest": 3})) == 3
    for bad in ("three", 0.5, 51, True):
        spec = ModelSpec.model_validate({"provider": KIND, "nearest": bad})
        with pytest.raises(ConfigError, match="nearest: must be a whole number from 1 to 50"):
            nearest_option(spec)


def test_training_fits_the_exponents_and_the_answer_is_the_joined_heads(
    trained: EmbeddingTrainReport,
    provider: EmbeddingClassifierProvider,
    task: TaskSpec,
    data: Path,
) -> None:
    model = provider.model
    assert model.nearest is not None and set(model.nearest) == {"intent"}
    w_logistic, w_nearest = model.nearest["intent"].weights
    assert w_logistic >= 0.0 and w_nearest >= 0.0 and w_logistic + w_nearest > 0.0
    assert trained.holdout_accuracy["intent"] >= 0.7
    texts = ["My debit card got stolen at the station", "What's the conversion rate for euros?"]
    probs, similarity = provider.probabilities([PreparedRequest(task, {"text": t}) for t in texts])
    # Independently: the training texts' labels in file order, the top-3 similarities per
    # value by sorting, the logistic head's softmax, the weighted product.
    labels = np.asarray(read_labeled(task, data).labels["intent"])
    vectors = provider.encoder.embed(texts)
    sims = vectors @ model.examples.astype(np.float32).T
    head = model.heads["intent"]
    top3 = np.stack(
        [np.sort(sims[:, labels == c], axis=1)[:, -3:].mean(axis=1) for c in head.classes], axis=1
    )
    logistic = softmax(vectors @ head.coef.T + head.intercept, axis=1)
    z = w_logistic * np.log(logistic) + w_nearest * log_softmax(top3 * NEAREST_SCALE, axis=1)
    expected = softmax(z, axis=1)
    order = [head.classes.index(v) for v in task.enum_values("intent")]
    assert np.allclose(probs["intent"], expected[:, order], atol=1e-5)
    assert np.allclose(similarity, sims.max(axis=1), atol=1e-5)
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in texts])
    assert [a.output["intent"] for a in answers] == ["lost_or_stolen_card", "exchange_rate"]  # type: ignore[index]


def test_off_topic_texts_stay_out_of_scope(
    provider: EmbeddingClassifierProvider, task: TaskSpec
) -> None:
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in OFF_TOPIC])
    flagged = [a for a in answers if a.out_of_scope is not None]
    assert len(flagged) >= len(OFF_TOPIC) - 1
    assert all(a.confidence == 0.0 for a in flagged)


def test_a_combination_with_a_nearest_member_is_calibrated_with_weights(
    trained: EmbeddingTrainReport, settings: Settings, data: Path
) -> None:
    members = [{"provider": "local-classifier"}, MEMBER]
    combine_spec = {"method": "geometric", "calibration": "weights", "models": members}
    task = parse_task(
        task_data([{"provider": "combined", "combine": combine_spec}]), "tasks/banking.yaml"
    )
    report = train_combined(task, task.models[0], data, settings)
    assert report.calibration.kind == "weights"
    assert len(report.calibration.member_weights) == 2
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    member = provider.members[1]
    assert isinstance(member, EmbeddingClassifierProvider)
    assert member.model.nearest is not None
    (stolen,) = provider.complete_batch(  # type: ignore[attr-defined]
        [PreparedRequest(task, {"text": "My card was stolen on the bus"})]
    )
    assert stolen.output == {"intent": "lost_or_stolen_card"}

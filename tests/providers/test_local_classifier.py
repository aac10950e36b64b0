"""The local-classifier provider: pinned artifacts, vectorised batches, ranked alternatives."""

from __future__ import annotations

import asyncio
import csv
import random
from pathlib import Path

import pytest

from lockgate.decide.task import TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import BatchProvider, PreparedRequest, Provider, ProviderContext
from lockgate.providers.classifier_training import TrainReport, train_classifier
from lockgate.providers.local_classifier import LocalClassifierProvider
from lockgate.settings import Settings

VOCABULARY = {
    "billing": ["invoice", "refund", "charged", "payment", "bill", "overcharged"],
    "tech": ["crash", "error", "bug", "login", "password", "server"],
    "sales": ["quote", "demo", "pricing", "discount", "purchase", "license"],
}


@pytest.fixture
def task() -> TaskSpec:
    return parse_task(
        {
            "name": "routing",
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "enum", "values": list(VOCABULARY)}},
            "models": [{"provider": "local-classifier"}],
        },
        "tasks/routing.yaml",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_dir=tmp_path, database_url="sqlite://")


def train(task: TaskSpec, settings: Settings, labels: list[str], seed: int = 1) -> TrainReport:
    rng = random.Random(seed)
    path = settings.project_dir / f"train-{seed}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "queue"])
        for _ in range(20):
            for label in labels:
                writer.writerow([" ".join(rng.sample(VOCABULARY[label], 3)), label])
    return train_classifier(task, path, settings)


@pytest.fixture
def trained(task: TaskSpec, settings: Settings) -> TrainReport:
    return train(task, settings, list(VOCABULARY))


@pytest.fixture
def provider(task: TaskSpec, settings: Settings, trained: TrainReport) -> LocalClassifierProvider:
    return LocalClassifierProvider.from_spec(task.models[0], ProviderContext(task, settings))


def request(task: TaskSpec, text: str) -> PreparedRequest:
    return PreparedRequest(task=task, input={"text": text})


def test_it_is_a_batch_provider(provider: LocalClassifierProvider, trained: TrainReport) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(provider, BatchProvider)
    assert provider.name == "local-classifier"
    assert provider.endpoint == f"local-classifier:routing:{trained.sha256[:12]}"
    assert provider.can_repair is False


def test_it_predicts_the_label_with_confidence_and_ranked_alternatives(
    provider: LocalClassifierProvider, task: TaskSpec
) -> None:
    candidate = provider.complete_batch([request(task, "I was charged twice, refund the invoice")])[
        0
    ]
    assert candidate.output == {"queue": "billing"}
    assert candidate.confidence is not None
    assert 0 < candidate.confidence <= 1
    assert candidate.alternatives is not None
    ranked = list(candidate.alternatives["queue"])
    assert len(ranked) == 3
    assert ranked[0] == ("billing", candidate.confidence)
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)


def test_a_batch_keeps_the_order_of_its_requests(
    provider: LocalClassifierProvider, task: TaskSpec
) -> None:
    texts = {
        "login error on the server": "tech",
        "a quote for a license please": "sales",
        "refund my payment": "billing",
        "password crash bug": "tech",
        "discount on the demo": "sales",
    }
    candidates = provider.complete_batch([request(task, t) for t in texts])
    assert [c.output for c in candidates] == [{"queue": label} for label in texts.values()]
    assert provider.complete_batch([]) == []


def test_complete_answers_like_the_batch(provider: LocalClassifierProvider, task: TaskSpec) -> None:
    req = request(task, "my bill is wrong")
    single = asyncio.run(provider.complete(req))
    assert single == provider.complete_batch([req])[0]
    asyncio.run(provider.aclose())


def test_an_empty_text_still_gets_a_prediction(
    provider: LocalClassifierProvider, task: TaskSpec
) -> None:
    for candidate in provider.complete_batch([request(task, ""), PreparedRequest(task, {})]):
        assert candidate.output["queue"] in VOCABULARY  # type: ignore[index]
        assert candidate.confidence is not None
        assert 0 < candidate.confidence <= 1


def test_pinning_without_a_trained_classifier_says_how_to_train(
    task: TaskSpec, settings: Settings
) -> None:
    context = ProviderContext(task, settings)
    with pytest.raises(
        ConfigError, match="task 'routing' has no trained local classifier"
    ) as caught:
        LocalClassifierProvider.pinned_artifacts(task.models[0], context)
    assert caught.value.hint == "run `lockgate train routing --data FILE`"
    with pytest.raises(ConfigError, match="no trained local classifier"):
        LocalClassifierProvider.from_spec(task.models[0], context)


def test_a_release_keeps_its_pinned_artifact_after_retraining(
    task: TaskSpec, settings: Settings, trained: TrainReport
) -> None:
    context = ProviderContext(task, settings)
    pinned = LocalClassifierProvider.pinned_artifacts(task.models[0], context)
    assert pinned == {"local-classifier": trained.sha256}
    newer = train(task, settings, ["billing", "tech"], seed=2)  # never says "sales"
    assert newer.sha256 != trained.sha256

    old = LocalClassifierProvider.from_spec(task.models[0], ProviderContext(task, settings, pinned))
    latest = LocalClassifierProvider.from_spec(task.models[0], context)
    assert old.endpoint.endswith(trained.sha256[:12])
    assert latest.endpoint.endswith(newer.sha256[:12])
    sales = [request(task, "a quote for a license and a demo")]
    assert old.complete_batch(sales)[0].output == {"queue": "sales"}
    assert latest.complete_batch(sales)[0].output != {"queue": "sales"}


def test_a_tampered_pinned_artifact_is_refused(
    task: TaskSpec, settings: Settings, trained: TrainReport
) -> None:
    trained.path.write_bytes(trained.path.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="modified after training"):
        LocalClassifierProvider.from_spec(
            task.models[0], ProviderContext(task, settings, {"local-classifier": trained.sha256})
        )


def test_an_artifact_missing_an_output_field_is_refused(
    task: TaskSpec, settings: Settings, trained: TrainReport
) -> None:
    wider = task.model_copy(update={"output": {**task.output, "urgency": task.output["queue"]}})
    with pytest.raises(ConfigError, match="trained without output field"):
        LocalClassifierProvider.from_spec(task.models[0], ProviderContext(wider, settings))

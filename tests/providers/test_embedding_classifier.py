"""The embedding-classifier provider on the real all-MiniLM-L6-v2 (int8 ONNX, from the
`embeddings` extra): batched, cached embeddings, a trained head, pinned artifacts, and the
out-of-scope check."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")

from lockgate.decide.policy import route
from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import BatchProvider, PreparedRequest, ProviderContext
from lockgate.providers.embedding_classifier import (
    KIND,
    EmbeddingClassifierProvider,
    EmbeddingTrainReport,
    artifact_folder,
)
from lockgate.providers.embeddings import Encoder, resolve_files, shared_encoder
from lockgate.providers.registry import ProviderRegistry
from lockgate.settings import Settings
from tests.providers.model_texts import INTENTS, OFF_TOPIC, task_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(resolve_files(), threads=1, batch_size=8)


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(
        task_data([{"provider": KIND, "threads": 1}], policy={"out_of_scope": "reject"}),
        "tasks/banking.yaml",
    )


def test_embeddings_are_unit_vectors_and_similar_texts_are_closer(encoder: Encoder) -> None:
    vectors = encoder.embed(
        ["Someone stole my card", "My card was stolen", "Give me a recipe for banana bread"]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time(encoder: Encoder) -> None:
    texts = ["short", "a much longer sentence about a card that never arrived in the post"]
    fresh = Encoder(encoder.files, threads=1, batch_size=2, cache_size=0)
    together = fresh.embed(texts)
    alone = np.vstack([fresh.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


def test_the_cache_serves_a_repeated_text_without_the_model(encoder: Encoder) -> None:
    before = encoder.computed
    first = encoder.embed(
        ["How do I report a lost card today?", "How do I report a lost card today?"]
    )
    assert encoder.computed == before + 1
    again = encoder.embed(["How do I report a lost card today?"])
    assert encoder.computed == before + 1
    assert np.array_equal(first[0], again[0])


def test_copies_of_the_same_files_share_one_encoder_and_its_vectors(tmp_path: Path) -> None:
    """Each fold of a cross-fitted calibration writes its encoder into a folder of its own:
    the same model and tokenizer elsewhere reuse the loaded encoder and what it embedded; a
    different tokenizer does not."""
    files = resolve_files()
    copies = []
    for name in ("fold-1", "fold-2"):
        folder = tmp_path / name
        folder.mkdir()
        model = shutil.copy(files.model_path, folder / "model.onnx")
        tokenizer = shutil.copy(files.tokenizer_path, folder / "tokenizer.json")
        copies.append(resolve_files(str(model), str(tokenizer), name="copy"))
    first = shared_encoder(copies[0], threads=1, batch_size=8)
    first.embed(["Has my new card been posted yet?"])
    second = shared_encoder(copies[1], threads=1, batch_size=8)
    assert second is first
    before = second.computed
    second.embed(["Has my new card been posted yet?"])
    assert second.computed == before  # served from the cache

    changed = tmp_path / "fold-2" / "tokenizer.json"
    changed.write_text(changed.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    assert shared_encoder(copies[1], threads=1, batch_size=8) is not first


def test_the_thread_setting_is_applied(encoder: Encoder) -> None:
    assert encoder.threads == 1
    assert Encoder(encoder.files, threads=2).threads == 2


def test_it_is_found_through_the_entry_point(task: TaskSpec) -> None:
    assert KIND in ProviderRegistry.discover().names()


def test_training_measures_on_held_out_rows_and_pins_the_artifact(
    trained: EmbeddingTrainReport,
    provider: EmbeddingClassifierProvider,
    task: TaskSpec,
    settings: Settings,
) -> None:
    assert trained.n_rows == 36
    assert trained.holdout_accuracy["intent"] >= 0.7
    assert isinstance(provider, BatchProvider)
    assert provider.endpoint == f"{KIND}:banking:{trained.sha256[:12]}"
    pinned = EmbeddingClassifierProvider.pinned_artifacts(
        task.models[0], ProviderContext(task, settings)
    )
    assert pinned == {KIND: trained.sha256}


def test_it_answers_unseen_in_scope_texts(
    provider: EmbeddingClassifierProvider, task: TaskSpec
) -> None:
    texts = {
        "My debit card got stolen at the station": "lost_or_stolen_card",
        "The card has not reached my home address yet": "card_arrival",
        "What's the conversion rate for euros?": "exchange_rate",
    }
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in texts])
    assert [a.output["intent"] for a in answers] == list(texts.values())  # type: ignore[index]
    for answer in answers:
        assert answer.out_of_scope is None
        assert answer.confidence is not None and 0.0 < answer.confidence <= 1.0
        assert answer.alternatives is not None
        assert answer.alternatives["intent"][0][0] == answer.output["intent"]  # type: ignore[index]


def test_off_topic_texts_are_out_of_scope_and_the_policy_says_why(
    provider: EmbeddingClassifierProvider, task: TaskSpec, trained: EmbeddingTrainReport
) -> None:
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in OFF_TOPIC])
    flagged = [a for a in answers if a.out_of_scope is not None]
    assert len(flagged) >= len(OFF_TOPIC) - 1
    for answer in flagged:
        assert answer.confidence == 0.0
        routing = route(
            task.policy,
            dict(answer.output),
            answer.confidence,
            {},  # type: ignore[arg-type]
            out_of_scope=answer.out_of_scope,
        )
        assert routing.route == "reject"
        assert routing.reason.startswith("out of scope (similarity ")
        assert f"below {trained.oos_threshold:.2f})" in routing.reason


def test_a_tampered_artifact_is_refused(
    task: TaskSpec, settings: Settings, trained: EmbeddingTrainReport, tmp_path: Path
) -> None:
    copy = Settings(project_dir=tmp_path, database_url="sqlite://")
    folder = artifact_folder(copy, "banking")
    shutil.copytree(artifact_folder(settings, "banking"), folder)
    path = folder / f"{trained.sha256}.joblib"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ConfigError, match="modified after training"):
        EmbeddingClassifierProvider.from_spec(task.models[0], ProviderContext(task, copy))


def test_another_encoder_is_refused(
    task: TaskSpec, settings: Settings, trained: EmbeddingTrainReport, tmp_path: Path
) -> None:
    files = resolve_files()
    model = tmp_path / "other.onnx"
    model.write_bytes(files.model_path.read_bytes() + b"\0")
    spec = ModelSpec(provider=KIND, model_path=str(model), tokenizer_path=str(files.tokenizer_path))
    with pytest.raises(ConfigError, match="was trained on encoder"):
        EmbeddingClassifierProvider.from_spec(spec, ProviderContext(task, settings))


def test_without_training_it_says_what_to_run(task: TaskSpec, tmp_path: Path) -> None:
    empty = Settings(project_dir=tmp_path, database_url="sqlite://")
    with pytest.raises(ConfigError, match="no trained embedding classifier") as caught:
        EmbeddingClassifierProvider.from_spec(task.models[0], ProviderContext(task, empty))
    assert "lockgate train banking" in (caught.value.hint or "")


def test_the_texts_cover_every_intent() -> None:
    assert all(len(texts) == 12 for texts in INTENTS.values())

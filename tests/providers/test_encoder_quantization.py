"""`quantize: int8` on the embedding classifier, on the real all-MiniLM-L6-v2 weights: the
encoder is written at training with int8 weight matrices, gives vectors close to the float32
graph's, and the heads are fitted on the vectors of the graph that runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")
pytest.importorskip("onnx", reason="needs the tune extra (make test installs it)")

import onnx

from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest, ProviderContext
from lockgate.providers.bert_graph import (
    EncoderWeights,
    build_bert_onnx,
    parse_quantize,
    quantize_int8,
)
from lockgate.providers.embedding_classifier import (
    KIND,
    EmbeddingClassifierProvider,
    EmbeddingTrainReport,
    artifact_folder,
    load_artifact,
    read_labeled,
    train_embedding_classifier,
)
from lockgate.providers.embeddings import Encoder, EncoderFiles, resolve_files
from lockgate.providers.encoder_tuning import base_model
from lockgate.settings import Settings
from tests.providers.model_texts import INTENTS, OFF_TOPIC, task_data, write_training_csv

pytestmark = pytest.mark.slow

UNSEEN = {
    "My debit card got stolen at the station": "lost_or_stolen_card",
    "The card has not reached my home address yet": "card_arrival",
    "What's the conversion rate for euros?": "exchange_rate",
}
QUANTIZED = {"provider": KIND, "threads": 1, "quantize": "int8"}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Encoder, Encoder, Path]:
    """The float32 graph of the untuned weights and its int8 version, as encoders."""
    folder = tmp_path_factory.mktemp("graphs")
    weights, _ = base_model()
    float32 = build_bert_onnx(EncoderWeights(weights, 12))
    (folder / "float32.onnx").write_bytes(float32)
    (folder / "int8.onnx").write_bytes(quantize_int8(float32))
    tokenizer = resolve_files().tokenizer_path
    encoders = [
        Encoder(EncoderFiles(name, folder / f"{name}.onnx", tokenizer, name), threads=1)
        for name in ("float32", "int8")
    ]
    return encoders[0], encoders[1], folder


def test_the_int8_graph_gives_the_float32_graphs_vectors_within_cosine_0_98(
    graphs: tuple[Encoder, Encoder, Path],
) -> None:
    float32, int8, _ = graphs
    texts = [t for examples in INTENTS.values() for t in examples] + OFF_TOPIC
    cosine = (float32.embed(texts) * int8.embed(texts)).sum(axis=1)
    # measured on 1,000 banking77 test texts: min 0.985, median 0.994
    assert cosine.min() > 0.98
    assert np.median(cosine) > 0.99


def test_the_int8_graph_multiplies_int8_weights_and_is_a_third_of_the_size(
    graphs: tuple[Encoder, Encoder, Path],
) -> None:
    _, _, folder = graphs
    model = onnx.load(str(folder / "int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == 6 * 6  # q, k, v, output, and the two feed-forward
    assert "MatMul" in ops  # attention itself (activation by activation) stays float32
    size, full = (folder / "int8.onnx").stat().st_size, (folder / "float32.onnx").stat().st_size
    assert size < full * 0.3


def test_quantizing_the_same_graph_twice_gives_the_same_file(
    graphs: tuple[Encoder, Encoder, Path],
) -> None:
    _, _, folder = graphs
    again = quantize_int8((folder / "float32.onnx").read_bytes())
    assert again == (folder / "int8.onnx").read_bytes()


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(task_data([QUANTIZED]), "tasks/banking.yaml")


def test_training_writes_the_int8_encoder_beside_the_artifact_and_names_it(
    trained: EmbeddingTrainReport, settings: Settings, graphs: tuple[Encoder, Encoder, Path]
) -> None:
    model = load_artifact(settings, "banking", trained.sha256)
    assert model.encoder_file is not None
    written = artifact_folder(settings, "banking") / model.encoder_file
    sha = hashlib.sha256(written.read_bytes()).hexdigest()
    assert written.name == f"{sha}.onnx" and model.encoder_sha256 == sha
    # the untuned weights, quantized: the very graph quantize_int8 makes of them
    assert written.read_bytes() == (graphs[2] / "int8.onnx").read_bytes()
    meta = json.loads(trained.path.with_suffix(".json").read_text())
    assert meta["encoder"]["quantized"] == "int8"
    assert meta["encoder"]["fine_tuned"] is None
    assert meta["encoder"]["name"] == "all-MiniLM-L6-v2 int8"


def test_the_heads_are_fitted_on_the_vectors_of_the_int8_graph(
    trained: EmbeddingTrainReport,
    settings: Settings,
    task: TaskSpec,
    project: Path,
    graphs: tuple[Encoder, Encoder, Path],
) -> None:
    provider = EmbeddingClassifierProvider.from_spec(
        task.models[0], ProviderContext(task, settings)
    )
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in UNSEEN])
    assert [a.output["intent"] for a in answers] == list(UNSEEN.values())  # type: ignore[index]
    # the training texts' vectors kept in the artifact are those of the int8 graph, embedded
    # as training embeds them (the same batches), not those of the float32 graph
    texts = read_labeled(task, project / "train.csv").texts
    files = EncoderFiles("int8", graphs[2] / "int8.onnx", resolve_files().tokenizer_path, "i")
    int8 = Encoder(files, threads=1, cache_size=0).embed(texts)
    kept = provider.model.examples.astype(np.float32)
    assert np.all((kept * int8).sum(axis=1) > 0.999)
    assert (kept * graphs[0].embed(texts)).sum(axis=1).min() < 0.999


def test_an_int8_vector_stays_within_cosine_0_98_whatever_texts_share_its_batch(
    graphs: tuple[Encoder, Encoder, Path],
) -> None:
    # ONNX Runtime's dynamic quantization scales each batch's activations together: a text
    # embedded among others is not bit-for-bit what it is alone (float32 is), but close
    float32, int8, _ = graphs
    texts = [t for examples in INTENTS.values() for t in examples] + OFF_TOPIC
    for encoder, floor in ((float32, 0.99999), (int8, 0.98)):
        alone = Encoder(encoder.files, threads=1, batch_size=1, cache_size=0).embed(texts)
        batched = Encoder(encoder.files, threads=1, batch_size=32, cache_size=0).embed(texts)
        assert (alone * batched).sum(axis=1).min() > floor


@pytest.mark.parametrize("raw", [None, False])
def test_quantization_is_off_unless_asked_for(raw: Any) -> None:
    assert parse_quantize(raw) is None


@pytest.mark.parametrize("raw", ["int8", True])
def test_int8_or_true_asks_for_int8(raw: Any) -> None:
    assert parse_quantize(raw) == "int8"


@pytest.mark.parametrize("raw", ["int4", "yes", 8, {"bits": 8}])
def test_another_quantization_is_refused_with_what_to_write(raw: Any) -> None:
    with pytest.raises(ConfigError, match="quantize: must be int8") as caught:
        parse_quantize(raw)
    assert caught.value.hint == "write quantize: int8"


def test_a_bad_quantize_value_is_refused_before_any_work(task: TaskSpec, tmp_path: Path) -> None:
    spec = ModelSpec.model_validate(QUANTIZED | {"quantize": "fp16"})
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    data = write_training_csv(tmp_path / "train.csv")
    with pytest.raises(ConfigError, match="quantize: must be int8"):
        train_embedding_classifier(task, data, settings, spec)
    assert not artifact_folder(settings, "banking").exists()


def test_quantizing_another_encoder_is_refused(task: TaskSpec, tmp_path: Path) -> None:
    files = resolve_files()
    spec = ModelSpec.model_validate(
        QUANTIZED
        | {"model_path": str(files.model_path), "tokenizer_path": str(files.tokenizer_path)}
    )
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    data = write_training_csv(tmp_path / "train.csv")
    with pytest.raises(ConfigError, match="quantize starts from all-MiniLM-L6-v2"):
        train_embedding_classifier(task, data, settings, spec)

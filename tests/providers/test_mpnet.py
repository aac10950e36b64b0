"""all-mpnet-base-v2 as the embedding classifier's encoder (`model: all-mpnet-base-v2`): our ONNX
graph of MPNet against Hugging Face's reference implementation, the real weights from the
`mpnet` extra, and the classifier trained, stored in a folder of its own and pinned."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")
pytest.importorskip("onnx", reason="needs the tune extra (make test installs it)")

import onnxruntime as ort

from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest, ProviderContext
from lockgate.providers.bert_graph import build_bert_onnx, from_mpnet, relative_buckets
from lockgate.providers.embedding_classifier import (
    KIND,
    EmbeddingClassifierProvider,
    EmbeddingTrainReport,
    artifact_kind,
    train_embedding_classifier,
)
from lockgate.providers.embeddings import Encoder, EncoderFiles
from lockgate.settings import Settings
from tests.providers.model_texts import OFF_TOPIC, task_data

pytestmark = pytest.mark.slow

MPNET = {"provider": "embedding-classifier", "model": "all-mpnet-base-v2", "threads": 2}


def test_relative_buckets_count_near_offsets_exactly_and_far_ones_by_their_logarithm() -> None:
    b = relative_buckets(600, 32)
    query = 300
    offsets = {0: 0, -1: 1, -3: 3, -7: 7, 1: 17, 3: 19, 7: 23}
    for offset, bucket in offsets.items():
        assert b[query, query + offset] == bucket, offset
    # 8 and beyond share buckets: 8 + floor(log(d / 8) / log(16) * 8), at most 15 (31 after)
    assert b[query, query - 8] == 8
    assert b[query, query - 127] == 15
    assert b[query, query - 300] == 15
    assert b[query, query + 127] == 31
    assert b[query, query - 20] == 8 + int(np.log(20 / 8) / np.log(16) * 8)
    assert b.min() == 0 and b.max() == 31


def test_our_graph_computes_what_the_reference_mpnet_computes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="needs the tune extra (make test installs it)")
    transformers = pytest.importorskip("transformers", reason="installed with the tune extra")
    config = transformers.MPNetConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        relative_attention_num_buckets=32,
    )
    torch.manual_seed(0)
    reference = transformers.MPNetModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # a bias that matters, so that a wrong bucket shows (init: std 0.02)
        reference.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    weights = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    graph = build_bert_onnx(from_mpnet(weights, heads=4, tokens=16))
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 50, size=(3, 12)).astype(np.int64)
    lengths = [12, 7, 3]
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = config.pad_token_id
    (ours,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.inference_mode():
        theirs = reference(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state.numpy()
    for row, n in enumerate(lengths):  # padding positions are masked out of every use
        np.testing.assert_allclose(ours[row, :n], theirs[row, :n], atol=1e-4)


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(task_data([MPNET]), "tasks/banking.yaml")


def test_the_real_weights_place_paraphrases_together(
    trained: EmbeddingTrainReport, settings: Settings, task: TaskSpec
) -> None:
    folder = settings.artifact_dir / task.name / artifact_kind(task.models[0])
    (graph,) = folder.glob("*.onnx")
    files = EncoderFiles(
        "all-mpnet-base-v2", graph, graph.with_suffix(".tokenizer.json"), "written"
    )
    vectors = Encoder(files, threads=2).embed(
        ["I forgot the PIN of my card", "How do I find out my card's PIN code?", *OFF_TOPIC[:2]]
    )
    assert vectors.shape == (4, 768)
    close, far = vectors[0] @ vectors[1], max(vectors[0] @ vectors[2], vectors[0] @ vectors[3])
    assert close > far + 0.2, (close, far)


def test_an_mpnet_classifier_is_stored_apart_pinned_and_answers(
    trained: EmbeddingTrainReport, settings: Settings, task: TaskSpec
) -> None:
    spec = task.models[0]
    assert artifact_kind(spec) == f"{KIND}-all-mpnet-base-v2"
    assert trained.path.parent.name == f"{KIND}-all-mpnet-base-v2"
    assert not (settings.artifact_dir / task.name / KIND).exists()
    written = sorted(p.name for p in trained.path.parent.iterdir() if p.suffix != ".joblib")
    assert any(n.endswith(".tokenizer.json") for n in written), written
    context = ProviderContext(task, settings)
    pinned = EmbeddingClassifierProvider.pinned_artifacts(spec, context)
    assert pinned == {f"{KIND}-all-mpnet-base-v2": trained.sha256}
    provider = EmbeddingClassifierProvider.from_spec(spec, ProviderContext(task, settings, pinned))
    assert provider.encoder.batch_size == 8  # MPNet's own default: faster than 32 on a CPU
    answers = provider.complete_batch(
        [PreparedRequest(task, {"text": t}) for t in ["My card was stolen on the bus"]]
    )
    assert answers[0].output == {"intent": "lost_or_stolen_card"}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"quantize": "int8"}, "cannot be combined with quantize (int8 weights ruin its vectors"),
        ({"fine_tune": {"epochs": 1}}, "cannot be combined with fine_tune"),
        ({"model_path": "x.onnx", "tokenizer_path": "t.json"}, "combined with model_path"),
        ({"model": "bge-small"}, "is all-MiniLM-L6-v2 (the default) or all-mpnet-base-v2"),
    ],
)
def test_settings_that_cannot_go_with_mpnet_are_refused_before_any_work(
    extra: dict[str, object], says: str
) -> None:
    spec = ModelSpec.model_validate(MPNET | extra)
    task = parse_task(task_data([dict(spec.model_dump(exclude_none=True))]), "t.yaml")
    settings = Settings(project_dir=Path("/nonexistent"), database_url="sqlite://")
    with pytest.raises(ConfigError, match=re.escape(says)):
        train_embedding_classifier(task, [], settings, spec)


def test_a_custom_encoder_may_still_carry_a_model_label() -> None:
    spec = ModelSpec.model_validate(
        {"provider": "embedding-classifier", "model": "my-encoder", "model_path": "m.onnx",
         "tokenizer_path": "t.json"}
    )  # fmt: skip
    assert artifact_kind(spec) == KIND

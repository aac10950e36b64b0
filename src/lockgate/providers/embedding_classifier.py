"""The `embedding-classifier` provider: sentence embeddings (all-MiniLM-L6-v2 on ONNX Runtime)
and a logistic-regression head per output field, trained by `lockgate train`.

    - provider: embedding-classifier
      threads: 2              # ONNX Runtime threads (default: min(4, cores))
      batch_size: 32          # texts per model call (8 for all-mpnet-base-v2)
      # model: all-mpnet-base-v2     # the larger encoder (the `mpnet` extra), float32 only
      # model_path / tokenizer_path: another BERT-style ONNX encoder and its tokenizer.json
      fine_tune:              # optional: fine-tune the encoder on the training rows first
        epochs: 2             # passes over the rows (3 to 6 minutes each for 8,000 rows
        threads: 2            #   on 2 cores); PyTorch threads (default: all cores)
        # layers: 4           # keep only the first N of the 6 layers (faster, tuned)
      quantize: int8          # optional: store the encoder's weights as int8 (faster)
      nearest: 3              # optional: also vote by the 3 most similar training texts

Needs `pip install 'lockgate[embeddings]'` (and `'lockgate[tune]'`, PyTorch, to fine-tune;
inference never needs it). With `fine_tune`, `lockgate train` trains the encoder itself with a
classification layer on the rows it fits on (not those it holds out to measure), writes it as a
float32 ONNX graph (`bert_graph`) named by its sha256 beside the artifact (`SHA256.onnx`), and
fits the heads on its embeddings; the artifact names that file. With `quantize: int8`,
`lockgate train` writes the encoder (tuned or not; built from the float32 weights of the `tune`
extra) with int8 weight matrices (`bert_graph.quantize_int8`) and fits the heads on the
vectors of that graph, the one that will run. An artifact lives in
`artifact_dir/TASK/embedding-classifier/` as `SHA256.joblib` (named by the sha256 of its bytes),
`SHA256.json` and `latest.json`, like the local classifier's; a release pins it by sha256. The
artifact also records the sha256 of the encoder's model file: it is refused with another one.

`model: all-mpnet-base-v2` embeds with MPNet (110M parameters, 768 dimensions, about 8 times
the work of all-MiniLM-L6-v2 per text) instead: `lockgate train` builds its float32 graph from
the weights the `mpnet` extra installs and writes it beside the artifact with its tokenizer
(`SHA256.onnx`, `SHA256.tokenizer.json`). It is used as it is: neither `fine_tune` nor
`quantize` applies (int8 ruins its vectors). Its artifacts live in
`artifact_dir/TASK/embedding-classifier-all-mpnet-base-v2/`, so that a combined model can hold
one member of each encoder; it suits a combined model's `escalate` list, consulted only for the
inputs the others are unsure of.

`nearest: K` adds a second head on the same vectors, at almost no cost (the similarity to the
training texts is computed for the out-of-scope check anyway): each value scores the mean
cosine similarity of the input's K most similar training texts of that value, and the two
heads are joined by a weighted geometric mean (`p_logistic^a * p_nearest^b`, renormalised)
whose exponents `lockgate train` fits by log-likelihood on the rows it holds out.

Out of scope: the artifact keeps the (float16) embeddings of its training texts and a
similarity threshold calibrated on a held-out share of them so that `in_scope_pass` (default
95%) of in-scope inputs pass. An input whose most similar training text is less similar than
that is flagged out of scope: its confidence is 0 (no threshold automates it) and the
candidate says why (`Candidate.out_of_scope`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from scipy.special import log_softmax, softmax

from lockgate.decide.records import Record, iter_records
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import Candidate, PreparedRequest, ProviderContext
from lockgate.providers.embeddings import (
    DEFAULT_BATCH,
    DEFAULT_MODEL,
    MAX_TOKENS,
    Encoder,
    EncoderFiles,
    file_sha256,
    resolve_files,
    shared_encoder,
)
from lockgate.providers.encoder_tuning import TuneSettings
from lockgate.settings import Settings

if TYPE_CHECKING:
    from lockgate.providers.classifier_training import HeldOut

KIND = "embedding-classifier"
TOP_ALTERNATIVES = 3
DEFAULT_IN_SCOPE_PASS = 0.95
DEFAULT_C = 20.0
_SIMILARITY_BLOCK = 4096
NEAREST_SCALE = 20.0
"""Similarities are multiplied by this before the nearest head's softmax (the fitted exponent
sets the final sharpness)."""
MAX_NEAREST = 50


@dataclass(frozen=True)
class Head:
    """A multinomial logistic regression over embeddings (weights float32)."""

    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        scores = vectors @ self.coef.T + self.intercept
        if scores.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1 - positive, positive])
        return np.asarray(softmax(scores, axis=1))


@dataclass(frozen=True)
class NearestHead:
    """Scores each value by the mean similarity of an input's `k` most similar training texts
    of that value; joined to the logistic head as `p_logistic^w0 * p_nearest^w1`."""

    classes: tuple[str, ...]
    k: int
    order: np.ndarray
    """The training texts' indices, grouped by value in the order of `classes`."""
    starts: np.ndarray
    """Where each value's group starts in `order`."""
    weights: tuple[float, float] = (1.0, 1.0)

    def log_scores(self, similarity: np.ndarray, grouped: bool = False) -> np.ndarray:
        """Log-probabilities (rows: inputs; columns: `classes`) from the inputs' similarity to
        every training text (columns in training order, or already in `order` if `grouped`)."""
        if not grouped:
            similarity = similarity[:, self.order]
        bounds = [*self.starts.tolist(), similarity.shape[1]]
        scores = np.empty((len(similarity), len(self.classes)), dtype=np.float64)
        for c in range(len(self.classes)):
            block = similarity[:, bounds[c] : bounds[c + 1]]
            k = min(self.k, block.shape[1])
            top = np.partition(block, block.shape[1] - k, axis=1)[:, -k:]
            scores[:, c] = top.mean(axis=1)
        return np.asarray(log_softmax(scores * NEAREST_SCALE, axis=1))

    def joined(
        self, logistic: np.ndarray, similarity: np.ndarray, grouped: bool = False
    ) -> np.ndarray:
        """The logistic head's probabilities joined to this head's."""
        return join(logistic, self.log_scores(similarity, grouped), self.weights)


def join(logistic: np.ndarray, nearest_logs: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    z = weights[0] * np.log(np.maximum(logistic, 1e-9)) + weights[1] * nearest_logs
    return np.asarray(softmax(z, axis=1))


def fit_nearest(vectors_labels: Sequence[str], classes: Sequence[str], k: int) -> NearestHead:
    """A nearest head over training texts labelled `vectors_labels` (weights not fitted)."""
    index = {c: j for j, c in enumerate(classes)}
    codes = np.asarray([index[y] for y in vectors_labels], dtype=np.int64)
    order = np.argsort(codes, kind="stable").astype(np.int32)
    starts = np.searchsorted(codes[order], np.arange(len(classes))).astype(np.int32)
    return NearestHead(tuple(classes), k, order, starts)


def fit_exponents(logs: np.ndarray, truth: np.ndarray) -> tuple[float, ...]:
    """One exponent per model (0 to 20) for the product of their probability rows that
    minimises the negative log-likelihood of the true values (`logs`: models x rows x values,
    log-probabilities)."""
    from scipy.optimize import minimize

    rows = np.arange(len(truth))
    k = len(logs)

    def nll(w: np.ndarray) -> float:
        z = np.tensordot(w, logs, axes=1)
        return float(-log_softmax(z, axis=1)[rows, truth].mean())

    best = minimize(nll, np.full(k, 1.0 / k), method="L-BFGS-B", bounds=[(0.0, 20.0)] * k)
    return tuple(float(w) for w in best.x)


def nearest_option(spec: ModelSpec) -> int | None:
    raw = spec.option("nearest")
    if raw is None or raw is False or raw == 0:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_NEAREST:
        raise ConfigError(
            f"nearest: must be a whole number from 1 to {MAX_NEAREST} (training texts per "
            f"value), not {raw!r}",
            hint="for example `nearest: 3`, or leave it out",
        )
    return raw


def scored(
    heads: Mapping[str, Head],
    nearest: Mapping[str, NearestHead] | None,
    vectors: np.ndarray,
    examples: np.ndarray | None,
    grouped_for: str | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per output field the probabilities over the head's classes, and each vector's best
    similarity to `examples` (None without them). `grouped_for`: the field whose nearest
    head's `order` the rows of `examples` are already in (its head then gathers nothing)."""
    if examples is None:
        return {name: head.probabilities(vectors) for name, head in heads.items()}, None
    if not nearest:
        similarity = nearest_similarity(vectors, examples)
        return {name: head.probabilities(vectors) for name, head in heads.items()}, similarity
    matrix = vectors @ examples.T
    out = {}
    for name, head in heads.items():
        logistic = head.probabilities(vectors)
        out[name] = (
            nearest[name].joined(logistic, matrix, grouped=name == grouped_for)
            if name in nearest
            else logistic
        )
    best = matrix.max(axis=1) if matrix.shape[1] else np.full(len(vectors), -1.0)
    return out, best.astype(np.float32)


@dataclass(frozen=True)
class EmbeddingClassifierModel:
    """An artifact's content. Pickled by name: renaming or moving it breaks old artifacts."""

    task_name: str
    input_fields: tuple[str, ...]
    encoder_name: str
    encoder_sha256: str
    heads: Mapping[str, Head]
    examples: np.ndarray
    """The training texts' embeddings (float16), for the out-of-scope similarity."""
    oos_threshold: float
    """Inputs whose best similarity to a training text is below this are out of scope."""
    training_inputs: frozenset[str] | None = None
    encoder_file: str | None = None
    """The fine-tuned encoder's ONNX file in the artifact folder (None: the installed one)."""
    nearest: Mapping[str, NearestHead] | None = None
    """Per output field the nearest head (`nearest: K`), over `examples`."""

    def text(self, values: Mapping[str, Any]) -> str:
        return "\n".join(_text(values.get(name)) for name in self.input_fields)

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine similarity of each vector to its nearest training text."""
        return nearest_similarity(vectors, self.examples)


def nearest_similarity(vectors: np.ndarray, examples: np.ndarray) -> np.ndarray:
    best = np.full(len(vectors), -1.0, dtype=np.float32)
    for start in range(0, len(examples), _SIMILARITY_BLOCK):
        block = examples[start : start + _SIMILARITY_BLOCK].astype(np.float32)
        np.maximum(best, (vectors @ block.T).max(axis=1), out=best)
    return best


# ---------------------------------------------------------------- provider


class EmbeddingClassifierProvider:
    name = KIND
    can_repair = False

    def __init__(self, model: EmbeddingClassifierModel, sha256: str, encoder: Encoder) -> None:
        self.endpoint = f"{KIND}:{model.task_name}:{sha256[:12]}"
        self.sha256 = sha256
        self.model = model
        self.encoder = encoder
        self._fields = tuple(model.heads)
        self._examples: np.ndarray | None = None
        self._grouped_for: str | None = None
        if model.nearest:
            # The training texts in the first nearest head's order, so that its similarity
            # columns come out grouped by value (no gather of the whole matrix per batch).
            self._grouped_for, first = next(iter(model.nearest.items()))
            self._examples = model.examples[first.order].astype(np.float32)

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        kind = artifact_kind(spec)
        return {kind: _latest(context, kind)}

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> EmbeddingClassifierProvider:
        task = context.task
        kind = artifact_kind(spec)
        sha = context.artifacts.get(kind) or _latest(context, kind)
        model = load_artifact(context.settings, task.name, sha, kind)
        missing = [name for name in task.output if name not in model.heads]
        if missing:
            raise ConfigError(
                f"task {task.name!r}: the embedding classifier {sha[:12]} was trained without "
                f"output field(s) {', '.join(missing)}",
                hint=f"run `lockgate train {task.name} --data FILE` to retrain",
            )
        files = (
            tuned_files(context.settings, task.name, model, spec)
            if model.encoder_file
            else encoder_files(spec)
        )
        if files.sha256 != model.encoder_sha256:
            raise ConfigError(
                f"task {task.name!r}: the embedding classifier {sha[:12]} was trained on "
                f"encoder {model.encoder_sha256[:12]} ({model.encoder_name}), but the installed "
                f"one is {files.sha256[:12]} ({files.name})",
                hint="install the embedding model it was trained with, or retrain",
            )
        return cls(model, sha, encoder_for(spec, files))

    def training_inputs(self) -> frozenset[str] | None:
        return self.model.training_inputs

    def feature_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Texts in the model's feature space (its embeddings), for drift's similarity to the
        reference centroid."""
        return self.encoder.embed(list(texts))

    def probabilities(
        self, requests: Sequence[PreparedRequest]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per output field the probabilities (rows: requests; columns: the field's enum
        values in the task's order), and each input's similarity to the training texts."""
        task = requests[0].task if requests else None
        vectors = self.encoder.embed([self.model.text(r.input) for r in requests])
        if self._examples is None:
            raw, similarity = scored(self.model.heads, None, vectors, self.model.examples)
        else:
            raw, similarity = scored(
                self.model.heads, self.model.nearest, vectors, self._examples, self._grouped_for
            )
        out: dict[str, np.ndarray] = {}
        for name, head in self.model.heads.items():
            values = task.enum_values(name) if task is not None else head.classes
            out[name] = align(raw[name], head.classes, values)
        assert similarity is not None
        return out, similarity

    def complete_batch(self, requests: Sequence[PreparedRequest]) -> list[Candidate]:
        if not requests:
            return []
        probabilities, similarity = self.probabilities(requests)
        values = {name: requests[0].task.enum_values(name) for name in self._fields}
        return candidates(probabilities, values, similarity, self.model.oos_threshold)

    async def complete(self, request: PreparedRequest) -> Candidate:
        return self.complete_batch([request])[0]

    async def aclose(self) -> None:
        return None


def align(probs: np.ndarray, classes: Sequence[str], values: Sequence[str]) -> np.ndarray:
    """Columns reordered from `classes` to `values` (a value never trained on gets 0)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((probs.shape[0], len(values)), dtype=np.float64)
    for j, value in enumerate(values):
        i = index.get(value)
        if i is not None:
            out[:, j] = probs[:, i]
    return out


def scope_note(similarity: float, threshold: float) -> str:
    return f"similarity {similarity:.2f} below {threshold:.2f}"


def candidates(
    probabilities: Mapping[str, np.ndarray],
    values: Mapping[str, Sequence[str]],
    similarity: np.ndarray | None = None,
    threshold: float | None = None,
    notes: Sequence[str | None] | None = None,
) -> list[Candidate]:
    """Candidates from probability rows: the top value of each field, the lowest field's top
    probability as confidence, the top alternatives; out of scope when below `threshold`."""
    n = len(next(iter(probabilities.values())))
    outputs: list[dict[str, str]] = [{} for _ in range(n)]
    alternatives: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(n)]
    confidence = np.ones(n)
    for name, probs in probabilities.items():
        names = values[name]
        k = min(TOP_ALTERNATIVES, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        top_probs = np.take_along_axis(probs, top, axis=1)
        np.minimum(confidence, top_probs[:, 0], out=confidence)
        for i, (ids, ps) in enumerate(zip(top.tolist(), top_probs.tolist(), strict=True)):
            outputs[i][name] = names[ids[0]]
            alternatives[i][name] = [(names[j], float(p)) for j, p in zip(ids, ps, strict=True)]
    result = []
    for i in range(n):
        scope = None
        conf = float(confidence[i])
        if similarity is not None and threshold is not None and similarity[i] < threshold:
            scope = scope_note(float(similarity[i]), threshold)
            conf = 0.0
        result.append(
            Candidate(
                output=outputs[i],
                confidence=conf,
                alternatives=alternatives[i],
                out_of_scope=scope,
                note=notes[i] if notes is not None else None,
            )
        )
    return result


def encoder_files(spec: ModelSpec) -> EncoderFiles:
    return resolve_files(spec.option("model_path"), spec.option("tokenizer_path"))


def encoder_option(spec: ModelSpec) -> str:
    """The encoder a model names in `model:` (all-MiniLM-L6-v2 unless it says otherwise),
    checked against the settings that cannot go with it."""
    from lockgate.providers import mpnet

    name = spec.model or DEFAULT_MODEL
    if name != mpnet.NAME and spec.option("model_path") is not None:
        return DEFAULT_MODEL  # a custom encoder: `model` is only its label
    if name not in (DEFAULT_MODEL, mpnet.NAME):
        raise ConfigError(
            f"model: the embedding classifier's encoder is {DEFAULT_MODEL} (the default) or "
            f"{mpnet.NAME}, not {name!r}",
            hint="for another BERT-style ONNX encoder set model_path and tokenizer_path",
        )
    if name == mpnet.NAME:
        for key, why in (
            ("model_path", "it is built from the weights of the mpnet extra"),
            ("fine_tune", "fine-tuning is for all-MiniLM-L6-v2; MPNet is used as it is"),
            ("quantize", "int8 weights ruin its vectors; it runs in float32"),
        ):
            if spec.option(key) not in (None, False):
                raise ConfigError(
                    f"model: {mpnet.NAME} cannot be combined with {key} ({why})",
                    hint=f"remove {key} from the model",
                )
    return str(name)


def artifact_kind(spec: ModelSpec | None) -> str:
    """The folder of a model's artifacts: one per encoder, so that a combined model can hold a
    member of each."""
    name = DEFAULT_MODEL if spec is None else encoder_option(spec)
    return KIND if name == DEFAULT_MODEL else f"{KIND}-{name}"


def tuned_files(
    settings: Settings, task_name: str, model: EmbeddingClassifierModel, spec: ModelSpec
) -> EncoderFiles:
    """The encoder an artifact names, written at training, with the tokenizer written beside it
    (all-mpnet-base-v2) or else the installed one."""
    path = artifact_folder(settings, task_name, artifact_kind(spec)) / str(model.encoder_file)
    if not path.is_file():
        raise ConfigError(
            f"task {task_name!r}: the encoder file {path.name} written at training is missing "
            f"from {path.parent}",
            hint=f"run `lockgate train {task_name} --data FILE` to retrain",
        )
    written = path.with_suffix(".tokenizer.json")
    tokenizer = written if written.is_file() else encoder_files(spec).tokenizer_path
    return EncoderFiles(model.encoder_name, path, tokenizer, file_sha256(path))


def trained_encoder(spec: ModelSpec, task: TaskSpec, settings: Settings) -> Encoder:
    """The encoder of the latest artifact when it was written at training (fine-tuned,
    quantized or MPNet), else the installed one."""
    kind = artifact_kind(spec)
    written = TuneSettings.parse(spec.option("fine_tune")) is not None or quantize_option(spec)
    if not written and kind == KIND:
        return encoder_for(spec)
    model = load_artifact(settings, task.name, _latest(ProviderContext(task, settings), kind), kind)
    if not model.encoder_file:
        return encoder_for(spec)
    return encoder_for(spec, tuned_files(settings, task.name, model, spec))


def quantize_option(spec: ModelSpec) -> str | None:
    from lockgate.providers.bert_graph import parse_quantize

    return parse_quantize(spec.option("quantize"))


MPNET_BATCH = 8
"""all-mpnet-base-v2's default texts per model call: on 2 cores banking77's texts took 16.5 ms
each in batches of 8, 22.8 in batches of 32 and 60 in batches of 128 (benchmarks/RESULTS.md,
issue 16, twelfth pass)."""


def encoder_for(spec: ModelSpec, files: EncoderFiles | None = None) -> Encoder:
    threads = spec.option("threads")
    default = DEFAULT_BATCH if artifact_kind(spec) == KIND else MPNET_BATCH
    batch = spec.option("batch_size", default)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError("threads: must be a whole number of at least 1")
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError("batch_size: must be a whole number of at least 1")
    return shared_encoder(files or encoder_files(spec), threads=threads, batch_size=batch)


# ---------------------------------------------------------------- artifacts


def artifact_folder(settings: Settings, task_name: str, kind: str = KIND) -> Path:
    return settings.artifact_dir / task_name / kind


def _latest(context: ProviderContext, kind: str = KIND) -> str:
    from lockgate.providers.classifier_training import _SHA256

    name = context.task.name
    pointer = artifact_folder(context.settings, name, kind) / "latest.json"
    retrain = f"run `lockgate train {name} --data FILE`"
    try:
        sha = json.loads(pointer.read_text(encoding="utf-8")).get("sha256")
    except FileNotFoundError:
        raise ConfigError(
            f"task {name!r} has no trained embedding classifier", hint=retrain
        ) from None
    except (OSError, ValueError, AttributeError):
        sha = None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ConfigError(f"{pointer}: not a valid pointer to a trained classifier", hint=retrain)
    return sha


def load_artifact(
    settings: Settings, task_name: str, sha256: str, kind: str = KIND
) -> EmbeddingClassifierModel:
    """Load an embedding classifier after checking its bytes still hash to `sha256`."""
    from lockgate.providers.classifier_training import _SHA256

    retrain = f"run `lockgate train {task_name} --data FILE` to retrain"
    if not _SHA256.match(sha256):
        raise ConfigError(f"{sha256!r} is not a sha256 of an embedding-classifier artifact")
    path = artifact_folder(settings, task_name, kind) / f"{sha256}.joblib"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"task {task_name!r} has no embedding classifier {sha256[:12]} (missing {path})",
            hint=retrain,
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(
            f"{path}: the artifact was modified after training (its sha256 no longer matches "
            "its name); refusing to load it",
            hint=retrain,
        )
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise ConfigError(
            f"{path}: cannot load the artifact with the installed Lockgate ({type(exc).__name__})",
            hint=retrain,
        ) from None
    if not isinstance(model, EmbeddingClassifierModel) or model.task_name != task_name:
        raise ConfigError(
            f"{path}: not an embedding classifier of task {task_name!r}", hint=retrain
        )
    return model


def store_artifact(
    settings: Settings, task_name: str, kind: str, content: Any, meta: dict[str, Any]
) -> tuple[str, Path]:
    """Write `content` as a content-addressed joblib artifact of `kind`; make it the latest."""
    from lockgate.providers.classifier_training import _write_atomic

    folder = settings.artifact_dir / task_name / kind
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(content, buffer, compress=3)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = folder / f"{sha}.joblib"
    _write_atomic(path, data)
    _write_atomic(folder / f"{sha}.json", json.dumps(meta, indent=2).encode() + b"\n")
    _write_atomic(folder / "latest.json", json.dumps({"sha256": sha}).encode() + b"\n")
    return sha, path


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class LabeledTexts:
    """Training rows read and checked against a task: texts and labels per output field."""

    input_fields: tuple[str, ...]
    texts: list[str]
    labels: dict[str, list[str]]
    data_hash: str
    fingerprints: frozenset[str] | None


def read_labeled(
    task: TaskSpec,
    records: Iterable[Record] | str | Path,
    *,
    sealed: Mapping[str, str] | None = None,
) -> LabeledTexts:
    """Rows checked as `lockgate train` checks them (the same errors as the local classifier)."""
    from lockgate.evals.datasets import describe_overlap, overlap_lines
    from lockgate.providers import classifier_training as training

    input_fields = training._check_task(task)
    source = str(records) if isinstance(records, str | Path) else "training records"
    rows = iter_records(records) if isinstance(records, str | Path) else list(records)
    if sealed:
        found = overlap_lines(task, rows, sealed)
        if found:
            raise ConfigError(
                describe_overlap(source, task.name, found),
                hint="remove those rows from the training data and train again",
            )
        rows = iter_records(records) if isinstance(records, str | Path) else rows
    result = training._read(task, input_fields, rows, source)
    fingerprints = result[3] if len(result) > 3 else None
    return LabeledTexts(input_fields, result[0], result[1], result[2], fingerprints)


def fit_heads(
    vectors: np.ndarray, labels: Mapping[str, Sequence[str]], seed: int, c: float = DEFAULT_C
) -> dict[str, Head]:
    from sklearn.linear_model import LogisticRegression

    heads = {}
    for name, ys in labels.items():
        clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(vectors, list(ys))
        heads[name] = Head(
            tuple(str(x) for x in clf.classes_),
            clf.coef_.astype(np.float32),
            clf.intercept_.astype(np.float32),
        )
    return heads


def holdout_scores(
    vectors: np.ndarray,
    labels: Mapping[str, Sequence[str]],
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    nearest_k: int | None,
) -> tuple[dict[str, Head], dict[str, NearestHead] | None, dict[str, np.ndarray]]:
    """Heads fitted on the `train` rows (with `nearest_k`, nearest heads too, their exponents
    fitted on the `test` rows) and their probabilities for the `test` rows (columns: each
    head's classes)."""
    part = {name: [ys[i] for i in train] for name, ys in labels.items()}
    heads = fit_heads(vectors[train], part, seed)
    if nearest_k is None:
        return heads, None, {name: h.probabilities(vectors[test]) for name, h in heads.items()}
    matrix = vectors[test] @ vectors[train].T
    nearest: dict[str, NearestHead] = {}
    probs: dict[str, np.ndarray] = {}
    for name, head in heads.items():
        fresh = fit_nearest(part[name], head.classes, nearest_k)
        logistic = head.probabilities(vectors[test])
        logs = fresh.log_scores(matrix)
        index = {c: j for j, c in enumerate(head.classes)}
        known = [r for r, i in enumerate(test) if labels[name][i] in index]
        weights: tuple[float, ...] = (1.0, 1.0)
        if known:
            truth = np.asarray([index[labels[name][test[r]]] for r in known])
            both = np.stack([np.log(np.maximum(logistic[known], 1e-9)), logs[known]])
            weights = fit_exponents(both, truth)
            if sum(weights) <= 0.0:
                weights = (1.0, 0.0)
        nearest[name] = replace(fresh, weights=(weights[0], weights[1]))
        probs[name] = nearest[name].joined(logistic, matrix)
    return heads, nearest, probs


def calibrate_scope(
    fit_vectors: np.ndarray, held_vectors: np.ndarray, in_scope_pass: float
) -> float:
    """The similarity that `in_scope_pass` of held-out in-scope inputs reach."""
    similarity = nearest_similarity(held_vectors, fit_vectors.astype(np.float16))
    return float(np.quantile(similarity, 1.0 - in_scope_pass))


@dataclass(frozen=True)
class EmbeddingTrainReport:
    task: str
    sha256: str
    path: Path
    n_rows: int
    n_holdout: int
    holdout_accuracy: Mapping[str, float]
    oos_threshold: float
    embedded_per_second: float
    duration_s: float
    held_out: HeldOut | None = None
    """The heads fitted without the held-out rows, on them."""


def train_embedding_classifier(
    task: TaskSpec,
    records: Iterable[Record] | str | Path,
    settings: Settings,
    spec: ModelSpec | None = None,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    sealed: Mapping[str, str] | None = None,
) -> EmbeddingTrainReport:
    """Embed the rows, fit a head per output field on a share and measure it on the rest,
    calibrate the out-of-scope threshold on that held-out share, refit on every row, store."""
    from lockgate.providers.classifier_training import HeldOut, _split

    started = time.perf_counter()
    say = progress or (lambda _message: None)
    spec = spec or ModelSpec(provider=KIND)
    in_scope_pass = float(spec.option("in_scope_pass", DEFAULT_IN_SCOPE_PASS))
    if not 0.5 <= in_scope_pass < 1.0:
        raise ConfigError("in_scope_pass: must be at least 0.5 and below 1 (e.g. 0.95)")
    tune = TuneSettings.parse(spec.option("fine_tune"))
    quantize = quantize_option(spec)
    nearest_k = nearest_option(spec)
    kind = artifact_kind(spec)  # checks the encoder's settings before any work
    data = read_labeled(task, records, sealed=sealed)
    files = encoder_files(spec)
    train, test = _split(data.labels, task.evaluation.holdout_share, seed)
    tuned: dict[str, Any] | None = None
    if tune is not None or quantize is not None or kind != KIND:
        files, tuned = _written_encoder(
            task, settings, spec, files, data, train, tune, quantize, seed, say
        )
    encoder = encoder_for(spec, files)
    say(f"embedding {len(data.texts)} texts with {files.name}")
    t0 = time.perf_counter()
    before = encoder.computed
    vectors = encoder.embed(data.texts)
    rate = (encoder.computed - before) / max(time.perf_counter() - t0, 1e-9)
    say(f"fitting on {len(train)} rows, measuring on {len(test)} held out")
    heads, nearest, held = holdout_scores(vectors, data.labels, train, test, seed, nearest_k)
    accuracy = {}
    for name, head in heads.items():
        predicted = np.asarray(head.classes)[held[name].argmax(axis=1)]
        truth = np.asarray([data.labels[name][i] for i in test])
        accuracy[name] = float((predicted == truth).mean())
    threshold = calibrate_scope(vectors[train], vectors[test], in_scope_pass)
    say(f"fitting on all {len(data.texts)} rows")
    final_heads = fit_heads(vectors, data.labels, seed)
    final_nearest = None
    if nearest is not None and nearest_k is not None:
        final_nearest = {
            name: replace(
                fit_nearest(data.labels[name], head.classes, nearest_k),
                weights=nearest[name].weights,
            )
            for name, head in final_heads.items()
        }
    model = EmbeddingClassifierModel(
        task_name=task.name,
        input_fields=data.input_fields,
        encoder_name=files.name,
        encoder_sha256=files.sha256,
        heads=final_heads,
        examples=vectors.astype(np.float16),
        oos_threshold=threshold,
        training_inputs=data.fingerprints,
        encoder_file=files.model_path.name if tuned is not None else None,
        nearest=final_nearest,
    )
    meta = {
        "task": task.name,
        "kind": KIND,
        "encoder": {
            "name": files.name,
            "sha256": files.sha256,
            "fine_tuned": tuned if tune is not None else None,
            "quantized": quantize,
        },
        "input_fields": list(data.input_fields),
        "output": {name: list(h.classes) for name, h in model.heads.items()},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_hash": data.data_hash,
        "n_rows": len(data.texts),
        "n_holdout": len(test),
        "label_counts": {n: dict(Counter(ys).most_common()) for n, ys in data.labels.items()},
        "holdout_accuracy": accuracy,
        "oos_threshold": threshold,
        "in_scope_pass": in_scope_pass,
        "nearest": (
            {"k": nearest_k, "weights": {n: list(h.weights) for n, h in final_nearest.items()}}
            if final_nearest
            else None
        ),
        "seed": seed,
    }
    sha, path = store_artifact(settings, task.name, kind, model, meta)
    return EmbeddingTrainReport(
        task=task.name,
        sha256=sha,
        path=path,
        n_rows=len(data.texts),
        n_holdout=len(test),
        holdout_accuracy=accuracy,
        oos_threshold=threshold,
        embedded_per_second=rate,
        duration_s=time.perf_counter() - started,
        held_out=HeldOut(
            data.data_hash,
            test,
            {
                name: align(held[name], head.classes, task.enum_values(name))
                for name, head in heads.items()
            },
        ),
    )


def _written_encoder(
    task: TaskSpec,
    settings: Settings,
    spec: ModelSpec,
    files: EncoderFiles,
    data: LabeledTexts,
    rows: np.ndarray,
    tune: TuneSettings | None,
    quantize: str | None,
    seed: int,
    say: Callable[[str], None],
) -> tuple[EncoderFiles, dict[str, Any]]:
    """all-MiniLM-L6-v2 fine-tuned on `rows` of the data (`tune`) and/or quantized, or
    all-mpnet-base-v2 as it is, written as an ONNX graph beside the artifacts."""
    from lockgate.providers.bert_graph import (
        EncoderWeights,
        build_bert_onnx,
        layer_count,
        quantize_int8,
    )
    from lockgate.providers.classifier_training import _write_atomic
    from lockgate.providers.encoder_tuning import HEADS, base_model

    what = "fine_tune" if tune is not None else "quantize"
    if spec.option("model_path") is not None:
        raise ConfigError(
            f"{what} starts from all-MiniLM-L6-v2: it cannot be combined with model_path",
            hint=f"remove model_path (or {what}) from the model",
        )
    started = time.perf_counter()
    kind = artifact_kind(spec)
    folder = artifact_folder(settings, task.name, kind)
    folder.mkdir(parents=True, exist_ok=True)
    if kind != KIND:
        return _written_mpnet(folder, started, say)
    weights, _ = base_model()
    if tune is not None:
        weights = _tuned_weights(weights, files, data, rows, tune, seed, say)
    graph = build_bert_onnx(EncoderWeights(weights, HEADS))
    if quantize is not None:
        say(f"quantizing the encoder's weights to {quantize}")
        graph = quantize_int8(graph)
    sha = hashlib.sha256(graph).hexdigest()
    path = folder / f"{sha}.onnx"
    _write_atomic(path, graph)
    seconds = round(time.perf_counter() - started, 1)
    info: dict[str, Any] = {"seconds": seconds, "file": path.name}
    if tune is not None:
        say(f"fine-tuned in {seconds} s")
        info |= {"epochs": tune.epochs, "rows": len(rows), "layers": layer_count(weights)}
    name = DEFAULT_MODEL + (" fine-tuned" if tune is not None else "")
    name += f" {quantize}" if quantize is not None else ""
    return EncoderFiles(name, path, files.tokenizer_path, sha), info


def _written_mpnet(
    folder: Path, started: float, say: Callable[[str], None]
) -> tuple[EncoderFiles, dict[str, Any]]:
    """all-mpnet-base-v2's float32 graph and tokenizer, written beside the artifacts."""
    from lockgate.providers import mpnet
    from lockgate.providers.bert_graph import build_bert_onnx
    from lockgate.providers.classifier_training import _write_atomic

    say(f"building the {mpnet.NAME} encoder from its installed weights")
    weights, tokenizer = mpnet.load(MAX_TOKENS)
    graph = build_bert_onnx(weights)
    sha = hashlib.sha256(graph).hexdigest()
    path = folder / f"{sha}.onnx"
    _write_atomic(path, graph)
    _write_atomic(path.with_suffix(".tokenizer.json"), tokenizer)
    info = {"seconds": round(time.perf_counter() - started, 1), "file": path.name}
    return EncoderFiles(mpnet.NAME, path, path.with_suffix(".tokenizer.json"), sha), info


def _tuned_weights(
    weights: Mapping[str, np.ndarray],
    files: EncoderFiles,
    data: LabeledTexts,
    rows: np.ndarray,
    tune: TuneSettings,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, np.ndarray]:
    from tokenizers import Tokenizer

    from lockgate.providers.encoder_tuning import fine_tune, first_layers

    if tune.layers is not None:
        weights = first_layers(weights, tune.layers)
    tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    texts = [data.texts[i] for i in rows]
    token_ids = [e.ids for e in tokenizer.encode_batch(texts)]
    classes = {name: sorted(set(ys)) for name, ys in data.labels.items()}
    labels = {name: [classes[name].index(ys[i]) for i in rows] for name, ys in data.labels.items()}
    kept = f" (its first {tune.layers} layers)" if tune.layers is not None else ""
    say(f"fine-tuning {DEFAULT_MODEL}{kept} on {len(rows)} rows, {tune.epochs} epoch(s)")
    return fine_tune(
        weights,
        token_ids,
        labels,
        {name: len(values) for name, values in classes.items()},
        tune,
        seed=seed,
        progress=say,
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)

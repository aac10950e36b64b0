"""Training the local classifier: check labeled records against a task, fit, measure on a held-out
share, refit on every row and store a content-addressed artifact.

An artifact lives in `artifact_dir/TASK/local-classifier/` as `SHA256.joblib` (named by the sha256
of its bytes), `SHA256.json` (metadata) and `latest.json` (`{"sha256": ...}`). The file keeps its
`.joblib` name, which releases and replicas look it up by, but is written as `ARTIFACT_HEADER`
followed by a zlib-compressed pickle (protocol 5, the C pickler: about a quarter of joblib's CPU
to write and a ninth to read, the same size); artifacts written by joblib before still load.
A pickle is code: `load_artifact` checks its hash before unpickling it.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion

from lockgate.decide.decision import input_hash
from lockgate.decide.records import Record, iter_records
from lockgate.decide.task import TaskSpec
from lockgate.decide.validation import validate_input
from lockgate.errors import ConfigError
from lockgate.evals.datasets import describe_overlap, overlap_lines
from lockgate.evals.types import input_fingerprint
from lockgate.files import replaced
from lockgate.providers.classifier_model import ClassifierModel, FastTfidfVectorizer
from lockgate.settings import Settings

ARTIFACT_KIND = "local-classifier"
ARTIFACT_HEADER = b"lockgate local-classifier: zlib pickle 5\n"
"""The first bytes of an artifact in the current format; any other artifact is read by joblib."""
MIN_ROWS = 10
_EXAMPLES = 5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FieldMetrics:
    """One output field's scores on the held-out share, from a model fitted without it."""

    accuracy: float
    macro_f1: float


@dataclass(frozen=True, eq=False)
class HeldOut:
    """What a model fitted on the training share said about the held-out rows: per output
    field, a probability row per held-out row, columns in the order of the field's enum values.
    A combined model's calibration fits its members on the same split, so it reuses these
    instead of fitting each member a second time."""

    data_hash: str
    """The training data's hash (`LabeledTexts.data_hash`)."""
    rows: np.ndarray
    """The held-out rows' positions in that data."""
    probabilities: Mapping[str, np.ndarray]

    def for_split(self, data_hash: str, test: np.ndarray) -> Mapping[str, np.ndarray] | None:
        """The probability rows, if they are for exactly these held-out rows of this data."""
        same = data_hash == self.data_hash and np.array_equal(self.rows, test)
        return self.probabilities if same else None


@dataclass(frozen=True)
class TrainReport:
    task: str
    sha256: str
    path: Path
    n_rows: int
    n_holdout: int
    data_hash: str
    holdout: Mapping[str, FieldMetrics]
    unseen_labels: Mapping[str, tuple[str, ...]]
    """Enum values with no training example, per output field: the model never predicts them."""
    duration_s: float
    held_out: HeldOut | None = None
    """The model fitted without the held-out rows, on them."""

    @property
    def holdout_accuracy(self) -> dict[str, float]:
        return {name: m.accuracy for name, m in self.holdout.items()}

    @property
    def holdout_macro_f1(self) -> dict[str, float]:
        return {name: m.macro_f1 for name, m in self.holdout.items()}


def train_classifier(
    task: TaskSpec,
    records: Iterable[Record] | str | Path,
    settings: Settings,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    sealed: Mapping[str, str] | None = None,
) -> TrainReport:
    """Fit the local classifier of `task` on labeled records and store it as the latest artifact.

    `sealed` maps the input hashes of the task's sealed datasets to their names: records with
    any of those inputs are refused, since a sealed set must never be trained on."""
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    input_fields = _check_task(task)
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
    say("reading records")
    texts, labels, data_hash, seen_inputs = _read(task, input_fields, rows, source)
    seen = {name: set(ys) for name, ys in labels.items()}
    unseen = {
        name: tuple(v for v in task.enum_values(name) if v not in seen[name]) for name in seen
    }
    train, test = _split(labels, task.evaluation.holdout_share, seed)
    say(f"fitting on {len(train)} rows, measuring on {len(test)} held out")
    holdout, held_probabilities = _evaluate(task, texts, labels, train, test, seed)
    say(f"fitting on all {len(texts)} rows")
    model = _fit(task.name, input_fields, texts, labels, seed, seen_inputs)
    say("writing artifact")
    meta = {
        "task": task.name,
        "kind": ARTIFACT_KIND,
        "input_fields": list(input_fields),
        "output": {name: model.classes(name) for name in labels},
        "unseen_labels": {name: list(v) for name, v in unseen.items()},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_hash": data_hash,
        "n_rows": len(texts),
        "n_holdout": len(test),
        "label_counts": {name: dict(Counter(ys).most_common()) for name, ys in labels.items()},
        "holdout": {name: vars(m) for name, m in holdout.items()},
        "seed": seed,
        "sklearn_version": sklearn.__version__,
    }
    sha, path = _store(settings, task.name, model, meta)
    return TrainReport(
        task=task.name,
        sha256=sha,
        path=path,
        n_rows=len(texts),
        n_holdout=len(test),
        data_hash=data_hash,
        holdout=holdout,
        unseen_labels=unseen,
        duration_s=time.perf_counter() - started,
        held_out=HeldOut(data_hash, test, held_probabilities),
    )


def combined_records(task: TaskSpec, paths: Sequence[Path]) -> tuple[list[Record], int]:
    """The records of several training files as one set, each marked with its file: a record
    whose input comes again later (in its file or a later one) is dropped, so the later label
    wins (an exported reviewer's correction over the original label). Returns the records and
    how many were dropped."""
    latest: dict[str, Record] = {}
    total = 0
    for path in paths:
        for record in iter_records(path):
            total += 1
            key = input_hash(validate_input(task, record.values)[0])
            latest.pop(key, None)
            latest[key] = replace(record, source=str(path))
    return list(latest.values()), total - len(latest)


def artifact_folder(settings: Settings, task_name: str) -> Path:
    return settings.artifact_dir / task_name / ARTIFACT_KIND


def latest_artifact(settings: Settings, task_name: str) -> str | None:
    """The sha256 of the task's most recently trained classifier, or None when there is none."""
    pointer = artifact_folder(settings, task_name) / "latest.json"
    try:
        sha = json.loads(pointer.read_text(encoding="utf-8")).get("sha256")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        sha = None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ConfigError(
            f"{pointer}: not a valid pointer to a trained classifier",
            hint=f"run `lockgate train {task_name} --data FILE` to retrain",
        )
    return sha


def artifact_path(settings: Settings, task_name: str, sha256: str) -> Path:
    """Where the classifier with this sha256 is kept on local disk."""
    if not _SHA256.match(sha256):
        raise ConfigError(f"{sha256!r} is not a sha256 of a local-classifier artifact")
    return artifact_folder(settings, task_name) / f"{sha256}.joblib"


def load_artifact(
    settings: Settings,
    task_name: str,
    sha256: str,
    *,
    fetch: Callable[[str], bytes | None] | None = None,
) -> ClassifierModel:
    """Load a trained classifier after checking that its bytes still hash to `sha256`. A file
    missing on local disk is taken from `fetch` (the database) when given, and kept."""
    retrain = f"run `lockgate train {task_name} --data FILE` to retrain"
    path = artifact_path(settings, task_name, sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fetched = fetch(sha256) if fetch is not None else None
        if fetched is None:
            raise ConfigError(
                f"task {task_name!r} has no local classifier {sha256[:12]} (missing {path}, "
                "and not in the database)",
                hint=retrain + ", then `lockgate release create` to store it with the release",
            ) from None
        data = fetched
        if hashlib.sha256(data).hexdigest() == sha256:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)  # a local copy: the next start reads the disk
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(
            f"{path}: the artifact was modified after training (its sha256 no longer matches "
            "its name); refusing to load it",
            hint=retrain,
        )
    try:
        model = _unpickle(data)
    except Exception as exc:  # an artifact from another version of Lockgate or scikit-learn
        raise ConfigError(
            f"{path}: cannot load the artifact with the installed Lockgate and scikit-learn "
            f"({type(exc).__name__})",
            hint=retrain,
        ) from None
    if not isinstance(model, ClassifierModel) or model.task_name != task_name:
        raise ConfigError(f"{path}: not a local classifier of task {task_name!r}", hint=retrain)
    return model


# ---------------------------------------------------------------- steps


def _check_task(task: TaskSpec) -> tuple[str, ...]:
    for name, out in task.output.items():
        if out.type != "enum":
            raise ConfigError(
                f"task {task.name!r}: output.{name} is of type {out.type}; the local classifier "
                "only handles enum output fields",
                hint="use an LLM provider for this task, or make the field an enum",
            )
    input_fields = tuple(name for name, f in task.input.items() if f.type == "string")
    if not input_fields:
        raise ConfigError(
            f"task {task.name!r} has no string input field; the local classifier reads text"
        )
    return input_fields


@dataclass
class _Problem:
    what: str
    lines: list[str] = field(default_factory=list)


def _read(
    task: TaskSpec, input_fields: tuple[str, ...], rows: Iterable[Record], source: str
) -> tuple[list[str], dict[str, list[str]], str, frozenset[str]]:
    """The texts, the labels per output field, the data's hash and the fingerprints of the
    inputs (normalised as the pipeline and datasets normalise them)."""
    required = [name for name in input_fields if task.input[name].required]
    allowed = {name: set(task.enum_values(name)) for name in task.output}
    problems: dict[tuple[str, str], _Problem] = {}
    texts: list[str] = []
    labels: dict[str, list[str]] = {name: [] for name in task.output}
    fingerprints: set[str] = set()
    digest = hashlib.sha256()
    n_records = 0

    for record in rows:
        n_records += 1
        found: list[tuple[tuple[str, str], str, str]] = []
        for name in required:
            if record.values.get(name) is None:
                found.append(((name, "missing"), f"no {name!r} value (a required input)", ""))
        row_labels: dict[str, str] = {}
        for name in task.output:
            value = _text(record.values.get(name)).strip()
            row_labels[name] = value
            if not value:
                found.append(((name, "missing"), f"no {name!r} label", ""))
            elif value not in allowed[name]:
                what = (
                    f"a {name!r} label that is not a value of output.{name} "
                    f"(expected one of {_listing(task.enum_values(name))})"
                )
                found.append(((name, "unknown"), what, f" ({value[:40]!r})"))
        for key, what, detail in found:
            problems.setdefault(key, _Problem(what)).lines.append(f"{record.where}{detail}")
        if found:
            continue
        inputs = {name: _text(record.values.get(name)) for name in input_fields}
        texts.append("\n".join(inputs[name] for name in input_fields))
        fingerprints.add(input_fingerprint(input_hash(validate_input(task, record.values)[0])))
        for name, value in row_labels.items():
            labels[name].append(value)
        normalised = {"input": inputs, "output": row_labels}
        digest.update(json.dumps(normalised, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    if problems:
        bad = ["  - " + _describe(p, n_records) for p in problems.values()]
        raise ConfigError(
            f"{source}: cannot train task {task.name!r} on these records:\n" + "\n".join(bad)
        )
    if len(texts) < MIN_ROWS:
        raise ConfigError(
            f"{source}: {len(texts)} labeled records; training needs at least {MIN_ROWS}",
            hint="label more examples (a few dozen per label is a good start)",
        )
    for name, ys in labels.items():
        if len(set(ys)) < 2:
            raise ConfigError(
                f"{source}: every record has the same {name!r} label ({ys[0]!r}); "
                "a classifier needs examples of at least 2 labels"
            )
    return texts, labels, digest.hexdigest(), frozenset(fingerprints)


def _describe(problem: _Problem, n_records: int) -> str:
    n = len(problem.lines)
    shown = ", ".join(problem.lines[:_EXAMPLES])
    more = f" and {n - _EXAMPLES} more" if n > _EXAMPLES else ""
    every = " (every record: is the column missing?)" if n == n_records and n > 1 else ""
    return f"{n} record{'s' if n != 1 else ''} with {problem.what}{every}: {shown}{more}"


def _split(
    labels: Mapping[str, list[str]], share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a held-out split, stratified by the labels when every label allows it."""
    columns = list(labels.values())
    n = len(columns[0])
    n_test = max(1, round(n * share))
    stratify = None
    for strata in (["\x1f".join(t) for t in zip(*columns, strict=True)], columns[0]):
        counts = Counter(strata)
        if min(counts.values()) >= 2 and len(counts) <= min(n_test, n - n_test):
            stratify = strata
            break
    train, test = train_test_split(
        np.arange(n), test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
    )
    return np.sort(train), np.sort(test)


def _evaluate(
    task: TaskSpec,
    texts: Sequence[str],
    labels: Mapping[str, Sequence[str]],
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> tuple[dict[str, FieldMetrics], dict[str, np.ndarray]]:
    """Scores on the held-out rows of a model fitted on the training share, and its
    probability rows for them (columns in the order of each field's enum values)."""
    from lockgate.providers.embedding_classifier import align

    features = _features()
    x_train = features.fit_transform([texts[i] for i in train])
    x_test = features.transform([texts[i] for i in test])
    metrics: dict[str, FieldMetrics] = {}
    probabilities: dict[str, np.ndarray] = {}
    for name, ys in labels.items():
        y_train = [ys[i] for i in train]
        y_test = [ys[i] for i in test]
        if len(set(y_train)) < 2:  # a tiny, skewed set: the model can only say the one label
            classes, probs = [y_train[0]], np.ones((len(test), 1))
        else:
            clf = _classifier(seed).fit(x_train, y_train)
            classes, probs = [str(c) for c in clf.classes_], clf.predict_proba(x_test)
        predicted = [classes[j] for j in probs.argmax(axis=1)]
        probabilities[name] = align(probs, classes, task.enum_values(name))
        metrics[name] = FieldMetrics(
            accuracy=float(accuracy_score(y_test, predicted)),
            macro_f1=float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        )
    return metrics, probabilities


def _fit(
    task_name: str,
    input_fields: tuple[str, ...],
    texts: list[str],
    labels: Mapping[str, list[str]],
    seed: int,
    training_inputs: frozenset[str],
) -> ClassifierModel:
    features = _features()
    matrix = features.fit_transform(texts)
    classifiers = {}
    for name, ys in labels.items():
        clf = _classifier(seed).fit(matrix, ys)
        clf.coef_ = clf.coef_.astype(np.float32)  # half the size, float32 precision
        clf.intercept_ = clf.intercept_.astype(np.float32)
        classifiers[name] = clf
    return ClassifierModel(task_name, input_fields, features, classifiers, training_inputs)


def _features() -> FeatureUnion:
    words = FastTfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, max_features=20_000, dtype=np.float32
    )
    chars = FastTfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        sublinear_tf=True,
        min_df=2,
        max_features=20_000,
        dtype=np.float32,
    )
    return FeatureUnion([("words", words), ("chars", chars)])


def _classifier(seed: int) -> LogisticRegression:
    # newton-cg rather than lbfgs: the same convex objective, a third to a half of the CPU here
    # (benchmarks/RESULTS.md, "The whole suite"); on banking77 test accuracy 0.912 against 0.914.
    return LogisticRegression(C=10.0, solver="newton-cg", max_iter=2000, random_state=seed)


def _store(
    settings: Settings, task_name: str, model: ClassifierModel, meta: dict[str, Any]
) -> tuple[str, Path]:
    folder = artifact_folder(settings, task_name)
    folder.mkdir(parents=True, exist_ok=True)
    data = _pickle(model)
    sha = hashlib.sha256(data).hexdigest()
    path = folder / f"{sha}.joblib"
    _write_atomic(path, data)
    _write_atomic(folder / f"{sha}.json", json.dumps(meta, indent=2).encode() + b"\n")
    _write_atomic(folder / "latest.json", json.dumps({"sha256": sha}).encode() + b"\n")
    return sha, path


def _pickle(model: ClassifierModel) -> bytes:
    """The artifact's bytes: the header, then the model pickled and compressed (zlib level 3,
    as joblib's `compress=3` did)."""
    return ARTIFACT_HEADER + zlib.compress(pickle.dumps(model, protocol=5), 3)


def _unpickle(data: bytes) -> Any:
    """The object in an artifact's bytes: the current format, or joblib's (before 2026-11-29)."""
    if data.startswith(ARTIFACT_HEADER):
        return pickle.loads(zlib.decompress(data[len(ARTIFACT_HEADER) :]))
    return joblib.load(io.BytesIO(data))


def _write_atomic(path: Path, data: bytes) -> None:
    with replaced(path, binary=True) as handle:
        handle.write(data)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _listing(values: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")

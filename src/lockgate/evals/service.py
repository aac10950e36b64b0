"""Evals and calibration against a project: resolve the release and dataset, check the
dataset's seal, run, and store the outcome. `EvalService` is built from explicit parts (the
CLI takes them from its runtime: `Runtime.eval_service`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lockgate.decide.pipeline import ReleaseRuntime
from lockgate.decide.task import TaskSpec
from lockgate.errors import ConfigError, NotFound
from lockgate.evals.calibration import (
    ConfidentError,
    Threshold,
    confident_errors,
    pick_threshold,
)
from lockgate.evals.cross_fit import FoldRuntime, cross_fitted
from lockgate.evals.runner import EvalResult, run_eval, scoring_context
from lockgate.evals.scorers import Scored, ScoringContext
from lockgate.evals.storage import DatasetStore, EvalStore, ReleaseStore
from lockgate.evals.types import Dataset, DatasetRow, EvalRun, content_hash, input_fingerprint
from lockgate.providers.base import TrainedProvider
from lockgate.rollout.release import Release, ReleaseRef, resolve

Progress = Callable[[int], None]


def resolve_release(releases: ReleaseStore, task: str, ref: str | None) -> Release:
    """`N`, `TASK@N` or `live`; without one, the live release, else the newest."""
    if ref is None:
        live = releases.live(task)
        if live is not None:
            return live
        found = releases.list_for(task)
        if not found:
            raise NotFound(
                f"task {task!r} has no releases",
                hint=f"run `lockgate release create {task}`",
            )
        return found[-1]
    return resolve(releases, ReleaseRef.of_task(task, ref))


def verified_rows(datasets: DatasetStore, dataset: Dataset) -> list[DatasetRow]:
    """The dataset's rows, after checking they still hash to the content hash pinned when the
    dataset was added: a changed, added or removed row is refused."""
    rows = datasets.rows(dataset)
    if len(rows) != dataset.rows or content_hash(rows) != dataset.content_hash:
        kind = "sealed dataset" if dataset.sealed else "dataset"
        raise ConfigError(
            f"{kind} {dataset.name!r} of task {dataset.task!r} was changed in the database "
            f"after it was added: its rows no longer hash to {dataset.content_hash[:12]}; "
            "refusing to measure on it",
            hint="restore the database from a backup, or add the data again under a new name "
            "(`lockgate audit list` shows who added it)",
        )
    return rows


def training_overlap(loaded: ReleaseRuntime, rows: Sequence[DatasetRow]) -> int:
    """How many rows have an input that a model of the release was trained on (0 when no
    model of it records what it was trained on)."""
    seen: set[str] = set()
    for model in loaded.models:
        if isinstance(model.provider, TrainedProvider):
            seen |= model.provider.training_inputs() or frozenset()
    return sum(input_fingerprint(row.input_hash) in seen for row in rows) if seen else 0


def check_overlap(
    release: Release, dataset: Dataset, overlap: int, *, allow: bool, action: str
) -> None:
    """Refuse to measure a release on rows it was trained on, unless `allow` (the result is then
    marked as not gate-worthy)."""
    if overlap == 0 or allow:
        return
    raise ConfigError(
        f"{overlap} of the {dataset.rows} rows of dataset {dataset.name!r} have the same input as "
        f"rows {release.ref} was trained on: {action} on them would measure what the model "
        "remembers, not how it does on inputs it has not seen",
        hint=f"train on rows held out from {dataset.name!r} and create a new release; or pass "
        "--allow-overlap to go on anyway (the result is marked not gate-worthy, and no "
        "promotion gate accepts it)",
    )


def _dataset_name(
    task_spec: Callable[[str], TaskSpec], task: str, name: str | None, key: str
) -> str:
    if name is not None:
        return name
    named: str | None = getattr(task_spec(task).evaluation, key)
    if named is None:
        raise ConfigError(
            f"task {task!r} names no evaluation.{key} and no --dataset was given",
            hint=f"pass --dataset NAME or set evaluation.{key} in tasks/{task}.yaml",
        )
    return named


@dataclass(frozen=True)
class Evaluation:
    run: EvalRun
    release: Release
    dataset: Dataset
    result: EvalResult
    errors: tuple[ConfidentError, ...] = ()
    """The rows the release automates (its first run's) with another answer than their label,
    surest first."""

    @property
    def training_overlap(self) -> int:
        """Rows of the dataset the release was trained on (with --allow-overlap; else 0)."""
        return int(self.run.metrics.get("training_overlap") or 0)


@dataclass(frozen=True)
class Calibration:
    source: Release
    dataset: Dataset
    target: float
    confidence: float
    chosen: Threshold | None
    best: Threshold | None
    """The threshold with the highest lower bound (what came closest when none passed)."""
    release: Release | None = None
    created: bool = False
    training_overlap: int = 0
    """Rows of the dataset the source release was trained on (with --allow-overlap; else 0)."""
    cross_fit: int | None = None
    """With cross-fitting: the number of folds (each row decided by models trained without
    it)."""
    seed: int = 0
    """With cross-fitting: the seed that dealt the rows into folds."""
    errors: tuple[ConfidentError, ...] = ()
    """The rows automated at the chosen threshold (else at `best`'s) whose answer differs from
    their label, surest first: what holds the threshold up."""
    judged_out_of_scope: int = 0
    """Rows labelled with an answer (in scope) that the models judged out of scope: no
    threshold automates them."""

    def figures(self) -> dict[str, Any]:
        return {
            "source": self.source.ref,
            "dataset": self.dataset.name,
            "dataset_hash": self.dataset.content_hash,
            "target_accuracy": self.target,
            "confidence": self.confidence,
            **({"training_overlap": self.training_overlap} if self.training_overlap else {}),
            **({"cross_fit": self.cross_fit, "seed": self.seed} if self.cross_fit else {}),
            **(self.chosen.figures() if self.chosen is not None else {}),
            "judged_out_of_scope": self.judged_out_of_scope,
        }


@dataclass(frozen=True)
class EvalService:
    """Scores releases on datasets and calibrates thresholds; built from explicit parts."""

    releases: ReleaseStore
    datasets: DatasetStore
    evals: EvalStore
    task_spec: Callable[[str], TaskSpec]
    """The task as its file describes it now (a calibration may not use its gate dataset)."""
    release_runtime: Callable[[str, int | None], ReleaseRuntime]
    """A release ready to decide, providers built."""
    derived_draft: Callable[[Release, Mapping[str, Any]], Release]
    """A draft with a changed spec pinning the source's artifacts, checked to build."""
    concurrency: int = 16
    fold_runtime: FoldRuntime | None = None
    """Trains a chain in a folder of its own, for cross-fitted calibration."""

    async def evaluate(
        self,
        task: str,
        *,
        release: str | None = None,
        dataset: str | None = None,
        repeat: int = 1,
        actor: str = "cli",
        allow_overlap: bool = False,
        on_progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> Evaluation:
        """Score a release on a dataset (default: the task's gate dataset) and store the run.

        A dataset with inputs the release was trained on is refused; with `allow_overlap` it
        is scored and the run records `training_overlap`, which no promotion gate accepts."""
        chosen = resolve_release(self.releases, task, release)
        data = self.datasets.get(task, _dataset_name(self.task_spec, task, dataset, "gate_dataset"))
        rows = verified_rows(self.datasets, data)
        loaded = self.release_runtime(task, chosen.number)
        overlap = training_overlap(loaded, rows)
        check_overlap(chosen, data, overlap, allow=allow_overlap, action="scoring it")
        if on_start is not None:
            on_start(len(rows) * repeat)
        result = await run_eval(
            loaded,
            rows,
            repeat=repeat,
            concurrency=self.concurrency,
            on_progress=on_progress,
        )
        report = {**result.report, "dataset_hash": data.content_hash}
        metrics = {**result.metrics, **({"training_overlap": overlap} if overlap else {})}
        run = self.evals.save(
            task=task,
            release=chosen.number,
            dataset=data,
            repeat=repeat,
            metrics=metrics,
            report=report,
            actor=actor,
        )
        automated = [i for i in result.runs[0] if i.route == "auto"]
        errors = _confident_errors(rows, automated, scoring_context(loaded.task))
        return Evaluation(run, chosen, data, result, errors)

    async def calibrate(
        self,
        task: str,
        *,
        release: str,
        target: float,
        confidence: float = 0.95,
        dataset: str | None = None,
        actor: str = "cli",
        allow_overlap: bool = False,
        cross_fit: int | None = None,
        seed: int | None = None,
        on_progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
        on_message: Callable[[str], None] | None = None,
    ) -> Calibration:
        """Pick the lowest threshold whose automated accuracy on the calibration dataset has a
        Clopper-Pearson lower bound >= target, and create a release with it (none if no threshold
        qualifies). With `cross_fit` K, the dataset is the training data: each row is decided by
        the release's chain trained on the other folds' rows, dealt into folds by `seed` (see
        `cross_fit.py`)."""
        if seed is not None and cross_fit is None:
            raise ConfigError(
                "--seed deals the rows into folds: it needs --cross-fit",
                hint="add --cross-fit K (for example 5), or leave --seed out",
            )
        if not 0 < target < 1:
            raise ConfigError("--target-accuracy must be between 0 and 1, e.g. 0.98")
        if not 0 < confidence < 1:
            raise ConfigError("--confidence must be between 0 and 1, e.g. 0.95")
        source = resolve_release(self.releases, task, release)
        name = _dataset_name(self.task_spec, task, dataset, "calibration_dataset")
        gates = {
            source.task_spec().evaluation.gate_dataset,
            self.task_spec(task).evaluation.gate_dataset,
        }
        if name in gates:
            raise ConfigError(
                f"{name!r} is the gate dataset of {task}: calibrating on it would tune the "
                "threshold to the very rows that later judge it, so the gate's figures would no "
                "longer be measured on unseen data",
                hint="add a separate calibration dataset (held out from training) and name it in "
                "evaluation.calibration_dataset or with --dataset",
            )
        data = self.datasets.get(task, name)
        if cross_fit is not None and data.sealed:
            raise ConfigError(
                f"{name!r} is a sealed dataset: cross-fitting trains on its rows, and a sealed "
                "dataset is never trained on",
                hint="cross-fit on the training data added as an open dataset "
                "(`lockgate dataset add TASK NAME FILE`)",
            )
        rows = verified_rows(self.datasets, data)
        loaded = self.release_runtime(task, source.number)
        context = scoring_context(loaded.task)
        overlap = 0
        if cross_fit is None:
            overlap = training_overlap(loaded, rows)
            check_overlap(source, data, overlap, allow=allow_overlap, action="calibrating")
        elif self.fold_runtime is None:
            raise ConfigError("cross-fitting needs a project runtime to train the folds in")
        if on_start is not None:
            on_start(len(rows))
        if cross_fit is None:
            result = await run_eval(
                loaded, rows, concurrency=self.concurrency, on_progress=on_progress
            )
            items = result.runs[0]
        else:
            assert self.fold_runtime is not None  # checked above
            items = await cross_fitted(
                loaded.task,
                rows,
                cross_fit,
                self.fold_runtime,
                dataset=name,
                sealed=self.datasets.sealed_inputs(task),
                seed=seed or 0,
                concurrency=self.concurrency,
                on_progress=on_progress,
                say=on_message,
            )
        chosen, considered = pick_threshold(items, context, target, confidence)
        best = max(considered, key=lambda t: t.lower_bound, default=None)
        at = chosen or best
        automated = [i for i in items if i.automated_at(at.threshold)] if at else []
        errors = _confident_errors(rows, automated, context)
        outcome = Calibration(
            source,
            data,
            target,
            confidence,
            chosen,
            best,
            training_overlap=overlap,
            cross_fit=cross_fit,
            seed=seed or 0,
            errors=errors,
            judged_out_of_scope=sum(i.out_of_scope and not context.out_of_scope(i) for i in items),
        )
        if chosen is None:
            return outcome
        body = dict(source.spec)
        body["policy"] = {**dict(body.get("policy", {})), "auto_min_confidence": chosen.threshold}
        draft = self.derived_draft(source, body)
        created_release, created = self.releases.create_calibrated(draft, actor, outcome.figures())
        return replace(outcome, release=created_release, created=created)


def _confident_errors(
    rows: Sequence[DatasetRow], automated: Sequence[Scored], context: ScoringContext
) -> tuple[ConfidentError, ...]:
    """`confident_errors` of the automated items, each with its dataset row."""
    by_seq = {row.seq: row for row in rows}
    return tuple(
        ConfidentError(by_seq[i.row], (i.output or {}).get(context.field), i.confidence or 0.0)
        for i in confident_errors(automated, context)
    )

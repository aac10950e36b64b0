"""Cross-fitted calibration: a threshold calibrated on the very rows the models train on.

The dataset's rows are dealt into K folds (rows with the same input always together). For each
fold, the release's chain is trained on the other folds' rows, as `lockgate train` trains it,
in a folder of its own, and decides the fold's rows. Every row is thus decided by models that
never saw it, and the threshold is picked on all of them at once, as on a calibration dataset.
It costs K trainings, but no labelled row is given up to calibration, and the threshold rests
on every row instead of a held-out share: its lower bound is tighter, so the same target
automates more (benchmarks/banking77_crossfit.py; figures in benchmarks/RESULTS.md).

The release keeps the models trained on every row; they are a little surer than the fold
models, so the threshold is carried over to them, as from any calibration dataset."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from lockgate.decide.pipeline import ChainModel, ReleaseRuntime
from lockgate.decide.records import Record
from lockgate.decide.task import OUT_OF_SCOPE, TaskSpec
from lockgate.errors import ConfigError
from lockgate.evals.datasets import describe_overlap
from lockgate.evals.runner import run_eval
from lockgate.evals.scorers import Scored
from lockgate.evals.types import DatasetRow
from lockgate.providers.base import ProviderContext
from lockgate.providers.registry import ProviderRegistry
from lockgate.settings import Settings

FoldRuntime = Callable[[TaskSpec, Sequence[Record], Path, Callable[[str], None]], ReleaseRuntime]
"""Trains the task's chain on the records, its artifacts in the folder (progress messages to
the callable), and returns the chain ready to decide."""

MAX_FOLDS = 20


def trained_chain(
    task: TaskSpec,
    records: Sequence[Record],
    folder: Path,
    progress: Callable[[str], None],
    *,
    settings: Settings,
    registry: ProviderRegistry,
    sealed: Mapping[str, str],
) -> ReleaseRuntime:
    """The task's chain trained on `records` as `lockgate train` trains it (rows in `sealed`
    refused), its artifacts in `folder` (the rest of `settings` kept), built to decide: a
    `FoldRuntime` once the keyword arguments are given."""
    from lockgate.providers.chain_training import train_chain

    local = replace(settings, project_dir=folder)
    train_chain(task, records, local, sealed=sealed, progress=progress)
    models = tuple(
        ChainModel(model, registry.build(model, ProviderContext(task, local)))
        for model in task.models
    )
    return ReleaseRuntime(task=task, release=0, models=models)


def fold_of(rows: Sequence[DatasetRow], folds: int, seed: int) -> list[int]:
    """Each row's fold (0 to `folds` - 1): the distinct inputs are shuffled (seeded) and dealt
    in turn, so rows with the same input share a fold and fold sizes differ by one input."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.input_hash, []).append(i)
    inputs = sorted(groups)
    random.Random(seed).shuffle(inputs)
    assignment = [0] * len(rows)
    for turn, key in enumerate(inputs):
        for i in groups[key]:
            assignment[i] = turn % folds
    return assignment


def check_folds(folds: int, rows: Sequence[DatasetRow], dataset: str) -> None:
    inputs = len({row.input_hash for row in rows})
    if not 2 <= folds <= MAX_FOLDS:
        raise ConfigError(
            f"--cross-fit must be between 2 and {MAX_FOLDS} folds, not {folds}",
            hint="5 is usual: each model trains on 80% of the rows",
        )
    if inputs < folds * 2:
        raise ConfigError(
            f"dataset {dataset!r} has {inputs} distinct inputs: too few for {folds} folds",
            hint="label more rows, or use fewer folds",
        )


def check_sealed(
    task: TaskSpec, rows: Sequence[DatasetRow], sealed: Mapping[str, str], dataset: str
) -> None:
    """Refuse, before any training, rows whose input is in a sealed dataset of the task."""
    found = [(row.seq, sealed[row.input_hash]) for row in rows if row.input_hash in sealed]
    if found:
        raise ConfigError(
            describe_overlap(f"dataset {dataset!r}", task.name, found),
            hint=f"add the data again under a new name without those rows, and cross-fit on it "
            f"instead of {dataset!r}",
        )


def training_records(rows: Sequence[DatasetRow], dataset: str) -> list[Record]:
    """The rows as training records (out-of-scope rows left out: they have no value to learn,
    but they are still decided and scored)."""
    return [
        Record(str(row.seq), row.seq, {**row.input, **row.expected}, source=f"dataset {dataset}")
        for row in rows
        if OUT_OF_SCOPE not in row.expected.values()
    ]


async def cross_fitted(
    task: TaskSpec,
    rows: Sequence[DatasetRow],
    folds: int,
    fold_runtime: FoldRuntime,
    *,
    dataset: str,
    sealed: Mapping[str, str] | None = None,
    seed: int = 0,
    concurrency: int = 16,
    on_progress: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Scored]:
    """Every row decided by the chain trained on the other folds (rows in fold order)."""
    check_folds(folds, rows, dataset)
    check_sealed(task, rows, sealed or {}, dataset)
    tell = say or (lambda _message: None)
    assignment = fold_of(rows, folds, seed)
    scored: list[Scored] = []
    for k in range(folds):
        held = [row for row, f in zip(rows, assignment, strict=True) if f == k]
        fit = training_records(
            [row for row, f in zip(rows, assignment, strict=True) if f != k], dataset
        )
        tell(f"fold {k + 1}/{folds}: training on {len(fit)} rows, then deciding {len(held)}")
        with tempfile.TemporaryDirectory(prefix="lockgate-fold-") as folder:
            runtime = await asyncio.to_thread(
                fold_runtime, task, fit, Path(folder), lambda message: tell(f"  {message}")
            )
            try:
                result = await run_eval(
                    runtime, held, concurrency=concurrency, on_progress=on_progress
                )
            finally:
                for model in runtime.models:
                    await model.provider.aclose()
        scored.extend(result.runs[0])
    return scored

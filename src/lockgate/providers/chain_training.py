"""Training every trained model of a task's chain, as `lockgate train` does: the local
classifier, then each embedding classifier and each combined model (its members and its
calibration), in chain order. The artifacts go to `settings`' project folder; a provider built
afterwards without pinned artifacts loads these latest ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.decide.records import Record
from lockgate.decide.task import TaskSpec
from lockgate.providers.classifier_training import TrainReport, train_classifier
from lockgate.settings import Settings

if TYPE_CHECKING:
    from lockgate.providers.combined import CombinedTrainReport
    from lockgate.providers.embedding_classifier import EmbeddingTrainReport


@dataclass(frozen=True)
class ChainTraining:
    local: TrainReport
    models: tuple[tuple[int, EmbeddingTrainReport | CombinedTrainReport], ...]
    """The other trained models' reports, with their index in the chain."""


def train_chain(
    task: TaskSpec,
    records: Iterable[Record] | str | Path,
    settings: Settings,
    *,
    seed: int = 0,
    sealed: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChainTraining:
    """Train the local classifier and the chain's other trained models on `records` (rows
    whose input is in `sealed` are refused, as by `lockgate train`)."""
    rows = records if isinstance(records, str | Path) else list(records)
    local = train_classifier(task, rows, settings, seed=seed, progress=progress, sealed=sealed)
    models: list[tuple[int, EmbeddingTrainReport | CombinedTrainReport]] = []
    for index, model in enumerate(task.models):
        report: EmbeddingTrainReport | CombinedTrainReport
        if model.provider == "embedding-classifier":
            from lockgate.providers.embedding_classifier import train_embedding_classifier

            report = train_embedding_classifier(
                task, rows, settings, model, seed=seed, progress=progress, sealed=sealed
            )
        elif model.provider == "combined":
            from lockgate.providers.combined import train_combined

            report = train_combined(
                task,
                model,
                rows,
                settings,
                seed=seed,
                progress=progress,
                sealed=sealed,
                local=local,
            )
        else:
            continue  # trained above (the local classifier), or not trained at all
        models.append((index, report))
    return ChainTraining(local, tuple(models))

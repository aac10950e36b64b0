"""What evals and calibration need from storage; the store's repositories (`Store.releases`,
`Store.datasets`, `Store.evals`) satisfy these Protocols. Each method is one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lockgate.evals.types import Dataset, DatasetRow, EvalRun
from lockgate.rollout.release import Release


class ReleaseStore(Protocol):
    def list_for(self, task: str) -> list[Release]:
        """The task's releases, oldest first."""
        ...

    def get(self, task: str, number: int) -> Release: ...

    def live(self, task: str) -> Release | None: ...

    def create_calibrated(
        self, draft: Release, actor: str, figures: Mapping[str, Any]
    ) -> tuple[Release, bool]:
        """Store `draft` (or find the release with its content) and audit the calibration's
        figures; returns the release and whether it is new."""
        ...


class DatasetStore(Protocol):
    def get(self, task: str, name: str) -> Dataset:
        """The dataset; raises `NotFound` when the task has none of that name."""
        ...

    def rows(self, dataset: Dataset) -> list[DatasetRow]: ...

    def sealed_inputs(self, task: str) -> dict[str, str]:
        """Input hash -> name of the sealed dataset of `task` that holds it."""
        ...


class EvalStore(Protocol):
    def save(
        self,
        *,
        task: str,
        release: int,
        dataset: Dataset,
        repeat: int,
        metrics: Mapping[str, Any],
        report: Mapping[str, Any],
        actor: str,
    ) -> EvalRun: ...

"""What the model tests share, one of each per test module (training is what takes the time,
so a module trains once): a project folder, settings, the kit's training texts, and an
embedding classifier trained on them and built. A module overrides any of them by defining a
fixture of the same name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lockgate.decide.task import TaskSpec
from lockgate.providers.base import ProviderContext
from lockgate.settings import Settings
from tests.providers.model_texts import write_training_csv

if TYPE_CHECKING:  # the embeddings extra: imported by the fixtures that use it, when they run
    from lockgate.providers.embedding_classifier import (
        EmbeddingClassifierProvider,
        EmbeddingTrainReport,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    """Settings of the module's project; a module whose tests need one each defines its own."""
    return Settings(project_dir=project, database_url="sqlite://")


@pytest.fixture(scope="module")
def data(project: Path) -> Path:
    """The kit's labelled training texts, as a CSV file in the project."""
    return write_training_csv(project / "train.csv")


@pytest.fixture(scope="module")
def trained(task: TaskSpec, settings: Settings, data: Path) -> EmbeddingTrainReport:
    """The module's `task` (its first model an embedding classifier) trained on the kit's
    texts; a module with another kind of model defines its own."""
    from lockgate.providers.embedding_classifier import train_embedding_classifier

    return train_embedding_classifier(task, data, settings, task.models[0])


@pytest.fixture(scope="module")
def provider(
    task: TaskSpec, settings: Settings, trained: EmbeddingTrainReport
) -> EmbeddingClassifierProvider:
    """The trained embedding classifier, built as a served release builds it."""
    from lockgate.providers.embedding_classifier import EmbeddingClassifierProvider

    return EmbeddingClassifierProvider.from_spec(task.models[0], ProviderContext(task, settings))

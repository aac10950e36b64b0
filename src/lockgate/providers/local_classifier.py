"""The `local-classifier` provider: a scikit-learn classifier trained with `lockgate train`.

    - provider: local-classifier

A release pins the artifact (by sha256) that was latest when the release was created; the
provider loads that one, checking its hash, so retraining never changes a live release.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.decide.task import ModelSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import Candidate, PreparedRequest, ProviderContext
from lockgate.providers.classifier_model import ClassifierModel
from lockgate.providers.classifier_training import (
    ARTIFACT_KIND,
    artifact_path,
    latest_artifact,
    load_artifact,
)

TOP_ALTERNATIVES = 3


class LocalClassifierProvider:
    name = ARTIFACT_KIND
    can_repair = False

    def __init__(self, model: ClassifierModel, sha256: str) -> None:
        self.endpoint = f"{ARTIFACT_KIND}:{model.task_name}:{sha256[:12]}"
        self.sha256 = sha256
        self._model = model
        self._fields = tuple(model.classifiers)
        self._classes = {name: model.classes(name) for name in self._fields}

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return {ARTIFACT_KIND: _latest(context)}

    @classmethod
    def artifact_files(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, Path]:
        sha = context.artifacts.get(ARTIFACT_KIND) or _latest(context)
        return {ARTIFACT_KIND: artifact_path(context.settings, context.task.name, sha)}

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> LocalClassifierProvider:
        task = context.task
        sha = context.artifacts.get(ARTIFACT_KIND) or _latest(context)
        model = load_artifact(context.settings, task.name, sha, fetch=context.fetch_artifact)
        missing = [name for name in task.output if name not in model.classifiers]
        if missing:
            raise ConfigError(
                f"task {task.name!r}: the local classifier {sha[:12]} was trained without output "
                f"field(s) {', '.join(missing)}",
                hint=f"run `lockgate train {task.name} --data FILE` to retrain",
            )
        return cls(model, sha)

    def training_inputs(self) -> frozenset[str] | None:
        return self._model.training_inputs

    def vocabulary(self) -> frozenset[str]:
        """The single words the model has features for (drift's out-of-vocabulary rate)."""
        words = self._model.features.transformer_list[0][1]
        return frozenset(term for term in words.vocabulary_ if " " not in term)

    def feature_vectors(self, texts: Sequence[str]) -> Any:
        """Texts in the model's word feature space: TF-IDF rows of unit length (sparse), for
        drift's similarity to the reference centroid."""
        words = self._model.features.transformer_list[0][1]
        return words.transform(list(texts))

    def complete_batch(self, requests: Sequence[PreparedRequest]) -> list[Candidate]:
        """One prediction per request, in order: one vectorised pass per output field."""
        if not requests:
            return []
        texts = [self._model.text(r.input) for r in requests]
        probabilities = self._model.predict_proba(texts)
        n = len(texts)
        outputs: list[dict[str, str]] = [{} for _ in range(n)]
        alternatives: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(n)]
        confidence = np.ones(n)
        for name in self._fields:
            probs = probabilities[name]
            classes = self._classes[name]
            k = min(TOP_ALTERNATIVES, probs.shape[1])
            top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            top_probs = np.take_along_axis(probs, top, axis=1)
            np.minimum(confidence, top_probs[:, 0], out=confidence)
            for i, (ids, ps) in enumerate(zip(top.tolist(), top_probs.tolist(), strict=True)):
                outputs[i][name] = classes[ids[0]]
                alternatives[i][name] = [(classes[j], p) for j, p in zip(ids, ps, strict=True)]
        return [
            Candidate(
                output=outputs[i], confidence=float(confidence[i]), alternatives=alternatives[i]
            )
            for i in range(n)
        ]

    async def complete(self, request: PreparedRequest) -> Candidate:
        return self.complete_batch([request])[0]

    async def aclose(self) -> None:
        return None


def _latest(context: ProviderContext) -> str:
    name = context.task.name
    sha = latest_artifact(context.settings, name)
    if sha is None:
        raise ConfigError(
            f"task {name!r} has no trained local classifier",
            hint=f"run `lockgate train {name} --data FILE`",
        )
    return sha

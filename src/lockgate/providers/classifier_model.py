"""The trained local classifier as stored in an artifact: text features and one classifier per
output field. These classes are pickled by name; renaming or moving them breaks old artifacts.

Fitting is scikit-learn's own. Prediction takes a shorter path than scikit-learn's (no input
validation or dispatch per call, which dominates for small batches) and computes the same numbers;
the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

_MAX_CACHED_WORDS = 200_000


class FastTfidfVectorizer(TfidfVectorizer):
    """`TfidfVectorizer` with a faster `transform` for the word and char_wb analyzers.

    char_wb n-grams never cross a space, so a text's counts are the sum of its words' counts:
    each distinct word is analysed once and its vocabulary ids are kept (a bounded cache, not
    pickled).
    """

    @property
    def lean(self) -> bool:
        """Whether this vectorizer's options are ones the fast paths compute."""
        return (
            self.analyzer in ("word", "char_wb") and not self.binary and self.norm in ("l2", None)
        )

    def transform(self, raw_documents: Iterable[str]) -> sp.csr_matrix:
        if isinstance(raw_documents, str) or not self.lean:
            return super().transform(raw_documents)
        docs = list(raw_documents)
        if self.analyzer == "char_wb":
            indices, indptr = self._char_wb_ids(docs)
        else:
            indices, indptr = self._word_ids(docs)
        matrix = sp.csr_matrix(
            (np.ones(indices.size, dtype=self.dtype), indices, indptr),
            shape=(len(docs), len(self.vocabulary_)),
        )
        matrix.sum_duplicates()
        data = matrix.data
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1
        if self.use_idf:
            data *= self.idf_[matrix.indices]
        if self.norm == "l2":
            rows = np.repeat(np.arange(len(docs)), np.diff(matrix.indptr))
            norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(docs)))
            norms[norms == 0] = 1
            data /= norms[rows]
        return matrix

    def row(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """One document's features as (vocabulary ids ascending, weights): the one row of
        `transform([doc])`, without a sparse matrix (whose set-up costs more than the
        arithmetic for one text). Only for a `lean` vectorizer."""
        ids, _ = self._char_wb_ids([doc]) if self.analyzer == "char_wb" else self._word_ids([doc])
        columns, counts = np.unique(ids, return_counts=True)
        data = counts.astype(self.dtype)
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1
        if self.use_idf:
            data *= self.idf_[columns]
        if self.norm == "l2":
            norm = np.sqrt(np.square(data).sum(dtype=np.float64))
            if norm:
                data /= norm
        return columns, data

    def _word_ids(self, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        vocabulary = self.vocabulary_
        analyze = self.build_analyzer()
        flat: list[int] = []
        indptr = [0]
        for doc in docs:
            flat.extend([vocabulary[t] for t in analyze(doc) if t in vocabulary])
            indptr.append(len(flat))
        return np.asarray(flat, dtype=np.int32), np.asarray(indptr, dtype=np.int64)

    def _char_wb_ids(self, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cache: dict[str, np.ndarray] | None = self.__dict__.get("_cached_word_ids")
        if cache is None or len(cache) > _MAX_CACHED_WORDS:
            cache = self.__dict__["_cached_word_ids"] = {}
        vocabulary = self.vocabulary_
        analyze = self.build_analyzer()
        parts: list[np.ndarray] = []
        indptr = [0]
        total = 0
        for doc in docs:
            for word in doc.split():
                ids = cache.get(word)
                if ids is None:
                    grams = [vocabulary[g] for g in analyze(word) if g in vocabulary]
                    ids = cache[word] = np.asarray(grams, dtype=np.int32)
                parts.append(ids)
                total += ids.size
            indptr.append(total)
        indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return indices, np.asarray(indptr, dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_cached_word_ids", None)
        return state


@dataclass(frozen=True)
class ClassifierModel:
    """An artifact's content: text features shared by all output fields, a classifier per field."""

    task_name: str
    input_fields: tuple[str, ...]
    features: FeatureUnion
    classifiers: Mapping[str, LogisticRegression]
    training_inputs: frozenset[str] | None = None
    """The fingerprints (`evals.types.input_fingerprint`) of the inputs it was fitted on, so an
    eval can tell when a dataset overlaps them; None for artifacts trained before they were
    kept (unpickled ones get this class default)."""

    def text(self, values: Mapping[str, Any]) -> str:
        return "\n".join(_text(values.get(name)) for name in self.input_fields)

    def classes(self, field_name: str) -> list[str]:
        return [str(c) for c in self.classifiers[field_name].classes_]

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Per output field, an array (len(texts), len(classes(field))) of probabilities.

        The same numbers as `classifier.predict_proba(features.transform(texts))`.
        """
        docs = list(texts)
        transformers = [t for _, t in self.features.transformer_list]
        if len(docs) <= _FEW and all(
            isinstance(t, FastTfidfVectorizer) and t.lean for t in transformers
        ):
            return self._predict_few(docs, transformers)
        parts = [t.transform(docs) for t in transformers]
        matrix = sp.hstack(parts, format="csr")
        return {
            name: _probabilities(np.asarray(matrix @ clf.coef_.T) + clf.intercept_)
            for name, clf in self.classifiers.items()
        }

    def _predict_few(
        self, docs: list[str], transformers: list[FastTfidfVectorizer]
    ) -> dict[str, np.ndarray]:
        """`predict_proba` for a few texts: each text's few non-zero features pick their
        columns of the coefficients directly (the same sums as the sparse product)."""
        offsets = np.cumsum([0] + [len(t.vocabulary_) for t in transformers[:-1]])
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        for doc in docs:
            parts = [t.row(doc) for t in transformers]
            columns = np.concatenate([c + o for (c, _), o in zip(parts, offsets, strict=True)])
            rows.append((columns, np.concatenate([w for _, w in parts])))
        return {
            name: _probabilities(
                np.array([clf.coef_[:, columns] @ weights for columns, weights in rows])
                + clf.intercept_
            )
            for name, clf in self.classifiers.items()
        }


_FEW = 8
"""Up to this many texts, `predict_proba` skips the sparse matrices (see `_predict_few`)."""


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from a (texts, classes) array of logits (one column: two classes)."""
    if scores.shape[1] == 1:  # two classes: one logit, as LogisticRegression does it
        positive = expit(scores[:, 0])
        return np.column_stack([1 - positive, positive])
    return np.asarray(softmax(scores, axis=1))


def _text(value: Any) -> str:
    return "" if value is None else str(value)

"""A release's reference profile: what its inputs and outputs looked like when it was made.

Built when a release is created (`lockgate release create`, `lockgate retrain`), by deciding a
reference sample with the release itself (the rows of the task's gate dataset: held out from
training, from the same distribution as the traffic it was made for), nothing stored. Drift
(`watch.drift`) compares a window of live decisions with it.

The profile is plain JSON:

- `labels`: per output field, the share of each value among the sample's outputs;
- `confidence`: the sample's confidences (rounded), binned by fixed edges;
- `fields`: per input field by its type:
  - text: length quantiles (as bin edges and shares), the out-of-vocabulary rate of its words
    against the model's training vocabulary (binned per input), and the cosine similarity to
    the sample's centroid in the model's feature space where the provider offers one (the local
    classifier's TF-IDF vectors, the embedding classifier's embeddings);
  - number: quantiles (bin edges and shares);
  - boolean: the share of each value;
- `accuracy`: agreement of the automated sample rows with the dataset's expected outputs.

numpy is imported inside the functions that compute: `lockgate serve` and every command
that loads the alert conditions import this module, and most never compute drift.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from lockgate.decide.task import TaskSpec

VERSION = 1
CONFIDENCE_EDGES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
"""Inner edges of the confidence bins: 10 bins, finer where automation decides."""
OOV_EDGES = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5)
"""Inner edges of the per-input out-of-vocabulary share: a bin of its own for none at all."""
QUANTILE_BINS = 10
CENTROID_DIMENSIONS = 2000
"""Largest components of a sparse centroid kept (cosine similarity against them)."""
MAX_VOCABULARY = 50_000
_WORD = re.compile(r"[^\W\d_]{2,}")


class FeatureSpace(Protocol):
    """A provider's feature space: texts as vectors (rows of unit length, dense or sparse)."""

    def feature_vectors(self, texts: Sequence[str]) -> Any: ...


def words(text: str) -> list[str]:
    """The words of a text, lower-cased: letters only, two or more of them."""
    return _WORD.findall(text.lower())


def oov_share(text: str, vocabulary: frozenset[str]) -> float:
    found = words(text)
    if not found:
        return 0.0
    return sum(w not in vocabulary for w in found) / len(found)


def bin_shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """The share of `values` in each bin of the inner `edges` (len(edges) + 1 bins; a value
    equal to an edge goes to the bin above it)."""
    import numpy as np

    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), "right"),
        minlength=len(edges) + 1,
    )
    total = max(1, len(values))
    return [float(c) / total for c in counts]


def quantile_edges(values: Sequence[float], bins: int = QUANTILE_BINS) -> list[float]:
    """Inner bin edges at the quantiles of `values`, without repeats."""
    import numpy as np

    if not values:
        return []
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({round(float(q), 6) for q in qs})


def binned(values: Sequence[float], edges: Sequence[float]) -> dict[str, Any]:
    return {"edges": list(edges), "shares": bin_shares(values, edges)}


def shares(values: Iterable[Any]) -> dict[str, float]:
    counts = Counter(str(v) for v in values)
    total = sum(counts.values()) or 1
    return {k: n / total for k, n in sorted(counts.items())}


def centroid(vectors: Any) -> tuple[list[int], list[float]]:
    """The mean of unit rows as (indices, values) of its largest components, of unit length."""
    import numpy as np

    mean = np.asarray(vectors.mean(axis=0)).ravel()
    keep = np.argsort(-np.abs(mean))[:CENTROID_DIMENSIONS]
    keep = np.sort(keep[mean[keep] != 0])
    values = mean[keep]
    norm = float(np.linalg.norm(values)) or 1.0
    return [int(i) for i in keep], [round(float(v) / norm, 6) for v in values]


def similarities(vectors: Any, indices: Sequence[int], values: Sequence[float]) -> list[float]:
    """Cosine similarity of each (unit) row with the stored centroid."""
    import numpy as np

    if not indices:
        return [0.0] * vectors.shape[0]
    dense = np.zeros(vectors.shape[1])
    dense[np.asarray(indices)] = np.asarray(values)
    return [float(x) for x in np.asarray(vectors @ dense).ravel()]


def field_kind(spec: TaskSpec, name: str) -> str:
    kind = spec.input[name].type
    return "text" if kind == "string" else "boolean" if kind == "boolean" else "number"


def build_profile(
    spec: TaskSpec,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any] | None],
    confidences: Sequence[float | None],
    *,
    routes: Sequence[str | None] = (),
    expected: Sequence[Mapping[str, Any]] = (),
    vocabulary: frozenset[str] | None = None,
    space: FeatureSpace | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The reference profile of a sample the release decided (see the module's docstring).
    Without the model's `vocabulary`, the words of the first half of the sample stand in for
    it, and the out-of-vocabulary rate is measured on the second half."""
    n = len(inputs)
    profile: dict[str, Any] = {"version": VERSION, "n": n, "source": dict(source or {})}
    profile["labels"] = {
        name: shares(o.get(name) for o in outputs if o is not None and o.get(name) is not None)
        for name in spec.output
        if spec.output[name].type in ("enum", "boolean", "string")
    }
    known = [float(c) for c in confidences if c is not None]
    profile["confidence"] = {
        **binned(known, CONFIDENCE_EDGES),
        "sample": [round(c, 4) for c in known[:5000]],
    }
    own_vocabulary = vocabulary is None
    if vocabulary is None:
        half = inputs[: max(1, n // 2)]
        vocabulary = frozenset(
            w for i in half for v in i.values() if isinstance(v, str) for w in words(v)
        )
    fields: dict[str, Any] = {}
    for name in spec.input:
        kind = field_kind(spec, name)
        values = [i.get(name) for i in inputs]
        if kind == "text":
            texts = ["" if v is None else str(v) for v in values]
            lengths = [float(len(t)) for t in texts]
            measured = texts[n // 2 :] if own_vocabulary and n > 1 else texts
            rates = [oov_share(t, vocabulary) for t in measured]
            entry: dict[str, Any] = {
                "kind": kind,
                "length": binned(lengths, quantile_edges(lengths)),
                "oov": {**binned(rates, OOV_EDGES), "mean": _mean(rates)},
            }
            if space is not None and texts:
                vectors = space.feature_vectors(texts)
                indices, weights = centroid(vectors)
                sims = similarities(vectors, indices, weights)
                entry["similarity"] = {
                    **binned(sims, quantile_edges(sims)),
                    "mean": _mean(sims),
                    "centroid": {"indices": indices, "values": weights},
                }
            fields[name] = entry
        elif kind == "number":
            numbers = [float(v) for v in values if isinstance(v, int | float)]
            fields[name] = {"kind": kind, "values": binned(numbers, quantile_edges(numbers))}
        else:
            fields[name] = {"kind": kind, "shares": shares(v for v in values if v is not None)}
    profile["fields"] = fields
    profile["vocabulary"] = sorted(vocabulary)[:MAX_VOCABULARY]
    profile["accuracy"] = _accuracy(spec, outputs, routes, expected)
    return profile


def _accuracy(
    spec: TaskSpec,
    outputs: Sequence[Mapping[str, Any] | None],
    routes: Sequence[str | None],
    expected: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    if not expected or len(expected) != len(outputs) or len(routes) != len(outputs):
        return None
    scored = spec.evaluation.field or next(iter(spec.output))
    n = agree = 0
    for output, route, truth in zip(outputs, routes, expected, strict=True):
        if route != "auto" or output is None or scored not in truth:
            continue
        n += 1
        agree += str(output.get(scored)) == str(truth.get(scored))
    return {"field": scored, "n": n, "agree": agree}


def _mean(values: Sequence[float]) -> float | None:
    return round(math.fsum(values) / len(values), 6) if values else None

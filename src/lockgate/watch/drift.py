"""Drift: a window of live decisions against the release's reference profile (`watch.profile`).

Each signal compares one distribution with the reference by its population stability index,
PSI = sum over bins of (live - reference) * ln(live / reference), the shares smoothed by half a
count per bin so an empty bin stays finite. The usual reading, used here: below 0.1 `ok`,
from 0.1 `warn`, from 0.25 `drift`, each threshold raised by the PSI that sampling alone gives
two samples of these sizes (`noise`: 0.027 for 10 bins, 1,000 live and 2,000 reference
decisions). Where a test fits, its p-value is given too (chi-square
for labels and booleans, Kolmogorov-Smirnov for the confidences), and a `drift` verdict also
needs p < 0.001: a large PSI from a handful of decisions is not called drift.

Signals: the output labels (`output.FIELD`), the confidences (`confidence`), per input field
its text length (`input.FIELD.length`), out-of-vocabulary rate (`input.FIELD.oov`) and
similarity to the reference centroid in the model's feature space (`input.FIELD.similarity`),
a number's distribution or a boolean's shares (`input.FIELD`), and the shift of live accuracy
from the reference sample's accuracy (`accuracy`: the drop, `warn` from 0.05 and `drift` from
0.10 when the live 95% Wilson interval lies wholly below the reference).

The verdict of the window is its worst signal's. A window of fewer than `MIN_DECISIONS`
decisions gets no verdict but `ok`, and says so.

numpy is imported inside the functions that compute: `lockgate serve` and every command
that loads the alert conditions import this module, and most never compute drift.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockgate.decide.task import TaskSpec
from lockgate.stats import wilson_interval
from lockgate.watch.profile import (
    CONFIDENCE_EDGES,
    OOV_EDGES,
    FeatureSpace,
    field_kind,
    oov_share,
    similarities,
)
from lockgate.watch.types import Observed

PSI_WARN = 0.1
PSI_DRIFT = 0.25
P_DRIFT = 0.001
ACCURACY_WARN = 0.05
ACCURACY_DRIFT = 0.10
MIN_DECISIONS = 50
VERDICTS = ("ok", "warn", "drift")


@dataclass(frozen=True)
class Signal:
    name: str
    value: float | None
    threshold: float
    """The value from which the verdict is `drift` (`warn` from `warn_at`)."""
    verdict: str
    warn_at: float
    p_value: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 4),
            "threshold": self.threshold,
            "verdict": self.verdict,
            "warn_at": self.warn_at,
        }
        if self.p_value is not None:
            shown["p_value"] = float(f"{self.p_value:.3g}")
        shown.update(self.detail)
        return shown


@dataclass(frozen=True)
class DriftReport:
    task: str
    release: int
    window: Mapping[str, Any]
    signals: tuple[Signal, ...]
    verdict: str
    note: str | None = None

    def signal(self, name: str) -> Signal | None:
        return next((s for s in self.signals if s.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "task": self.task,
            "release": f"{self.task}@{self.release}",
            "window": dict(self.window),
            "signals": [s.as_dict() for s in self.signals],
            "verdict": self.verdict,
        }
        if self.note:
            shown["note"] = self.note
        return shown


def psi(reference: Sequence[float], reference_n: int, live: Sequence[float], live_n: int) -> float:
    """The population stability index of two binned distributions given as shares, each
    smoothed by half a count per bin."""
    k = len(reference)
    total = 0.0
    for ref, now in zip(reference, live, strict=True):
        e = (ref * reference_n + 0.5) / (reference_n + 0.5 * k)
        a = (now * live_n + 0.5) / (live_n + 0.5 * k)
        total += (a - e) * math.log(a / e)
    return total


def _bins(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    import numpy as np

    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), "right"),
        minlength=len(edges) + 1,
    )
    return [float(c) / max(1, len(values)) for c in counts]


def noise(bins: int, reference_n: int, live_n: int) -> float:
    """Twice the PSI two samples of these sizes from one distribution show on average,
    (bins - 1) * (1/n + 1/m): added to both thresholds, so a small window is not called drift
    for its sampling noise alone."""
    return 2 * (bins - 1) * (1 / max(1, reference_n) + 1 / max(1, live_n))


def _verdict(value: float, warn: float, drift: float, p_value: float | None = None) -> str:
    if value >= drift and (p_value is None or p_value < P_DRIFT):
        return "drift"
    return "warn" if value >= warn else "ok"


def _psi_signal(
    name: str,
    reference: Mapping[str, Any],
    reference_n: int,
    values: Sequence[float],
    *,
    p_value: float | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Signal:
    live = _bins(values, reference["edges"])
    value = psi(reference["shares"], reference_n, live, len(values))
    return _scored_signal(name, value, len(live), reference_n, len(values), p_value, detail)


def _scored_signal(
    name: str,
    value: float,
    bins: int,
    reference_n: int,
    live_n: int,
    p_value: float | None,
    detail: Mapping[str, Any] | None,
) -> Signal:
    allowance = noise(bins, reference_n, live_n)
    warn, drift = round(PSI_WARN + allowance, 4), round(PSI_DRIFT + allowance, 4)
    verdict = _verdict(value, warn, drift, p_value)
    return Signal(name, value, drift, verdict, warn, p_value, dict(detail or {}))


def _categorical_signal(
    name: str, reference: Mapping[str, float], reference_n: int, values: Sequence[Any]
) -> Signal:
    counts = Counter(str(v) for v in values)
    keys = sorted(set(reference) | set(counts))
    n = sum(counts.values())
    ref = [reference.get(k, 0.0) for k in keys]
    live = [counts.get(k, 0) / max(1, n) for k in keys]
    value = psi(ref, reference_n, live, n)
    p_value = _chi_square(ref, reference_n, [counts.get(k, 0) for k in keys])
    new = sorted(k for k in counts if k not in reference)
    detail = {"new_values": new[:10]} if new else {}
    return _scored_signal(name, value, len(keys), reference_n, n, p_value, detail)


def _chi_square(reference: Sequence[float], reference_n: int, live: Sequence[int]) -> float | None:
    import numpy as np
    from scipy.stats import chi2_contingency

    ref_counts = [round(share * reference_n) for share in reference]
    table = np.array([ref_counts, list(live)], dtype=float) + 0.5
    if table.shape[1] < 2 or sum(live) == 0:
        return None
    return float(chi2_contingency(table)[1])


def _ks(reference: Sequence[float], live: Sequence[float]) -> float | None:
    if not reference or not live:
        return None
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, live).pvalue)


def accuracy_signal(reference: Mapping[str, Any] | None, agree: int, n: int) -> Signal:
    """The drop of live accuracy (judged automated decisions in the window) from the
    reference sample's accuracy; no value without both."""
    if not reference or not reference.get("n") or n == 0:
        none = {"n": n, "note": "no judged automated decisions in the window" if n == 0 else ""}
        return Signal("accuracy", None, ACCURACY_DRIFT, "ok", ACCURACY_WARN, None, none)
    expected = reference["agree"] / reference["n"]
    rate = agree / n
    low, high = wilson_interval(agree, n)
    drop = expected - rate
    below = high < expected
    verdict = (
        "drift"
        if drop >= ACCURACY_DRIFT and below
        else "warn"
        if drop >= ACCURACY_WARN and below
        else "ok"
    )
    detail: dict[str, Any] = {
        "n": n,
        "live": round(rate, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "reference": round(expected, 4),
    }
    return Signal("accuracy", drop, ACCURACY_DRIFT, verdict, ACCURACY_WARN, None, detail)


def drift_report(
    spec: TaskSpec,
    profile: Mapping[str, Any],
    window: Sequence[Observed],
    *,
    release: int,
    window_info: Mapping[str, Any],
    space: FeatureSpace | None = None,
    judged: tuple[int, int] = (0, 0),
) -> DriftReport:
    """Compare `window` (decisions of one release) with its reference `profile`; `judged` is
    (agree, n) of the judged automated decisions of the window, for the accuracy signal."""
    ref_n = int(profile.get("n") or 0)
    signals: list[Signal] = []
    outputs = [o.output for o in window if o.output is not None]
    for name, reference in (profile.get("labels") or {}).items():
        values = [o.get(name) for o in outputs if o.get(name) is not None]
        signals.append(_categorical_signal(f"output.{name}", reference, ref_n, values))
    confidences = [float(o.confidence) for o in window if o.confidence is not None]
    reference = profile.get("confidence")
    if reference and confidences:
        reference = {**reference, "edges": list(reference.get("edges") or CONFIDENCE_EDGES)}
        p_value = _ks(reference.get("sample") or [], confidences)
        signals.append(_psi_signal("confidence", reference, ref_n, confidences, p_value=p_value))
    vocabulary = frozenset(profile.get("vocabulary") or ())
    for name, entry in (profile.get("fields") or {}).items():
        if name not in spec.input:
            continue
        values = [o.input.get(name) for o in window]
        kind = field_kind(spec, name)
        if kind == "text" and entry.get("kind") == "text":
            texts = ["" if v is None else str(v) for v in values]
            lengths = [float(len(t)) for t in texts]
            signals.append(_psi_signal(f"input.{name}.length", entry["length"], ref_n, lengths))
            rates = [oov_share(t, vocabulary) for t in texts]
            mean = round(sum(rates) / len(rates), 4) if rates else None
            signals.append(
                _psi_signal(
                    f"input.{name}.oov",
                    {**entry["oov"], "edges": list(entry["oov"].get("edges") or OOV_EDGES)},
                    ref_n,
                    rates,
                    detail={"rate": mean, "reference_rate": entry["oov"].get("mean")},
                )
            )
            similarity = entry.get("similarity")
            if similarity is not None and space is not None and texts:
                centre = similarity["centroid"]
                sims = similarities(
                    space.feature_vectors(texts), centre["indices"], centre["values"]
                )
                signals.append(
                    _psi_signal(
                        f"input.{name}.similarity",
                        similarity,
                        ref_n,
                        sims,
                        detail={
                            "mean": round(sum(sims) / len(sims), 4),
                            "reference_mean": similarity.get("mean"),
                        },
                    )
                )
        elif kind == "number" and "values" in entry:
            numbers = [float(v) for v in values if isinstance(v, int | float)]
            if numbers:
                signals.append(_psi_signal(f"input.{name}", entry["values"], ref_n, numbers))
        elif "shares" in entry:
            present = [v for v in values if v is not None]
            signals.append(_categorical_signal(f"input.{name}", entry["shares"], ref_n, present))
    signals.append(accuracy_signal(profile.get("accuracy"), *judged))
    note = None
    if len(window) < MIN_DECISIONS:
        note = (
            f"{len(window)} decisions in the window: too few for a verdict "
            f"(at least {MIN_DECISIONS})"
        )
        signals = [
            Signal(s.name, s.value, s.threshold, "ok", s.warn_at, s.p_value, s.detail)
            for s in signals
        ]
    verdict = max((s.verdict for s in signals), key=VERDICTS.index, default="ok")
    return DriftReport(spec.name, release, window_info, tuple(signals), verdict, note)

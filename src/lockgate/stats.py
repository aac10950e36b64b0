"""Summary statistics shared by batches, evals and shadow reports (stdlib only)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q` quantile (0 < q < 1, in hundredths) of `values`, interpolated linearly between
    the nearest ranks; the one value when there is one; None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]

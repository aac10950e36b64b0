"""Reference profiles made from a release, and the drift check of a window against one.

`make_profile` decides a reference sample with the release through the real pipeline, nothing
stored (as an eval does), and builds its profile (`watch.profile`). The sample is the task's
gate dataset, else its calibration dataset, at most `REFERENCE_ROWS` rows. `check_drift`
reads the window of decisions and the judged ones from storage and compares them
(`watch.drift`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from lockgate.decide.pipeline import ReleaseRuntime
from lockgate.errors import NotFound
from lockgate.evals.runner import decide_rows
from lockgate.evals.types import Dataset, DatasetRow
from lockgate.watch.drift import DriftReport, drift_report
from lockgate.watch.profile import FeatureSpace, build_profile
from lockgate.watch.quality import one_per_decision
from lockgate.watch.types import Judged, Observed

REFERENCE_ROWS = 2000


class DatasetReader(Protocol):
    def list_for(self, task: str | None = None) -> list[Dataset]: ...

    def rows(self, dataset: Dataset) -> list[DatasetRow]: ...


class DriftStore(Protocol):
    def observed(
        self, task: str, release: int, since: datetime | None, limit: int
    ) -> list[Observed]: ...

    def profile(self, task: str, release: int) -> Mapping[str, Any] | None: ...

    def judged(
        self, task: str, *, since: datetime | None = None, release: int | None = None
    ) -> list[Judged]: ...


def feature_space(loaded: ReleaseRuntime) -> FeatureSpace | None:
    """The first model of the chain that offers a feature space, if any."""
    for model in loaded.models:
        if callable(getattr(model.provider, "feature_vectors", None)):
            space: FeatureSpace = model.provider  # type: ignore[assignment]
            return space
    return None


def vocabulary_of(loaded: ReleaseRuntime) -> frozenset[str] | None:
    for model in loaded.models:
        known = getattr(model.provider, "vocabulary", None)
        if callable(known):
            found = known()
            if isinstance(found, frozenset):
                return found
    return None


def reference_rows(
    datasets: DatasetReader, loaded: ReleaseRuntime
) -> tuple[list[DatasetRow], dict[str, Any]] | None:
    """The reference sample: the gate dataset's rows, else the calibration dataset's (a seeded
    sample of `REFERENCE_ROWS` when larger); None when the task has neither."""
    evaluation = loaded.task.evaluation
    stored = {d.name: d for d in datasets.list_for(loaded.task.name)}
    for name in (evaluation.gate_dataset, evaluation.calibration_dataset):
        if name is not None and name in stored:
            rows = datasets.rows(stored[name])
            if len(rows) > REFERENCE_ROWS:
                rows = random.Random(0).sample(rows, REFERENCE_ROWS)
            return rows, {"dataset": name, "rows": len(rows)}
    return None


async def make_profile(
    loaded: ReleaseRuntime, rows: Sequence[DatasetRow], source: Mapping[str, Any]
) -> dict[str, Any]:
    """Decide `rows` with the release (nothing stored) and profile the result."""
    scored = await decide_rows(loaded, rows)
    return build_profile(
        loaded.task,
        [row.input for row in rows],
        [s.output for s in scored],
        [s.confidence for s in scored],
        routes=[s.route for s in scored],
        expected=[row.expected for row in rows],
        vocabulary=vocabulary_of(loaded),
        space=feature_space(loaded),
        source={**source, "release": f"{loaded.task.name}@{loaded.release}"},
    )


CLOCK_MARGIN = timedelta(hours=1)
"""How much earlier than its decision a judgment may be stamped (by another replica's clock)."""


def check_drift(
    store: DriftStore,
    loaded: ReleaseRuntime,
    *,
    now: datetime,
    hours: float | None,
    decisions: int,
) -> DriftReport:
    """Drift of the release's last `decisions` decisions (none older than `hours`, when
    given) against its reference profile."""
    task, release = loaded.task.name, loaded.release
    profile = store.profile(task, release)
    if profile is None:
        raise NotFound(
            f"{task}@{release} has no reference profile",
            hint=f"give the task a gate dataset and run `lockgate release create {task}` "
            "(it profiles the release)",
        )
    since = None if hours is None else now - timedelta(hours=hours)
    window = store.observed(task, release, since, decisions)
    start = min((o.created_at for o in window), default=None)
    ids = {o.decision_id for o in window}
    # A judgment comes after its decision: those of the window's decisions are all since its
    # start (an hour's margin for the clocks of other replicas). Reading from the start of
    # the release would read every spot check and feedback it ever had.
    judged = (
        [
            j
            for j in one_per_decision(
                store.judged(task, since=start - CLOCK_MARGIN, release=release)
            )
            if j.route == "auto" and j.decision_id in ids
        ]
        if start is not None
        else []
    )
    info = {
        "hours": hours,
        "decisions": decisions,
        "n": len(window),
        "from": start.isoformat() if start else None,
        "to": max(o.created_at for o in window).isoformat() if window else None,
    }
    return drift_report(
        loaded.task,
        profile,
        window,
        release=release,
        window_info=info,
        space=feature_space(loaded),
        judged=(sum(j.agrees for j in judged), len(judged)),
    )

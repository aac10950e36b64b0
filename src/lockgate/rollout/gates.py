"""Promotion gates: a release's eval figures checked against the task's gate.

`check_gate(gate, candidate, live)` is pure: it takes the headline metrics of the candidate's
latest eval on the gate dataset (and of the live release's, when there is one) and returns
every check with its figure, its threshold and whether it passed. `promote` applies it when a
release is promoted, through a small store interface (no SQL here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.decide.task import GateSpec
from lockgate.errors import Conflict, Forbidden, InputError
from lockgate.rollout.release import Release

if TYPE_CHECKING:
    from lockgate.evals.types import EvalRun


@dataclass(frozen=True)
class GateCheck:
    name: str
    """e.g. `min_accuracy`, `non_inferior_to_live.accuracy`."""
    figure: float | None
    """The candidate's figure (None when the eval did not produce it)."""
    threshold: float | None
    """The bound the figure is compared with (None when there is nothing to compare with)."""
    passed: bool
    note: str = ""

    def describe(self) -> str:
        if self.figure is None and self.threshold is None and self.note:
            # Nothing was measured: say what is missing, not "= n/a".
            return f"{'pass' if self.passed else 'FAIL'} {self.name}: {self.note}"
        figure = "n/a" if self.figure is None else _fmt(self.figure)
        bound = "" if self.threshold is None else f" (bound {_fmt(self.threshold)})"
        verdict = "pass" if self.passed else "FAIL"
        note = f": {self.note}" if self.note else ""
        return f"{verdict} {self.name} = {figure}{bound}{note}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "figure": self.figure,
            "threshold": self.threshold,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class GateResult:
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failing(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        return "; ".join(c.describe() for c in (self.failing or self.checks))

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.as_dict() for c in self.checks]}


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _figure(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _at_least(name: str, figure: float | None, bound: float) -> GateCheck:
    if figure is None:
        return GateCheck(name, None, bound, False, "the eval has no such figure")
    return GateCheck(name, figure, bound, figure >= bound)


def _at_most(name: str, figure: float | None, bound: float) -> GateCheck:
    if figure is None:
        return GateCheck(name, None, bound, False, "the eval has no such figure")
    return GateCheck(name, figure, bound, figure <= bound)


def check_gate(
    gate: GateSpec,
    candidate: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    *,
    live_ref: str | None = None,
) -> GateResult:
    """Every check the gate configures, in a fixed order.

    `live` is the live release's eval metrics on the same dataset; `live_ref` names the live
    release (None when the task has none: non-inferiority then passes, there is nothing to be
    worse than). A live release without an eval fails non-inferiority: it cannot be shown.
    """
    checks: list[GateCheck] = []
    overlap = _figure(candidate, "training_overlap")
    if overlap:
        checks.append(
            GateCheck(
                "held_out",
                overlap,
                0.0,
                False,
                f"the eval ran on {overlap:.0f} rows the release was trained on "
                "(--allow-overlap): not gate-worthy; evaluate a release trained without them",
            )
        )
    if gate.min_accuracy is not None:
        checks.append(_at_least("min_accuracy", _figure(candidate, "accuracy"), gate.min_accuracy))
    if gate.min_auto_accuracy is not None:
        checks.append(
            _at_least(
                "min_auto_accuracy", _figure(candidate, "auto_accuracy"), gate.min_auto_accuracy
            )
        )
    if gate.min_oos_caught is not None:
        caught = _figure(candidate, "oos_caught")
        if caught is None:
            checks.append(
                GateCheck(
                    "min_oos_caught",
                    None,
                    gate.min_oos_caught,
                    False,
                    "the gate dataset has no out-of-scope rows (expected __out_of_scope__); "
                    "add some to measure it",
                )
            )
        else:
            checks.append(_at_least("min_oos_caught", caught, gate.min_oos_caught))
    if gate.max_cost_per_decision is not None:
        checks.append(
            _at_most(
                "max_cost_per_decision",
                _figure(candidate, "cost_per_decision"),
                gate.max_cost_per_decision,
            )
        )
    if gate.max_latency_p95_ms is not None:
        checks.append(
            _at_most(
                "max_latency_p95_ms", _figure(candidate, "latency_p95_ms"), gate.max_latency_p95_ms
            )
        )
    rule = gate.non_inferior_to_live
    if rule is not None:
        name = f"non_inferior_to_live.{rule.metric}"
        figure = _figure(candidate, rule.metric)
        if live_ref is None:
            checks.append(GateCheck(name, figure, None, True, "no live release to compare with"))
        elif live is None or _figure(live, "training_overlap"):
            why = (
                f"{live_ref} has no eval on the gate dataset; run `lockgate eval "
                f"{live_ref.partition('@')[0]} --release {live_ref}` first"
                if live is None
                else f"{live_ref}'s eval on the gate dataset ran on "
                f"{_figure(live, 'training_overlap'):.0f} rows it was trained on, so its "
                "figures are no fair baseline"
            )
            checks.append(GateCheck(name, figure, None, False, why))
        else:
            reference = _figure(live, rule.metric)
            if reference is None:
                checks.append(
                    GateCheck(name, figure, None, False, f"{live_ref}'s eval has no such figure")
                )
            else:
                bound = reference - rule.margin
                check = _at_least(name, figure, bound)
                note = f"{live_ref} has {_fmt(reference)}, margin {_fmt(rule.margin)}"
                checks.append(GateCheck(check.name, check.figure, bound, check.passed, note))
    return GateResult(tuple(checks))


# ---- the gate at promotion time


class GateStore(Protocol):
    """What promotion needs from storage (`Store.rollout`)."""

    def serving(self, task: str) -> tuple[Release | None, Release | None]: ...

    def gate_evals(
        self, task: str, numbers: Sequence[int], dataset: str
    ) -> tuple[str | None, Mapping[int, EvalRun | None]]: ...

    def promote(
        self,
        task: str,
        number: int,
        actor: str,
        reason: str | None,
        details: Mapping[str, Any],
        override: Mapping[str, Any] | None,
    ) -> Release: ...


class GateFailed(Conflict):
    """Promotion refused: the release's eval does not pass the task's gate."""

    def __init__(self, ref: str, result: GateResult) -> None:
        self.result = result
        super().__init__(
            f"{ref} does not pass the promotion gate: {result.summary()}",
            hint="fix the release and run `lockgate eval` again; an admin may promote anyway "
            "with --override-reason TEXT (audited)",
        )


def gate_result(store: GateStore, release: Release) -> GateResult | None:
    """The gate a release must pass to go live; None when neither it nor the live release has
    one.

    The release's own gate (from its task snapshot) applies, and so does the live release's
    gate when it differs: a candidate cannot loosen the gate it is promoted under. Changing
    the gate for the worse therefore needs one audited admin override."""
    live, _ = store.serving(release.task)
    own = _gate_of(store, release, release, live)
    if live is None or live.number == release.number:
        return own
    live_evaluation = live.task_spec().evaluation
    own_evaluation = release.task_spec().evaluation
    if live_evaluation.gate is None or (
        live_evaluation.gate == own_evaluation.gate
        and live_evaluation.gate_dataset == own_evaluation.gate_dataset
    ):
        return own
    inherited = _gate_of(store, release, live, live)
    assert inherited is not None
    prefixed = tuple(
        GateCheck(f"{live.ref} gate: {c.name}", c.figure, c.threshold, c.passed, c.note)
        for c in inherited.checks
    )
    return GateResult((own.checks if own else ()) + prefixed)


def _gate_of(
    store: GateStore, release: Release, source: Release, live: Release | None
) -> GateResult | None:
    """The gate written in `source`'s task snapshot applied to `release`'s latest eval on that
    gate's dataset, when the eval ran on the dataset as it is now."""
    evaluation = source.task_spec().evaluation
    gate = evaluation.gate
    if gate is None:
        return None
    dataset = evaluation.gate_dataset
    if dataset is None:
        return GateResult(
            (GateCheck("gate_dataset", None, None, False, "evaluation.gate_dataset is not set"),)
        )
    live_ref = live.ref if live is not None and live.number != release.number else None
    numbers = [release.number] + ([live.number] if live_ref and live else [])
    current_hash, runs = store.gate_evals(release.task, numbers, dataset)
    if current_hash is None:
        note = f"dataset {dataset!r} does not exist; add it: lockgate dataset add"
        return GateResult((GateCheck("gate_dataset", None, None, False, note),))

    def usable(number: int) -> EvalRun | None:
        run = runs.get(number)
        return run if run is not None and run.dataset_hash == current_hash else None

    candidate = usable(release.number)
    if candidate is None:
        stale = runs.get(release.number) is not None
        why = (
            "was evaluated on an older version of the gate dataset"
            if stale
            else "is not evaluated on the gate dataset"
        )
        note = (
            f"{release.ref} {why} {dataset!r}; run `lockgate eval "
            f"{release.task} --release {release.number} --dataset {dataset}`"
        )
        return GateResult((GateCheck("eval", None, None, False, note),))
    reference = usable(live.number) if live_ref and live else None
    return check_gate(
        gate,
        candidate.metrics,
        reference.metrics if reference else None,
        live_ref=live_ref,
    )


def promote(
    store: GateStore,
    release: Release,
    actor: str,
    *,
    reason: str | None = None,
    override_reason: str | None = None,
    may_override: bool = False,
) -> tuple[Release, GateResult | None]:
    """Make `release` live if it passes its gate. A failing gate raises `GateFailed`, unless
    an admin (`may_override`) gives an override reason: then it is promoted and the failing
    figures go into a `release.gate_override` audit entry."""
    result = gate_result(store, release)
    override: dict[str, Any] | None = None
    if override_reason is not None:
        if not may_override:
            raise Forbidden(
                "only an admin may override the promotion gate",
                hint="ask an admin, or make the release pass its gate",
            )
        if not override_reason.strip():
            raise InputError("--override-reason must say why the gate is overridden")
    if result is not None and not result.passed:
        if override_reason is None:
            raise GateFailed(release.ref, result)
        override = {"reason": override_reason, "failing": [c.as_dict() for c in result.failing]}
    details = {"gate": result.as_dict() if result is not None else None}
    promoted = store.promote(release.task, release.number, actor, reason, details, override)
    return promoted, result

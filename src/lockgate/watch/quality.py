"""Live accuracy: spot checks of automated decisions and feedback from downstream systems.

**Spot checks.** A release's `policy.spot_check_rate` (say 0.02) sends that share of its
automated decisions to a person *after* they were delivered. The share is chosen by a sweep
that reads stored decisions after the fact, not on the decision path: the pipeline, its group
commit and delivery are untouched, so a spot check can never delay or block a delivery, and
nothing is added to the cost of a decision. Which decisions are checked follows from the
decision id (its sha256 compared with the rate), so every replica picks the same ones and a
sweep run twice queues nothing twice. A verdict on a spot check never changes the decision or
its delivered outcome: it counts toward live accuracy only.

**Feedback.** A downstream system says whether a decision's outcome was correct (and, if not,
what it should have been). It counts toward live accuracy like a spot check.

**Live accuracy** of the automated share is the agreement of those judgments with the model on
automated decisions, per release and per label (the model's value of the scored output field),
with a 95% Wilson interval. A decision judged more than once counts once: a reviewer's spot
check verdict over feedback, else the latest feedback.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from lockgate.decide.decision import Decision, utcnow
from lockgate.decide.task import TaskSpec
from lockgate.errors import Conflict, InputError, NotFound
from lockgate.review.service import check_may_review
from lockgate.review.verdicts import clean_reason, required_reason, validated_correction
from lockgate.rollout.release import Release
from lockgate.security import Principal
from lockgate.stats import wilson_interval
from lockgate.watch.types import Feedback, Judged, SpotCheck, SpotVerdict

SWEEP_CURSOR = "spot_checks"
MAX_COMMENT = 2000


class QualityStore(Protocol):
    """What live quality needs from storage (`Store.quality` satisfies it)."""

    def cursor(self, name: str) -> datetime | None: ...

    def automated_since(
        self, since: datetime | None, until: datetime, limit: int
    ) -> list[tuple[str, str, int, datetime]]: ...

    def add_spot_checks(
        self,
        chosen: Sequence[tuple[str, str, int, datetime]],
        now: datetime,
        cursor_name: str,
        cursor_at: datetime,
    ) -> int: ...

    def spot_check(self, decision_id: str) -> SpotCheck | None: ...

    def open_spot_checks(
        self, tasks: Sequence[str], task: str | None, limit: int
    ) -> list[tuple[SpotCheck, Decision]]: ...

    def open_counts(self, tasks: Sequence[str]) -> dict[str, int]: ...

    def judge_spot_check(
        self,
        decision_id: str,
        reviewer: str,
        kind: SpotVerdict,
        output: Mapping[str, Any] | None,
        now: datetime,
        details: Mapping[str, Any],
        check: Callable[[Decision], None],
    ) -> SpotCheck | None: ...

    def add_feedback(
        self,
        decision: Decision,
        actor: str,
        correct: bool,
        output: Mapping[str, Any] | None,
        comment: str | None,
        now: datetime,
    ) -> Feedback: ...

    def feedback_of(self, decision_id: str) -> list[Feedback]: ...

    def judged(
        self, task: str, *, since: datetime | None = None, release: int | None = None
    ) -> list[Judged]: ...


class DecisionReader(Protocol):
    def get(self, decision_id: str) -> Decision | None: ...


class ReleaseReader(Protocol):
    def get(self, task: str, number: int) -> Release: ...

    def live(self, task: str) -> Release | None: ...


def chosen_for_check(decision_id: str, rate: float) -> bool:
    """Whether the decision is spot-checked at `rate`: its id's sha256, read as a share of
    2**64, falls below the rate. The same answer on every replica, every time."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"spot-check:{decision_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass(frozen=True)
class Accuracy:
    """Agreement of judgments with the model: n judged, how many agreed, and the 95% Wilson
    interval of the share."""

    n: int
    agree: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.agree, self.n)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "n": self.n,
            "agree": self.agree,
            "accuracy": None if self.rate is None else round(self.rate, 4),
            "low": round(low, 4),
            "high": round(high, 4),
        }


@dataclass(frozen=True)
class ReleaseAccuracy:
    release: int
    overall: Accuracy
    labels: Mapping[str, Accuracy]
    spot_checks: int
    feedback: int


@dataclass(frozen=True)
class LiveAccuracy:
    """Live accuracy of a task's automated share, per release (newest first) and per label."""

    task: str
    field: str
    releases: tuple[ReleaseAccuracy, ...]
    open_spot_checks: int
    other_feedback: int
    """Feedback on decisions a person decided (not part of the automated share)."""

    def release(self, number: int) -> ReleaseAccuracy | None:
        return next((r for r in self.releases if r.release == number), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "field": self.field,
            "open_spot_checks": self.open_spot_checks,
            "other_feedback": self.other_feedback,
            "releases": [
                {
                    "release": f"{self.task}@{r.release}",
                    **r.overall.as_dict(),
                    "spot_checks": r.spot_checks,
                    "feedback": r.feedback,
                    "labels": {k: v.as_dict() for k, v in sorted(r.labels.items())},
                }
                for r in self.releases
            ],
        }


def one_per_decision(judgments: Sequence[Judged]) -> list[Judged]:
    """A decision judged more than once counts once: its latest spot-check verdict, else its
    latest feedback."""
    best: dict[str, Judged] = {}
    for j in sorted(judgments, key=lambda j: (j.source == "spot_check", j.at)):
        best[j.decision_id] = j
    return list(best.values())


def live_accuracy_of(
    task: str, scored_field: str, judgments: Sequence[Judged], open_checks: int = 0
) -> LiveAccuracy:
    """Live accuracy from a task's judgments (see the module's docstring)."""
    tallies: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_label: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    other = 0
    for j in one_per_decision(judgments):
        if j.route != "auto" or j.model_output is None:
            other += j.source == "feedback"
            continue
        t = tallies[j.release]
        t[0] += 1
        t[1] += j.agrees
        t[2] += j.source == "spot_check"
        t[3] += j.source == "feedback"
        label = str(j.model_output.get(scored_field))
        per_label[j.release][label][0] += 1
        per_label[j.release][label][1] += j.agrees
    releases = tuple(
        ReleaseAccuracy(
            release=number,
            overall=Accuracy(t[0], t[1]),
            labels={k: Accuracy(v[0], v[1]) for k, v in per_label[number].items()},
            spot_checks=t[2],
            feedback=t[3],
        )
        for number, t in sorted(tallies.items(), reverse=True)
    )
    return LiveAccuracy(task, scored_field, releases, open_checks, other)


def scored_field(spec: TaskSpec) -> str:
    """The output field accuracy is counted on: `evaluation.field`, else the first."""
    return spec.evaluation.field or next(iter(spec.output))


@dataclass
class QualityService:
    """Spot checks (the sweep and verdicts), feedback and live accuracy over a `QualityStore`."""

    quality: QualityStore
    decisions: DecisionReader
    releases: ReleaseReader
    clock: Callable[[], datetime] = utcnow
    overlap_seconds: float = 600.0
    """How far back of its cursor a sweep looks again, for decisions committed late (a group
    commit stamps a decision before its transaction ends)."""
    batch: int = 5000
    _specs: dict[tuple[str, int], TaskSpec] = field(default_factory=dict, repr=False)

    # ---- spot checks

    def sweep(self, now: datetime | None = None) -> int:
        """Queue spot checks for automated decisions stored since the last sweep; returns
        how many were queued. Safe to run on several replicas at once."""
        now = now or self.clock()
        added = 0
        cursor = self.quality.cursor(SWEEP_CURSOR)
        since = None if cursor is None else cursor - timedelta(seconds=self.overlap_seconds)
        while True:
            rows = self.quality.automated_since(since, now, self.batch)
            picked = [row for row in rows if chosen_for_check(row[0], self._rate(row[1], row[2]))]
            full = len(rows) == self.batch
            until = rows[-1][3] if full else now
            added += self.quality.add_spot_checks(picked, now, SWEEP_CURSOR, until)
            if not full:
                return added
            since = until

    def open_checks(
        self, principal: Principal, task: str | None = None, limit: int = 50
    ) -> list[tuple[SpotCheck, Decision]]:
        """Open spot checks this key may give a verdict on, oldest first."""
        principal.require("review", task)
        return [
            (check, decision)
            for check, decision in self.quality.open_spot_checks(principal.tasks, task, limit)
            if decision.submitted_by is None or decision.submitted_by != principal.key_id
        ]

    def open_counts(self, principal: Principal) -> dict[str, int]:
        principal.require("review")
        return self.quality.open_counts(principal.tasks)

    def spot_check(self, principal: Principal, decision_id: str) -> SpotCheck | None:
        """The decision's spot check, or None (NotFound when the key may not see it)."""
        self._decision(principal, decision_id)
        return self.quality.spot_check(decision_id)

    def judge(
        self,
        principal: Principal,
        decision_id: str,
        kind: SpotVerdict,
        output: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> SpotCheck:
        """A person's verdict on a spot check: approve (the model was right), correct (it
        should have been `output`) or reject (it was wrong). The decision and its delivery
        stay as they are; the verdict counts toward live accuracy. The same duty rules as the
        review queue: a reviewer of the task, never the key that submitted the decision."""
        decision = self._decision(principal, decision_id)
        check_may_review(principal, decision, ())
        existing = self.quality.spot_check(decision_id)
        if existing is None:
            raise NotFound(
                f"decision {decision_id} has no spot check",
                hint="spot checks are taken among automated decisions (policy.spot_check_rate)",
            )
        spec = self._spec(decision.task, decision.release)
        corrected = None
        why: str | None
        if kind == "correct":
            corrected = validated_correction(spec, output)
            if decision.output is not None and corrected == dict(decision.output):
                raise InputError(
                    "the corrected output is the model's output",
                    hint="approve the spot check when the model was right",
                )
            why = required_reason(reason)
        elif kind == "reject":
            why = required_reason(reason)
        else:
            why = clean_reason(reason)
        changed = sorted(corrected) if corrected is not None else []
        details = {"release": decision.release, "fields": changed, "reason": why}
        done = self.quality.judge_spot_check(
            decision_id,
            principal.name,
            kind,
            corrected,
            self.clock(),
            details,
            lambda current: check_may_review(principal, current, ()),
        )
        if done is None:
            raise Conflict(
                f"the spot check of decision {decision_id} already has a verdict",
                hint="each spot check takes one verdict",
            )
        return done

    # ---- feedback

    def add_feedback(
        self,
        principal: Principal,
        decision_id: str,
        correct: bool,
        output: Mapping[str, Any] | None = None,
        comment: str | None = None,
    ) -> Feedback:
        """Record a downstream system's feedback on a decision: the `feedback` role (within
        its task scope), or a submitter on a decision it submitted."""
        decision = self.decisions.get(decision_id)
        if decision is None or not principal.may_see_task(decision.task):
            raise NotFound(f"no decision with id {decision_id!r}")
        own = principal.own_decisions_only and decision.submitted_by == principal.key_id
        if not own:
            if principal.own_decisions_only:
                raise NotFound(f"no decision with id {decision_id!r}")
            principal.require("feedback", decision.task)
        if decision.output is None and correct:
            raise InputError(
                f"decision {decision_id} has no output to call correct",
                hint='send {"correct": false} with the right "output"',
            )
        clean: dict[str, Any] | None = None
        if output is not None:
            if correct:
                raise InputError(
                    '"output" goes with "correct": false (the output it should have been)',
                    hint='drop "output", or send "correct": false',
                )
            clean = validated_correction(self._spec(decision.task, decision.release), output)
        note = _comment(comment)
        return self.quality.add_feedback(
            decision, principal.name, correct, clean, note, self.clock()
        )

    def feedback_of(self, decision_id: str) -> list[Feedback]:
        return self.quality.feedback_of(decision_id)

    # ---- live accuracy

    def accuracy(
        self, task: str, *, since: datetime | None = None, release: int | None = None
    ) -> LiveAccuracy:
        """Live accuracy of the task's automated share (see the module's docstring)."""
        live = self.releases.live(task)
        if live is None:
            raise NotFound(
                f"task {task!r} has no live release",
                hint=f"`lockgate release list {task}` shows its releases",
            )
        judgments = self.quality.judged(task, since=since, release=release)
        opened = self.quality.open_counts((task,)).get(task, 0)
        return live_accuracy_of(task, scored_field(live.task_spec()), judgments, opened)

    # ---- internals

    def _rate(self, task: str, release: int) -> float:
        return self._spec(task, release).policy.spot_check_rate or 0.0

    def _spec(self, task: str, release: int) -> TaskSpec:
        key = (task, release)
        if key not in self._specs:
            self._specs[key] = self.releases.get(task, release).task_spec()
        return self._specs[key]

    def _decision(self, principal: Principal, decision_id: str) -> Decision:
        principal.require("review")
        decision = self.decisions.get(decision_id)
        if decision is None or not principal.may_see_task(decision.task):
            raise NotFound(f"no decision with id {decision_id!r}")
        return decision


def _comment(comment: str | None) -> str | None:
    if comment is None or not comment.strip():
        return None
    if "\x00" in comment:
        raise InputError("comment: contains a NUL character (\\u0000)", hint="send plain text")
    if len(comment) > MAX_COMMENT:
        raise InputError(f"comment: longer than {MAX_COMMENT} characters", hint="shorten it")
    return comment.strip()

"""Rollout queries: shadow and canary stages, canary health, and the evals a promotion gate
reads (through the eval and dataset queries). `RolloutRepository` gives them, and the shadow-run
queries, one transaction per call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from lockgate.errors import Conflict, NotFound
from lockgate.evals.types import EvalRun
from lockgate.rollout.release import Release
from lockgate.rollout.types import CanaryHealth, ShadowJob, ShadowOutcome, ShadowPair
from lockgate.store import audit, database, shadow_runs
from lockgate.store import datasets as dataset_queries
from lockgate.store import evals as eval_queries
from lockgate.store import releases as release_queries
from lockgate.store.tables import decisions, releases, reviews

INVALID_INPUT = "invalid input:"
"""How the pipeline's reason for a refused input starts: not the model's failure."""


# ---- stages


def serving(conn: Connection, task: str) -> tuple[Release | None, Release | None]:
    """The live release and the canary release (either may be None), in one query."""
    rows = conn.execute(
        select(releases).where(releases.c.task == task, releases.c.stage.in_(("live", "canary")))
    ).mappings()
    found = {row["stage"]: release_queries.from_row(row) for row in rows}
    return found.get("live"), found.get("canary")


def in_stage(conn: Connection, stage: str, task: str | None = None) -> list[Release]:
    query = select(releases).where(releases.c.stage == stage)
    if task is not None:
        query = query.where(releases.c.task == task)
    rows = conn.execute(query.order_by(releases.c.task, releases.c.number)).mappings()
    return [release_queries.from_row(r) for r in rows]


def _set_stage(
    conn: Connection, release: Release, stage: str, percent: float | None = None
) -> Release:
    conn.execute(
        update(releases)
        .where(releases.c.task == release.task, releases.c.number == release.number)
        .values(stage=stage, canary_percent=percent)
    )
    return release_queries.get(conn, release.task, release.number)


def _candidate(conn: Connection, task: str, number: int, wanted: str) -> Release:
    target = release_queries.get(conn, task, number)
    if target.stage not in ("draft", "retired", "shadow", "canary"):
        raise Conflict(
            f"{target.ref} is {target.stage}; only a draft or retired release can become {wanted}"
        )
    return target


def start_shadow(conn: Connection, task: str, number: int, actor: str) -> Release:
    target = _candidate(conn, task, number, "a shadow")
    if target.stage == "shadow":
        raise Conflict(f"{target.ref} is already in shadow")
    if target.stage == "canary":
        raise Conflict(
            f"{target.ref} is a canary",
            hint=f"stop it first: lockgate release canary --stop {task}",
        )
    started = _set_stage(conn, target, "shadow")
    audit.append(
        conn,
        actor=actor,
        action="release.shadow_started",
        task=task,
        subject=target.ref,
        details={"previous_stage": target.stage},
    )
    return started


def _end_shadow(conn: Connection, release: Release, actor: str) -> None:
    """Drop the release's queued shadow runs (marked failed, with why) and audit the stop."""
    dropped = shadow_runs.drop_pending(conn, release.task, release.number)
    audit.append(
        conn,
        actor=actor,
        action="release.shadow_stopped",
        task=release.task,
        subject=release.ref,
        details={"dropped_pending_runs": dropped},
    )


def stop_shadow(conn: Connection, task: str, actor: str) -> list[Release]:
    """Every shadow release of the task back to draft; their queued runs are dropped."""
    stopped: list[Release] = []
    for release in in_stage(conn, "shadow", task):
        _end_shadow(conn, release, actor)
        stopped.append(_set_stage(conn, release, "draft"))
    if not stopped:
        raise NotFound(f"task {task!r} has no release in shadow")
    return stopped


def start_canary(conn: Connection, task: str, number: int, percent: float, actor: str) -> Release:
    live, canary = serving(conn, task)
    if live is None:
        raise Conflict(
            f"task {task!r} has no live release to share traffic with",
            hint=f"promote a release first: lockgate release promote {task}@N",
        )
    if canary is not None and canary.number != number:
        raise Conflict(
            f"{canary.ref} is already the canary of {task}",
            hint=f"stop it first: lockgate release canary --stop {task}",
        )
    target = _candidate(conn, task, number, "a canary")
    if target.stage == "shadow":
        _end_shadow(conn, target, actor)
    started = _set_stage(conn, target, "canary", percent)
    action = "release.canary_changed" if target.stage == "canary" else "release.canary_started"
    audit.append(
        conn,
        actor=actor,
        action=action,
        task=task,
        subject=target.ref,
        details={"percent": percent, "previous_percent": target.canary_percent, "live": live.ref},
    )
    return started


def stop_canary(
    conn: Connection,
    task: str,
    actor: str,
    *,
    stage: str = "draft",
    action: str = "release.canary_stopped",
    details: Mapping[str, Any] | None = None,
    expected: int | None = None,
) -> Release:
    """The canary back to `stage` with its share cleared; `expected` guards against stopping a
    canary other than the one that was judged (another replica may have acted)."""
    _, canary = serving(conn, task)
    if canary is None or (expected is not None and canary.number != expected):
        raise NotFound(f"task {task!r} has no canary release")
    stopped = _set_stage(conn, canary, stage)
    audit.append(
        conn,
        actor=actor,
        action=action,
        task=task,
        subject=canary.ref,
        details={"percent": canary.canary_percent, **(details or {})},
    )
    return stopped


# ---- canary health


def canary_health(conn: Connection, task: str, number: int) -> CanaryHealth:
    d = decisions.c
    mine = and_(d.task == task, d.release == number)
    total = conn.execute(select(func.count()).select_from(decisions).where(mine)).scalar_one()
    failed = conn.execute(
        select(func.count())
        .select_from(decisions)
        .where(mine, d.status == "failed", ~d.reason.startswith(INVALID_INPUT))
    ).scalar_one()
    verdicts: dict[str, str] = {}
    for decision_id, verdict in conn.execute(
        select(reviews.c.decision_id, reviews.c.verdict)
        .join(decisions, d.id == reviews.c.decision_id)
        .where(mine)
        .order_by(reviews.c.id)
    ):
        verdicts[decision_id] = verdict
    overridden = sum(v in ("correct", "reject") for v in verdicts.values())
    return CanaryHealth(task, number, int(total), int(failed), len(verdicts), overridden)


class RolloutRepository:
    """Transaction-per-call access to the queries above (`Store.rollout`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def serving(self, task: str) -> tuple[Release | None, Release | None]:
        with database.read(self.engine) as conn:
            return serving(conn, task)

    def in_stage(self, stage: str, task: str | None = None) -> list[Release]:
        with database.read(self.engine) as conn:
            return in_stage(conn, stage, task)

    def start_shadow(self, task: str, number: int, actor: str) -> Release:
        with self.engine.begin() as conn:
            return start_shadow(conn, task, number, actor)

    def stop_shadow(self, task: str, actor: str) -> list[Release]:
        with self.engine.begin() as conn:
            return stop_shadow(conn, task, actor)

    def start_canary(self, task: str, number: int, percent: float, actor: str) -> Release:
        with self.engine.begin() as conn:
            return start_canary(conn, task, number, percent, actor)

    def stop_canary(self, task: str, actor: str, **kwargs: Any) -> Release:
        with self.engine.begin() as conn:
            return stop_canary(conn, task, actor, **kwargs)

    def pending_shadow(self, task: str, number: int, limit: int) -> list[ShadowJob]:
        with database.read(self.engine) as conn:
            return shadow_runs.pending(conn, task, number, limit)

    def finish_shadow(self, outcomes: Sequence[ShadowOutcome]) -> int:
        with self.engine.begin() as conn:
            return shadow_runs.finish_shadow(conn, outcomes)

    def shadow_counts(self, task: str, number: int) -> dict[str, int]:
        with database.read(self.engine) as conn:
            return shadow_runs.shadow_counts(conn, task, number)

    def shadowed_releases(self, task: str) -> list[int]:
        with database.read(self.engine) as conn:
            return shadow_runs.shadowed_releases(conn, task)

    def shadow_pairs(self, task: str, number: int) -> list[ShadowPair]:
        with database.read(self.engine) as conn:
            return shadow_runs.shadow_pairs(conn, task, number)

    def recall_for_review(self, decision_ids: Sequence[str], actor: str, why: str) -> list[str]:
        """The ids actually put into the review queue (see `recall_for_review`)."""
        with self.engine.begin() as conn:
            return [i for i in decision_ids if shadow_runs.recall_for_review(conn, i, actor, why)]

    def canary_health(self, task: str, number: int) -> CanaryHealth:
        with database.read(self.engine) as conn:
            return canary_health(conn, task, number)

    def gate_evals(
        self, task: str, numbers: Sequence[int], dataset: str
    ) -> tuple[str | None, dict[int, EvalRun | None]]:
        """The gate dataset's current hash and each release's latest eval on it."""
        with database.read(self.engine) as conn:
            found = dataset_queries.get(conn, task, dataset)
            current = found.content_hash if found is not None else None
            return current, {n: eval_queries.latest(conn, task, n, dataset) for n in numbers}

    def promote(
        self,
        task: str,
        number: int,
        actor: str,
        reason: str | None,
        details: Mapping[str, Any],
        override: Mapping[str, Any] | None,
    ) -> Release:
        """Promote with the gate's outcome in the audit entry; an override is its own entry."""
        with self.engine.begin() as conn:
            if override is not None:
                audit.append(
                    conn,
                    actor=actor,
                    action="release.gate_override",
                    task=task,
                    subject=f"{task}@{number}",
                    details=dict(override),
                )
            return release_queries.promote(conn, task, number, actor, reason, details)

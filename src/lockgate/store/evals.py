"""Eval run queries: one row per `lockgate eval`, read by the promotion gates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, select

from lockgate.decide.decision import new_id, utcnow
from lockgate.evals.types import Dataset, EvalRun
from lockgate.store import database
from lockgate.store.database import aware
from lockgate.store.tables import eval_runs


def _run(row: RowMapping) -> EvalRun:
    return EvalRun(**{**row, "created_at": aware(row["created_at"])})


def insert(
    conn: Connection,
    *,
    task: str,
    release: int,
    dataset: str,
    dataset_hash: str,
    repeat: int,
    metrics: Mapping[str, Any],
    report: Mapping[str, Any],
    actor: str,
) -> EvalRun:
    run_id = new_id()
    conn.execute(
        eval_runs.insert().values(
            id=run_id,
            task=task,
            release=release,
            dataset=dataset,
            dataset_hash=dataset_hash,
            repeat=repeat,
            metrics=dict(metrics),
            report=dict(report),
            created_at=utcnow(),
            created_by=actor,
        )
    )
    found = get(conn, run_id)
    assert found is not None
    return found


def get(conn: Connection, run_id: str) -> EvalRun | None:
    row = conn.execute(select(eval_runs).where(eval_runs.c.id == run_id)).mappings().first()
    return _run(row) if row else None


def latest(conn: Connection, task: str, release: int, dataset: str) -> EvalRun | None:
    """The newest run of `task@release` on `dataset` (ids are time-ordered)."""
    row = (
        conn.execute(
            select(eval_runs)
            .where(
                eval_runs.c.task == task,
                eval_runs.c.release == release,
                eval_runs.c.dataset == dataset,
            )
            .order_by(eval_runs.c.created_at.desc(), eval_runs.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return _run(row) if row else None


def list_for(conn: Connection, task: str, release: int | None = None) -> list[EvalRun]:
    query = select(eval_runs).where(eval_runs.c.task == task)
    if release is not None:
        query = query.where(eval_runs.c.release == release)
    query = query.order_by(eval_runs.c.created_at, eval_runs.c.id)
    return [_run(r) for r in conn.execute(query).mappings()]


class EvalRepository:
    """Eval runs over one engine (`Store.evals`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(
        self,
        *,
        task: str,
        release: int,
        dataset: Dataset,
        repeat: int,
        metrics: Mapping[str, Any],
        report: Mapping[str, Any],
        actor: str,
    ) -> EvalRun:
        with self.engine.begin() as conn:
            return insert(
                conn,
                task=task,
                release=release,
                dataset=dataset.name,
                dataset_hash=dataset.content_hash,
                repeat=repeat,
                metrics=metrics,
                report=report,
                actor=actor,
            )

    def latest(self, task: str, release: int, dataset: str) -> EvalRun | None:
        """The newest eval run of `task@release` on the dataset named `dataset`, or None."""
        with database.read(self.engine) as conn:
            return latest(conn, task, release, dataset)

    def list_for(self, task: str, release: int | None = None) -> list[EvalRun]:
        with database.read(self.engine) as conn:
            return list_for(conn, task, release)

"""Dataset queries: a dataset and its rows, stored in one transaction and audited."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, RowMapping, delete, select

from lockgate.decide.decision import new_id, utcnow
from lockgate.errors import Conflict, NotFound
from lockgate.evals.types import Dataset, DatasetRow, content_hash
from lockgate.store import audit, database
from lockgate.store.database import aware
from lockgate.store.tables import dataset_rows, datasets

_CHUNK = 1000


def _dataset(row: RowMapping) -> Dataset:
    return Dataset(
        id=row["id"],
        task=row["task"],
        name=row["name"],
        sealed=bool(row["sealed"]),
        content_hash=row["content_hash"],
        rows=row["rows"],
        source=row["source"],
        created_at=aware(row["created_at"]),
        created_by=row["created_by"],
    )


def get(conn: Connection, task: str, name: str) -> Dataset | None:
    row = (
        conn.execute(select(datasets).where(datasets.c.task == task, datasets.c.name == name))
        .mappings()
        .first()
    )
    return _dataset(row) if row else None


def list_for(conn: Connection, task: str | None) -> list[Dataset]:
    query = select(datasets).order_by(datasets.c.task, datasets.c.name)
    if task is not None:
        query = query.where(datasets.c.task == task)
    return [_dataset(r) for r in conn.execute(query).mappings()]


def rows(conn: Connection, dataset_id: str) -> list[DatasetRow]:
    found = conn.execute(
        select(dataset_rows)
        .where(dataset_rows.c.dataset_id == dataset_id)
        .order_by(dataset_rows.c.seq)
    ).mappings()
    return [DatasetRow(r["seq"], r["input"], r["expected"], r["input_hash"]) for r in found]


def sealed_inputs(conn: Connection, task: str) -> dict[str, str]:
    """The input hashes of every sealed dataset of `task`, each with its dataset's name."""
    query = (
        select(dataset_rows.c.input_hash, datasets.c.name)
        .join(datasets, datasets.c.id == dataset_rows.c.dataset_id)
        .where(datasets.c.task == task, datasets.c.sealed.is_(True))
    )
    return {digest: name for digest, name in conn.execute(query)}


def replace(
    conn: Connection,
    *,
    task: str,
    name: str,
    sealed: bool,
    content_hash: str,
    source: str | None,
    new_rows: Sequence[DatasetRow],
    actor: str,
    previous: Dataset | None,
) -> Dataset:
    """Store a dataset (replacing an unsealed one of the same name) and audit `dataset.add`."""
    if previous is not None:
        conn.execute(delete(dataset_rows).where(dataset_rows.c.dataset_id == previous.id))
        conn.execute(delete(datasets).where(datasets.c.id == previous.id))
    dataset_id = new_id()
    conn.execute(
        datasets.insert().values(
            id=dataset_id,
            task=task,
            name=name,
            sealed=sealed,
            content_hash=content_hash,
            rows=len(new_rows),
            source=source,
            created_at=utcnow(),
            created_by=actor,
        )
    )
    values = [
        {
            "dataset_id": dataset_id,
            "seq": r.seq,
            "input": dict(r.input),
            "expected": dict(r.expected),
            "input_hash": r.input_hash,
        }
        for r in new_rows
    ]
    for start in range(0, len(values), _CHUNK):
        conn.execute(dataset_rows.insert(), values[start : start + _CHUNK])
    audit.append(
        conn,
        actor=actor,
        action="dataset.add",
        task=task,
        subject=f"{task}/{name}",
        details={
            "sealed": sealed,
            "content_hash": content_hash,
            "rows": len(new_rows),
            "replaced": previous.content_hash if previous is not None else None,
        },
    )
    found = get(conn, task, name)
    assert found is not None
    return found


class DatasetRepository:
    """Datasets over one engine (`Store.datasets`); each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        task: str,
        name: str,
        rows: Sequence[DatasetRow],
        *,
        sealed: bool,
        source: str | None,
        actor: str,
    ) -> tuple[Dataset, bool]:
        """Store a dataset; returns it and whether anything changed. A sealed dataset is never
        replaced: adding it again is a no-op with the same content, else a `Conflict`."""
        digest = content_hash(rows)
        with self.engine.begin() as conn:
            previous = get(conn, task, name)
            if previous is not None and previous.sealed:
                if previous.content_hash == digest:
                    return previous, False
                raise Conflict(
                    f"dataset {name!r} of task {task!r} is sealed and cannot change "
                    f"(sealed content {previous.content_hash[:12]}, the new content "
                    f"{digest[:12]})",
                    hint="add the new data under another name; a sealed set stays as it was",
                )
            if (
                previous is not None
                and previous.content_hash == digest
                and previous.sealed == sealed
            ):
                return previous, False
            stored = replace(
                conn,
                task=task,
                name=name,
                sealed=sealed,
                content_hash=digest,
                source=source,
                new_rows=rows,
                actor=actor,
                previous=previous,
            )
        return stored, True

    def list_for(self, task: str | None = None) -> list[Dataset]:
        with database.read(self.engine) as conn:
            return list_for(conn, task)

    def get(self, task: str, name: str) -> Dataset:
        with database.read(self.engine) as conn:
            found = get(conn, task, name)
        if found is None:
            raise NotFound(
                f"task {task!r} has no dataset {name!r}",
                hint=f"`lockgate dataset list {task}` shows its datasets; "
                f"`lockgate dataset add {task} {name} FILE` adds one",
            )
        return found

    def rows(self, dataset: Dataset) -> list[DatasetRow]:
        with database.read(self.engine) as conn:
            return rows(conn, dataset.id)

    def sealed_inputs(self, task: str) -> dict[str, str]:
        """Input hash -> name of the sealed dataset of `task` that holds it."""
        with database.read(self.engine) as conn:
            return sealed_inputs(conn, task)

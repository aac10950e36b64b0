"""The SQL source: rows of a table or query in PostgreSQL or SQLite, read in order of an
increasing cursor (`id`, or `[updated_at, id]` with the last column breaking ties).

Each batch is `WHERE (cursor columns) > (last values) ORDER BY cursor LIMIT batch_size`, and
the last row's values become the cursor in the transaction that stores the batch's decisions:
after a crash the poll starts again from the last committed row; no row is skipped or decided
twice.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from lockgate.decide.sources import SqlSource
from lockgate.errors import ConfigError
from lockgate.intake.runner import Incoming, Intake
from lockgate.intake.sources import SourceRun, SourceUnavailable


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)  # UUIDs, intervals, network addresses, ...


class SqlReader:
    def __init__(self, spec: SqlSource, env: Mapping[str, str]) -> None:
        self.spec = spec
        url = env.get(spec.url_env, "")
        if not url:
            raise ConfigError(
                f"source {spec.name}: the environment variable {spec.url_env} is not set",
                hint=f"export {spec.url_env}=postgresql://USER@HOST/DB (or sqlite:///PATH)",
            )
        self.url = url

    def _engine(self) -> Engine:
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ConfigError(
                f"source {self.spec.name}: {self.spec.url_env} is not a database URL"
            ) from None
        if parsed.get_backend_name() == "postgresql" and parsed.drivername in (
            "postgresql",
            "postgres",
        ):
            parsed = parsed.set(drivername="postgresql+psycopg")
        timeout = max(1, math.ceil(self.spec.timeout_s))
        args = (
            {"connect_timeout": timeout}
            if parsed.get_backend_name() == "postgresql"
            else {"timeout": timeout}
        )
        return create_engine(parsed, poolclass=NullPool, connect_args=args, hide_parameters=True)

    def statement(self, after: list[Any] | None) -> tuple[str, dict[str, Any]]:
        columns = ", ".join(self.spec.cursor)
        source = (
            self.spec.table
            if self.spec.table is not None
            else f"({self.spec.query}) AS lockgate_source"
        )
        sql = f"SELECT * FROM {source}"
        params: dict[str, Any] = {"limit": self.spec.batch_size}
        if after is not None:
            marks = ", ".join(f":c{i}" for i in range(len(after)))
            if len(after) == 1:
                sql += f" WHERE {columns} > {marks}"
            else:
                sql += f" WHERE ({columns}) > ({marks})"
            params.update({f"c{i}": v for i, v in enumerate(after)})
        return sql + f" ORDER BY {columns} LIMIT :limit", params

    def _read(self, engine: Engine, after: list[Any] | None) -> list[dict[str, Any]]:
        sql, params = self.statement(after)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text(sql), params).mappings().all()
        except DBAPIError as exc:
            if exc.connection_invalidated or type(exc).__name__ == "OperationalError":
                raise SourceUnavailable(
                    f"cannot read from the database: {type(exc.orig).__name__}"
                ) from None
            raise ConfigError(
                f"source {self.spec.name}: the query failed ({type(exc.orig).__name__})",
                hint="check `table`/`query` and that the cursor columns exist",
            ) from None
        except SQLAlchemyError as exc:
            raise SourceUnavailable(
                f"cannot read from the database: {type(exc).__name__}"
            ) from None
        out = []
        for row in rows:
            values = {str(k): _json_value(v) for k, v in row.items()}
            missing = [c for c in self.spec.cursor if c not in values]
            if missing:
                raise ConfigError(
                    f"source {self.spec.name}: cursor column {missing[0]!r} is not in the rows"
                )
            out.append(values)
        return out

    async def run(self, intake: Intake, cursor: Mapping[str, Any]) -> SourceRun:
        run = SourceRun()
        engine = self._engine()
        after: list[Any] | None = list(cursor["after"]) if cursor.get("after") else None
        try:
            while True:
                rows = await asyncio.to_thread(self._read, engine, after)
                if not rows:
                    return run
                records = [
                    Incoming(
                        ", ".join(f"{c}={row[c]}" for c in self.spec.cursor),
                        row,
                        context=row,
                    )
                    for row in rows
                ]
                after = [rows[-1][c] for c in self.spec.cursor]

                def position(_: Any, n: int, rows: list[Any] = rows) -> dict[str, Any] | None:
                    # After the last row settled (all, or those before a budget limit).
                    return {"after": [rows[n - 1][c] for c in self.spec.cursor]} if n else None

                outcome = await intake.process(records, position)
                if outcome.stopped:
                    run.stopped = outcome.stopped
                    return run
                run.counts.update(outcome.counts)
                run.items.extend(r.position for r in records)
                if len(rows) < self.spec.batch_size:
                    return run
        finally:
            engine.dispose()

"""Intake alerts from real sources, on both backends: a folder source whose folder disappears
fires `source_failing` and resolves once it reads again; a CSV whose columns change under
`on_drift: quarantine` fires `schema_drift`, which resolves once a person resumed the source
and the window has passed. Measured by the assembly `lockgate serve` uses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from lockgate.decide.decision import utcnow
from lockgate.intake.service import IntakeService
from lockgate.intake.sources import SourceRun
from lockgate.runtime import Runtime
from lockgate.server.history import measure
from lockgate.settings import load_settings
from lockgate.watch.alerts import Evaluator, Rule
from lockgate.watch.channels import build_channels
from tests.cli.kit import lockgate
from tests.intake.kit import drop, folder_source, prepare

SOURCE = folder_source(retry_base_s="1", retry_max_s="1", report_after="2", on_drift="quarantine")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_failing_source_and_schema_drift_fire_and_resolve(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, SOURCE)
    runtime = Runtime.open(load_settings(project, database_url=database_url, environ={}))
    service = IntakeService(
        runtime.store.async_intake,
        runtime.pipeline,
        runtime.release_runtime,
        runtime.tasks(),
        project,
        {},
    )
    clock = Clock(utcnow())

    async def setup(now: datetime) -> tuple[list[Rule], list[float | None]]:
        rules, values = measure(runtime, now)
        chosen = [(r, v) for r, v in zip(rules, values, strict=True) if r.name in WATCHED]
        return [r for r, _ in chosen], [v for _, v in chosen]

    evaluator = Evaluator(
        store=runtime.store.async_alerts,
        leases=runtime.store.async_leases,
        owner=f"test-{uuid.uuid4().hex[:6]}",
        setup=setup,
        channels=build_channels({}, {}),
        clock=clock,
    )

    def values() -> dict[str, float | None]:
        rules, found = measure(runtime, clock.now)
        return {r.name: v for r, v in zip(rules, found, strict=True) if r.name in WATCHED}

    def read() -> SourceRun:
        async def go() -> SourceRun:
            try:
                return await service.run("routing", "inbox", force=True)
            finally:
                await runtime.aclose()

        return asyncio.run(go())

    def round_() -> list[tuple[str, str, str]]:
        async def go() -> list[tuple[str, str, str]]:
            try:
                return [(n.rule, n.kind, n.severity) for n in await evaluator.round()]
            finally:
                await runtime.aclose()

        return asyncio.run(go())

    try:
        drop(project, "a.csv", "text,amount\n" + "".join(f"card {n},{n}\n" for n in range(6)))
        assert read().counts["decided"] == 6
        assert values() == {"source_failing": 0.0, "schema_drift": 0.0}
        assert round_() == []

        # The disk is unmounted: the folder is gone.
        (project / "inbox").rename(project / "elsewhere")
        assert read().error is not None
        assert values()["source_failing"] == 0.0  # one failed read: not yet reported
        assert read().error is not None
        assert values()["source_failing"] == 1.0
        assert round_() == [("source_failing", "firing", "critical")]
        (project / "elsewhere").rename(project / "inbox")
        assert read().error is None
        assert round_() == [("source_failing", "resolved", "critical")]

        # The sender adds a column: the source holds its records for a person.
        drop(
            project,
            "b.csv",
            "text,amount,priority\n" + "".join(f"loan {n},{n},high\n" for n in range(6)),
        )
        held = read()
        assert held.counts["quarantined"] == 6 and held.counts["decided"] == 0
        measured = values()["schema_drift"]
        assert measured is not None and measured >= 2  # the new field's event and the hold
        assert round_() == [("schema_drift", "firing", "warning")]
        assert round_() == []  # one notice per episode

        lockgate("sources", "resume", "inbox", cwd=project, database=database_url)
        still = values()["schema_drift"]
        assert still is not None and still >= 1  # the event is still in the window
        clock.now += timedelta(hours=2)
        assert values()["schema_drift"] == 0.0
        assert round_() == [("schema_drift", "resolved", "warning")]
    finally:
        runtime.close()


WATCHED = ("source_failing", "schema_drift")

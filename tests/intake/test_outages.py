"""Outages: a source that cannot be read is retried with backoff, its cursor does not move,
and after `report_after` failures in a row it is reported as failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockgate.intake.service import IntakeService
from lockgate.intake.sources import SourceRun
from lockgate.monitor.metrics import Metrics
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from tests.intake.kit import drop, folder_source, prepare, show

SOURCE = folder_source(retry_base_s="10", retry_max_s="25", report_after="3")


def test_an_unmounted_folder_is_retried_with_doubling_waits_then_reported_and_heals(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, SOURCE)  # inbox/ does not exist yet
    now = [1_900_000_000.0]
    runtime = Runtime.open(load_settings(project, database_url=database_url, environ={}))
    metrics = Metrics()
    service = IntakeService(
        runtime.store.async_intake,
        runtime.pipeline,
        runtime.release_runtime,
        runtime.tasks(),
        project,
        {},
        clock=lambda: now[0],
        metrics=metrics,
    )

    def attempt(after_seconds: float) -> SourceRun:
        now[0] += after_seconds

        async def one() -> SourceRun:
            try:
                return await service.run("routing", "inbox")
            finally:
                await runtime.aclose()

        return asyncio.run(one())

    try:
        tries = [attempt(0), attempt(5), attempt(5), attempt(19), attempt(20), attempt(25)]
        assert [bool(t.error) for t in tries] == [True, False, True, False, True, True]
        assert [t.skipped is not None for t in tries] == [False, True, False, True, False, False]
        assert tries[0].error == "cannot list inbox/: No such file or directory"
        state = runtime.store.intake.state("routing", "inbox")
        assert state is not None
        assert (state.failures, state.status, dict(state.cursor)) == (4, "failing", {})

        drop(project, "a.csv", "text\nhello\n")
        healed = attempt(25)
        assert healed.error is None and healed.counts["decided"] == 1
        counts = show(project, database_url, "inbox")
        assert (counts["status"], counts["failures"], counts["decided"]) == ("active", 0, 1)
        exposition = metrics.render()[0].decode()
        labels = 'source="inbox",task="routing"'
        assert f"lockgate_intake_read_failures_total{{{labels}}} 4.0" in exposition
        assert (
            'lockgate_intake_records_total{outcome="decided",source="inbox",task="routing"} 1.0'
            in exposition
        )
    finally:
        runtime.close()

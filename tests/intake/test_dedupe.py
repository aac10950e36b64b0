"""De-duplication: exactly once per key, and optionally once per content within a window."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockgate.intake.runner import Incoming
from lockgate.intake.service import IntakeService
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from tests.intake.kit import (
    assert_accounted,
    decision_keys,
    drop,
    folder_source,
    intake_once,
    prepare,
    query,
    show,
)

CONTENT = "    dedupe: {by: content, window: 7d}\n"


def test_the_same_content_under_another_key_is_a_duplicate_linked_to_the_first_decision(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(CONTENT, key='"{id}"'))
    drop(project, "a.csv", "id,text\n1,lost my card\n2,where is my refund\n")
    intake_once(project, database_url)
    drop(project, "b.csv", "id,text\n3,  lost my card \n4,a new one\n")
    intake_once(project, database_url)

    counts = show(project, database_url, "inbox")
    assert (counts["records"], counts["decided"], counts["duplicates"]) == (4, 3, 1)
    assert_accounted(counts)
    assert sorted(decision_keys(database_url)) == ["inbox:1", "inbox:2", "inbox:4"]
    links = query(database_url, "select position, first_key, by from intake_duplicates")
    assert [(r[1], r[2]) for r in links] == [("inbox:1", "content")]
    assert links[0][0].startswith("b.csv@") and links[0][0].endswith("row 1")


def test_by_key_only_the_same_content_under_two_keys_is_decided_twice(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(key='"{id}"'))
    drop(project, "a.csv", "id,text\n1,lost my card\n2,lost my card\n1,lost my card\n")
    intake_once(project, database_url)

    counts = show(project, database_url, "inbox")
    assert (counts["decided"], counts["duplicates"]) == (2, 1)
    links = query(database_url, "select first_key, by from intake_duplicates")
    assert [tuple(r) for r in links] == [("inbox:1", "key")]


def test_a_key_seen_again_with_other_content_is_quarantined_not_decided(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(key='"{id}"'))
    drop(project, "a.csv", "id,text\n1,lost my card\n")
    intake_once(project, database_url)
    drop(project, "b.csv", "id,text\n1,something else entirely\n")
    intake_once(project, database_url)

    counts = show(project, database_url, "inbox")
    assert (counts["decided"], counts["quarantined"]) == (1, 1)
    reasons = [r[0] for r in query(database_url, "select reason from intake_quarantine")]
    assert reasons == ["key inbox:1 was decided before for other content"]


def test_content_seen_longer_ago_than_the_window_is_decided_again(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(CONTENT, key='"{id}"'))
    now = [1_900_000_000.0]
    settings = load_settings(project, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        service = IntakeService(
            runtime.store.async_intake,
            runtime.pipeline,
            runtime.release_runtime,
            runtime.tasks(),
            project,
            {},
            clock=lambda: now[0],
        )
        intake = service.intake("routing", "inbox")

        async def push(key: str) -> None:
            record = Incoming(f"push {key}", {"id": key, "text": "lost my card"})
            await intake.process([record], None)

        async def scenario() -> None:
            await push("1")
            now[0] += 6 * 86400
            await push("2")  # 6 days after the first: a duplicate
            now[0] += 2 * 86400
            await push("3")  # 8 days after the first: decided again
            now[0] += 1 * 86400
            await push("4")  # 1 day after the third: a duplicate of the third
            await runtime.aclose()

        asyncio.run(scenario())
        counts = runtime.store.intake.state("routing", "inbox")
        assert counts is not None
        assert (counts.counts["decided"], counts.counts["duplicates"]) == (2, 2)
        links = query(database_url, "select first_key from intake_duplicates order by id")
        assert [r[0] for r in links] == ["inbox:1", "inbox:3"]
    finally:
        runtime.close()

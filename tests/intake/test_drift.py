"""Schema drift: each source remembers its fields; a new or missing field, a changed type or
a jump in missing values is an event, and `on_drift` says whether the source goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.intake import drift
from tests.cli.kit import lockgate
from tests.intake.kit import (
    assert_accounted,
    decision_keys,
    drop,
    folder_source,
    intake_once,
    prepare,
    quarantine,
    show,
)

MAP = "    map:\n      text: {from: [text], aliases: [body]}\n"
FIRST = "id,text,amount\n" + "".join(f"{i},message {i},{i}\n" for i in range(10))
RENAMED = "id,body,amount\n" + "".join(f"{i},message {i},{i}\n" for i in range(10, 20))


def kinds(counts: dict) -> set[tuple[str, str]]:
    return {(e["kind"], e["field"]) for e in counts["schema_events"]}


def test_accept_records_a_renamed_column_and_maps_it_by_alias(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(MAP, on_drift="accept"))
    drop(project, "a.csv", FIRST)
    intake_once(project, database_url)
    drop(project, "b.csv", RENAMED)
    intake_once(project, database_url)

    counts = show(project, database_url, "inbox")
    assert kinds(counts) == {("new_field", "body"), ("missing_field", "text")}
    assert (counts["decided"], counts["status"]) == (20, "active")


def test_quarantine_holds_the_records_until_a_person_resumes_and_replays(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(MAP, on_drift="quarantine"))
    drop(project, "a.csv", FIRST)
    intake_once(project, database_url)
    drop(project, "b.csv", RENAMED)
    drop(project, "c.csv", "id,body,amount\n30,later message,1\n")
    intake_once(project, database_url)

    held = show(project, database_url, "inbox")
    assert held["status"] == "held" and "new_field body" in held["status_reason"]
    assert (held["decided"], held["quarantined"]) == (10, 11)
    assert all(
        q["reason"].startswith("held until a person decides")
        for q in quarantine(project, database_url)
    )

    lockgate("sources", "resume", "inbox", cwd=project, database=database_url)
    lockgate("quarantine", "replay", "--source", "inbox", cwd=project, database=database_url)
    after = show(project, database_url, "inbox")
    assert (after["status"], after["decided"], after["quarantined"]) == ("active", 21, 0)
    assert_accounted(after)
    assert len(decision_keys(database_url)) == 21


def test_stop_pauses_the_source_without_taking_the_batch(tmp_path: Path, database_url: str) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(MAP, on_drift="stop"))
    drop(project, "a.csv", FIRST)
    intake_once(project, database_url)
    drop(project, "b.csv", RENAMED)
    (report,) = intake_once(project, database_url)

    assert report["stopped"].startswith("schema drift")
    stopped = show(project, database_url, "inbox")
    assert stopped["status"] == "stopped"
    assert (stopped["records"], stopped["decided"]) == (10, 10)
    assert (project / "inbox" / "b.csv").exists(), "the file waits in the inbox"
    (skipped,) = intake_once(project, database_url)
    assert skipped["skipped"].startswith("stopped")

    lockgate("sources", "resume", "inbox", cwd=project, database=database_url)
    intake_once(project, database_url)
    resumed = show(project, database_url, "inbox")
    assert (resumed["status"], resumed["records"], resumed["decided"]) == ("active", 20, 20)
    assert len(decision_keys(database_url)) == 20


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        pytest.param(
            [{"a": "1"}] * 10, [{"a": "x"}] * 10, ("type_changed", "a"), id="number-to-text"
        ),
        pytest.param(
            [{"a": "1", "b": "y"}] * 10,
            [{"a": "1", "b": ""}] * 8 + [{"a": "1", "b": "y"}] * 2,
            ("missing_jump", "b"),
            id="missing-values-jump",
        ),
        pytest.param([{"a": "1"}] * 3, [{"a": "1", "c": "z"}], ("new_field", "c"), id="new"),
        pytest.param([{"a": "1", "c": "z"}] * 3, [{"a": "1"}], ("missing_field", "c"), id="gone"),
    ],
)
def test_each_kind_of_drift_is_an_event_once(before: list, after: list, event: tuple) -> None:
    _, known = drift.compare({}, before)
    events, known = drift.compare(known, after)
    assert [(k, f) for k, f, _ in events] == [event]
    again, _ = drift.compare(known, after)
    assert again == [], "a drift is reported once"


def test_a_first_batch_sets_the_schema_without_events() -> None:
    events, known = drift.compare({}, [{"a": "1", "b": "x"}])
    assert events == [] and set(known["fields"]) == {"a", "b"}
